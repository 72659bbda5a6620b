"""A taxonomy of PAN kernels (side, corner, opposite, frame, edge, silenced) and the agreement of the data-free
detector with the scan, from the weights and a scan table."""
from __future__ import annotations

import numpy as np
import pandas as pd
from torch import nn

from .errors import PadlibError, check_type
from .kernels import _OPPOSITE, data_free_input_means
from .padding import CORNERS, SIDES
from .pan_tables import border_profile

PAN_TYPES = ("side", "corner", "opposite", "frame", "edge", "silenced")


# ---------------------------------------------------------------------------------------------------------
# Taxonomy of PANs (our rule) and its unsupervised check


def _flagged_signs(z: dict, sides: set) -> dict:
    return {s: (1 if z[s] > 0 else -1) for s in SIDES if s in sides}


def _extent(flagged: dict) -> str:
    s = set(flagged)
    if not s:
        return "none"
    if len(s) == 1:
        return "side"
    if len(s) == 2:
        a, b = sorted(s)
        return "opposite" if _OPPOSITE[a] == b else "corner"
    return "frame"


def pan_type(flagged: dict) -> str:
    """The type of a border response given the sign (+1 fires, -1 silenced) on each flagged side (our rule).

    Justification from the linear formula (:func:`padding_response`): the shift at a side is minus the
    mean-weighted mass of the taps that padding replaces there. Mixed signs mean the kernel has mass of
    both signs across its border bands, as an oriented derivative has: the zero step at the border is,
    to that kernel, an edge ('edge'). All-negative means padding removes net excitation: the filter is
    'silenced' at the border whatever the extent. All-positive: the filter fires on the border, on one
    side ('side'), two adjacent sides ('corner'), two opposite sides ('opposite') or three or four sides
    ('frame'). The extent is also limited by which padding the layer reads (uneven stride-2 layers read
    two adjacent sides only), so types are compared within layer kinds.
    """
    if not flagged:
        return "none"
    signs = set(flagged.values())
    if len(signs) > 1:
        return "edge"
    if signs == {-1}:
        return "silenced"
    return _extent(flagged)


def _parse_sides(value) -> tuple[set, set]:
    """(flagged sides, flagged corners) from a ``padlib.pans`` sides label: 'top', 'left+right', 'frame',
    'top-left corner', 'top-left+bottom-right corners', 'all corners' (or a collection of names)."""
    if isinstance(value, (set, list, tuple)):
        return {s for s in value if s in SIDES}, {c for c in value if c in CORNERS}
    if not isinstance(value, str) or not value.strip():
        return set(), set()
    v = value.strip().lower()
    if v == "frame":
        return set(SIDES), set()
    if v == "all corners":
        return set(), set(CORNERS)
    if "corner" in v:
        names = v.replace("corners", "").replace("corner", "").strip()
        return set(), {n.strip().replace("-", "_") for n in names.split("+") if n.strip().replace("-", "_") in CORNERS}
    return {t.strip() for t in v.split("+") if t.strip() in SIDES}, set()


def classify_pan_kernels(pans: pd.DataFrame, profiles: pd.DataFrame | None = None, tau: float | None = None,
                         z_prefix: str = "z_", only_pans: bool = True) -> pd.DataFrame:
    """Assign each PAN a type with :func:`pan_type` and attach its kernel profile features.

    ``pans``: the activation-based detector's table (``padlib.pans.find_pans``): z_<side> border contrasts
    and ``sides`` (the flagged sides), or any table with ``<z_prefix><side>`` columns, then flagged where
    |z| >= ``tau`` (e.g. the data-free ``zp_`` columns). ``profiles``: :func:`model_kernel_profiles` rows,
    merged on (layer, channel). Adds: type, extent, sign_pattern (e.g. 'T+ L-'), n_sides.
    """
    check_type("pans", pans, pd.DataFrame)
    zcols = [f"{z_prefix}{s}" for s in SIDES]
    missing = [c for c in zcols + ["layer", "channel"] if c not in pans.columns]
    if missing:
        raise PadlibError(f"pans table lacks columns {missing}; pass padlib.pans.find_pans(...) output")
    df = pans
    if only_pans and "is_pan" in df.columns and tau is None:
        df = df[df["is_pan"].astype(bool)]
    use_sides = tau is None and "sides" in df.columns
    if tau is None and not use_sides:
        raise PadlibError("pass tau: the table has no 'sides' column saying which sides are flagged")
    ccols = [f"{z_prefix}{c}" for c in CORNERS]
    has_corners = use_sides and all(c in df.columns for c in ccols)
    cols = zcols + (ccols if has_corners else []) + (["sides"] if use_sides else [])
    types, extents, patterns, counts = [], [], [], []
    for row in df[cols].itertuples(index=False):
        z = dict(zip(SIDES, row[:4]))
        if use_sides:
            sides, corners = _parse_sides(row[-1])
        else:
            sides, corners = {s for s in SIDES if abs(z[s]) >= tau}, set()
        flagged = _flagged_signs(z, sides)
        if not flagged and corners and has_corners:  # a corner-only PAN: fires -> corner, silenced -> silenced
            zc = dict(zip(CORNERS, row[4:8]))
            signs = {c: (1 if zc[c] > 0 else -1) for c in CORNERS if c in corners}
            kind = "edge" if len(set(signs.values())) > 1 else ("silenced" if -1 in signs.values() else "corner")
            types.append(kind)
            extents.append("corner only")
            patterns.append(" ".join(f"{''.join(w[0].upper() for w in c.split('_'))}{'+' if v > 0 else '-'}"
                                     for c, v in signs.items()))
            counts.append(0)
            continue
        types.append(pan_type(flagged))
        extents.append(_extent(flagged))
        patterns.append(" ".join(f"{s[0].upper()}{'+' if v > 0 else '-'}" for s, v in flagged.items()))
        counts.append(len(flagged))
    out = df.assign(type=types, extent=extents, sign_pattern=patterns, n_sides=counts)
    if only_pans and tau is not None:
        out = out[out["type"] != "none"]
    if profiles is not None:
        cols = [c for c in profiles.columns if c not in out.columns or c in ("layer", "channel")]
        out = out.merge(profiles[cols], on=["layer", "channel"], how="left")
    return out.reset_index(drop=True)


BORDER_FEATURES = ("mass_top", "mass_bottom", "mass_left", "mass_right", "dc", "centre_surround")


def _coarse(types) -> np.ndarray:
    return np.array(["edge" if t == "edge" else "silenced" if t == "silenced" else "fires" for t in types])


def taxonomy_clusters(classified: pd.DataFrame, n_clusters: int | None = None, seed: int = 0,
                      n_perm: int = 200, features: str = "profile") -> tuple[pd.DataFrame, dict]:
    """Unsupervised check of the rule: k-means on kernel features alone, compared with the rule types.

    ``features='profile'``: the L1-normalised 3x3 band profile (``profile3``, 9 numbers: the kernel's shape);
    ``'border'``: the signed border-band masses, DC and centre-surround of :func:`kernel_profile` (the
    quantities the formula says decide the border response). Agreement is the adjusted Rand index (0 for
    chance, 1 for identical partitions) with a permutation null (types shuffled ``n_perm`` times), and
    the ARI with the coarse classes fires / silenced / edge. The clusters see only the weights (times the
    data-free input means); the types come from the measured border response, so a high ARI says the
    kernel alone separates the types. Returns (classified with a ``cluster`` column, summary dict).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    if features not in ("profile", "border"):
        raise PadlibError(f"features must be 'profile' or 'border', got '{features}'")
    need = "profile3" if features == "profile" else "mass_top"
    if need not in classified.columns:
        raise PadlibError("classified has no kernel features: pass profiles= to classify_pan_kernels")
    df = classified.dropna(subset=[need])
    types = df["type"].to_numpy()
    k = n_clusters or len(set(types))
    if len(df) < max(k, 2) or k < 2:
        raise PadlibError(f"need at least {max(k, 2)} classified PANs of at least 2 types to cluster, got {len(df)}")
    if features == "profile":
        x = np.stack([np.asarray(p, dtype=float).ravel() for p in df["profile3"]])
    else:
        x = df[list(BORDER_FEATURES)].to_numpy(float)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # tiny problem: OpenMP threads only add overhead (25 s instead of 0.2 s on 2 busy cores)
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    ari = adjusted_rand_score(types, km.labels_)
    rng = np.random.default_rng(seed)
    null = np.array([adjusted_rand_score(rng.permutation(types), km.labels_) for _ in range(n_perm)])
    summary = {"features": features, "n": len(df), "k": k, "ari": float(ari),
               "ari_coarse": float(adjusted_rand_score(_coarse(types), km.labels_)),
               "null_mean": float(null.mean()) if n_perm else float("nan"),
               "null_q95": float(np.quantile(null, 0.95)) if n_perm else float("nan"),
               "p_value": float((1 + (null >= ari).sum()) / (1 + n_perm)),
               "centroids": km.cluster_centers_.reshape(k, 3, 3) if features == "profile" else km.cluster_centers_}
    return df.assign(cluster=km.labels_), summary


# ---------------------------------------------------------------------------------------------------------
# Data-free vs activation-based detector


def _read_sides(table: pd.DataFrame) -> dict:
    return {s: table[f"reads_{s}"].to_numpy(bool) if f"reads_{s}" in table else np.ones(len(table), bool)
            for s in SIDES}


def merge_detectors(table: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """The activation-based table (``padlib.pans``) joined with :func:`data_free_pans` on (layer, channel)."""
    check_type("table", table, pd.DataFrame)
    keep = ["layer", "channel", "pred_is_pan", "pred_sides", "zp_max"] + [f"zp_{s}" for s in SIDES]
    keep += [c for c in ["pred_corners", "zp_corner_max"] + [f"zp_{c}" for c in CORNERS] if c in predicted]
    merged = table.merge(predicted[keep], on=["layer", "channel"], how="inner")
    if merged.empty:
        raise PadlibError("no (layer, channel) in common: were both tables made from the same model?")
    merged.attrs.update(table.attrs)
    return merged


def corner_only_pans(table: pd.DataFrame) -> np.ndarray:
    """Boolean mask of PANs that ``padlib.pans`` flags on corners only (``sides`` ends in 'corner(s)')."""
    if "sides" not in table:
        return np.zeros(len(table), bool)
    sides = table["sides"].astype(str)
    return (table["is_pan"].to_numpy(bool) & sides.str.contains("corner").to_numpy(bool))


def detector_agreement(merged: pd.DataFrame, tau: float | None = None, tau_corner: float | None = None
                       ) -> pd.DataFrame:
    """Precision, recall and average precision of weight-based predictions against the activation-based PANs.

    Two predictors: 'data-free' (:func:`data_free_pans`: input means and scale from BatchNorm statistics)
    and 'measured means' (``zpred_<loc>`` of ``padlib.pans``: the same formula with the probe images'
    input means and interior std). Both flag a channel when max |z| over read sides >= ``tau`` or, where
    the table has corner columns, max |z| over corners >= ``tau_corner`` (defaults: the scan's calibrated
    thresholds), the same two routes by which ``padlib.pans`` flags a PAN. AP ranks channels by the larger
    of the two maxima, each divided by its threshold, so it does not depend on tau's level. Recall is also
    given separately for side PANs and corner-only PANs (``recall_sides``, ``recall_corner_only``), and
    ``recall_sides_only_rule`` / ``precision_sides_only_rule`` are what a sides-only predictor reaches
    (corners ignored).
    """
    from sklearn.metrics import average_precision_score

    tau = merged.attrs.get("tau") if tau is None else tau
    if tau is None:
        raise PadlibError("pass tau: the merged table carries no calibrated tau in .attrs")
    tau_corner = merged.attrs.get("tau_corner", tau) if tau_corner is None else tau_corner
    tau_corner = tau if tau_corner is None or not np.isfinite(tau_corner) else tau_corner
    truth = merged["is_pan"].to_numpy(bool)
    corner_only = corner_only_pans(merged)
    reads = _read_sides(merged)
    rows = []
    for name, prefix in (("data-free", "zp_"), ("measured means", "zpred_")):
        z = np.stack([np.where(reads[s], np.abs(merged[f"{prefix}{s}"].to_numpy(float)), 0.0) for s in SIDES], 1)
        side_score = np.nan_to_num(z, nan=0.0).max(1)
        has_corners = all(f"{prefix}{c}" in merged for c in CORNERS)
        if has_corners:
            zc = np.abs(merged[[f"{prefix}{c}" for c in CORNERS]].to_numpy(float))
            corner_score = np.nan_to_num(zc, nan=0.0).max(1)
        else:
            corner_score = np.zeros(len(merged))
        pred = (side_score >= tau) | (has_corners & (corner_score >= tau_corner))
        score = np.maximum(side_score / tau, corner_score / tau_corner if has_corners else 0.0)
        tp = int((pred & truth).sum())
        side_pans = truth & ~corner_only
        rows.append({"predictor": name, "tau": float(tau), "tau_corner": float(tau_corner),
                     "uses_corners": bool(has_corners), "pans": int(truth.sum()),
                     "corner_only_pans": int(corner_only.sum()), "predicted": int(pred.sum()),
                     "true_positives": tp, "precision": tp / max(int(pred.sum()), 1),
                     "recall": tp / max(int(truth.sum()), 1),
                     "recall_sides": int((pred & side_pans).sum()) / max(int(side_pans.sum()), 1),
                     "recall_corner_only": (int((pred & corner_only).sum()) / int(corner_only.sum())
                                            if corner_only.any() else np.nan),
                     "recall_sides_only_rule": int(((side_score >= tau) & truth).sum()) / max(int(truth.sum()), 1),
                     "precision_sides_only_rule": (int(((side_score >= tau) & truth).sum())
                                                   / max(int((side_score >= tau).sum()), 1)),
                     "average_precision": float(average_precision_score(truth, score)) if truth.any() else np.nan})
    out = pd.DataFrame(rows)
    out["f1"] = 2 * out.precision * out.recall / (out.precision + out.recall).replace(0, np.nan)
    return out


def _corr(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return np.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def disagreement_by_layer(merged: pd.DataFrame, model: nn.Module | None = None,
                          measured_input_means: dict | None = None) -> pd.DataFrame:
    """Per layer, where the data-free prediction and the measurement part ways, split into three gaps.

    For a read side, in interior-std units of the pre-activation (means over channels and read sides of
    absolute gaps; ``gap_total`` = mean |zp - z| is at most the sum of the three, by the triangle inequality,
    but not equal to it; the ``signed_*`` columns are the means of the signed differences, which add up
    exactly: signed_estimate + signed_position + signed_inherited = signed_total = mean(zp - z)):
    ``gap_estimate`` = |zp - zpred|: input means and scale estimated from BatchNorm statistics instead of
    measured; ``gap_position`` = |zpred - effect|: the formula assumes the input equals its mean up to the
    border, but ``effect`` (own minus replicate padding) is exactly minus the padded taps times the mean
    *edge* input, so this gap is the position dependence of the input, left by upstream padding through
    non-linearities; ``gap_inherited`` = |effect - z|: border contrast that this layer's padding did not
    cause (inherited from earlier layers, or content). With ``model`` and ``measured_input_means``
    ({layer: tensor}, e.g. ``PanScan.input_means``) it adds the data-free means' correlation and median
    ratio to the measured ones.
    """
    reads = _read_sides(merged)
    tau = merged.attrs.get("tau")
    mu_df = None
    if model is not None and measured_input_means is not None:
        mu_df = data_free_input_means(model).set_index("layer")["mean"]
    rows = []
    for layer, g in merged.groupby("layer", sort=False):
        idx = g.index.to_numpy()
        r = {"layer": layer, "depth": int(g["depth"].iloc[0]), "stride": g["stride"].iloc[0],
             "channels": len(g), "pans": int(g["is_pan"].sum()), "predicted": int(g["pred_is_pan"].sum())}
        tp = int((g["is_pan"] & g["pred_is_pan"]).sum())
        r["precision"] = tp / r["predicted"] if r["predicted"] else np.nan
        r["recall"] = tp / r["pans"] if r["pans"] else np.nan
        sides = [s for s in SIDES if reads[s][merged.index.get_indexer(idx)].any()]
        cat = lambda col: np.concatenate([g[f"{col}_{s}"].to_numpy(float) for s in sides])  # noqa: E731
        zp, zpred, eff, z = cat("zp"), cat("zpred"), cat("effect"), cat("z")
        ok = np.isfinite(zp) & np.isfinite(zpred) & np.isfinite(eff) & np.isfinite(z)  # one set for every gap
        zp, zpred, eff, z = zp[ok], zpred[ok], eff[ok], z[ok]
        mean = lambda v: float(v.mean()) if len(v) else np.nan  # noqa: E731
        r.update(corr_datafree_effect=_corr(zp, eff), corr_measured_effect=_corr(zpred, eff),
                 corr_effect_z=_corr(eff, z), gap_estimate=mean(np.abs(zp - zpred)),
                 gap_position=mean(np.abs(zpred - eff)), gap_inherited=mean(np.abs(eff - z)),
                 gap_total=mean(np.abs(zp - z)), signed_estimate=mean(zp - zpred),
                 signed_position=mean(zpred - eff), signed_inherited=mean(eff - z), signed_total=mean(zp - z))
        if mu_df is not None and layer in measured_input_means and layer in mu_df.index:
            a = np.asarray(mu_df[layer], float)
            b = np.asarray(measured_input_means[layer], float)
            r["mean_corr"] = _corr(a, b)
            ok = np.abs(b) > 1e-6
            r["mean_ratio"] = float(np.median(a[ok] / b[ok])) if ok.any() else np.nan
            r["mean_zero_by_construction"] = bool(np.abs(a).max() < 1e-9)  # e.g. a stem reading a normalised image
        rows.append(r)
    out = pd.DataFrame(rows)
    out.attrs["tau"] = tau
    return out


# ---------------------------------------------------------------------------------------------------------
# Gallery selection


def gallery_entries(classified: pd.DataFrame, table: pd.DataFrame, maps: dict, model: nn.Module,
                    per_type: int = 2, types=PAN_TYPES, seed: int = 0) -> list[dict]:
    """Representative PANs per type (strongest by ``score``), each next to a non-PAN of the same layer.

    Each entry: model, type, layer, channel, is_pan, sign_pattern, score, ``bn_sign`` (sign of the
    following BatchNorm's scale, from the table's ``bn_scale``; 1 without one), ``kernel`` (the spatial
    kernel summed over input channels, multiplied by ``bn_sign`` so that it reads as the non-linearity
    sees it: a kernel behind a negative gamma is shown flipped, as the mean map and z are), profile
    (input-mean weighted, oriented), map (mean pre-activation map from ``maps[layer]``, e.g.
    ``PanScan.maps``), ``border_profile`` (``padlib.pan_tables.border_profile``: the map's mean at distance 0,
    1, ... from each side minus the interior mean, over the interior std: chapter 1's z units; None
    without a map), z (the table's z per side). The non-PAN control is the channel of that layer with the
    smallest ``score`` among non-constant ones that is not a PAN (seeded choice among the 5 weakest).
    """
    from types import SimpleNamespace


    scan_view = SimpleNamespace(maps=maps, table=table)  # all that border_profile reads of a PanScan
    modules = dict(model.named_modules())
    rng = np.random.default_rng(seed)
    name = getattr(model, "padlib_name", type(model).__name__)
    entries = []
    for t in types:
        sub = classified[classified["type"] == t].sort_values("score", ascending=False).head(per_type)
        for _, row in sub.iterrows():
            layer = row["layer"]
            pool = table[(table["layer"] == layer) & ~table["is_pan"].astype(bool)]
            if "constant" in pool:
                pool = pool[~pool["constant"].astype(bool)]
            control = None
            if len(pool):
                weakest = pool.sort_values("score").head(5)
                control = int(weakest["channel"].iloc[rng.integers(len(weakest))])
            for ch, is_pan in ((int(row["channel"]), True), (control, False)):
                if ch is None:
                    continue
                trow = table[(table["layer"] == layer) & (table["channel"] == ch)].iloc[0]
                bn_sign = -1.0 if "bn_scale" in trow and float(trow["bn_scale"]) < 0 else 1.0
                w = bn_sign * modules[layer].weight.detach().double().cpu()[ch].sum(0).numpy()
                m = maps[layer][ch].double().numpy() if layer in maps else None
                prof = border_profile(scan_view, layer, ch, depth=6) if m is not None and "interior_std" in trow else None
                entries.append({
                    "model": name, "type": t, "layer": layer, "channel": ch, "is_pan": is_pan,
                    "sign_pattern": row["sign_pattern"] if is_pan else "",
                    "score": float(trow["score"]), "bn_sign": bn_sign, "kernel": w,
                    "profile": row["profile"] if is_pan and "profile" in row else None, "map": m,
                    "border_profile": prof, "z": {s: float(trow[f"z_{s}"]) for s in SIDES},
                })
    return entries

