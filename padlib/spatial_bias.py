"""Spatial bias of feature maps and blind spots of classifiers (Mind the Pad: Alsallakh et al., ICLR 2021).

Three measurements, all "our formulation" (the paper's code is not public):

- :func:`mean_feature_maps`: per layer, the mean over images of the channel-averaged activation magnitude,
  streamed with :func:`padlib.activations.layer_map_stats`. On constant inputs every spatial variation of
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

from .activations import iter_batches, layer_map_stats
from .errors import PadlibError, check_type


# ---------------------------------------------------------------------------------------------------------
# Which layers: one map per depth

@torch.no_grad()
def _output_shapes(model: nn.Module, size: int) -> dict[str, tuple]:
    from .audit import input_channels
    from .models import model_device

    shapes = {}
    handles = [m.register_forward_hook(lambda mod, i, o, n=n: shapes.__setitem__(n, tuple(o.shape))
                                       if isinstance(o, torch.Tensor) else None)
               for n, m in model.named_modules() if n]
    was_training = model.training
    model.eval()
    try:
        try:  # shapes only: meta copies of the parameters, no arithmetic
            from torch.func import functional_call

            state = {k: torch.empty_like(v, device="meta") for k, v in
                     list(model.named_parameters()) + list(model.named_buffers())}
            functional_call(model, state, (torch.empty(1, input_channels(model), size, size, device="meta"),),
                            strict=False)
        except Exception:  # noqa: BLE001 - models keeping plain tensors: a real forward
            shapes.clear()
            model(torch.zeros(1, input_channels(model), size, size, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shapes


def depth_layers(model: nn.Module, input_size: int | None = None) -> list[str]:
    """One layer per depth, in order: the model's direct children, with plain ``nn.Sequential``/``ModuleList``
    children expanded one level (torchvision ``features.i``, timm ``blocks.i``, ``layer1.0`` ...), keeping
    those whose output is a spatial map (N, C, H, W) with H, W > 1."""
    check_type("model", model, nn.Module)
    size = input_size or getattr(getattr(model, "padlib_preprocessing", None), "input_size", 224)
    shapes = _output_shapes(model, size)
    names = []
    for name, child in model.named_children():
        if type(child) in (nn.Sequential, nn.ModuleList):
            names += [f"{name}.{sub}" for sub, _ in child.named_children()]
        else:
            names.append(name)
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
    from .models import preprocessing

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


def mean_feature_maps(model: nn.Module, images, layers=None, reduce: str = "abs", splits: int = 1,
                      flips: bool = False, batch_size: int = 16, device="cpu",
                      progress: bool | str = True) -> FeatureMaps:
    """Streaming mean over ``images`` of each layer's channel-averaged map (``reduce='abs'``: mean |activation|).

    ``images`` is a ProbeImages, a normalised (N, 3, H, W) tensor or an iterable of batches. With ``splits``
    > 1, batches go round-robin to ``splits`` disjoint subsets whose maps give standard errors to the index.
    ``flips=True`` adds the three mirror images of every image (:func:`flipped_batches`).
    """
    check_type("model", model, nn.Module)
    if reduce not in _REDUCERS:
        raise PadlibError(f"reduce must be one of {list(_REDUCERS)}, got {reduce!r}")
    check_type("splits", splits, int)
    if splits < 1:
        raise PadlibError(f"splits must be >= 1, got {splits}")
    layers = list(layers) if layers is not None else depth_layers(model)
    reducer = _REDUCERS[reduce]

    def transform(name, module, inputs, output):
        y = output if isinstance(output, torch.Tensor) else output[0]
        if y.dim() != 4:
            raise PadlibError(f"layer '{name}' outputs shape {tuple(y.shape)}, not a (N, C, H, W) map")
        return reducer(y)

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
    batches = iter_batches(images, batch_size, device, progress)
    for b, batch in enumerate(flipped_batches(batches) if flips else batches):
        k = b % splits
        stats = layer_map_stats(model, batch, layers, batch_size=batch.shape[0], device=device, progress=False,
                                transform=transform)
        for layer, st in stats.items():
            s = st.sum[0].numpy()
            sums[k][layer] = sums[k].get(layer, 0) + s
        counts[k] += batch.shape[0]
    if sum(counts) == 0:
        raise PadlibError("no images: mean_feature_maps needs at least one image")
    maps = {l: sum(sums[k][l] for k in range(splits) if counts[k]) / sum(counts) for l in layers}
    split_maps = {}
    if splits > 1 and all(counts):
        split_maps = {l: np.stack([sums[k][l] / counts[k] for k in range(splits)]) for l in layers}
    return FeatureMaps(maps, split_maps, sum(counts), reduce)


def random_init_maps(name: str, images_fn, seeds=(0, 1, 2, 3), layers=None, device="cpu",
                     flips: bool = False) -> FeatureMaps:
    """Mean maps of randomly initialised copies of architecture ``name``, one split per seed.

    ``images_fn(model)`` gives the inputs (e.g. constant images). Random kernels carry no learned asymmetry
    but each draw has its own; averaging over seeds, with the seed-to-seed standard error, leaves what the
    architecture (its padding) does by itself (our control)."""
    from .models import load_model

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
    mg = margin or max(1, min(h, w) // 8)
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


def _t_critical(n_splits) -> float:
    """Two-sided 5% critical value of Student's t with n_splits - 1 degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, n_splits - 1)) if n_splits and n_splits > 1 else 0.0


def spatial_bias_index(maps, margin: int | None = None):
    """Left-right, top-bottom and border-centre asymmetry of each mean map (our formulation), one row per layer.

    With I the interior mean (positions at least ``margin`` from every border; default min(H, W) // 8) and
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
        crit = df["n_splits"].map(_t_critical) if "n_splits" in df else pd.Series(0.0, index=df.index)
        df[lean] = ["" if not np.isfinite(v) or abs(v) <= c * e else (pos if v > 0 else neg)
                    for v, e, c in zip(df[col], se, crit.fillna(0.0))]
    return df


def predicted_lean(audit) -> dict:
    """Which sides the padding arithmetic predicts the artefacts to lean to: the sides that read more padding
    in the uneven layers of a :func:`padlib.padding_audit` (e.g. top/left for MobileNetV2 at 224)."""
    from .audit import audit_summary

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


# ---------------------------------------------------------------------------------------------------------
# Blind-spot maps

def _to01(image, size=None) -> torch.Tensor:
    """PIL / array / (3, H, W) tensor in [0, 1] -> float tensor; PIL-like inputs resized+centre-cropped to ``size``."""
    if isinstance(image, torch.Tensor):
        x = image.detach().float().cpu()
        if x.dim() != 3 or x.shape[0] != 3:
            raise PadlibError(f"an image tensor must be (3, H, W) in [0, 1], got shape {tuple(x.shape)}")
        return x
    from torchvision.transforms import functional as F

    from .data import load_photo, to_pil

    img = load_photo(image) if isinstance(image, str) else to_pil(image)
    if size is not None:
        img = F.center_crop(F.resize(img, size, antialias=True), size)
    return F.to_tensor(img)


def stimulus_crop(photo, box: tuple[int, int, int, int], size: int = 64) -> torch.Tensor:
    """A stimulus: the ``box`` (left, top, right, bottom) of an offline photo (or PIL image), resized to ``size``."""
    from torchvision.transforms import functional as F

    from .data import load_photo, to_pil

    img = load_photo(photo) if isinstance(photo, str) else to_pil(photo)
    return F.to_tensor(img.crop(box).resize((size, size)))


def make_background(spec, size: int) -> torch.Tensor:
    """A (3, S, S) canvas in [0, 1]: a grey level (float), an offline photo name, a PIL image or a tensor."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        if not 0 <= spec <= 1:
            raise PadlibError(f"a grey background level must be in [0, 1], got {spec}")
        return torch.full((3, size, size), float(spec))
    x = _to01(spec, size)
    if tuple(x.shape[-2:]) != (size, size):
        x = torch.nn.functional.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    return x


def grid_count(canvas: int, patch: int, stride: int) -> int:
    """How many stimulus offsets per axis a grid of step about ``stride`` needs to go from 0 to canvas - patch."""
    if patch > canvas:
        raise PadlibError(f"stimulus ({patch} px) is larger than the canvas ({canvas} px)")
    return math.ceil((canvas - patch) / stride) + 1 if canvas > patch else 1


def grid_positions(canvas: int, patch: int, n: int) -> list[int]:
    """``n`` stimulus offsets evenly spaced from 0 to canvas - patch (rounded), so the stimulus touches both borders.

    Defined relative to the canvas, so maps at 224 and 225 with the same ``n`` have the same shape and the same
    relative positions (a fixed pixel step would add a near-duplicate last row at 225)."""
    check_type("n_positions", n, int)
    if patch > canvas:
        raise PadlibError(f"stimulus ({patch} px) is larger than the canvas ({canvas} px)")
    if n < 1:
        raise PadlibError(f"n_positions must be >= 1, got {n}")
    pos = np.round(np.linspace(0, canvas - patch, n)).astype(int) if n > 1 else np.array([(canvas - patch) // 2])
    if len(set(pos.tolist())) < n:
        raise PadlibError(f"{n} positions do not fit in {canvas - patch + 1} possible offsets")
    return pos.tolist()


def _class_index(target) -> int:
    from .models import imagenet_classes

    if isinstance(target, str):
        names = imagenet_classes()
        if target not in names:
            raise PadlibError(f"unknown ImageNet class '{target}'")
        return names.index(target)
    check_type("target", target, int)
    return target


@torch.no_grad()
def _responses(model, canvases01: torch.Tensor, target: int, response: str, device) -> torch.Tensor:
    from .models import preprocessing

    logits = model(preprocessing(model).normalize(canvases01).to(device)).float().cpu()
    if response == "logit":
        return logits[:, target]
    if response == "logprob":
        return logits.log_softmax(-1)[:, target]
    return logits.softmax(-1)[:, target]


def paste_centre(stimulus, background, size: int) -> torch.Tensor:
    """The (3, size, size) canvas in [0, 1] with the stimulus pasted at its centre (for display and targets)."""
    stim, canvas = _to01(stimulus), make_background(background, size)
    h, w = stim.shape[-2:]
    if h > size or w > size:
        raise PadlibError(f"stimulus ({h}x{w} px) is larger than the canvas ({size} px)")
    y, x = (size - h) // 2, (size - w) // 2
    canvas[:, y:y + h, x:x + w] = stim
    return canvas


@torch.no_grad()
def centre_prediction(model, stimulus, background, size: int | None = None, device="cpu") -> tuple[int, float]:
    """(class index, probability) of the model's top class for the stimulus pasted at the canvas centre."""
    from .models import preprocessing

    size = size or preprocessing(model).input_size
    canvas = paste_centre(stimulus, background, size)
    p = model(preprocessing(model).normalize(canvas[None]).to(device)).float().softmax(-1).cpu()[0]
    return int(p.argmax()), float(p.max())


@torch.no_grad()
def blind_spot_map(model: nn.Module, stimulus, background, target=None, stride: int = 16, response: str = "prob",
                   size: int | None = None, batch_size: int = 32, device="cpu", progress: bool | str = True,
                   n_positions: int | None = None):
    """The model's response to ``stimulus`` pasted at each grid position of ``background``: a DataFrame map.

    Rows are the stimulus' top edge (``top``), columns its left edge (``left``): ``n_positions`` offsets per
    axis evenly spaced from 0 to canvas - stimulus (:func:`grid_positions`), so the stimulus touches every
    border; by default ``n_positions`` = :func:`grid_count` (a step of about ``stride``). Pass the same
    ``n_positions`` to compare maps at different canvas sizes. ``target`` is a class index or
    name (default: the class the model predicts with the stimulus at the centre); ``response`` is 'prob'
    (softmax probability of the target), 'logprob' (its natural log) or 'logit'. ``size`` is the canvas (default: the model's input size).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .models import imagenet_classes, preprocessing

    check_type("model", model, nn.Module)
    check_type("stride", stride, int)
    if stride < 1:
        raise PadlibError(f"stride must be >= 1, got {stride}")
    if response not in ("prob", "logprob", "logit"):
        raise PadlibError(f"response must be 'prob', 'logprob' or 'logit', got {response!r}")
    size = size or preprocessing(model).input_size
    stim = _to01(stimulus)
    canvas = make_background(background, size)
    if target is None:
        target = centre_prediction(model, stim, canvas, size, device)[0]
    target = _class_index(target)
    h, w = stim.shape[-2:]
    if n_positions is None:
        ys, xs = (grid_positions(size, d, grid_count(size, d, stride)) for d in (h, w))
    else:
        ys, xs = grid_positions(size, h, n_positions), grid_positions(size, w, n_positions)
    grid = [(y, x) for y in ys for x in xs]
    out = torch.empty(len(grid))
    desc = progress if isinstance(progress, str) else "blind-spot map"
    for s in tqdm(range(0, len(grid), batch_size), desc=desc, disable=not progress, leave=False):
        chunk = grid[s:s + batch_size]
        batch = canvas.expand(len(chunk), -1, -1, -1).clone()
        for i, (y, x) in enumerate(chunk):
            batch[i, :, y:y + h, x:x + w] = stim
        out[s:s + len(chunk)] = _responses(model, batch, target, response, device)
    df = pd.DataFrame(out.view(len(ys), len(xs)).numpy().astype(np.float64),
                      index=pd.Index(ys, name="top"), columns=pd.Index(xs, name="left"))
    names = imagenet_classes()
    df.attrs.update(target=target, target_name=names[target] if target < len(names) else str(target),
                    size=size, stimulus_hw=(h, w), response=response, stride=stride, n_positions=(len(ys), len(xs)))
    return df


def _region(y: float, x: float, size_y: float, size_x: float) -> str:
    row = "top" if y < size_y / 3 else "bottom" if y > 2 * size_y / 3 else "middle"
    col = "left" if x < size_x / 3 else "right" if x > 2 * size_x / 3 else "centre"
    return "centre" if (row, col) == ("middle", "centre") else f"{row}-{col}"


def blind_spot_summary(bmap, window: int = 3) -> dict:
    """Numbers for one blind-spot map, in the map's response units (our formulation): the median, the
    spread (standard deviation over positions), the worst-region drop = median - (lowest mean over a
    ``window`` x ``window`` block of positions), where that block is, and each border row/column of
    positions minus the median (``edge_top`` < 0: weaker response along the top edge), the weakest edge, and
    ``edge_tb`` = edge_top - edge_bottom, ``edge_lr`` = edge_left - edge_right (< 0: top / left weaker). With
    ``response='logprob'`` differences are log-ratios: a drop of 0.69 means the probability halves."""
    v = np.asarray(bmap, dtype=np.float64)
    med = float(np.median(v))
    k = max(1, min(window, *v.shape))
    blocks = np.lib.stride_tricks.sliding_window_view(v, (k, k)).mean(axis=(-1, -2))
    iy, ix = np.unravel_index(int(np.argmin(blocks)), blocks.shape)
    cy, cx = iy + (k - 1) / 2, ix + (k - 1) / 2
    edges = {"edge_top": float(v[0].mean() - med), "edge_bottom": float(v[-1].mean() - med),
             "edge_left": float(v[:, 0].mean() - med), "edge_right": float(v[:, -1].mean() - med)}
    return {
        "median": med,
        "spread": float(v.std()),
        "worst_drop": float(med - blocks.min()),
        "worst_region": _region(cy, cx, v.shape[0] - 1, v.shape[1] - 1),
        **edges,
        "weakest_edge": min(edges, key=edges.get).removeprefix("edge_"),
        "edge_tb": edges["edge_top"] - edges["edge_bottom"],
        "edge_lr": edges["edge_left"] - edges["edge_right"],
    }


MITIGATION_PADDINGS = ("symmetric", "circular")


def padding_variants(model: nn.Module, size: int = 224, even_size: int | None = None,
                     paddings=MITIGATION_PADDINGS) -> dict:
    """The mitigations to compare: {label: (model, input size)} for zero padding at ``size``, zero padding at the
    nearest even-padding size, and each of ``paddings`` at ``size`` (padlib.padding.convert_padding).

    Mind the Pad's padding mitigations are symmetric (mirror including the edge, registered by
    padlib.padding_layers) and circular; 'reflect' (mirror without the edge) under-weights the borders
    (the paper's explainer) and is only a contrast."""
    from . import padding_layers  # noqa: F401 - registers 'symmetric'
    from .audit import nearest_even_size
    from .padding import PADDING_SCHEMES, convert_padding

    for p in paddings:
        if p not in PADDING_SCHEMES or p == "zero":
            raise PadlibError(f"unknown mitigation padding '{p}'; use one of "
                              f"{', '.join(k for k in PADDING_SCHEMES if k != 'zero')}")
    even_size = even_size or nearest_even_size(model, size)
    variants = {f"zero @{size}": (model, size)}
    if even_size and even_size != size:
        variants[f"zero @{even_size}"] = (model, even_size)
    for p in paddings:
        variants[f"{p} @{size}"] = (convert_padding(model, p), size)
    return variants


@torch.no_grad()
def stimulus_recognition(models: dict, stimuli: dict, backgrounds: dict, size: int = 224, expected: dict | None = None,
                         device="cpu"):
    """Does each model recognise each stimulus? One row per model x stimulus x background.

    The target is the model's top-1 class with the stimulus pasted at the centre of the *first* background
    (the class the blind-spot maps score); per background the row gives that target's probability, whether
    it is still the top-1 class, and (with ``expected``: stimulus -> list of acceptable ImageNet class names)
    whether the target is one of the expected names."""
    import pandas as pd

    from .models import imagenet_classes, preprocessing

    names = imagenet_classes()
    rows = []
    for mname, model in models.items():
        prep = preprocessing(model)
        for sname, stim in stimuli.items():
            target = None
            for bname, bg in backgrounds.items():
                canvas = paste_centre(stim, bg, size)
                p = model(prep.normalize(canvas[None]).to(device)).float().softmax(-1).cpu()[0]
                if target is None:
                    target = int(p.argmax())
                ok = expected is None or sname not in expected or names[target] in expected[sname]
                rows.append({"model": mname, "stimulus": sname, "background": bname, "target": names[target],
                             "target_prob": float(p[target]), "target_is_top1": int(p.argmax()) == target,
                             "top1": names[int(p.argmax())], "as_expected": bool(ok)})
    return pd.DataFrame(rows)


def select_stimuli(recognition, min_prob: float = 0.05, k: int | None = None) -> list[str]:
    """The stimuli every model recognises: on every background the target is the top-1 class with probability
    >= ``min_prob`` and (where expected names were given) is an expected name; ranked by the lowest target
    probability over models and backgrounds, the ``k`` most confident kept. A stimulus the model does not
    recognise at the centre has no meaningful blind-spot map (a drop from a wrong guess means nothing)."""
    import pandas as pd

    r = recognition.copy()
    r["recognised"] = r["target_is_top1"] & (r["target_prob"] >= min_prob) & r["as_expected"]
    g = r.groupby("stimulus", sort=False).agg(all_recognised=("recognised", "all"), min_prob=("target_prob", "min"))
    keep = g[g["all_recognised"]].sort_values("min_prob", ascending=False, kind="stable").index.tolist()
    if not keep:
        raise PadlibError(f"no stimulus is recognised by every model on every background (top-1 with probability "
                          f">= {min_prob}); add candidates or lower min_prob")
    return keep[:k] if k else keep


def blind_spot_study(models: dict, stimuli: dict, backgrounds: dict, size: int = 224, stride: int = 16,
                     response: str = "logprob", even_sizes: dict | None = None, batch_size: int = 32, device="cpu",
                     progress: bool = True, paddings=MITIGATION_PADDINGS, window: int = 3):
    """Blind-spot maps for every model x mitigation x stimulus x background; returns (summary DataFrame, maps).

    The target of each (model, stimulus) is fixed once: the class the zero-padded model predicts at ``size``
    with the stimulus centred on the first background; every variant and background is scored on it. Every
    map has the same number of positions per axis (:func:`grid_count` at ``size``), evenly spaced over its own
    canvas, so maps at ``size`` and at the even size are compared cell for cell. ``window`` is the block size
    of the worst region (:func:`blind_spot_summary`). ``maps`` is keyed by (model, variant, stimulus, background).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    rows, maps = [], {}
    first_bg = next(iter(backgrounds.values()))
    n_var = 2 + len(paddings)
    bar = tqdm(total=len(models) * n_var * len(stimuli) * len(backgrounds), desc="blind-spot maps", unit="map",
               disable=not progress, leave=False)
    for mname, model in models.items():
        variants = padding_variants(model, size, (even_sizes or {}).get(mname), paddings)
        targets = {s: centre_prediction(model, stim, first_bg, size, device)[0] for s, stim in stimuli.items()}
        for vname, (vmodel, vsize) in variants.items():
            for sname, stim in stimuli.items():
                n = grid_count(size, max(_to01(stim).shape[-2:]), stride)
                for bname, bg in backgrounds.items():
                    bmap = blind_spot_map(vmodel, stim, bg, targets[sname], stride, response, vsize, batch_size,
                                          device, progress=False, n_positions=n)
                    bar.update()
                    maps[(mname, vname, sname, bname)] = bmap
                    rows.append({"model": mname, "variant": vname, "padding": vname.split(" @")[0], "size": vsize,
                                 "stimulus": sname, "background": bname, "target": bmap.attrs["target_name"],
                                 "grid": "x".join(map(str, bmap.shape)), **blind_spot_summary(bmap, window)})
    bar.close()
    return pd.DataFrame(rows), maps


def mitigation_table(summary):
    """Per model and variant: mean and spread over stimuli x backgrounds of the blind-spot numbers."""
    g = summary.groupby(["model", "variant"], sort=False)
    out = g.agg(maps=("median", "size"), median_response=("median", "mean"),
                spread_mean=("spread", "mean"), spread_sd=("spread", "std"),
                worst_drop_mean=("worst_drop", "mean"), worst_drop_sd=("worst_drop", "std"),
                worst_drop_max=("worst_drop", "max"),
                edge_tb_mean=("edge_tb", "mean"), edge_tb_sd=("edge_tb", "std"),
                edge_lr_mean=("edge_lr", "mean"), edge_lr_sd=("edge_lr", "std"))
    return out.reset_index()


def mitigation_effects(summary, baseline: str | None = None,
                       metrics=("worst_drop", "spread", "median")):
    """Paired comparison of each mitigation with the baseline variant on the same stimulus x background:
    per model and variant, the mean and standard deviation of (variant - baseline) and in how many of the
    pairs the variant is lower. ``baseline`` defaults to each model's first variant (zero padding at 224)."""
    import pandas as pd

    rows = []
    for model, d in summary.groupby("model", sort=False):
        variants = list(dict.fromkeys(d["variant"]))
        base_name = baseline or variants[0]
        base = d[d["variant"] == base_name].set_index(["stimulus", "background"])
        for v in variants:
            if v == base_name:
                continue
            other = d[d["variant"] == v].set_index(["stimulus", "background"])
            row = {"model": model, "variant": v, "baseline": base_name, "pairs": len(other)}
            for m in metrics:
                diff = (other[m] - base[m]).dropna()
                row[f"{m}_diff_mean"] = float(diff.mean())
                row[f"{m}_diff_sd"] = float(diff.std()) if len(diff) > 1 else float("nan")
                row[f"{m}_lower_in"] = int((diff < 0).sum())
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Verdicts and findings: the rules the chapter's conclusions are printed from

def _parse_maps_label(label: str) -> tuple[str, int, str]:
    import re

    m = re.match(r"^(\S+) @(\d+) (.+)$", str(label))
    if not m:
        raise PadlibError(f"maps label '{label}' is not of the form 'MODEL @SIZE KIND'")
    return m.group(1), int(m.group(2)), m.group(3)


LEAN_FLOOR = 0.25  # ours: a net lean over fewer than a quarter of the depths is no lean
_OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def lean_score(index, axis: str, toward: str) -> float:
    """Net lean of a :func:`spatial_bias_index` table on ``axis`` ("tb" or "lr") toward side ``toward``: (depths
    leaning toward it - depths leaning the other way) / depths, counting only leans beyond their t-test bound.
    +1: every depth leans toward that side, -1: every depth leans away, 0: none leans or they cancel."""
    col = f"lean_{axis}"
    t = index[index["left_right"].notna()] if "left_right" in index else index
    if not len(t) or toward not in _OPPOSITE:
        return float("nan")
    return float(((t[col] == toward).sum() - (t[col] == _OPPOSITE[toward]).sum()) / len(t))


def compensation_verdicts(indices: dict, predicted: dict, floor: float = LEAN_FLOOR):
    """Does training follow the uneven padding, compensate for it, or neither? (Mind the Pad's reading, our rule.)

    ``indices``: {(model, init, size kind): spatial_bias_index table} with init "pretrained"/"random init" and
    size kind "trained size"/"even size" (constant inputs: content-free maps); ``predicted``: {model: {"tb": side,
    "lr": side}}, the side that reads more padding at the training size (:func:`predicted_lean`). Per model and
    axis, with L the net lean toward that side (:func:`lean_score`) and ``floor`` the smallest net lean that counts:

    - **compensates**: the pretrained model at the even size leans *away* from that side (L <= -floor) while the
      random-init copies at the even size do not lean (|L| < floor): the weights carry a correction for the
      padding they were trained with, which shows once the padding is even;
    - **follows**: otherwise, the pretrained model at its training size leans toward that side (L >= floor), as
      the arithmetic predicts;
    - **none**: neither.
    The random-init copies at the training size show what the arithmetic alone does (``init_trained``)."""
    import pandas as pd

    rows = []
    for model, pred in predicted.items():
        for axis, name in (("tb", "top/bottom"), ("lr", "left/right")):
            side = pred.get(axis, "")
            if not side:
                continue
            L = {k: lean_score(indices[(model, *k)], axis, side) if (model, *k) in indices else float("nan")
                 for k in (("pretrained", "trained size"), ("pretrained", "even size"),
                           ("random init", "trained size"), ("random init", "even size"))}
            pre_t, pre_e = L[("pretrained", "trained size")], L[("pretrained", "even size")]
            ini_t, ini_e = L[("random init", "trained size")], L[("random init", "even size")]
            if pre_e <= -floor and abs(ini_e) < floor:
                verdict = "compensates"
            elif pre_t >= floor:
                verdict = "follows"
            else:
                verdict = "none"
            rows.append({"model": model, "axis": name, "reads_more": side, "pretrained_trained_size": pre_t,
                         "pretrained_even_size": pre_e, "init_trained_size": ini_t, "init_even_size": ini_e,
                         "verdict": verdict})
    out = pd.DataFrame(rows)
    out.attrs["floor"] = floor
    return out


def compensation_indices(bias_tables: dict, trained_sizes: dict, even_sizes: dict, kind: str = "constant") -> dict:
    """The ``indices`` of :func:`compensation_verdicts` from the chapter's ``bias_tables`` (labels 'MODEL @SIZE KIND',
    KIND "constant" for the pretrained model and "constant, random init" for its random-init copies)."""
    out = {}
    for label, table in bias_tables.items():
        model, size, k = _parse_maps_label(label)
        init = "pretrained" if k == kind else "random init" if k == f"{kind}, random init" else None
        which = ("trained size" if size == trained_sizes.get(model) else
                 "even size" if size == even_sizes.get(model) else None)
        if init and which:
            out[(model, init, which)] = table
    return out


def compensation_lines(verdicts, energy=None) -> list[str]:
    """Plain sentences from :func:`compensation_verdicts` and, when given, :func:`padlib.kernels.row_energy_summary`."""
    lines = []
    for r in verdicts.itertuples():
        lines.append(f"{r.model}, {r.axis} (reads more padding: {r.reads_more}): {r.verdict}. Net lean toward "
                     f"{r.reads_more}: pretrained {r.pretrained_trained_size:+.2f} at its size, "
                     f"{r.pretrained_even_size:+.2f} at the even size; random init {r.init_trained_size:+.2f} and "
                     f"{r.init_even_size:+.2f} (floor {verdicts.attrs.get('floor', LEAN_FLOOR):.2f}).")
    return lines + (energy_lines(energy) if energy is not None else [])


def energy_lines(energy) -> list[str]:
    """Plain sentences from :func:`padlib.kernels.row_energy_summary`: where the stride-2 kernels put their
    energy relative to the padding read more, against the random-init copies' range."""
    lines = []
    for r in energy.itertuples():
        near = {"top/left": ("top", "left"), "bottom/right": ("bottom", "right")}.get(r.reads, ("", ""))
        for col, axis, s in (("energy_tb", "top/bottom", near[0]), ("energy_lr", "left/right", near[1])):
            v = getattr(r, col)
            toward = (v > 0) == (s in ("top", "left"))
            differs = getattr(r, f"{col}_differs")
            lines.append(f"{r.model} stride-2 kernels, {axis}: {'more' if toward else 'less'} energy on the "
                         f"{s} {'row' if col == 'energy_tb' else 'column'}, the one facing the padding read "
                         f"more ({v:+.3f}; random init "
                         f"{getattr(r, f'{col}_init_min'):+.3f} to {getattr(r, f'{col}_init_max'):+.3f})"
                         + ("" if differs else ": not beyond random init"))
    return lines


# ---------------------------------------------------------------------------------------------------------
# The planted control: a translation-invariant classifier

class _ToyTranslationModel(nn.Module):
    def __init__(self, padding_mode: str, channels: int, classes: int, strides):
        super().__init__()
        layers, c_in = [], 3
        for i, s in enumerate(strides):
            layers += [nn.Conv2d(c_in, channels, 3, s, 1, padding_mode=padding_mode), nn.ReLU()]
            c_in = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        return self.head(self.features(x).mean((-2, -1)))


def toy_translation_model(padding_mode: str = "circular", channels: int = 8, classes: int = 10,
                          strides=(1, 2, 1, 2), input_size: int = 32, seed: int = 0) -> nn.Module:
    """A small conv net + global average pooling. With circular padding it is exactly invariant to circular
    shifts by multiples of its total stride, so its blind-spot map on a constant background is flat (up to
    float rounding) when the grid stride is such a multiple; with zero padding it is not."""
    from .models import Preprocessing

    torch.manual_seed(seed)
    model = _ToyTranslationModel(padding_mode, channels, classes, strides).eval()
    model.padlib_preprocessing = Preprocessing(input_size, input_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    model.padlib_name = f"toy_{padding_mode}"
    return model
