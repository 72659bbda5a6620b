"""Spatial bias of feature maps and blind spots of classifiers (Mind the Pad: Alsallakh et al., ICLR 2021).

Three measurements, all "our formulation" (the paper's code is not public):

- :func:`mean_feature_maps`: per layer, the mean over images of the channel-averaged activation magnitude,
  streamed with :func:`padlib._hooks.layer_map_stats`. On constant inputs every spatial variation of
  such a map comes from the border; on natural images the content averages out with enough images.
- :func:`spatial_bias_index`: how much each border line (outermost row/column, corners excluded) deviates
  from the interior, in units of the map's mean; left-right and top-bottom differences of those deviations
  say which side carries more artefact, ``border_centre`` the signed border-minus-interior level.
- :func:`blind_spot_map`: a small stimulus pasted at every position of a grid on a background; the map is
  the model's response (target probability, log-probability or logit) by position. A translation-invariant model gives a
  flat map (:func:`toy_translation_model` with circular padding is the planted control).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ._compat import moved_names
from ._distributed import all_gather_objects, world
from ._hooks import (check_device, check_images, iter_batches, keeps_model, layer_map_stats, model_dtype,
                     rank_batches)
from ._memory import output_shapes
from .audit import audit_summary
from .errors import PadlibError, check_type
from .models import load_model, preprocessing
from .padding import interior_margin
from .stats import t_critical

# ---------------------------------------------------------------------------------------------------------
# Which layers: one map per depth

@keeps_model
def depth_layers(model: nn.Module, input_size: int | None = None) -> list[str]:
    """One layer per depth, in order: the model's direct children, with plain ``nn.Sequential``/``ModuleList``
    children expanded one level (torchvision ``features.i``, timm ``blocks.i``, ``layer1.0`` ...), keeping
    those whose output is a spatial map (N, C, H, W) with H, W > 1. A child whose output is no tensor (a dict or
    tuple of maps: a detector's backbone with its FPN, CRAFT's VGG) is expanded into its own children, up to
    three levels down."""
    check_type("model", model, nn.Module)
    size = input_size or getattr(getattr(model, "padlib_preprocessing", None), "input_size", 224)
    shapes = output_shapes(model, size)
    names = []

    def walk(module, prefix, level):
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if type(child) in (nn.Sequential, nn.ModuleList):
                names.extend(f"{full}.{sub}" for sub, _ in child.named_children())
            elif full not in shapes and level < 3 and any(True for _ in child.children()):
                walk(child, f"{full}.", level + 1)  # its output is not a tensor: read the maps inside it
            else:
                names.append(full)

    walk(model, "", 1)
    keep = [n for n in names if len(shapes.get(n, ())) == 4 and min(shapes[n][-2:]) > 1]
    if not keep:
        raise PadlibError(f"{type(model).__name__} has no child module producing a spatial map; pass layers=[...]")
    return keep


# ---------------------------------------------------------------------------------------------------------
# Inputs

def constant_inputs(model, size: int | None = None, levels=(0.0, 0.25, 0.5, 0.75, 1.0)) -> torch.Tensor:
    """Uniform grey images at ``levels`` (in [0, 1] pixel units), normalised for ``model``: (len(levels), 3, S, S).

    Their content is the same at every position, so any spatial structure in a feature map comes from the border.
    """

    prep = preprocessing(model)
    size = size or prep.input_size
    x = torch.tensor(list(levels), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, size, size)
    return prep.normalize(x.contiguous())


# ---------------------------------------------------------------------------------------------------------
# Mean feature maps and the bias index

_REDUCERS = {
    "abs": lambda y: y.abs().mean(1, keepdim=True),
    "mean": lambda y: y.mean(1, keepdim=True),
}


@dataclass
class FeatureMaps:
    """Mean channel-reduced feature map per layer, (H, W) arrays, plus the same on disjoint image splits."""

    maps: dict
    split_maps: dict = field(default_factory=dict)  # layer -> (splits, H, W)
    n: int = 0
    reduce: str = "abs"
    # with mean_feature_maps(groups=...): per split, the labels of the whole groups it holds (empty without)
    split_groups: list = field(default_factory=list)
    group_kind: str = ""  # what a group is: "photographs" (groups="source") or "groups"

    @property
    def n_groups(self) -> int:
        """How many groups the splits were made of (0 without groups)."""
        return sum(len(g) for g in self.split_groups)

    @property
    def layers(self) -> list[str]:
        return list(self.maps)

    def __getitem__(self, layer: str) -> np.ndarray:
        return self.maps[layer]


def flipped_batches(batches):
    """Each batch followed in the same batch by its left-right, up-down and double flips (4x the images).

    Averaged over the four flips, image content contributes a mirror-symmetric mean map, so a left-right or
    top-bottom asymmetry of the mean can only come from the model (our formulation)."""
    for b in batches:
        yield torch.cat([b, b.flip(-1), b.flip(-2), b.flip(-2, -1)])


def _group_labels(images, groups, n_images) -> tuple[list, str]:
    """One hashable label per image from ``groups`` (a sequence, or "source": each probe crop's source photograph),
    and what a group is ("photographs" or "groups"); bad input refused in one line."""
    if isinstance(groups, str):
        if groups != "source":
            raise PadlibError(f"groups must be 'source' or one label per image, got the string {groups!r}")
        if not hasattr(images, "crop_box"):
            raise PadlibError(f"groups='source' needs a ProbeImages (padlib.probe_images), which knows each crop's "
                              f"source photograph; got {type(images).__name__}: pass one label per image instead")
        source = [images.crop_box(i)[0] for i in range(len(images))]
        names = list(getattr(images, "source_names", []))
        if len(names) == len(images.sources) and len(set(names)) == len(names):
            return [names[j] for j in source], "photographs"  # labelled by name, for a reader of split_groups
        return source, "photographs"
    if n_images is None:
        raise PadlibError("groups= needs images whose number is known (a ProbeImages, a tensor or a list of batches), "
                          f"got a {type(images).__name__}")
    if isinstance(groups, (torch.Tensor, np.ndarray)):
        groups = groups.tolist()
    if not hasattr(groups, "__len__") or not hasattr(groups, "__getitem__") or isinstance(groups, (bytes, dict)):
        raise PadlibError("groups must be 'source' or a sequence of one label per image, got a "
                          f"{type(groups).__name__}")
    labels = list(groups)
    if len(labels) != n_images:
        raise PadlibError(f"groups has {len(labels)} label(s) for {n_images} image(s); pass one label per image")
    for i, g in enumerate(labels):
        try:
            hash(g)
        except TypeError:
            raise PadlibError(f"groups[{i}] is a {type(g).__name__}, not a hashable label") from None
    return labels, "groups"


def deal_groups(labels, splits: int) -> list[list[int]]:
    """Image indices per split, whole groups only: groups (in order of first appearance) taken largest first, each
    into the split holding fewest images so far (ties: the lower split), which balances the splits' sizes
    deterministically. Within a split, images keep their order. Needs at least ``splits`` groups."""
    members: dict = {}
    for i, g in enumerate(labels):
        members.setdefault(g, []).append(i)
    if not members:
        raise PadlibError("no images: mean_feature_maps needs at least one image")
    if len(members) < splits:
        raise PadlibError(f"groups has {len(members)} distinct group(s), fewer than splits={splits}: every split must "
                          f"hold whole groups; pass splits={len(members)} or more groups")
    out: list[list[int]] = [[] for _ in range(splits)]
    for ix in sorted(members.values(), key=len, reverse=True):  # stable: equal sizes keep first-appearance order
        target = min(range(splits), key=lambda k: (len(out[k]), k))
        out[target] += ix
    return [sorted(ix) for ix in out]


def _split_batches(images, index, batch_size, device, progress, dtype):
    """(split, batch) pairs: the images of each split of ``index`` (image indices per split) in batches of at most
    ``batch_size``, split after split, from a ProbeImages (each image made when its batch comes), a tensor or a list
    of batches; each batch checked and cast as :func:`padlib._hooks.iter_batches` does. In a process group, batch
    ``j`` of that sequence is made by rank ``j % world_size`` only (:mod:`padlib._distributed`)."""
    from tqdm.auto import tqdm

    if isinstance(images, (list, tuple)):
        rows = [(b, r) for b, t in enumerate(images) for r in range(t.shape[0])]
    rank, size = world()
    chunks = [(k, ix[s:s + batch_size]) for k, ix in enumerate(index) for s in range(0, len(ix), batch_size)]
    chunks = chunks[rank::size]
    bar = tqdm(total=sum(len(c) for _, c in chunks), desc=progress if isinstance(progress, str) else "images",
               unit="img", disable=not progress or rank != 0, leave=False)
    try:
        for k, chunk in chunks:
            if isinstance(images, torch.Tensor):
                batch = images[torch.as_tensor(chunk)]
            elif isinstance(images, (list, tuple)):
                batch = torch.stack([images[rows[i][0]][rows[i][1]] for i in chunk])
            else:
                batch = torch.stack([images[i] for i in chunk])
            bar.update(len(chunk))
            yield k, next(iter_batches([batch], len(chunk), device, False, dtype))
    finally:
        bar.close()


def _merged(sums: list, counts: list) -> tuple[list, list]:
    """Several processes (:mod:`padlib._distributed`): every process's per-split sums of maps and image counts added
    up, so that each holds those of all the images (the maps are channel-reduced, one small array per layer, so
    they are gathered whole). Alone: unchanged."""
    if world()[1] == 1:
        return sums, counts
    total, n = [dict() for _ in sums], [0] * len(counts)
    for part_sums, part_counts in all_gather_objects((sums, counts)):
        for k, d in enumerate(part_sums):
            for layer, v in d.items():
                total[k][layer] = total[k].get(layer, 0) + v
            n[k] += part_counts[k]
    return total, n


@keeps_model
def mean_feature_maps(model: nn.Module, images, layers=None, reduce: str = "abs", splits: int = 1,
                      flips: bool = False, batch_size: int = 16, device="cpu",
                      progress: bool | str = True, groups=None) -> FeatureMaps:
    """Streaming mean over ``images`` of each layer's channel-averaged map (``reduce='abs'``: mean |activation|).

    ``images`` is a ProbeImages, a normalised (N, 3, H, W) tensor or an iterable of batches. With ``splits``
    > 1, batches go round-robin to ``splits`` disjoint subsets whose maps give standard errors to the index.
    ``flips=True`` adds the three mirror images of every image (:func:`flipped_batches`).

    ``groups``: one hashable label per image, or ``"source"`` (a ProbeImages: each crop's source photograph, by
    name).
    Images of one group are not independent (crops of one photograph), so with groups the splits are made of
    whole groups (:func:`deal_groups`: every image of a group in the same split, split sizes balanced) and
    each split is run by itself; the labels per split are kept in ``split_groups``.
    """
    check_type("model", model, nn.Module)
    if reduce not in _REDUCERS:
        raise PadlibError(f"reduce must be one of {list(_REDUCERS)}, got {reduce!r}")
    check_type("splits", splits, int)
    if splits < 1:
        raise PadlibError(f"splits must be >= 1, got {splits}")
    images = check_images(images, number=False)
    device = check_device(device, allow_none=False)
    layers = list(layers) if layers is not None else depth_layers(model)
    reducer = _REDUCERS[reduce]

    def transform(name, module, inputs, output):
        y = output if isinstance(output, torch.Tensor) else output[0]
        if y.dim() != 4:
            raise PadlibError(f"layer '{name}' outputs shape {tuple(y.shape)}, not a (N, C, H, W) map")
        return reducer(y)

    if groups is not None:
        return _grouped_maps(model, images, layers, reduce, splits, flips, batch_size, device, progress, groups,
                             transform)
    if hasattr(images, "__len__") and not isinstance(images, torch.Tensor):
        n_images = len(images)
    elif isinstance(images, torch.Tensor):
        n_images = images.shape[0]
    else:
        n_images = None
    if n_images is not None and splits > 1:
        batch_size = max(1, min(batch_size, math.ceil(n_images / splits)))
    sums = [dict() for _ in range(splits)]
    counts = [0] * splits
    for b, _, batch in rank_batches(images, batch_size, device, progress, model_dtype(model)):
        if flips:
            batch = next(flipped_batches([batch]))
        k = b % splits
        stats = layer_map_stats(model, batch, layers, batch_size=batch.shape[0], device=device, progress=False,
                                transform=transform)
        for layer, st in stats.items():
            s = st.sum[0].numpy()
            sums[k][layer] = sums[k].get(layer, 0) + s
        counts[k] += batch.shape[0]
    sums, counts = _merged(sums, counts)  # in a process group, each process streamed its share of the batches
    if sum(counts) == 0:
        raise PadlibError("no images: mean_feature_maps needs at least one image")
    maps = {l: sum(sums[k][l] for k in range(splits) if counts[k]) / sum(counts) for l in layers}
    split_maps = {}
    if splits > 1 and all(counts):
        split_maps = {l: np.stack([sums[k][l] / counts[k] for k in range(splits)]) for l in layers}
    return FeatureMaps(maps, split_maps, sum(counts), reduce)


def _grouped_maps(model, images, layers, reduce, splits, flips, batch_size, device, progress, groups,
                  transform) -> FeatureMaps:
    """:func:`mean_feature_maps` with ``groups``: splits of whole groups (:func:`deal_groups`), run split by split."""
    check_type("batch_size", batch_size, int)
    if batch_size < 1:
        raise PadlibError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(images, torch.Tensor):
        n_images = images.shape[0]
    elif isinstance(images, (list, tuple)):
        n_images = sum(b.shape[0] for b in images)
    else:
        n_images = len(images) if hasattr(images, "__len__") and hasattr(images, "__getitem__") else None
    labels, kind = _group_labels(images, groups, n_images)
    index = deal_groups(labels, splits)
    sums = [dict() for _ in range(splits)]
    counts = [0] * splits
    for k, batch in _split_batches(images, index, batch_size, device, progress, model_dtype(model)):
        if flips:
            batch = next(flipped_batches([batch]))
        stats = layer_map_stats(model, batch, layers, batch_size=batch.shape[0], device=device, progress=False,
                                transform=transform)
        for layer, st in stats.items():
            sums[k][layer] = sums[k].get(layer, 0) + st.sum[0].numpy()
        counts[k] += batch.shape[0]
    sums, counts = _merged(sums, counts)
    maps = {l: sum(sums[k][l] for k in range(splits)) / sum(counts) for l in layers}
    split_maps = {l: np.stack([sums[k][l] / counts[k] for k in range(splits)]) for l in layers} if splits > 1 else {}
    split_groups = [list(dict.fromkeys(labels[i] for i in ix)) for ix in index]
    return FeatureMaps(maps, split_maps, sum(counts), reduce, split_groups, kind)


def random_init_maps(name: str, images_fn, seeds=(0, 1, 2, 3), layers=None, device="cpu",
                     flips: bool = False) -> FeatureMaps:
    """Mean maps of randomly initialised copies of architecture ``name``, one split per seed.

    ``images_fn(model)`` gives the inputs (e.g. constant images). Random kernels carry no learned asymmetry
    but each draw has its own; averaging over seeds, with the seed-to-seed standard error, leaves what the
    architecture (its padding) does by itself (our control)."""

    per_seed = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = load_model(name, pretrained=False, device=device)
        per_seed.append(mean_feature_maps(model, images_fn(model), layers, device=device, progress=False,
                                          flips=flips))
    layers = per_seed[0].layers
    maps = {l: np.mean([f[l] for f in per_seed], axis=0) for l in layers}
    split = {l: np.stack([f[l] for f in per_seed]) for l in layers} if len(per_seed) > 1 else {}
    return FeatureMaps(maps, split, sum(f.n for f in per_seed), per_seed[0].reduce)


def _index_of_map(m: np.ndarray, margin: int | None = None) -> dict:
    h, w = m.shape
    if h < 3 or w < 3:
        return {}
    mg = margin or interior_margin((h, w))
    interior = m[mg:h - mg, mg:w - mg]
    if interior.size == 0:
        return {}
    scale = float(np.abs(m).mean())
    if scale == 0:
        scale = 1.0
    inner = float(interior.mean())
    side = {"top": m[0, 1:-1].mean(), "bottom": m[-1, 1:-1].mean(), "left": m[1:-1, 0].mean(),
            "right": m[1:-1, -1].mean()}
    dev = {s: abs(float(v) - inner) / scale for s, v in side.items()}
    ring = np.concatenate([m[0], m[-1], m[1:-1, 0], m[1:-1, -1]])
    return {
        **{f"dev_{s}": dev[s] for s in side},
        "left_right": dev["left"] - dev["right"],
        "top_bottom": dev["top"] - dev["bottom"],
        "border_centre": (float(ring.mean()) - inner) / scale,
    }


INDEX_COLUMNS = ("left_right", "top_bottom", "border_centre")


def spatial_bias_index(maps, margin: int | None = None):
    """Left-right, top-bottom and border-centre asymmetry of each mean map (our formulation), one row per layer.

    With I the interior mean (positions at least ``margin`` from every border; default :func:`padlib.padding.interior_margin`) and
    scale the map's mean |value|: ``dev_side`` = |mean of that border line - I| / scale; ``left_right`` =
    dev_left - dev_right (> 0: the left border deviates more), ``top_bottom`` = dev_top - dev_bottom,
    ``border_centre`` = (mean of the outer ring - I) / scale. With split maps, ``*_se`` are standard errors
    over the ``n_splits`` splits and ``lean_*`` is only set when the index differs from zero in a two-sided
    t-test at the 5% level (|index| > t(0.975, n_splits - 1) x se); without splits, by its sign.
    """
    import pandas as pd

    fm = maps if isinstance(maps, FeatureMaps) else FeatureMaps(dict(maps))
    rows = []
    for depth, (layer, m) in enumerate(fm.maps.items()):
        m = np.asarray(m, dtype=np.float64)
        row = {"layer": layer, "depth": depth, "h": m.shape[0], "w": m.shape[1], **_index_of_map(m, margin)}
        if layer in fm.split_maps and row.get("left_right") is not None:
            per = [_index_of_map(s, margin) for s in fm.split_maps[layer]]
            row["n_splits"] = len(per)
            for col in INDEX_COLUMNS:
                v = np.array([p[col] for p in per])
                row[f"{col}_se"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")
        rows.append(row)
    df = pd.DataFrame(rows)
    for col, (lean, pos, neg) in {"left_right": ("lean_lr", "left", "right"),
                                  "top_bottom": ("lean_tb", "top", "bottom")}.items():
        if col not in df:
            df[col] = np.nan
        se = df[f"{col}_se"].fillna(0.0) if f"{col}_se" in df else pd.Series(0.0, index=df.index)
        crit = df["n_splits"].map(t_critical) if "n_splits" in df else pd.Series(0.0, index=df.index)
        df[lean] = ["" if not np.isfinite(v) or abs(v) <= c * e else (pos if v > 0 else neg)
                    for v, e, c in zip(df[col], se, crit.fillna(0.0))]
    return df


def predicted_lean(audit) -> dict:
    """Which sides the padding arithmetic predicts the artefacts to lean to: the sides that read more padding
    in the uneven layers of a :func:`padlib.padding_audit` (e.g. top/left for MobileNetV2 at 224)."""

    extra = set(audit_summary(audit)["extra_sides"].split(",")) - {""}
    tb = "top" if "top" in extra and "bottom" not in extra else "bottom" if "bottom" in extra and "top" not in extra else ""
    lr = "left" if "left" in extra and "right" not in extra else "right" if "right" in extra and "left" not in extra else ""
    return {"lean_tb": tb, "lean_lr": lr}


def bias_agreement(index, audit):
    """The bias-index table with the predicted sides and whether each layer's measured lean agrees."""
    pred = predicted_lean(audit)
    df = index.copy()
    df["predicted_tb"], df["predicted_lr"] = pred["lean_tb"], pred["lean_lr"]
    df["agrees_tb"] = [(m == p) if m else None for m, p in zip(df["lean_tb"], df["predicted_tb"])]
    df["agrees_lr"] = [(m == p) if m else None for m, p in zip(df["lean_lr"], df["predicted_lr"])]
    return df


def agreement_summary(tables: dict):
    """One row per :func:`bias_agreement` table (label -> table): the mean indices over layers, how many layers
    lean to each side (beyond two standard errors when available) and the share of leaning layers that lean
    the predicted way (NaN where the audit predicts no lean, e.g. at an even-padding size)."""
    import pandas as pd

    rows = []
    for label, t in tables.items():
        t = t[t["left_right"].notna()]
        row = {"maps": label, "layers": len(t), "predicted": f"{t['predicted_tb'].iloc[0] or '-'}/"
               f"{t['predicted_lr'].iloc[0] or '-'}" if len(t) else ""}
        row["mean_top_bottom"] = float(t["top_bottom"].mean()) if len(t) else float("nan")
        row["mean_left_right"] = float(t["left_right"].mean()) if len(t) else float("nan")
        for side in ("top", "bottom"):
            row[f"lean_{side}"] = int((t["lean_tb"] == side).sum())
        for side in ("left", "right"):
            row[f"lean_{side}"] = int((t["lean_lr"] == side).sum())
        for axis in ("tb", "lr"):
            judged = t[f"agrees_{axis}"].dropna()
            row[f"agree_{axis}"] = float(judged.astype(bool).mean()) if len(judged) and t[f"predicted_{axis}"].iloc[0] \
                else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)



# Names that lived here before padlib 0.2 keep working for one release (each old path warns once).
__getattr__ = moved_names(__name__)
