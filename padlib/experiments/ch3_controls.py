"""Chapter 3's controls: non-PAN channels matched to the PANs on the size of their ablation, the top-k dose sets,
and the border-distance readout of PANs against matched channels and against random initialisation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import PadlibError, check_type
from ..interventions import Perturbations, channel_selection
from ..pans import REFERENCE_IMAGES, first_images, recalibrate_batchnorm
from ..models import random_init_copy
from ..position import border_distance_readout

CALIPER = 1.2  # a matched control channel's ablation size lies within x1.2 (either way) of its PAN's
DOSE_STEPS = (1, 8, 64)  # top-k PANs by score, plus all of them


def channel_sizes(perturbations: Perturbations, mode: str, region: str) -> pd.DataFrame:
    """Per layer and channel, the mean over images of the ablation's size (:class:`Perturbations`, interior-variance
    units): the quantity the controls are matched on. Columns layer, channel, size."""
    table = perturbations.per_channel.get((mode, region))
    if table is None:
        raise PadlibError(f"no perturbation measured for {mode}/{region}")
    return pd.DataFrame([{"layer": layer, "channel": c, "size": float(v)}
                         for layer, per in table.items() for c, v in enumerate(per.mean(0))])


def matched_control(table: pd.DataFrame, sizes: pd.DataFrame, pans: pd.DataFrame | None = None, k: int = 5,
                    seed: int = 0, caliper: float | None = CALIPER) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Controls matched on ablation size: per PAN, a non-PAN channel of the same layer whose ablation is as large.

    ``table``: the model's whole ``find_pans`` table (``is_pan`` marks the PANs, the other channels of each layer are
    the pool); ``pans``: the PAN rows to match (default: every PAN); ``sizes``: :func:`channel_sizes` of one
    ablation mode and region. For each of ``k`` draws (seeded), the PANs of a layer are taken largest size first
    (the hardest to match) and each gets a control drawn at random from the unused pool channels whose size is
    within a factor ``caliper`` of its own (|log ratio| <= log caliper); with ``caliper=None`` each gets the unused
    pool channel nearest in log size (ties at random), so every PAN is matched as well as the pool allows. A PAN
    left without a candidate in any draw is left out of the comparison: the matched PAN set is the PANs matched in
    every draw, so each control has exactly one channel per matched PAN, in its layer, and its total size lies
    within the caliper of the matched PANs' (per layer and overall).

    Returns (matched PANs: layer, channel, size; controls: control, layer, channel, size, pan_channel).
    """
    check_type("k", k, int)
    if k < 1:
        raise PadlibError(f"k (number of controls) must be >= 1, got {k}")
    if caliper is not None and not caliper > 1:
        raise PadlibError(f"caliper is a factor above 1 (e.g. 1.2), got {caliper}")
    is_pan = table["is_pan"].astype(bool)
    pans = table[is_pan] if pans is None else pans
    size = {(layer, int(c)): float(s) for layer, c, s in zip(sizes["layer"], sizes["channel"], sizes["size"])}
    logsize = lambda layer, c: np.log(max(size.get((layer, c), np.nan), 1e-12))  # noqa: E731
    rng = np.random.default_rng(seed)
    chosen = channel_selection(pans[["layer", "channel"]])
    for layer, cs in chosen.items():
        if any((layer, c) not in size for c in cs):
            raise PadlibError(f"no ablation size for a PAN of layer '{layer}'")
    pools = {layer: sorted(set(table.loc[(~is_pan) & (table["layer"] == layer), "channel"].astype(int)) - set(cs))
             for layer, cs in chosen.items()}
    draws = []  # per draw: {(layer, pan channel): control channel}
    for _ in range(k):
        pairs = {}
        for layer in sorted(chosen):
            pool = [c for c in pools[layer] if (layer, c) in size]
            pool_log = np.array([logsize(layer, c) for c in pool])
            free = np.ones(len(pool), dtype=bool)
            for p in sorted(chosen[layer], key=lambda c: -logsize(layer, c)):
                gap = np.abs(pool_log - logsize(layer, p))
                if caliper is None:
                    ok = free & (gap <= (gap[free].min() if free.any() else -1) + 1e-12)
                else:
                    ok = free & (gap <= np.log(caliper) + 1e-12)
                if ok.any():
                    j = int(rng.choice(np.flatnonzero(ok)))
                    free[j] = False
                    pairs[(layer, p)] = pool[j]
        draws.append(pairs)
    kept = sorted(set.intersection(*(set(d) for d in draws)))
    matched = pd.DataFrame([{"layer": layer, "channel": c, "size": size[(layer, c)]} for layer, c in kept],
                           columns=["layer", "channel", "size"])
    rows = [{"control": i, "layer": layer, "channel": int(d[(layer, p)]), "size": size[(layer, d[(layer, p)])],
             "pan_channel": p} for i, d in enumerate(draws) for layer, p in kept]
    controls = pd.DataFrame(rows, columns=["control", "layer", "channel", "size", "pan_channel"])
    return matched, controls


def matching_balance(pans_total: int, matched: pd.DataFrame, controls: pd.DataFrame) -> dict:
    """How well a :func:`matched_control` draw matches: PANs in all and matched, and per control the ratio of its
    total ablation size to the matched PANs' (the mean, smallest and largest over controls; 1: the same size)."""
    total = float(matched["size"].sum())
    ratios = (controls.groupby("control")["size"].sum() / total).to_numpy() if total > 0 and len(controls) else []
    return {"pans": int(pans_total), "matched": len(matched), "share": len(matched) / max(int(pans_total), 1),
            "size_ratio": float(np.mean(ratios)) if len(ratios) else float("nan"),
            "size_ratio_min": float(np.min(ratios)) if len(ratios) else float("nan"),
            "size_ratio_max": float(np.max(ratios)) if len(ratios) else float("nan")}


def ranking(pans: pd.DataFrame) -> pd.DataFrame:
    """The PANs ranked by their border score (largest first; ``score``: the largest |z| over the sides), ties by
    layer and channel."""
    score = pans["score"] if "score" in pans else pans[[c for c in pans if c.startswith("z_")]].abs().max(axis=1)
    return pans.assign(_score=score.to_numpy()).sort_values(["_score", "layer", "channel"],
                                                            ascending=[False, True, True]).drop(columns="_score")


def dose_steps(n_pans: int, steps=DOSE_STEPS) -> list[int]:
    """The top-k sizes of the dose-response: each step below the PAN count, then all the PANs."""
    return [int(k) for k in steps if int(k) < n_pans] + ([int(n_pans)] if n_pans else [])


# ---------------------------------------------------------------------------------------------------------
# The border-distance readout: PANs against matched channels, and against random initialisation


def photograph_groups(images) -> np.ndarray:
    """The source photograph (or file) of each image of a ProbeImages set: the unit kept whole by the readout's
    folds and resampled by its interval (crops of one photograph share its content)."""
    if hasattr(images, "crop_box"):
        return np.array([images.crop_box(i)[0] for i in range(len(images))])
    return np.arange(len(images))


def readout_sets(table: pd.DataFrame, k: int = 5, seed: int = 0) -> dict:
    """``{'PANs': selection, 'matched #0': ..., ...}``: the PANs and ``k`` sets of as many non-PAN channels of each
    of their layers, drawn at random (matched on layer and count; not on ablation size or border response, which
    are the property tested)."""
    from ..interventions import random_control
    import warnings

    pans = table[table["is_pan"].astype(bool)]
    sets = {"PANs": channel_selection(pans[["layer", "channel"]])}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="layer .* PANs but only")
        controls = random_control(table, k=k, seed=seed)
    for c, g in controls.groupby("control"):
        sets[f"matched #{int(c)}"] = channel_selection(g[["layer", "channel"]])
    return sets


def border_readout(model: nn.Module, images, table: pd.DataFrame, probe=None, k: int = 5, seed: int = 0,
                   init_seed: int = 0, batch_size: int = 8, device="cpu", x=None) -> pd.DataFrame:
    """The border-distance readout (:func:`padlib.position.border_distance_readout`) of the PANs, of ``k``
    layer-and-count-matched non-PAN channel sets, and of the PANs' channels in the same architecture at random
    initialisation (``init_seed``; BatchNorm statistics recalibrated on the first ``REFERENCE_IMAGES`` of
    ``probe``, as for chapter 1's reference).
    Folds and the interval's unit are the photographs (:func:`photograph_groups`). ``x``: the images as a tensor
    when already rendered. Rows: set ('PANs', 'matched #k', 'random init'), layer, image, group, channels, sse, sst."""
    sets = readout_sets(table, k, seed)
    if not sets["PANs"]:
        return pd.DataFrame(columns=["set", "layer", "image", "group", "channels", "sse", "sst"])
    groups = photograph_groups(images)
    data = x if x is not None else images
    out = [border_distance_readout(model, data, sets, groups, batch_size=batch_size, seed=seed)]
    control = random_init_copy(model, int(init_seed))
    if probe is not None:  # as chapter 1's random-init reference: on the first probe images
        recalibrate_batchnorm(control, first_images(probe, REFERENCE_IMAGES), batch_size, device)
    data = data.contiguous() if isinstance(data, torch.Tensor) else data
    init = border_distance_readout(control, data, {"random init": sets["PANs"]}, groups, batch_size=batch_size,
                                   seed=seed)
    return pd.concat(out + [init], ignore_index=True)
