"""Chapter 2's design: the kernel taxonomy over PAN sets, asymmetry against random init, gallery pages."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._hooks import model_device
from .._trace import conv_input_sizes
from ..errors import PadlibError
from ..kernel_types import PAN_TYPES, classify_pan_kernels, corner_only_pans, gallery_entries
from ..kernels import mean_kernel_asymmetry
from ..models import load_model, preprocessing
from ..stats import holm_adjust, t_test


def asymmetry_with_control(model: nn.Module, modes=("abs", "signed"), n_boot: int = 200, seed: int = 0,
                           input_size=None, ci: float = 0.95) -> pd.DataFrame:
    """:func:`mean_kernel_asymmetry` of a pretrained model and of its random initialisation (same architecture,
    ``pretrained=False``, seeded), in each mode; columns ``model``, ``init``, ``mode`` added.

    The random-init control shows how large a lean sampling noise alone produces for the same number of
    kernels: a lean is learned only where the pretrained interval leaves the control's range. A model without
    a strided padded convolution gives an empty table (nothing can be uneven).
    """

    name = getattr(model, "padlib_name", None)
    if name is None:
        raise PadlibError("the random-init control needs a model loaded with padlib.load_model (it rebuilds it by name)")
    if not has_strided_padding(model):  # the lean is a stride-2 question (e.g. VGG downsamples by max-pooling)
        return pd.DataFrame()
    torch.manual_seed(seed)
    control = load_model(name, pretrained=False, device=model_device(model))
    sizes = conv_input_sizes(model, input_size)  # same architecture: same sizes for the control
    frames = []
    for init, m in (("pretrained", model), ("random init", control)):
        for mode in modes:
            df = mean_kernel_asymmetry(m, mode=mode, n_boot=n_boot, seed=seed, in_sizes=sizes, ci=ci)
            frames.append(df.assign(model=name, init=init, mode=mode))
    return pd.concat(frames, ignore_index=True)


def has_strided_padding(model: nn.Module) -> bool:
    """Whether any padded convolution of ``model`` has a stride above 1 (where uneven padding can arise)."""
    from ..padding import padded_convs

    return any(max(_as_pair(m.stride)) > 1 for _, m in padded_convs(model))


def _as_pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def gallery_pages(classified: dict, scans: dict, models: dict, per_type: int = 2, seed: int = 0) -> dict:
    """{'model: type': gallery entries} for every model and PAN type present, for ``plots.kernel_browser``.

    ``classified``: {model name: :func:`classify_pan_kernels` table}; ``scans``: {name: object with
    ``.table`` and ``.maps``, e.g. ``padlib.pans.PanScan``}; ``models``: {name: loaded model}.
    """
    pages = {}
    for name, cl in classified.items():
        entries = gallery_entries(cl, scans[name].table, scans[name].maps, models[name], per_type=per_type, seed=seed)
        for t in PAN_TYPES:
            chosen = [e for e in entries if e["type"] == t]
            if chosen:
                pages[f"{name}: {t}"] = chosen
    return pages


def scan_overview(scans: dict, models: dict, size=None) -> pd.DataFrame:
    """One row per model: input size (``size`` or the model's own), probe images, the calibrated thresholds,
    filters, PANs and corner-only PANs, scan seconds. ``scans``: {name: ``padlib.pans.PanScan``}."""

    rows = {}
    for name, s in scans.items():
        rows[name] = {"input_size": int(size or preprocessing(models[name]).input_size), "images": s.n_images,
                      "tau": s.tau, "tau_corner": s.tau_corner, "filters": len(s.table),
                      "PANs": int(s.table["is_pan"].sum()), "corner_only_PANs": int(corner_only_pans(s.table).sum()),
                      "seconds": sum(s.seconds.values())}
    return pd.DataFrame(rows).T


def type_counts(classified: pd.DataFrame) -> pd.DataFrame:
    """PANs per type (columns, in :data:`PAN_TYPES` order) per model (rows), from concatenated tables."""
    table = pd.crosstab(classified["model"], classified["type"])
    cols = [t for t in PAN_TYPES if t in table.columns]
    out = table[cols].copy()
    out["total"] = out.sum(1)
    return out


# ---------------------------------------------------------------------------------------------------------
# Learned PANs against random-init "PANs": do their kernel types differ?

PAN_SETS = ("learned (trained)", "padding-caused (trained)", "padding-caused (random init)")


def pan_sets(trained: pd.DataFrame, trained_profiles: pd.DataFrame, control: pd.DataFrame,
             control_profiles: pd.DataFrame, model: str) -> pd.DataFrame:
    """The typed kernels (:func:`classify_pan_kernels`) of one model's three sets of :data:`PAN_SETS`: its
    learned PANs (the scan's ``learned`` column, else its ``is_pan``), its padding-caused channels (the older definition) and the
    padding-caused channels of a random-init copy of its architecture (what any random network shows);
    column ``set``. ``trained``/``control``: ``find_pans`` tables of the model and of the copy."""
    def caused(t):
        return t.assign(is_pan=t["padding_caused"]) if "padding_caused" in t else t

    def learned(t):
        return t.assign(is_pan=t["learned"]) if "learned" in t else t

    parts = [(PAN_SETS[0], learned(trained), trained_profiles), (PAN_SETS[1], caused(trained), trained_profiles),
             (PAN_SETS[2], caused(control), control_profiles)]
    return pd.concat([classify_pan_kernels(t, prof).assign(model=model, set=name) for name, t, prof in parts],
                     ignore_index=True)


def type_shares(sets: pd.DataFrame) -> pd.DataFrame:
    """Per model and set: PANs per type and their share of the set (%), tidy, types in :data:`PAN_TYPES` order."""
    counts = sets.groupby(["model", "set", "type"], sort=False).size().rename("count").reset_index()
    full = pd.MultiIndex.from_product([list(dict.fromkeys(sets.model)), [s for s in PAN_SETS if s in set(sets.set)],
                                       list(PAN_TYPES)], names=["model", "set", "type"])
    out = counts.set_index(["model", "set", "type"]).reindex(full, fill_value=0).reset_index()
    out["share_pct"] = 100.0 * out["count"] / out.groupby(["model", "set"])["count"].transform("sum").clip(lower=1)
    return out


def _layer_weights(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_units) resampling counts: each row draws ``n_units`` units (layers) with replacement."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=int(n_boot)).astype(float)


def _percentile(values: np.ndarray, ci: float) -> tuple[float, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not len(v):
        return float("nan"), float("nan")
    return float(np.quantile(v, (1 - ci) / 2)), float(np.quantile(v, (1 + ci) / 2))


def _p_against(boot: np.ndarray, level: float) -> float:
    """Two-sided bootstrap p of an estimate against ``level``: twice the smaller share of resamples on either side
    of it (+1 in numerator and denominator), i.e. the smallest alpha at which the percentile interval excludes it."""
    b = np.asarray(boot, float)
    b = b[np.isfinite(b)]
    if not len(b):
        return float("nan")
    lower, upper = (1 + (b <= level).sum()) / (1 + len(b)), (1 + (b >= level).sum()) / (1 + len(b))
    return float(min(1.0, 2 * min(lower, upper)))


def _matched_tv(ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
    """Layer-matched total-variation distance: set ``a``'s type shares against set ``b``'s shares taken layer by
    layer and weighted by ``a``'s layer sizes (so that holding PANs in other layers does not count).
    ``ca``, ``cb``: (..., layers, types) counts, every layer non-empty in both sets (or weighted 0 in both)."""
    na, nb = ca.sum(-1, keepdims=True), cb.sum(-1, keepdims=True)
    shares_b = np.divide(cb, nb, out=np.zeros(np.broadcast_shapes(cb.shape, nb.shape)), where=nb > 0)
    a, b = ca.sum(-2), (na * shares_b).sum(-2)  # a layer left out of a resample weighs 0 in both
    return 0.5 * np.abs(a - b).sum(-1) / na.sum((-2, -1))


def type_difference(sets: pd.DataFrame, a: str = PAN_SETS[0], b: str = PAN_SETS[2], alpha: float = 0.05,
                    n_boot: int = 1000, n_perm: int = 1000, seed: int = 0, ci: float = 0.95) -> pd.DataFrame:
    """Per model, do the type distributions of sets ``a`` and ``b`` differ, layer for layer?

    The effect is the layer-matched total-variation distance (``tv_distance``; 0 same, 1 disjoint): ``a``'s type
    shares against ``b``'s shares in the same layers, weighted by ``a``'s layer sizes, over the layers where both
    sets have PANs (``coverage``: the share of ``a``'s PANs there), so that a random network holding its border
    responses in other layers does not count as a difference in type. Its interval is a percentile interval from
    a cluster bootstrap over those layers (PANs of one layer are not independent). A distance between sampled shares
    is positive even when the sets do not differ, the more so the fewer PANs per layer: ``tv_chance`` is its mean
    under the permutation null below, and ``tv_excess`` the distance beyond chance, which the claim is judged on.
    Under a real difference the bias is smaller than the chance floor, so its interval runs from the corrected lower
    bound (``excess_low``) to the uncorrected upper one (``excess_high``): each side errs toward inconclusive. The
    test is a permutation test
    stratified by layer: within each layer the set labels are shuffled among its PANs (``n_perm`` times), which is
    exact under the null that within each layer the types do not depend on the set; p is the share of permuted
    distances at least the observed one, Holm-adjusted across the models (``p_holm``; ``differs``: ``p_holm <
    alpha``). ``tv_pooled``: the distance between the two sets' overall shares (what the type-share figure shows).
    ``rises``/``falls``: the types whose share rises and falls most from ``b`` (layer-matched) to ``a``.
    ``sets`` needs columns model, set, type and layer."""
    if "layer" not in sets:
        raise PadlibError("type_difference compares layer by layer: sets needs a 'layer' column (pan_sets gives one)")
    types = list(PAN_TYPES) + sorted(set(sets["type"]) - set(PAN_TYPES))
    rows = []
    for k, (model, d) in enumerate(sets[sets.set.isin([a, b])].groupby("model", sort=False)):
        counts = d.groupby(["set", "layer", "type"]).size().unstack("type", fill_value=0).reindex(columns=types,
                                                                                                fill_value=0)
        layers = list(dict.fromkeys(d["layer"]))
        grab = lambda s_: (counts.xs(s_, level="set").reindex(layers, fill_value=0).to_numpy(float)  # noqa: E731
                           if s_ in set(d.set) else np.zeros((len(layers), len(types))))
        ca, cb = grab(a), grab(b)
        na, nb = int(ca.sum()), int(cb.sum())
        both = (ca.sum(1) > 0) & (cb.sum(1) > 0)
        row = {"model": model, "set_a": a, "set_b": b, "n_a": na, "n_b": nb, "layers": int(both.sum()),
               "coverage": float(ca[both].sum() / na) if na else np.nan, "tv_distance": np.nan, "tv_low": np.nan,
               "tv_high": np.nan, "tv_chance": np.nan, "tv_excess": np.nan, "excess_low": np.nan,
               "excess_high": np.nan, "p": np.nan, "tv_pooled": np.nan, "rises": "", "falls": ""}
        ca, cb = ca[both], cb[both]
        if len(ca) and ((ca + cb).sum(0) > 0).sum() >= 2:
            tv = float(_matched_tv(ca, cb))
            w = _layer_weights(len(ca), n_boot, seed + k)
            low, high = _percentile(_matched_tv(w[:, :, None] * ca, w[:, :, None] * cb), ci)
            rng = np.random.default_rng(seed + 1000 + k)
            perm_a = np.stack([rng.multivariate_hypergeometric((x + y).astype(np.int64), int(x.sum()), size=int(n_perm))
                               for x, y in zip(ca, cb)], axis=1).astype(float)  # (n_perm, layers, types)
            null = _matched_tv(perm_a, (ca + cb)[None] - perm_a)
            sa = pd.Series(ca.sum(0) / ca.sum(), index=types)
            sb = pd.Series((ca.sum(1, keepdims=True) * cb / cb.sum(1, keepdims=True)).sum(0) / ca.sum(), index=types)
            diff = sa - sb
            chance = float(null.mean())  # what shuffled labels give with these layer sizes: the distance's floor
            row.update(tv_distance=tv, tv_low=low, tv_high=high, tv_chance=chance, tv_excess=tv - chance,
                       excess_low=low - chance, excess_high=high,
                       p=float((1 + (null >= tv - 1e-12).sum()) / (1 + n_perm)),
                       tv_pooled=float(0.5 * np.abs(grab(a).sum(0) / na - grab(b).sum(0) / nb).sum()),
                       rises=f"{diff.idxmax()} {100 * sb[diff.idxmax()]:.0f}->{100 * sa[diff.idxmax()]:.0f}%",
                       falls=f"{diff.idxmin()} {100 * sb[diff.idxmin()]:.0f}->{100 * sa[diff.idxmin()]:.0f}%")
        rows.append(row)
    out = pd.DataFrame(rows)
    ok = out.p.notna()
    out["p_holm"] = np.nan
    out.loc[ok, "p_holm"] = holm_adjust(out.loc[ok, "p"])
    out["differs"] = out.p_holm < alpha
    out.attrs.update(n_boot=n_boot, n_perm=n_perm, ci=ci, alpha=alpha)
    return out


# ---------------------------------------------------------------------------------------------------------
# Intervals over layers for the data-free detector and the clustering check


def detector_intervals(merged: dict, level: float = 0.5, n_boot: int = 2000, seed: int = 0,
                       ci: float = 0.95) -> pd.DataFrame:
    """Per model, the data-free detector's precision and recall against the activation-based PANs, each with a
    percentile interval from a cluster bootstrap over layers (filters of one layer share their input statistics,
    so the layer is the resampled unit) and a two-sided bootstrap p against ``level``, Holm-adjusted over every
    row (models x the two measures). ``merged``: {model: :func:`padlib.kernel_types.merge_detectors` table}
    (``is_pan`` the detector, ``pred_is_pan`` the data-free prediction)."""
    rows = []
    for k, (model, m) in enumerate(merged.items()):
        truth, pred = m["is_pan"].astype(bool), m["pred_is_pan"].astype(bool)
        per = pd.DataFrame({"layer": m["layer"], "pans": truth, "predicted": pred, "tp": truth & pred})
        per = per.groupby("layer", sort=False)[["pans", "predicted", "tp"]].sum().to_numpy(float)
        w = _layer_weights(len(per), n_boot, seed + k)
        boot = w @ per
        with np.errstate(invalid="ignore", divide="ignore"):
            measures = {"precision": (per[:, 2].sum() / per[:, 1].sum(), boot[:, 2] / boot[:, 1]),
                        "recall": (per[:, 2].sum() / per[:, 0].sum(), boot[:, 2] / boot[:, 0])}
        for measure, (value, b) in measures.items():
            low, high = _percentile(b, ci)
            rows.append({"model": model, "measure": measure, "value": float(value), "low": low, "high": high,
                         "level": level, "p": _p_against(b, level), "layers": len(per), "pans": int(per[:, 0].sum()),
                         "predicted": int(per[:, 1].sum()), "true_positives": int(per[:, 2].sum())})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm_adjust(out["p"]) if len(out) else []
    out.attrs.update(n_boot=n_boot, ci=ci, level=level)
    return out


def _ari(cont: np.ndarray) -> np.ndarray:
    """Adjusted Rand index from contingency tables (..., types, clusters), vectorised over leading axes."""
    comb = lambda x: x * (x - 1) / 2  # noqa: E731
    n = cont.sum((-2, -1))
    index = comb(cont).sum((-2, -1))
    rows, cols = comb(cont.sum(-1)).sum(-1), comb(cont.sum(-2)).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = rows * cols / comb(n)
        out = (index - expected) / (0.5 * (rows + cols) - expected)
    return np.where(0.5 * (rows + cols) - expected == 0, 1.0, out)


def ari_intervals(cluster_checks: dict, features: str = "profile", level: float = 0.2, n_boot: int = 2000,
                  seed: int = 0, ci: float = 0.95, skip=("all models",)) -> pd.DataFrame:
    """Per model, the adjusted Rand index between the k-means clusters and the rule types
    (:func:`padlib.kernel_types.taxonomy_clusters`, ``features``) with a percentile interval from a cluster
    bootstrap over layers (the clustering held fixed: the interval is that of the agreement between this
    partition and the types, not of the clustering itself), a two-sided bootstrap p against ``level`` and the
    clustering's own permutation p (types shuffled: above chance?), both Holm-adjusted over the models.
    ``cluster_checks``: {(model, features): (clustered table with type, cluster, layer; summary)}."""
    rows = []
    for k, ((name, f), (clustered, summary)) in enumerate(cluster_checks.items()):
        if f != features or name in skip:
            continue
        types = pd.Categorical(clustered["type"]).codes
        clusters = pd.Categorical(clustered["cluster"]).codes
        layer = pd.Categorical(clustered["layer"]).codes
        cont = np.zeros((layer.max() + 1, types.max() + 1, clusters.max() + 1))
        np.add.at(cont, (layer, types, clusters), 1.0)
        w = _layer_weights(len(cont), n_boot, seed + k)
        boot = _ari(np.einsum("bl,ltc->btc", w, cont))
        low, high = _percentile(boot, ci)
        rows.append({"model": name, "features": f, "ari": float(_ari(cont.sum(0))), "low": low, "high": high,
                     "level": level, "p": _p_against(boot, level), "p_perm": float(summary["p_value"]),
                     "null_q95": float(summary.get("null_q95", np.nan)), "n": len(clustered), "layers": len(cont)})
    out = pd.DataFrame(rows)
    for col in ("p", "p_perm"):
        out[f"{col}_holm"] = holm_adjust(out[col]) if len(out) else []
    out.attrs.update(n_boot=n_boot, ci=ci, level=level)
    return out


# ---------------------------------------------------------------------------------------------------------
# Mean-kernel lean: pretrained minus random init, per padding side read


LEAN_SIDES = ("top/left", "bottom/right")  # the stride-2 groups whose lean the chapter tests


def lean_tests(asym: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """Per index mode and per padding side read (:data:`LEAN_SIDES`): the stride-2 layers that read only that
    side, each layer's lean (mean of its left-right and top-bottom lean, > 0 towards bottom/right) pretrained
    minus the same layer at random init, and a paired t-test over those layers (``ci`` interval, p against 0),
    Holm-adjusted over the sides within each mode. ``asym``: :func:`asymmetry_with_control` tables concatenated
    (columns model, init, mode, layer, stride, reads, asym_lr, asym_tb)."""
    rows = []
    modes = list(dict.fromkeys(asym["mode"])) if "mode" in asym else [None]
    for mode in modes:
        df = asym if mode is None else asym[asym["mode"] == mode]
        df = df.assign(lean=(df["asym_lr"] + df["asym_tb"]) / 2)
        block = []
        for reads in LEAN_SIDES:
            g = df[(df["stride"] > 1) & (df["reads"] == reads)]
            wide = g.pivot_table(index=["model", "layer"], columns="init", values="lean", sort=False)
            if not {"pretrained", "random init"} <= set(wide.columns):
                continue
            wide = wide.dropna(subset=["pretrained", "random init"])
            diff = (wide["pretrained"] - wide["random init"]).to_numpy(float)
            t = t_test(diff, ci)
            block.append({"mode": mode, "reads": reads, "layers": len(wide),
                          "models": ", ".join(dict.fromkeys(wide.index.get_level_values("model"))),
                          "pretrained": float(wide["pretrained"].mean()), "random_init": float(wide["random init"].mean()),
                          "diff": t.mean, "low": t.low, "high": t.high, "p": t.p})
        if block:
            p = holm_adjust([r["p"] for r in block])
            rows += [dict(r, p_holm=float(q)) for r, q in zip(block, p)]
    return pd.DataFrame(rows, columns=["mode", "reads", "layers", "models", "pretrained", "random_init", "diff", "low",
                                       "high", "p", "p_holm"])


def stride1_control(asym: pd.DataFrame, ci: float = 0.95) -> pd.DataFrame:
    """The lean tests of :func:`lean_tests` against a control: per index mode and side read (:data:`LEAN_SIDES`),
    the stride-2 layers' lean, pretrained minus random init (as in :func:`lean_tests`), minus the same quantity over
    the stride-1 layers of the same models, which read every side alike and sample a centred grid. A lean that
    training gives every layer of a model (whatever its cause) shows in both and cancels; what is left is the lean
    specific to the stride-2 layers that read one side. Welch's interval and p (:func:`padlib.stats.welch_t`),
    Holm-adjusted over the sides within each mode (``p_holm``). ``stride1``: the stride-1 layers' mean difference,
    ``stride1_layers`` how many."""
    from ..stats import welch_t

    rows = []
    modes = list(dict.fromkeys(asym["mode"])) if "mode" in asym else [None]
    for mode in modes:
        df = asym if mode is None else asym[asym["mode"] == mode]
        df = df.assign(lean=(df["asym_lr"] + df["asym_tb"]) / 2)
        wide = df.pivot_table(index=["model", "layer", "stride", "reads"], columns="init", values="lean",
                              sort=False).reset_index()
        if not {"pretrained", "random init"} <= set(wide.columns):
            continue
        wide = wide.dropna(subset=["pretrained", "random init"])
        wide["diff"] = wide["pretrained"] - wide["random init"]
        block = []
        for reads in LEAN_SIDES:
            two = wide[(wide["stride"] > 1) & (wide["reads"] == reads)]
            one = wide[(wide["stride"] == 1) & wide["model"].isin(set(two["model"]))]
            if not len(two):
                continue
            t = welch_t(two["diff"], one["diff"], ci)
            block.append({"mode": mode, "reads": reads, "layers": len(two), "stride1_layers": len(one),
                          "models": ", ".join(dict.fromkeys(two["model"])), "stride2": float(two["diff"].mean()),
                          "stride1": float(one["diff"].mean()) if len(one) else np.nan,
                          "excess": t.mean, "low": t.low, "high": t.high, "p": t.p})
        if block:
            p = holm_adjust([r["p"] for r in block])
            rows += [dict(r, p_holm=float(q)) for r, q in zip(block, p)]
    return pd.DataFrame(rows, columns=["mode", "reads", "layers", "stride1_layers", "models", "stride2", "stride1",
                                       "excess", "low", "high", "p", "p_holm"])


def grid_offsets(asym: pd.DataFrame) -> pd.DataFrame:
    """The sampling-grid confound, per stride-2 layer of the pretrained models (one row per model and layer): the
    centre of the grid a strided conv samples sits ``(read_bottom - read_top) / 2`` input rows below the centre of
    its input (its windows span the rows from the first padded row read to the last, ``-top`` to
    ``n - 1 + read_bottom``), and likewise across columns. So a layer that reads more padding on one side samples a
    grid shifted toward that side by half the difference, by construction: ``grid_rows``/``grid_cols`` (> 0 toward
    bottom/right), ``toward_read``: the shift points to the side whose padding the layer reads more (``reads``), on
    every axis where the reads differ. A lean that re-centres the grid and one that answers the padding point the
    same way on every such layer."""
    g = asym[(asym["stride"] > 1)]
    if "init" in g:
        g = g[g["init"] == "pretrained"]
    if "mode" in g:
        g = g[g["mode"] == g["mode"].iloc[0]] if len(g) else g
    g = g.drop_duplicates(["model", "layer"] if "model" in g else ["layer"])
    out = g[[c for c in ("model", "layer", "reads", "read_top", "read_bottom", "read_left", "read_right")
             if c in g]].copy()
    out["grid_rows"] = (g["read_bottom"] - g["read_top"]) / 2
    out["grid_cols"] = (g["read_right"] - g["read_left"]) / 2
    far = np.sign(out["grid_rows"] + out["grid_cols"])
    want = out["reads"].map({"top/left": -1, "bottom/right": 1, "even": 0})
    out["toward_read"] = (far == want) & (want != 0)
    return out.reset_index(drop=True)


def at_threshold(table: pd.DataFrame, tau: float, tau_corner: float, min_explained: float = 0.5) -> pd.DataFrame:
    """A scan table classified again at given thresholds (:func:`padlib.pans.classify_pans` on its raw columns),
    with ``is_pan`` the padding-caused verdict at those thresholds (the ``padding_caused`` column where the
    classifier gives one): how a random-init copy's table is cut at the trained model's tau and tau_corner, so that
    both sets of the type comparison are typed at one threshold. Columns a reference verdict added are dropped
    first (they belong to the old thresholds)."""
    from ..pans import classify_pans

    raw = table.drop(columns=[c for c in ("padding_caused", "beyond_random_init", "learned", "init_side_threshold",
                                          "init_corner_threshold") if c in table])
    out = classify_pans(raw, float(tau), float(tau_corner), float(min_explained))
    if "padding_caused" in out:
        out["is_pan"] = out["padding_caused"].astype(bool)
    out.attrs.update(table.attrs, tau=float(tau), tau_corner=float(tau_corner))
    return out


def threshold_table(scans: dict, controls: dict, typed: dict) -> pd.DataFrame:
    """Per model: the trained model's thresholds, the random-init copy's own (from its own circular null), and the
    copy's padding-caused channels at each (``typed``: {model: the copy's table at the trained thresholds,
    :func:`at_threshold`}; ``controls``: {model: (copy's PanScan, copy)} or {model: PanScan})."""
    rows = []
    for name, sc in scans.items():
        ctrl = controls[name][0] if isinstance(controls[name], tuple) else controls[name]
        own = ctrl.table
        own_caused = own["padding_caused"] if "padding_caused" in own else own["is_pan"]
        rows.append({"model": name, "tau_trained": float(sc.tau), "tau_corner_trained": float(sc.tau_corner),
                     "tau_copy": float(ctrl.tau), "tau_corner_copy": float(ctrl.tau_corner), "filters": len(own),
                     "caused_at_copy_tau": int(own_caused.sum()), "caused_at_trained_tau": int(typed[name].is_pan.sum())})
    return pd.DataFrame(rows)
