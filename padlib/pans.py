"""Padding Aware Neurons (PANs): filters whose response is driven by the padding frame itself (chapter 1).

Our formulation (the paper's exact method is not public; Garcia-Gasulla et al., ICCV 2023 workshops):

* Every conv that can read padding (:func:`padlib.padding.padded_convs`) is scanned. The statistics live in
  the *pre-activation* space, i.e. where the non-linearity sees them: the conv output passed through the
  BatchNorm that directly consumes it (found by tensor identity during the first batch, so it works for
  torchvision's ``Conv2dNormActivation`` and for timm's fused ``BatchNormAct2d``). An eval-mode BN is a
  per-channel affine map ``a * y + b``, so we record the raw conv output (cheap) and apply the affine
  afterwards; its sign matters: a negative ``a`` turns a channel that fires at the border into one that is
  silenced there, and :func:`find_pans` reports the sign after the BN.
* Border contrast per side s: ``z_s = (mean of the outermost row/column, corners excluded - interior mean)
  / interior std``, all over the mean map of the probe images; the interior is every position at distance
  >= ``margin`` from each border (``margin = max(ceil(min(H, W) / 8), rows this layer's own padding
  reaches)``); the interior std pools images and interior positions (estimated on every k-th interior
  row, at least 16 rows, all columns and images), floored at 10% of the layer's median interior std so
  that near-dead channels do not turn tiny border differences into huge scores. Corners get the same
  statistic.
* Causal padding effect per side: inside the conv's forward hook the outermost output row/column is
  recomputed from the *same input* with replicate padding (index clamping on a strip as thin as the kernel),
  and ``effect_s`` is the mean (own output - replicate output) there, in interior-std units: the part of the
  border response that this layer's padding values cause. The recomputation is linear in the input, so it
  runs once per batch on the batch sum of the input (one small conv1d per layer, block-diagonal over sides).

The hooks use :func:`padlib._hooks.forward_hooks` (always removed) but not ``layer_map_stats``: the
scan needs the conv input as well as its output, and full-size float64 sum-of-squares maps would cost two
more passes per layer than the per-channel interior moments kept here.
* A side is a PAN side when ``|z_s| > tau`` and ``effect_s / z_s >= min_explained`` (0.5: the padding
  explains most of the contrast, with the same sign). A channel with no PAN side whose corner passes
  ``tau_corner`` is a corner PAN. ``sides`` is "top", "top+left", ..., "frame" (all four), or
  "top-left corner"; ``sign`` is +1 when the channel fires at its PAN border, -1 when it is silenced there.
* ``tau`` and ``tau_corner`` are calibrated on a null where padding cannot create a border: the same model
  with every padding made circular (:func:`padlib.layers.base.convert_padding`), scanned on the same images.
  Each is the ``1 - fpr`` quantile of the null's per-channel maximum ``|z|`` over sides (resp. corners),
  taken so that at most a fraction ``fpr`` of null channels exceeds it.

``find_pans`` returns the table (a DataFrame; scalar facts in ``.attrs``: tau, tau_corner, fpr, ...).
``scan_pans`` returns a :class:`PanScan` holding the table, the null table, the thresholds, the mean
pre-activation maps and the effective kernels, for plots and the explorer. Statistics are streamed: memory
is per-layer sums only, flat in the number of images.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._compat import moved_names
from ._hooks import check_device, check_images, keeps_model, model_device
from ._memory import check_run_memory
from ._distributed import all_gather_objects, is_main, local, world
from ._pan_stream import STD_FLOOR, _batch_statistics, _batches, _scan_table
from .data import probe_images
from .errors import PadlibError, check_type
from . import stats
from .layers.base import convert_padding
from .models import load_model, random_init_copy
from .padding import CORNERS, LOCATIONS, SIDES

MIN_EXPLAINED = 0.5            # share of a side's contrast the padding effect must explain (same sign)
DEFAULT_FPR = 0.01             # false-positive rate on the circular null that sets tau (and the selectivity bar)
DEFAULT_FDR = 0.05             # Benjamini-Hochberg false discovery rate over channels for specialists
DEFINITIONS = ("specialist", "learned", "padding")  # what ``is_pan`` means, strictest first
# Our reading of "specialise": one fixed threshold on the channel tells a border position from an interior one
# 9 times in 10 (AUROC 0.9). The selectivity bar is the larger of this and the circular null's 1 - fpr quantile.
SPECIALIST_SELECTIVITY = 0.9
REFERENCE_SEEDS = (0, 1)       # random-init copies that make the learned-PAN reference (reference="random_init")
REFERENCE_IMAGES = 8           # of the probe images, the first this many scan the reference copies (one batch)


# ---------------------------------------------------------------------------------------------------------
# Threshold and classification.

def side_score(table: pd.DataFrame) -> pd.Series:
    """Per channel, the largest border contrast over the four sides, max_s |z_s| (what tau is compared with)."""
    return table[[f"z_{s}" for s in SIDES]].abs().max(axis=1)


def corner_score(table: pd.DataFrame) -> pd.Series:
    """Per channel, the largest corner contrast, max_c |z_c| (what tau_corner is compared with)."""
    return table[[f"z_{c}" for c in CORNERS]].abs().max(axis=1)


def _upper_threshold(scores, fpr: float) -> float:
    """The smallest value that at most ``floor(fpr * n)`` of ``scores`` exceed (strictly)."""
    v = np.asarray(scores, dtype=float)
    v = np.sort(v[np.isfinite(v)])
    if not len(v):
        raise PadlibError("the null has no finite scores to calibrate a threshold on")
    k = int(math.floor(fpr * len(v) + 1e-9))
    return float(v[len(v) - 1 - k])


def calibrate_tau(null: pd.DataFrame, fpr: float = DEFAULT_FPR) -> tuple[float, float]:
    """(tau, tau_corner), calibrated on the null's side and corner scores for false-positive rate ``fpr``.

    At most a fraction ``fpr`` of the null channels has a side score above tau (and at most ``fpr`` a corner
    score above tau_corner); with fewer than ``1 / fpr`` null channels, tau is the null maximum.
    """
    check_type("fpr", fpr, float)
    if not 0 < fpr < 1:
        raise PadlibError(f"fpr must be between 0 and 1 (e.g. 0.01), got {fpr}")
    if null is None or len(null) == 0:
        raise PadlibError("the null table is empty: scan the circular-padding model first")
    return _upper_threshold(side_score(null), fpr), _upper_threshold(corner_score(null), fpr)


def calibrate_selectivity(null: pd.DataFrame, fpr: float = DEFAULT_FPR,
                          floor: float = SPECIALIST_SELECTIVITY) -> float:
    """The selectivity bar of a specialist: the larger of ``floor`` (our reading of "specialise") and the
    selectivity that at most a fraction ``fpr`` of the null's channels exceed, i.e. how well a channel's border
    responses separate from its interior's where padding cannot create a border (circular padding)."""
    if null is None or "selectivity" not in null or not len(null):
        raise PadlibError("the null table has no selectivity column: scan the circular-padding model first")
    return max(float(floor), _upper_threshold(null["selectivity"], fpr))


def null_p_values(table: pd.DataFrame, null: pd.DataFrame, min_explained: float = MIN_EXPLAINED) -> np.ndarray:
    """Per channel, the p-value of its padding-caused border score on the circular null.

    The statistic is what the verdict flags: the largest ``|z|`` over the sides (corners) whose padding effect
    explains it (:func:`caused_scores`; in the null the "padding" is circular, so its effect is the seam's).
    Sides and corners combine as tau combines them: a channel's statistic is the larger of its side score's and
    its corner score's null quantile, and its p is the share of null channels whose own statistic is at least
    as large (:func:`padlib.stats.empirical_p`). Measured on tf_efficientnet_lite1, the raw ``|z|`` would be
    the wrong null: content contrast without a padding cause gives the circular null a long tail (its 99.9th
    percentile 3.2 against learned PANs' median 2.1) that no padding-caused channel has to beat."""
    ns, nc = (np.sort(v) for v in caused_scores(null, min_explained))

    def stat(side, corner):
        return np.maximum(np.searchsorted(ns, side, side="right") / len(ns),
                          np.searchsorted(nc, corner, side="right") / len(nc))

    t_null = stat(*caused_scores(null, min_explained))
    t_obs = stat(*caused_scores(table, min_explained))
    return stats.empirical_p(t_obs, t_null)


def batchnorm_state(model: nn.Module) -> str:
    """"initialised" when every BatchNorm still holds the statistics it was built with (running mean 0, variance
    1, no batch tracked), else "calibrated"; "none" without BatchNorm. The random-init reference is treated the
    same way, so a network that learned nothing is compared with copies in its own state."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
           and m.running_mean is not None]
    if not bns:
        return "none"
    fresh = all(bool((m.running_mean == 0).all()) and bool((m.running_var == 1).all()) for m in bns)
    return "initialised" if fresh else "calibrated"


def _join_sides(hit: dict[str, bool]) -> str:
    names = [s for s in SIDES if hit[s]]
    return "frame" if len(names) == 4 else "+".join(names)


def _side_label(code: int) -> str:
    """The ``sides`` label of an 8-bit hit code (bits: top, bottom, left, right, then the four corners)."""
    hit = [(code >> i) & 1 for i in range(8)]
    if any(hit[:4]):
        return _join_sides(dict(zip(SIDES, hit[:4])))
    cs = [CORNERS[j].replace("_", "-") for j in range(4) if hit[4 + j]]
    if not cs:
        return ""
    return "all corners" if len(cs) == 4 else "+".join(cs) + (" corner" if len(cs) == 1 else " corners")


_SIDE_LABELS = [_side_label(code) for code in range(256)]


def classify_pans(table: pd.DataFrame, tau: float, tau_corner: float | None = None,
                  min_explained: float = MIN_EXPLAINED) -> pd.DataFrame:
    """Add ``score``, ``corner_score``, ``sides``, ``sign`` and ``is_pan`` to a scan table (returns a copy).

    A side (corner) counts when ``|z| > tau`` (``tau_corner``) and the padding effect explains at least
    ``min_explained`` of the contrast with the same sign: ``effect / z >= min_explained``.
    """
    tau_corner = tau if tau_corner is None else tau_corner
    out = table.copy()
    hits = {}
    for loc in LOCATIONS:
        z, e = out[f"z_{loc}"].to_numpy(), out[f"effect_{loc}"].to_numpy()
        thr = tau if loc in SIDES else tau_corner
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(z != 0, e / z, 0.0)
        hits[loc] = (np.abs(z) > thr) & (ratio >= min_explained)
    zs = np.stack([out[f"z_{loc}"].to_numpy() for loc in LOCATIONS], 1)
    hit_mat = np.stack([hits[loc] for loc in LOCATIONS], 1)
    side_any = hit_mat[:, :4].any(1)
    codes = (hit_mat * (1 << np.arange(8))).sum(1)
    sides = np.asarray(_SIDE_LABELS, dtype=object)[codes]
    # the sign is read where the channel is flagged: sides if any, else corners
    use = np.where(side_any[:, None], np.pad(hit_mat[:, :4], ((0, 0), (0, 4))), hit_mat)
    strength = np.where(use, np.abs(zs), -1.0)
    best = strength.argmax(1)
    is_pan = use.any(1)
    sign = np.where(is_pan, np.sign(zs[np.arange(len(out)), best]), 0).astype(int)
    out["score"] = side_score(out)
    out["corner_score"] = corner_score(out)
    out["sides"] = sides
    out["sign"] = sign
    out["is_pan"] = is_pan
    return out


# ---------------------------------------------------------------------------------------------------------
# The random-initialisation reference: which padding-caused border responses training built.

def caused_scores(table: pd.DataFrame, min_explained: float = MIN_EXPLAINED) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, (side, corner) padding-caused border scores: the largest ``|z|`` over the sides (corners)
    whose padding effect explains at least ``min_explained`` of the contrast with the same sign, else 0."""
    def best(locs):
        z = np.stack([table[f"z_{loc}"].to_numpy(dtype=float) for loc in locs], 1)
        e = np.stack([table[f"effect_{loc}"].to_numpy(dtype=float) for loc in locs], 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            caused = np.where(z != 0, e / z, 0.0) >= min_explained
        return np.where(caused, np.abs(z), 0.0).max(1)

    return best(SIDES), best(CORNERS)


def _can_rescan(images) -> bool:
    """Whether ``images`` can be scanned more than once (not a one-shot iterator of batches)."""
    return hasattr(images, "batches") or isinstance(images, (int, torch.Tensor, list, tuple))


def first_images(images, k: int):
    """The first ``k`` of ``images`` (a ProbeImages, a tensor or a list of batches), same kind."""
    if hasattr(images, "batches") and dataclasses.is_dataclass(images) and hasattr(images, "n"):
        return dataclasses.replace(images, n=min(k, images.n))
    if isinstance(images, torch.Tensor):
        return images[:k]
    out, n = [], 0
    for b in images:
        if n >= k:
            break
        out.append(b[: k - n])
        n += len(out[-1])
    return out


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images, batch_size: int = 16, device="cpu", progress=False) -> int:
    """Set every BatchNorm's running statistics to the exact mean and variance over ``images`` (cumulative
    average, one forward pass; other layers stay in eval mode). Returns the number of BatchNorm layers.

    In a process group every process runs all the batches itself (:func:`padlib._distributed.local`): the
    statistics are then bit for bit those of one process. Merging each process's averages instead agrees only to
    float32 rounding (about 2e-7 relative, measured on mobilenet_v2), and a network recalibrated that way computes
    slightly different activations, which moves rank statistics (selectivity) and near-zero contrasts by more than
    the summation order of the scan's sums does. The cost: one plain forward pass of all the images per process."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    progress = progress and is_main()
    model.eval()
    try:
        with _batch_statistics(bns), local():
            for batch in _batches(images, batch_size, device, progress, "BatchNorm recalibration"):
                model(batch)
    finally:
        model.eval()
    return len(bns)


def init_reference(model: nn.Module, images, seeds=REFERENCE_SEEDS, n_images: int = REFERENCE_IMAGES,
                   bn: str = "auto", device="cpu", progress: bool = True,
                   std_floor: float = STD_FLOOR) -> pd.DataFrame:
    """The scan table of the same architecture at random initialisation (:func:`padlib.models.random_init_copy`),
    one copy per seed, on the first ``n_images`` of ``images``; column ``seed`` added.

    ``bn="recalibrated"`` (default) first sets each copy's BatchNorm statistics to those of the same images: as
    initialised (mean 0, variance 1) an eval-mode BatchNorm is the identity, so the pre-activations' means and
    scales drift with depth in a way no trained network's do; recalibrated, each layer is normalised over the
    probe images as training's BatchNorm normalises it, and the reference measures what the random *weights*
    do at the border. ``bn="initialised"`` keeps them as built. ``bn="auto"`` (the default) treats the copies as
    the model is (:func:`batchnorm_state`): a model whose BatchNorm was never calibrated (a network built and
    not trained, scanned as a user would) gets copies as initialised, any other recalibrated copies. Scanned
    against a recalibrated reference, a random-init mobilenet_v2 left as initialised was called learned in a
    fifth of its channels (our measurement): both sides must be treated alike.

    The ``n_images`` images make one batch, whatever the scan's batch size: recalibrated, each BatchNorm then
    normalises with the exact statistics of those images in the scan's own pass (one pass per copy, not two),
    and the reference does not depend on how the probe set is batched. Why few images: the thresholds are upper
    quantiles over every channel of a layer, and fewer images only make the random-init scores a little noisier,
    so a little larger (more conservative). Measured on mobilenet_v2 (64 probe images, seeds 0 and 1): 8, 12,
    16 and 32 reference images give 1383, 1376, 1375 and 1367 learned PANs, and a random-init copy scanned the
    same way 1.1, 1.4, 1.5 and 1.9% (our measurement)."""

    if bn not in ("recalibrated", "initialised", "auto"):
        raise PadlibError(f"reference_bn must be 'auto', 'recalibrated' or 'initialised', got {bn!r}")
    if bn == "auto":
        bn = "initialised" if batchnorm_state(model) == "initialised" else "recalibrated"
    check_type("reference_images", n_images, int)
    if n_images < 1 or not len(tuple(seeds)):
        raise PadlibError("the random-init reference needs reference_images >= 1 and at least one seed")
    subset = first_images(images, n_images)
    if isinstance(subset, list):
        subset = torch.cat([b.to(device) for b in subset])
    n = subset.n if hasattr(subset, "batches") else len(subset)
    seeds = [int(s) for s in seeds]
    # in a process group, the copies are dealt out (copy i to rank i % world size), each scanned whole by its
    # process on all the reference images (one batch: its BatchNorm statistics are those of the whole batch, which
    # a split batch would not reproduce), and the tables gathered: the one-process tables, in seed order
    rank, size = world()
    progress = progress and is_main()
    frames = {}
    with local():
        for i in range(rank, len(seeds), size):
            control = random_init_copy(model, seeds[i])
            t = _scan_table(control, subset, n, device, progress, f"random-init reference (seed {seeds[i]})",
                            std_floor, bn_batch_stats=bn == "recalibrated", selectivity=False)[0]  # no selectivity
            frames[i] = t.assign(seed=seeds[i])
            del control
    for part in all_gather_objects(frames) if size > 1 else ():
        frames.update(part)
    return pd.concat([frames[i] for i in range(len(seeds))], ignore_index=True)


def init_thresholds(reference: pd.DataFrame, fpr: float = DEFAULT_FPR,
                    min_explained: float = MIN_EXPLAINED) -> pd.DataFrame:
    """Per layer, the (side, corner) padding-caused scores that at most ``fpr`` of the random-init reference's
    channels of that layer (pooled over seeds) exceed: the random-init distribution changes with depth."""
    side, corner = caused_scores(reference, min_explained)
    df = pd.DataFrame({"layer": reference["layer"].to_numpy(), "side": side, "corner": corner})
    rows = [{"layer": layer, "init_side_threshold": _upper_threshold(g.side, fpr),
             "init_corner_threshold": _upper_threshold(g.corner, fpr), "init_channels": len(g)}
            for layer, g in df.groupby("layer", sort=False)]
    return pd.DataFrame(rows)


def learned_verdict(table: pd.DataFrame, thresholds: pd.DataFrame,
                    min_explained: float = MIN_EXPLAINED) -> pd.DataFrame:
    """Add ``padding_caused`` (the circular-null verdict, the former ``is_pan``), ``init_side_threshold``,
    ``init_corner_threshold``, ``beyond_random_init`` and the learned ``is_pan`` (both) to a classified table."""
    out = table.copy()
    thr = thresholds.set_index("layer")
    missing = set(out["layer"]) - set(thr.index)
    if missing:
        raise PadlibError(f"the random-init reference has no layer {sorted(missing)[0]!r}: not the same architecture")
    out["padding_caused"] = out["is_pan"].astype(bool)
    out["init_side_threshold"] = out["layer"].map(thr["init_side_threshold"]).to_numpy(dtype=float)
    out["init_corner_threshold"] = out["layer"].map(thr["init_corner_threshold"]).to_numpy(dtype=float)
    side, corner = caused_scores(out, min_explained)
    out["beyond_random_init"] = (side > out["init_side_threshold"]) | (corner > out["init_corner_threshold"])
    out["learned"] = out["padding_caused"] & out["beyond_random_init"]  # sides and sign: the padding-caused ones
    out["is_pan"] = out["learned"]
    return out


def specialist_verdict(table: pd.DataFrame, selectivity_threshold: float | None, fdr: float | None = DEFAULT_FDR,
                       definition: str = "specialist") -> pd.DataFrame:
    """Add ``specialist`` and set ``is_pan`` to the reading ``definition`` names (returns a copy).

    A specialist is a learned PAN (a padding-caused one when the table has no random-init reference) whose
    ``selectivity`` exceeds ``selectivity_threshold`` (calibrated on the circular null by
    :func:`calibrate_selectivity`) and whose ``q_value`` (Benjamini-Hochberg over every channel of the scan) is at
    most ``fdr``; without p-values (thresholds given, no null) the FDR step is skipped and said so in ``.attrs``.
    ``definition``: "specialist", "learned" (padding-caused and beyond random init) or "padding" (padding-caused).
    """
    if definition not in DEFINITIONS:
        raise PadlibError(f"definition must be one of {', '.join(map(repr, DEFINITIONS))}, got {definition!r}")
    out = table.copy()
    if "padding_caused" not in out:
        out["padding_caused"] = out["is_pan"].astype(bool)
    base = out["learned"] if "learned" in out else out["padding_caused"]
    if definition == "learned" and "learned" not in out:
        raise PadlibError("definition='learned' needs the random-init reference: leave reference='random_init'")
    if selectivity_threshold is not None:
        selective = out["selectivity"].to_numpy(float) > selectivity_threshold
        if "q_value" in out and fdr is not None:
            selective = selective & (out["q_value"].to_numpy(float) <= fdr)
        out["specialist"] = base.to_numpy(bool) & selective
    elif definition == "specialist":
        raise PadlibError("definition='specialist' calibrates its selectivity bar on the circular null: with tau "
                          "given, also give selectivity_threshold= (e.g. from an earlier scan's "
                          ".selectivity_threshold), or choose definition='learned' or 'padding'")
    out["is_pan"] = {"specialist": out.get("specialist"), "learned": base, "padding": out["padding_caused"]}[
        definition].astype(bool)
    out.attrs.update(table.attrs, definition=definition)
    return out


def reclassify(scan: "PanScan", fpr: float | None = None, min_explained: float | None = None,
               tau: float | None = None, tau_corner: float | None = None,
               selectivity_threshold: float | None = None, fdr: float | None = None,
               definition: str | None = None) -> pd.DataFrame:
    """``scan``'s table with every reading recomputed for other settings, without scanning again: tau (and the
    selectivity bar) recalibrated on the scan's null for ``fpr`` unless given, the random-init thresholds on its
    reference at the same ``fpr``, ``min_explained``, the FDR and the definition of ``is_pan``. What the
    sensitivity tables and threshold curves of chapter 1 read."""
    fpr = scan.fpr if fpr is None else float(fpr)
    fpr = DEFAULT_FPR if fpr is None else fpr
    me = scan.min_explained if min_explained is None else float(min_explained)
    if tau is None:
        if scan.null is None:
            raise PadlibError("this scan has no null table (tau was given); rescan with null='circular'")
        tau, tau_c = calibrate_tau(scan.null, fpr)
        tau_corner = tau_c if tau_corner is None else tau_corner
    tau_corner = tau if tau_corner is None else tau_corner
    c = classify_pans(scan.table, float(tau), float(tau_corner), me)
    c["padding_caused"] = c["is_pan"]
    if scan.reference is not None:
        c = learned_verdict(c, init_thresholds(scan.reference, fpr, me), me)
    if selectivity_threshold is None:
        selectivity_threshold = (calibrate_selectivity(scan.null, fpr) if scan.null is not None
                                 else scan.selectivity_threshold)
    return specialist_verdict(c, selectivity_threshold, scan.fdr if fdr is None else fdr,
                              scan.definition if definition is None else definition)


def random_init_scan(model: nn.Module, images, seed: int, batch_size: int = 16, device="cpu",
                     keep_model: bool = False, **scan_options):
    """The default scan of the same architecture at random initialisation (``seed``), its BatchNorm
    statistics first recalibrated on ``images`` as a trained network's were on its data: the control that
    says what the scanner finds in a network that learned nothing. ``scan_options`` go to :func:`scan_pans`
    (``reference=None`` for padding-caused "PANs" alone). With ``keep_model``, returns (scan, the copy)."""

    control = random_init_copy(model, int(seed))
    recalibrate_batchnorm(control, images, batch_size, device)
    scan = scan_pans(control, images, batch_size=batch_size, device=device, **{"progress": False, **scan_options})
    return (scan, control) if keep_model else scan


@keeps_model
def learned_pan_control(model: nn.Module, images, seeds=(10, 11, 12), fpr: float = DEFAULT_FPR,
                        min_explained: float = MIN_EXPLAINED, batch_size: int = 16, device="cpu",
                        progress: bool = True, scan: "PanScan | None" = None,
                        definition: str | None = None) -> tuple[pd.DataFrame, dict]:
    """The model and the same architecture at random initialisation (``seeds``, other than the reference's),
    each scanned with the random-init reference on the same ``images``: one row per network with its filters,
    padding-caused channels (circular null only), learned PANs (also beyond random init) and specialists (also
    selective, FDR-controlled), and shares.

    Each random-init copy's BatchNorm is recalibrated on ``images`` before its scan, as the reference's is: a
    trained network's statistics are calibrated on its data, and a copy left as initialised, scanned against a
    recalibrated reference, flags a fifth or more of its channels (measured on mobilenet_v2). ``scan``: the
    model's own scan when already made (its reference is added when it has none). Returns (table, {label:
    PanScan})."""
    if scan is None:
        scan = scan_pans(model, images, fpr=fpr, min_explained=min_explained, batch_size=batch_size, device=device,
                         progress=progress, definition=definition)
    if "padding_caused" not in scan.table:
        scan = with_reference(scan, model, images, device=device, progress=progress)
    scans = {"trained": scan}
    for seed in seeds:
        scans[f"random init {seed}"] = random_init_scan(model, images, int(seed), fpr=fpr,
                                                        min_explained=min_explained, batch_size=batch_size,
                                                        device=device, progress=progress,
                                                        definition=definition or scan.definition)
    name = getattr(model, "padlib_name", type(model).__name__)
    rows = []
    for label, sc in scans.items():
        t = sc.table
        rows.append({"model": name, "init": "trained" if label == "trained" else "random init",
                     "seed": None if label == "trained" else int(label.rsplit(" ", 1)[1]), "filters": len(t),
                     "padding_caused": int(t.padding_caused.sum()), "learned": int(t.learned.sum()),
                     "specialist": int(t.specialist.sum()),
                     "padding_caused_pct": 100.0 * t.padding_caused.mean(), "learned_pct": 100.0 * t.learned.mean(),
                     "specialist_pct": 100.0 * t.specialist.mean(), "tau": sc.tau})
    return pd.DataFrame(rows), scans


# ---------------------------------------------------------------------------------------------------------
# Public entry points.

@dataclass
class PanScan:
    """Everything one PAN scan produced: tables, thresholds, mean maps, kernels, timings.

    ``maps[layer]``: mean pre-activation map per channel (C, H, W); ``kernels[layer]``: effective kernel on
    the mean input, ``scale * sum_c mu_c W[o, c]`` (C, kh, kw), whose taps on padding predict the border
    jump; ``null``: the circular-padding null table (None when tau was given); ``seconds``: wall time of the
    observed pass and of the null pass.
    """

    model_name: str
    table: pd.DataFrame
    null: pd.DataFrame | None
    tau: float
    tau_corner: float
    fpr: float | None
    min_explained: float
    n_images: int
    input_size: tuple
    maps: dict = field(repr=False, default_factory=dict)
    kernels: dict = field(repr=False, default_factory=dict)
    input_means: dict = field(repr=False, default_factory=dict)
    skipped_layers: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    reference: pd.DataFrame | None = field(repr=False, default=None)  # random-init scan tables (column seed)
    init_thresholds: pd.DataFrame | None = field(repr=False, default=None)  # per layer, from ``reference``
    selectivity_threshold: float | None = None  # the null's (1 - fpr) quantile of selectivity
    fdr: float | None = None                    # Benjamini-Hochberg rate the specialists are counted at
    definition: str = "padding"                 # what ``is_pan`` means (one of DEFINITIONS)
    reference_bn: str | None = None             # BatchNorm state of the random-init reference copies

    def readings(self) -> dict[str, int]:
        """The counts of the three readings that exist in this scan: padding-caused, learned, specialist."""
        t = self.table
        return {k: int(t[k].sum()) for k in ("padding_caused", "learned", "specialist") if k in t}

    def expected_false_discoveries(self) -> float:
        """Benjamini-Hochberg's bound on the specialists that are null exceedances: fdr x their count."""
        if self.fdr is None or "specialist" not in self.table:
            return float("nan")
        return float(self.fdr * self.table["specialist"].sum())

    @property
    def pans(self) -> pd.DataFrame:
        """Only the PAN rows, strongest first."""
        return self.table[self.table.is_pan].sort_values("score", ascending=False)

    def null_exceedance(self) -> float:
        """Share of null channels that pass tau on a side or tau_corner on a corner (z only)."""
        if self.null is None:
            return float("nan")
        return float(((side_score(self.null) > self.tau) | (corner_score(self.null) > self.tau_corner)).mean())


def _resolve_inputs(model, images, size, seed, device):
    """The model, images and device a scan runs on, each checked before any work (one line naming the value)."""
    images = check_images(images)
    device = check_device(device)
    if isinstance(model, str):
        model = load_model(model, device=device or "cpu")
    check_type("model", model, nn.Module, "a loaded model or a model name such as 'mobilenet_v2'")
    device = device if device is not None else model_device(model)
    if device.type != model_device(model).type:
        raise PadlibError(f"the model is on {model_device(model)} but device={str(device)!r}: move the model "
                          f"(model.to({str(device)!r})) or leave device out")
    if isinstance(images, int):
        images = probe_images(images, size=size, seed=seed, model=model)
    return model, images, device


@keeps_model
def scan_pans(model, images=64, *, fpr: float = DEFAULT_FPR, tau: float | None = None,
              tau_corner: float | None = None, null="circular", min_explained: float = MIN_EXPLAINED,
              std_floor: float = STD_FLOOR, batch_size: int = 16,
              device=None, progress: bool = True, size: int | None = None, seed: int = 0,
              reference: str | None = "random_init", reference_seeds=REFERENCE_SEEDS,
              reference_images: int = REFERENCE_IMAGES, reference_bn: str = "auto",
              definition: str | None = None, fdr: float = DEFAULT_FDR,
              selectivity_threshold: float | None = None) -> PanScan:
    """Scan ``model`` for PANs on ``images`` and calibrate the threshold on the circular-padding null.

    ``model``: a module or a model name. ``images``: a number of probe images (made with
    :func:`padlib.probe_images` for this model, ``size``/``seed``), a ProbeImages, a tensor or an iterable of
    batches. ``null``: "circular" (scan the circular-padding copy on the same images: a second pass, about
    doubling the time), or a null table from an earlier scan to reuse. ``tau`` (and ``tau_corner``): given
    thresholds, skipping the null entirely (one pass). Thresholds are calibrated for ``fpr`` otherwise.
    ``std_floor``: the unit of z is the channel's interior std, but at least this fraction of the layer's
    median interior std (0 disables the floor).
    ``reference="random_init"`` (default): ``is_pan`` is the *learned* verdict: padding-caused (the
    circular-null verdict, kept as ``padding_caused``) and ``beyond_random_init``, i.e. a padding-caused score
    above what the same layer of the same architecture at random initialisation gives on the first
    ``reference_images`` probe images (``reference_seeds`` copies, BatchNorm ``reference_bn``;
    :func:`init_reference`), at the same ``fpr`` per layer (:func:`init_thresholds`). Each copy costs about a
    quarter of a pass at the defaults. ``reference_bn="auto"`` treats the copies' BatchNorm as the model's is
    (:func:`batchnorm_state`).

    ``definition`` says what ``is_pan`` means (the three readings are all columns):
    "specialist" (the default whenever the null is scanned): a learned PAN whose ``selectivity`` (per image, the
    AUROC of one border location's pre-activations against the interior's, averaged over images, either direction,
    the best of the 8 locations) exceeds the null's ``1 - fpr`` quantile (``selectivity_threshold``, or given), and
    whose ``q_value`` (Benjamini-Hochberg over all channels of the empirical null p, ``p_null``) is at most ``fdr``;
    "learned": padding-caused and beyond random init; "padding": padding-caused alone (the circular-null verdict,
    which also flags a third to two thirds of a network at random initialisation, chapter 1). With ``tau`` given
    and no null, the default is "learned" ("padding" with ``reference=None``) unless ``selectivity_threshold`` is
    given too; ``.attrs["definition"]`` always says which reading ``is_pan`` is.
    """
    check_type("batch_size", batch_size, int)
    if definition is not None and definition not in DEFINITIONS:
        raise PadlibError(f"definition must be one of {', '.join(map(repr, DEFINITIONS))}, got {definition!r}")
    if definition == "learned" and reference is None:
        raise PadlibError("definition='learned' needs the random-init reference: leave reference='random_init'")
    check_type("fdr", fdr, float)
    if not 0 < fdr < 1:
        raise PadlibError(f"fdr must be between 0 and 1 (e.g. 0.05), got {fdr}")
    if reference == "none":
        reference = None
    if reference not in (None, "random_init"):
        raise PadlibError(f"reference must be 'random_init' (the learned-PAN verdict) or None (padding-caused "
                          f"only), got {reference!r}")
    images = check_images(images)  # what was given, before the one-shot check below reads it as an iterator
    if reference and not _can_rescan(images):
        raise PadlibError("the random-init reference scans the images again: pass a number of images, a "
                          "ProbeImages, a tensor or a list of batches, not a one-shot iterator (or reference=None "
                          "for the padding-caused verdict alone)")
    check_type("min_explained", min_explained, (int, float))
    check_type("std_floor", std_floor, (int, float))
    model, images, device = _resolve_inputs(model, images, size, seed, device)
    hw = _input_size(images)
    if hw is not None and len(hw) == 2 and min(hw) > 0:  # refused before any work when it would not fit
        check_run_memory(model, "scan", size=max(hw), batch_size=batch_size, device=device)
    name = getattr(model, "padlib_name", type(model).__name__)
    t0 = time.perf_counter()
    table, maps, kernels, in_means, skipped, n = _scan_table(model, images, batch_size, device, progress,
                                                              f"PAN scan {name}", std_floor)
    seconds = {"observed": time.perf_counter() - t0}
    null_table = None
    if tau is None:
        if isinstance(null, pd.DataFrame):
            null_table = null
        elif null == "circular":
            if not _can_rescan(images):
                raise PadlibError("the circular null scans the images a second time: pass a ProbeImages, a tensor "
                                  "or a list of batches, not a one-shot iterator")
            t0 = time.perf_counter()
            circ = convert_padding(model, "circular")
            null_table = _scan_table(circ, images, batch_size, device, progress, f"null (circular) {name}",
                                     std_floor)[0]
            seconds["null"] = time.perf_counter() - t0
            del circ
        else:
            raise PadlibError(f"null must be 'circular' or a null table from an earlier scan, got {null!r}")
        tau, tau_c = calibrate_tau(null_table, fpr)
        tau_corner = tau_c if tau_corner is None else tau_corner
    else:
        check_type("tau", tau, (int, float))
        tau = float(tau)
        tau_corner = tau if tau_corner is None else float(tau_corner)
        fpr = None
    table = classify_pans(table, tau, tau_corner, min_explained)
    table["padding_caused"] = table["is_pan"]
    if null_table is not None:
        null_table = classify_pans(null_table, tau, tau_corner, min_explained)
        table["p_null"] = null_p_values(table, null_table, min_explained)
        table["q_value"] = stats.bh_adjust(table["p_null"].to_numpy())
        if selectivity_threshold is None:
            selectivity_threshold = calibrate_selectivity(null_table, fpr)
    if selectivity_threshold is not None:
        check_type("selectivity_threshold", selectivity_threshold, (int, float))
        selectivity_threshold = float(selectivity_threshold)
    if definition is None:
        definition = ("specialist" if selectivity_threshold is not None
                      else "learned" if reference == "random_init" else "padding")
    scan = PanScan(name, table, null_table, tau, tau_corner, fpr, float(min_explained), n,
                   _input_size(images), maps, kernels, in_means, skipped, seconds,
                   selectivity_threshold=selectivity_threshold, fdr=fdr if "q_value" in table else None,
                   definition=definition)
    table.attrs.update(model=name, tau=tau, tau_corner=tau_corner, fpr=fpr if fpr is not None else float("nan"),
                       min_explained=float(min_explained), std_floor=float(std_floor), n_images=n,
                       input_size=str(scan.input_size), null_exceedance=scan.null_exceedance(),
                       skipped_layers=",".join(skipped))
    if reference == "random_init":
        return with_reference(scan, model, images, reference_seeds, reference_images, reference_bn, device,
                              progress, std_floor)
    return _with_definition(scan)


def _with_definition(scan: PanScan) -> PanScan:
    """``scan`` with ``specialist`` and ``is_pan`` set for its definition, and the scalars in ``.attrs``."""
    table = specialist_verdict(scan.table, scan.selectivity_threshold, scan.fdr, scan.definition)
    scan = dataclasses.replace(scan, table=table)
    nan = float("nan")
    table.attrs.update(
        selectivity_threshold=scan.selectivity_threshold if scan.selectivity_threshold is not None else nan,
        fdr=scan.fdr if scan.fdr is not None else nan, reference_bn=scan.reference_bn or "",
        expected_false_discoveries=scan.expected_false_discoveries(), **{f"n_{k}": v for k, v in scan.readings().items()})
    return scan


def with_reference(scan: PanScan, model: nn.Module, images, seeds=REFERENCE_SEEDS, n_images: int = REFERENCE_IMAGES,
                   bn: str = "auto", device="cpu", progress: bool = True,
                   std_floor: float = STD_FLOOR) -> PanScan:
    """``scan`` (of ``model`` on ``images``) with the learned verdict added from a random-init reference
    (:func:`init_reference`, :func:`init_thresholds`, :func:`learned_verdict`): what
    ``scan_pans(..., reference="random_init")`` returns, without scanning the model again."""
    t0 = time.perf_counter()
    if bn == "auto":
        bn = "initialised" if batchnorm_state(model) == "initialised" else "recalibrated"
    ref_table = init_reference(model, images, seeds, n_images, bn, device, progress, std_floor)
    thresholds = init_thresholds(ref_table, scan.fpr if scan.fpr is not None else DEFAULT_FPR, scan.min_explained)
    table = learned_verdict(scan.table, thresholds, scan.min_explained)
    table.attrs.update(scan.table.attrs)
    seconds = dict(scan.seconds, reference=time.perf_counter() - t0)
    definition = scan.definition if scan.definition != "padding" or scan.selectivity_threshold is not None \
        else "learned"
    scan = dataclasses.replace(scan, table=table, seconds=seconds, reference=ref_table, init_thresholds=thresholds,
                               reference_bn=bn, definition=definition)
    return _with_definition(scan)


def _input_size(images):
    if hasattr(images, "size") and isinstance(images.size, int):
        return (images.size, images.size)
    if isinstance(images, torch.Tensor):
        return tuple(images.shape[-2:])
    return None


@keeps_model
def find_pans(model, images=64, **kwargs) -> pd.DataFrame:
    """The PAN table of ``model``: one row per (layer, channel) of every conv that can read padding.

    Columns: ``layer, channel, depth, rel_depth, kernel, stride, padding`` (a number, or "tf_same"),
    ``pad_*``/``reads_*`` (padding per side at this size and whether it is read), ``z_<loc>`` (border
    contrast), ``effect_<loc>`` (causal padding effect), ``zpred_<loc>`` (weight-based prediction from
    measured input means: the kernel taps on zero padding times the probe images' mean input, in units of
    the measured interior std; NaN for non-zero padding), for the sides top/bottom/left/right and corners
    top_left..., all in interior-std units of the pre-activation;
    ``score``, ``sides``, ``sign``, ``padding_caused`` (beyond the circular null), ``init_side_threshold``,
    ``init_corner_threshold``, ``beyond_random_init`` (beyond the same layer at random initialisation) and
    ``is_pan`` (both: a learned PAN; with ``reference=None``, padding-caused alone and no reference columns).
    Scalars in ``.attrs``: model, tau, tau_corner, fpr, n_images, null_exceedance, definition. Keyword
    arguments as :func:`scan_pans`, which also returns the null table, the reference, the mean maps and the
    kernels.
    """
    return scan_pans(model, images, **kwargs).table



# Names that lived here before padlib 0.2 keep working for one release (each old path warns once).
__getattr__ = moved_names(__name__)
