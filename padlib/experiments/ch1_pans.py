"""Chapter 1's design: the PAN scan under changed thresholds, seeds and probe sets; sides read by stride."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import PadlibError
from ..padding import SIDES
from ..pan_tables import _tables, side_counts
from ..pans import PanScan, calibrate_tau, classify_pans, init_thresholds, learned_verdict, side_score
from ..stats import interval_sign, spearman, wilson_interval


def _read_top_left_share(tables) -> pd.DataFrame:
    """Per model and stride: of the padding sides that the layers actually read (weighted by filters), the
    share on the top or left. 1 when only top/left padding is read, 0.5 when all four sides are."""
    rows = []
    for t in _tables(tables):
        layers = t.groupby("layer", sort=False).agg(stride=("stride", "first"), filters=("channel", "size"),
                                                    **{f"reads_{s}": (f"reads_{s}", "first") for s in SIDES})
        layers["stride"] = layers["stride"].astype(str)
        for stride, g in layers.groupby("stride", sort=True):
            tl = (g[["reads_top", "reads_left"]].sum(axis=1) * g["filters"]).sum()
            total = (g[[f"reads_{s}" for s in SIDES]].sum(axis=1) * g["filters"]).sum()
            rows.append({"model": t.attrs.get("model", ""), "stride": stride,
                         "padding_kind": "TF SAME" if (t.padding == "tf_same").any() else "PyTorch",
                         "read_top_left_share": float(tl / total) if total else float("nan")})
    return pd.DataFrame(rows)


def side_skew(tables) -> pd.DataFrame:
    """Per model and stride: PAN-side flags per side, the share on top+left (with a 95% Wilson interval),
    and the share of the *read* padding that is on top+left (:func:`_read_top_left_share`).

    ``verdict``: "toward the read padding" when the interval lies on the same side of 1/2 as the read share,
    "against the read padding" when on the other side, "no clear skew" when it contains 1/2, and "all sides
    read alike" when the read share is 1/2. (Flags of one PAN are not independent, e.g. a frame PAN flags all
    four sides, so the interval is a rough guide, not an exact test.)
    """
    c = side_counts(tables)
    c["n"] = c["fire"] + c["silenced"]
    piv = c.pivot_table(index=["model", "stride"], columns="side", values="n", aggfunc="sum", fill_value=0)
    piv = piv.reindex(columns=list(SIDES), fill_value=0)
    piv.columns.name = None
    piv["pan_sides"] = piv[list(SIDES)].sum(axis=1)
    piv["top_left_share"] = (piv["top"] + piv["left"]) / piv["pan_sides"].clip(lower=1)
    ci = [wilson_interval(tl, n) for tl, n in zip(piv["top"] + piv["left"], piv["pan_sides"])]
    piv["ci_low"], piv["ci_high"] = [v[0] for v in ci], [v[1] for v in ci]
    out = piv.reset_index().merge(_read_top_left_share(tables), on=["model", "stride"], how="left")

    def verdict(r):
        read = r.read_top_left_share
        skew = int(interval_sign(r.ci_low - 0.5, r.ci_high - 0.5, r.top_left_share - 0.5))  # PAN sides vs 1/2
        if not np.isfinite(read) or abs(read - 0.5) < 1e-9:
            return "all sides read alike" + ("; PAN sides still off 1/2" if skew else "")
        if skew:
            return "toward the read padding" if skew * (read - 0.5) > 0 else "against the read padding"
        return "no clear skew"

    out["verdict"] = [verdict(r) for r in out.itertuples()]
    return out


def threshold_curve(scan: PanScan, taus=None) -> pd.DataFrame:
    """PANs (side PANs, same effect criterion; learned PANs when the scan has the random-init reference, its
    per-layer thresholds unchanged) and null exceedances as functions of the circular-null threshold tau."""
    taus = np.geomspace(0.5, 50, 41) if taus is None else np.asarray(taus, dtype=float)
    obs, null = scan.table, scan.null
    rows = []
    for tau in taus:
        c = classify_pans(obs, float(tau), float("inf"), scan.min_explained)
        if scan.init_thresholds is not None:  # learned PANs: the random-init thresholds stay the scan's own
            c = learned_verdict(c, scan.init_thresholds, scan.min_explained)
        rows.append({"model": scan.model_name, "tau": float(tau), "pans": int(c.is_pan.sum()),
                     "null_exceed": int((side_score(null) > tau).sum()) if null is not None else np.nan,
                     "calibrated_tau": scan.tau})
    return pd.DataFrame(rows)


def threshold_sensitivity(scan: PanScan, fprs=(0.001, 0.01, 0.05), min_explained=(0.5,)) -> pd.DataFrame:
    """PAN counts when the thresholds are recalibrated for other false-positive rates: tau on the same null,
    and (when the scan has the random-init reference) the per-layer random-init thresholds on the same reference."""
    if scan.null is None:
        raise PadlibError("this scan has no null table (tau was given); rescan with null='circular'")
    rows = []
    for fpr in fprs:
        tau, tau_c = calibrate_tau(scan.null, float(fpr))
        for me in min_explained:
            c = classify_pans(scan.table, tau, tau_c, float(me))
            if scan.reference is not None:
                c = learned_verdict(c, init_thresholds(scan.reference, float(fpr), float(me)), float(me))
            rows.append({"model": scan.model_name, "fpr": fpr, "min_explained": me, "tau": tau,
                         "tau_corner": tau_c, "pans": int(c.is_pan.sum()),
                         "share_pct": 100.0 * c.is_pan.mean()})
    return pd.DataFrame(rows)


def effect_agreement(tables) -> pd.DataFrame:
    """Per model, how well the border contrast z agrees with the causal padding effect and with the
    weight-based prediction from measured input means (``zpred``; Spearman rank correlations), over the sides
    that pass tau and over all sides."""
    rows = []
    for t in _tables(tables):
        z = np.concatenate([t[f"z_{s}"] for s in SIDES])
        e = np.concatenate([t[f"effect_{s}"] for s in SIDES])
        zp = np.concatenate([t[f"zpred_{s}"] for s in SIDES])
        big = np.abs(z) > t.attrs.get("tau", 0.0)
        ok = np.isfinite(zp)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = e[big] / z[big]
        rows.append({
            "model": t.attrs.get("model", ""),
            "sides_above_tau": int(big.sum()),
            "explained_median": float(np.median(ratio)) if big.any() else np.nan,
            "explained_ge_half": float((ratio >= 0.5).mean()) if big.any() else np.nan,
            "spearman_z_effect_above_tau": spearman(z[big], e[big]),
            "spearman_z_prediction_above_tau": spearman(z[big & ok], zp[big & ok]),
            "spearman_z_effect_all": spearman(z, e),
        })
    return pd.DataFrame(rows)


def strided_padding(tables) -> pd.DataFrame:
    """Per model, the padding of its stride-2 padded convs at the scanned size and which sides it reads."""
    rows = []
    for t in _tables(tables):
        d = t[t.stride.astype(str) == "2"].drop_duplicates("layer")
        for _, r in d.iterrows():
            rows.append({"model": t.attrs.get("model", ""), "layer": r.layer, "out": f"{r.height}x{r.width}",
                         "padding": r.padding, "pads (t,b,l,r)": f"{r.pad_top},{r.pad_bottom},{r.pad_left},{r.pad_right}",
                         "reads": "+".join(s for s in SIDES if r[f"reads_{s}"]) or "none"})
    return pd.DataFrame(rows)


def seed_replicates(scans: dict) -> pd.DataFrame:
    """Scans of one model on different probe seeds: counts, shares, thresholds, and how far each seed's PAN
    set agrees with the first one's (Jaccard overlap of (layer, channel) pairs)."""
    items = list(scans.items())
    if not items:
        raise PadlibError("no replicate scans given")

    def pan_set(sc):
        p = sc.table[sc.table.is_pan]
        return set(zip(p.layer, p.channel))

    ref = pan_set(items[0][1])
    rows = []
    for seed, sc in items:
        cur = pan_set(sc)
        rows.append({"model": sc.model_name, "seed": seed, "pans": len(cur),
                     "share_pct": 100.0 * len(cur) / len(sc.table), "tau": sc.tau,
                     "jaccard_vs_first": len(cur & ref) / max(len(cur | ref), 1)})
    return pd.DataFrame(rows)

