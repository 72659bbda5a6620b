"""Blind-spot maps of a pretrained classifier (Mind the Pad): a stimulus pasted at a grid of positions, recognised
or not, per padding variant. Kept as a method for users' own classifiers (exported in ``padlib``)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ._hooks import keeps_model
from .audit import nearest_even_size
from .data import load_photo
from .errors import PadlibError, check_type
from .layers.base import PADDING_SCHEMES, convert_padding
from .models import imagenet_classes, preprocessing
from .preprocess import to_pil

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


    img = load_photo(image) if isinstance(image, str) else to_pil(image)
    if size is not None:
        img = F.center_crop(F.resize(img, size, antialias=True), size)
    return F.to_tensor(img)


def stimulus_crop(photo, box: tuple[int, int, int, int], size: int = 64) -> torch.Tensor:
    """A stimulus: the ``box`` (left, top, right, bottom) of an offline photo (or PIL image), resized to ``size``."""
    from torchvision.transforms import functional as F


    img = load_photo(photo) if isinstance(photo, str) else to_pil(photo)
    return F.to_tensor(img.crop(box).resize((size, size)))


def make_background(spec, size: int) -> torch.Tensor:
    """A (3, S, S) canvas in [0, 1]: a grey level (float), an offline photo name, a PIL image or a tensor (copied:
    pasting into the canvas never writes the caller's tensor)."""
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        if not 0 <= spec <= 1:
            raise PadlibError(f"a grey background level must be in [0, 1], got {spec}")
        return torch.full((3, size, size), float(spec))
    x = _to01(spec, size)
    if isinstance(spec, torch.Tensor):
        x = x.clone()  # _to01 returns a float CPU tensor as is: paste_centre would write into it
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

    if isinstance(target, str):
        names = imagenet_classes()
        if target not in names:
            raise PadlibError(f"unknown ImageNet class '{target}'")
        return names.index(target)
    check_type("target", target, int)
    return target


@torch.no_grad()
def _responses(model, canvases01: torch.Tensor, target: int, response: str, device) -> torch.Tensor:

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


@keeps_model
@torch.no_grad()
def centre_prediction(model, stimulus, background, size: int | None = None, device="cpu") -> tuple[int, float]:
    """(class index, probability) of the model's top class for the stimulus pasted at the canvas centre."""

    size = size or preprocessing(model).input_size
    canvas = paste_centre(stimulus, background, size)
    p = model(preprocessing(model).normalize(canvas[None]).to(device)).float().softmax(-1).cpu()[0]
    return int(p.argmax()), float(p.max())


@keeps_model
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


@keeps_model
def padding_variants(model: nn.Module, size: int = 224, even_size: int | None = None,
                     paddings=MITIGATION_PADDINGS) -> dict:
    """The mitigations to compare: {label: (model, input size)} for zero padding at ``size``, zero padding at the
    nearest even-padding size, and each of ``paddings`` at ``size`` (padlib.layers.base.convert_padding).

    Mind the Pad's padding mitigations are symmetric (mirror including the edge, registered by
    padlib.layers) and circular; 'reflect' (mirror without the edge) under-weights the borders
    (the paper's explainer) and is only a contrast."""

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


    names = imagenet_classes()
    rows = []
    for mname, model in models.items():
        rows += _recognition_rows(model, mname, stimuli, backgrounds, size, expected, device, names)
    return pd.DataFrame(rows)


@keeps_model
@torch.no_grad()
def _recognition_rows(model, mname, stimuli, backgrounds, size, expected, device, names) -> list[dict]:
    """:func:`stimulus_recognition`'s rows for one model (left as it was given)."""
    prep = preprocessing(model)
    rows = []
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
    return rows


def select_stimuli(recognition, min_prob: float = 0.05, k: int | None = None) -> list[str]:
    """The stimuli every model recognises: on every background the target is the top-1 class with probability
    >= ``min_prob`` and (where expected names were given) is an expected name; ranked by the lowest target
    probability over models and backgrounds, the ``k`` most confident kept. A stimulus the model does not
    recognise at the centre has no meaningful blind-spot map (a drop from a wrong guess means nothing)."""

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

