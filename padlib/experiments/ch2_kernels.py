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
from ..stats import holm_adjust


def asymmetry_with_control(model: nn.Module, modes=("abs", "signed"), n_boot: int = 200, seed: int = 0,
                           input_size=None, ci: float = 0.95) -> pd.DataFrame:
    """:func:`mean_kernel_asymmetry` of a pretrained model and of its random initialisation (same architecture,
    ``pretrained=False``, seeded), in each mode; columns ``model``, ``init``, ``mode`` added.

    The random-init control shows how large a lean sampling noise alone produces for the same number of
    kernels: a lean is learned only where the pretrained interval leaves the control's range.
    """

    name = getattr(model, "padlib_name", None)
    if name is None:
        raise PadlibError("the random-init control needs a model loaded with padlib.load_model (it rebuilds it by name)")
    torch.manual_seed(seed)
    control = load_model(name, pretrained=False, device=model_device(model))
    sizes = conv_input_sizes(model, input_size)  # same architecture: same sizes for the control
    frames = []
    for init, m in (("pretrained", model), ("random init", control)):
        for mode in modes:
            df = mean_kernel_asymmetry(m, mode=mode, n_boot=n_boot, seed=seed, in_sizes=sizes, ci=ci)
            frames.append(df.assign(model=name, init=init, mode=mode))
    return pd.concat(frames, ignore_index=True)


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
    learned PANs (the default scan's ``is_pan``), its padding-caused channels (the older definition) and the
    padding-caused channels of a random-init copy of its architecture (what any random network shows);
    column ``set``. ``trained``/``control``: ``find_pans`` tables of the model and of the copy."""
    def caused(t):
        return t.assign(is_pan=t["padding_caused"]) if "padding_caused" in t else t

    parts = [(PAN_SETS[0], trained, trained_profiles), (PAN_SETS[1], caused(trained), trained_profiles),
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


def type_difference(sets: pd.DataFrame, a: str = PAN_SETS[0], b: str = PAN_SETS[2],
                    alpha: float = 0.05) -> pd.DataFrame:
    """Per model, do the type distributions of sets ``a`` and ``b`` differ? Total-variation distance between
    the two distributions (0 same, 1 disjoint), chi-square test of independence (types absent from both
    dropped), Holm-adjusted across models, and the types whose share rises and falls most from ``b`` to
    ``a``. With a few hundred PANs per set the test resolves distances of about 0.1 (our rough power)."""
    from scipy.stats import chi2_contingency

    shares = type_shares(sets[sets.set.isin([a, b])])
    rows = []
    for model, d in shares.groupby("model", sort=False):
        ca = d[d.set == a].set_index("type")["count"]
        cb = d[d.set == b].set_index("type")["count"]
        table = pd.concat([ca, cb], axis=1).fillna(0)
        table = table[table.sum(1) > 0]
        na, nb = int(ca.sum()), int(cb.sum())
        if na == 0 or nb == 0 or len(table) < 2:
            rows.append({"model": model, "set_a": a, "set_b": b, "n_a": na, "n_b": nb, "tv_distance": np.nan,
                         "cramers_v": np.nan, "p": np.nan, "rises": "", "falls": ""})
            continue
        chi2, p, dof, _ = chi2_contingency(table.to_numpy())
        sa, sb = ca / na, cb / nb
        diff = (sa - sb)
        rows.append({"model": model, "set_a": a, "set_b": b, "n_a": na, "n_b": nb,
                     "tv_distance": float(0.5 * diff.abs().sum()),
                     "cramers_v": float(np.sqrt(chi2 / (na + nb) / max(min(table.shape) - 1, 1))), "p": float(p),
                     "rises": f"{diff.idxmax()} {100 * sb[diff.idxmax()]:.0f}->{100 * sa[diff.idxmax()]:.0f}%",
                     "falls": f"{diff.idxmin()} {100 * sb[diff.idxmin()]:.0f}->{100 * sa[diff.idxmin()]:.0f}%"})
    out = pd.DataFrame(rows)
    ok = out.p.notna()
    out["p_holm"] = np.nan
    out.loc[ok, "p_holm"] = holm_adjust(out.loc[ok, "p"])
    out["differs"] = out.p_holm < alpha
    return out

