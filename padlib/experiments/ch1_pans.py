"""Chapter 1's design: the PAN scan under changed thresholds, seeds and probe sets; sides read by stride."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import PadlibError
from ..padding import SIDES
from ..pan_tables import _tables, side_counts
from ..pans import PanScan, calibrate_tau, reclassify, side_score
from ..stats import cluster_ratio_bootstrap, spearman


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


BOOTSTRAP_RESAMPLES = 10000  # resamples of layers in the chapter's primary tests (cluster bootstrap)
MIN_SIDE_LAYERS = 3  # layers the side test needs: over two, a percentile bootstrap has three distinct resamples and
                     # its "95%" interval is the two layers' range


def _layer_side_flags(tables) -> pd.DataFrame:
    """Per model, stride and padded layer: PAN-side flags per side (:func:`padlib.pan_tables.side_counts`, fire and
    silenced together, a PAN counting once per flagged side), the flags on top+left, and the layer's filters.

    The layer's arithmetic: ``predicted_top_left`` is the share of the padding the layer reads (padded rows and
    columns, :func:`_rows_read`; ``rows_*``, ``rows_exact``) that lies on the top or left: 1 when it reads only
    top/left padding, 0 when only bottom/right, 1/2 when it reads one row on every side, 1/3 for a 5x5 TF-SAME layer
    that reads one row on the top and two at the bottom.
    ``both_read``: the layer reads padding on a top/left side *and* on a bottom/right side, so its flags are free to
    depart from that share; in a layer that reads one pair only they cannot (a side whose padding is never read has
    no padding effect, so it is never a PAN side), and its flags match its arithmetic by construction."""
    rows = []
    for t in _tables(tables):
        model = t.attrs.get("model", "")
        for layer, g in t.groupby("layer", sort=False):
            g = g.copy()
            g.attrs["model"] = model
            c = side_counts(g)
            n = {s: int((c[c.side == s].fire + c[c.side == s].silenced).sum()) if len(c) else 0 for s in SIDES}
            reads = {f"reads_{s}": bool(g[f"reads_{s}"].iloc[0]) if f"reads_{s}" in g else True for s in SIDES}
            read_rows, exact = _rows_read(g)
            rows.append({"model": model, "layer": layer, "stride": str(g.stride.iloc[0]), "filters": len(g), **n,
                         **reads, **{f"rows_{s}": v for s, v in read_rows.items()}, "rows_exact": exact})
    out = pd.DataFrame(rows, columns=["model", "layer", "stride", "filters", *SIDES, *(f"reads_{s}" for s in SIDES),
                                      *(f"rows_{s}" for s in SIDES), "rows_exact"])
    out["pan_sides"] = out[list(SIDES)].sum(axis=1)
    out["top_left"] = out["top"] + out["left"]
    near = out[["rows_top", "rows_left"]].sum(axis=1)
    read = out[[f"rows_{s}" for s in SIDES]].sum(axis=1)
    out["predicted_top_left"] = (near / read.where(read > 0)).astype(float)
    out["both_read"] = (out.reads_top | out.reads_left) & (out.reads_bottom | out.reads_right)
    return out


def _rows_read(g: pd.DataFrame) -> tuple[dict, bool]:
    """The padded rows (columns) a layer reads on each side, from its scan table: all of a side's padding where the
    side is read (``reads_*``), none where it is not; and whether that is exact. The first output row starts on the
    near padding, so the top/left padding is read whole; the far side loses the remainder r of the stride arithmetic
    (Mind the Pad's m mod s), which is 0 for TF SAME (its padding is sized to fit) and leaves a read side of one
    padded row whole, so the count is exact except for a PyTorch-padded strided layer with two or more padded rows
    on a read far side, where it may count one row too many (``exact`` False)."""
    r = g.iloc[0]
    pads = {s: int(r.get(f"pad_{s}", 1)) for s in SIDES}
    reads = {s: bool(r.get(f"reads_{s}", True)) for s in SIDES}
    rows = {s: pads[s] if reads[s] else 0 for s in SIDES}
    strided = str(r.get("stride", 1)) not in ("1", "(1, 1)")
    exact = str(r.get("padding", "")) == "tf_same" or not strided or all(
        rows[s] <= 1 for s in ("bottom", "right"))
    return rows, exact


def sides_by_read_padding(tables, stride: str = "2") -> pd.DataFrame:
    """Exploratory, beside the primary side test: the stride-``stride`` layers grouped by the padding they read
    (``reads``: "top/left only", "bottom/right only", "both"), with their PAN-side flags and how many of those lie
    on the top/left; ``layers`` and ``models`` count the layers with PAN sides and their models."""
    f = _layer_side_flags(tables)
    f = f[f.stride == str(stride)].copy()
    tl, br = f.reads_top | f.reads_left, f.reads_bottom | f.reads_right
    f["reads"] = np.where(tl & ~br, "top/left only", np.where(br & ~tl, "bottom/right only", "both"))
    rows = []
    for reads in ("top/left only", "bottom/right only", "both"):
        g = f[(f.reads == reads) & (f.pan_sides > 0)]
        rows.append({"reads": reads, "layers": len(g), "models": g.model.nunique(),
                     "pan_sides": int(g.pan_sides.sum()), "top_left": int(g.top_left.sum())})
    return pd.DataFrame(rows)


def side_skew(tables, n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per model and stride: where PAN-side flags fall, against what each layer's padding arithmetic predicts.

    The primary quantity (``follow_diff``, with ``follow_low``/``follow_high`` and ``p_follow``): over the layers
    that read padding on both a top/left and a bottom/right side (``both_read``, see :func:`_layer_side_flags`) and
    have PAN sides, the observed top/left share of their flags minus the share their read sides predict, each
    layer's predicted share weighted by that layer's flags (so the prediction is the expected observed share if
    every flag fell on one of its layer's read sides, alike): ``sum(top_left - predicted * flags) / sum(flags)``,
    a ratio of sums with a 95% cluster-bootstrap interval over those layers and its two-sided bootstrap p against 0
    (:func:`padlib.stats.cluster_ratio_bootstrap`), given at least :data:`MIN_SIDE_LAYERS` such layers (else the
    estimate alone). ``both_layers``: how many layers that is (few: the interval is rough); ``inexact_layers``: those
    whose rows read may be overcounted by one (:func:`_rows_read`); ``both_sides``, ``observed_share``, ``predicted_share``: their flags and the two shares.
    ``one_pair_sides``: the flags of layers that read one pair of sides only, which match their arithmetic by
    construction and so are left out of the test.

    Context, not the test: the share of all flags on top+left (``top_left_share``) with its interval over layers and
    its p against 1/2 (``p_half``), and the filter-weighted share of the read sides on top+left
    (:func:`_read_top_left_share`; ``predicted`` is its direction). The sides of one filter (a frame PAN flags four)
    and the filters of one layer are not independent: every interval resamples whole layers."""
    flags = _layer_side_flags(tables)
    rows = []
    for (model, stride), g in flags.groupby(["model", "stride"], sort=False):
        test = cluster_ratio_bootstrap(g.top_left, g.pan_sides, null=0.5, n_boot=n_boot, seed=seed)
        b = g[g.both_read & (g.pan_sides > 0)]
        follow = cluster_ratio_bootstrap(b.top_left - b.predicted_top_left * b.pan_sides, b.pan_sides, null=0.0,
                                         n_boot=n_boot, seed=seed)
        if len(b) < MIN_SIDE_LAYERS:  # too few clusters for a percentile interval: the estimate only
            follow = follow._replace(low=float("nan"), high=float("nan"), p=float("nan"))
        n_b = int(b.pan_sides.sum())
        rows.append({"model": model, "stride": stride, **{s: int(g[s].sum()) for s in SIDES},
                     "pan_sides": int(g.pan_sides.sum()), "layers": int((g.pan_sides > 0).sum()),
                     "top_left_share": test.estimate, "ci_low": test.low, "ci_high": test.high, "p_half": test.p,
                     "both_layers": len(b), "both_sides": n_b,
                     "observed_share": float(b.top_left.sum() / n_b) if n_b else np.nan,
                     "predicted_share": float((b.predicted_top_left * b.pan_sides).sum() / n_b) if n_b else np.nan,
                     "follow_diff": follow.estimate, "follow_low": follow.low, "follow_high": follow.high,
                     "p_follow": follow.p,
                     "one_pair_sides": int(g[~g.both_read].pan_sides.sum()),
                     "inexact_layers": int((~b.rows_exact.astype(bool)).sum())})
    out = pd.DataFrame(rows).merge(_read_top_left_share(tables), on=["model", "stride"], how="left")
    out["n_images"] = out.model.map({t.attrs.get("model", ""): int(t.attrs.get("n_images", 0)) for t in _tables(tables)})
    read = out["read_top_left_share"] - 0.5
    out["predicted"] = np.where(np.isfinite(read) & (np.abs(read) > 1e-9), np.sign(read), 0).astype(int)
    return out


def learned_by_layer(parts: dict) -> pd.DataFrame:
    """Per padded layer of one :func:`padlib.pans.learned_pan_control` (its ``{label: PanScan}``): the filters, the
    trained network's learned PANs and the random-init copies' mean count (``random_init``, over ``seeds`` copies)."""
    trained = parts["trained"].table
    copies = [sc.table for label, sc in parts.items() if label != "trained"]
    out = trained.groupby("layer", sort=False).agg(stride=("stride", "first"), filters=("channel", "size"),
                                                   trained=("is_pan", "sum")).reset_index()
    ri = [c.groupby("layer", sort=False).is_pan.sum() for c in copies]
    out["random_init"] = (pd.concat(ri, axis=1).mean(axis=1).reindex(out.layer).to_numpy() if ri
                          else np.nan)
    out.insert(0, "model", parts["trained"].model_name)
    out["seeds"], out["n_images"] = len(copies), parts["trained"].n_images
    return out


def learned_excess(by_layer: pd.DataFrame, n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """The primary test of "trained networks have PANs beyond random initialisation", per model of
    :func:`learned_by_layer` rows: the trained share of learned PANs minus the random-init copies' mean share (of
    the padded filters), with a 95% cluster-bootstrap interval over layers (trained and random init resampled
    together, layer by layer) and its two-sided bootstrap p against 0 (:func:`padlib.stats.cluster_ratio_bootstrap`)."""
    rows = []
    for model, g in by_layer.groupby("model", sort=False):
        test = cluster_ratio_bootstrap(g.trained - g.random_init, g.filters, n_boot=n_boot, seed=seed)
        rows.append({"model": model, "layers": len(g), "filters": int(g.filters.sum()),
                     "seeds": int(g.seeds.iloc[0]), "n_images": int(g.n_images.iloc[0]),
                     "trained_pct": 100.0 * g.trained.sum() / g.filters.sum(),
                     "random_init_pct": 100.0 * g.random_init.sum() / g.filters.sum(),
                     "excess_pct": 100.0 * test.estimate, "low_pct": 100.0 * test.low, "high_pct": 100.0 * test.high,
                     "p": test.p})
    return pd.DataFrame(rows)


def threshold_curve(scan: PanScan, taus=None) -> pd.DataFrame:
    """PANs (side PANs, same effect criterion; learned PANs when the scan has the random-init reference, its
    per-layer thresholds unchanged) and null exceedances as functions of the circular-null threshold tau."""
    taus = np.geomspace(0.5, 50, 41) if taus is None else np.asarray(taus, dtype=float)
    null = scan.null
    rows = []
    for tau in taus:
        c = reclassify(scan, tau=float(tau), tau_corner=float("inf"))
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
            c = reclassify(scan, fpr=float(fpr), min_explained=float(me))
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



def count_convergence(model, image_counts=(16, 32, 64, 128), seed: int = 0, size=None, image_dir=None,
                      fpr: float = 0.01, batch_size: int = 16, device="cpu") -> pd.DataFrame:
    """The three readings' counts against the number of probe images (the same crops, nested: the first n of
    the largest set), one default scan per count: where the counts settle says how many images a scan needs."""
    from ..data import probe_images
    from ..pans import scan_pans

    rows = []
    for n in sorted(image_counts):
        images = probe_images(int(n), size=size, seed=seed, image_dir=image_dir, model=model)
        sc = scan_pans(model, images, fpr=fpr, batch_size=batch_size, device=device, progress=False)
        rows.append({"model": sc.model_name, "n_images": int(n), **sc.readings(),
                     "filters": len(sc.table), "expected_false_discoveries": sc.expected_false_discoveries()})
    return pd.DataFrame(rows)


def settled_count(convergence: pd.DataFrame, reading: str = "specialist", tolerance: float = 0.05) -> pd.DataFrame:
    """Per model, the smallest number of images from which every larger count of ``reading`` stays within
    ``tolerance`` (relative) of the largest set's count; NaN when only the largest set is within it."""
    rows = []
    for model, g in convergence.groupby("model", sort=False):
        g = g.sort_values("n_images")
        final = float(g[reading].iloc[-1])
        ok = (g[reading] - final).abs() <= tolerance * max(final, 1.0)
        settled = float("nan")
        for i in range(len(g) - 1):
            if ok.iloc[i:].all():
                settled = float(g.n_images.iloc[i])
                break
        rows.append({"model": model, "reading": reading, "final": int(final), "largest_n": int(g.n_images.iloc[-1]),
                     "settled_from": settled, "tolerance": tolerance})
    return pd.DataFrame(rows)


def _reread(parts: dict, **settings) -> dict:
    """A :func:`padlib.pans.learned_pan_control`'s scans with every reading recomputed for ``settings``
    (:func:`padlib.pans.reclassify`; no scan is run again)."""
    import dataclasses

    return {label: dataclasses.replace(sc, table=reclassify(sc, **settings)) for label, sc in parts.items()}


def excess_across_settings(control_parts: dict, fprs=(0.005, 0.01, 0.02), bars=(0.85, 0.9, 0.95),
                           definitions=("specialist", "learned"), n_boot: int = BOOTSTRAP_RESAMPLES,
                           seed: int = 0) -> pd.DataFrame:
    """The primary "are PANs learned" test (:func:`learned_excess`) re-read at other reasonable settings, from
    the same scans: the false-positive rate that sets tau and the random-init thresholds, the selectivity bar
    (specialists) and the reading itself. One row per (setting, model); ``control_parts``: {model: what
    :func:`padlib.pans.learned_pan_control` returned (its ``(table, {label: PanScan})``), or just the scans}."""
    scans = [v[1] if isinstance(v, tuple) else v for v in control_parts.values()]
    rows = []
    for definition in definitions:
        for fpr in fprs:
            for bar in (bars if definition == "specialist" else (None,)):
                by_layer = pd.concat([learned_by_layer(_reread(parts, fpr=fpr, selectivity_threshold=bar,
                                                               definition=definition))
                                      for parts in scans])
                ex = learned_excess(by_layer, n_boot=n_boot, seed=seed)
                rows.append(ex.assign(definition=definition, fpr=fpr, bar=np.nan if bar is None else bar))
    return pd.concat(rows, ignore_index=True)
