"""One output adapter: whatever a model's forward returns, as one tensor, what kind it is, and how two differ.

Classifiers return class logits (N, K); detectors and segmenters return dense maps, often inside a tuple or a
dict (CRAFT: ``(scores (N, H, W, 2), features)``; torchvision's segmentation models: ``{"out": ..., "aux": ...}``).

* :func:`select_output` turns a forward's result into one tensor (rules below; ``output=`` picks explicitly).
* :func:`output_kind` says ``"logits"`` (N, K) or ``"dense"`` (N, C, H, W); :func:`to_nchw` puts a channels-last
  map (N, H, W, C) in (N, C, H, W) order, by the rule of :func:`is_channels_last` or by ``channels_last=``.
* :func:`compare_outputs` measures how ``other`` differs from ``reference``: for logits top-1 agreement and mean
  KL(reference || other), computed as :func:`padlib.interventions.compare_logits` does; for dense maps the
  relative change and (C > 1) the per-pixel argmax agreement, each also in the border band and the interior.
* :func:`describe_outputs` runs a model on photos and gives one row per photo: the output used, its shape, its
  kind and, for logits, the top-1 class, for dense maps the peak of the first channel.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ._hooks import model_device
from .errors import PadlibError, check_type
from .interventions import _chunk_metrics  # the per-image agreement and KL of every intervention, reused
from .models import imagenet_classes, preprocessing
from .padding import interior_margin

CHANNELS_LAST_MAX = 4   # a 4-D output is read channels-last when its last dim is at most this ...
SPATIAL_MIN = 8         # ... and its two middle dims are each at least this (a map with few channels)

_HOW = ("pass output= a key (e.g. 'out'), an index (e.g. 0) or a function that takes what forward returns and "
        "gives a tensor")


def _select(out, output=None) -> tuple[torch.Tensor, str]:
    """:func:`select_output`, and which part of ``out`` it took (for tables): 'tensor', '[0]', "['out']"..."""
    got = type(out).__name__
    if output is not None:
        if callable(output):
            picked, where = output(out), f"output={getattr(output, '__name__', 'function')}"
        elif isinstance(output, bool) or not isinstance(output, (int, str)):
            raise PadlibError(f"output= must be a key, an index or a function, got {type(output).__name__} "
                              f"({output!r})")
        elif isinstance(output, str):
            if not isinstance(out, dict) or output not in out:
                keys = ", ".join(map(repr, out)) if isinstance(out, dict) else f"none (forward returned a {got})"
                raise PadlibError(f"output='{output}' is not among the forward's outputs (keys: {keys}); {_HOW}")
            picked, where = out[output], f"[{output!r}]"
        else:
            if not isinstance(out, (tuple, list)) or not -len(out) <= output < len(out):
                size = f"{len(out)} items" if isinstance(out, (tuple, list)) else f"a {got}, not a tuple or list"
                raise PadlibError(f"output={output} is not an index of the forward's outputs ({size}); {_HOW}")
            picked, where = out[output], f"[{output}]"
        if not isinstance(picked, torch.Tensor):
            raise PadlibError(f"{where} gave a {type(picked).__name__}, not a tensor; {_HOW}")
        return picked, where
    if isinstance(out, torch.Tensor):
        return out, "tensor"
    if isinstance(out, dict):
        if isinstance(out.get("out"), torch.Tensor):
            return out["out"], "['out']"
        for key, value in out.items():
            if isinstance(value, torch.Tensor):
                return value, f"[{key!r}]"
    elif isinstance(out, (tuple, list)):
        for i, value in enumerate(out):
            if isinstance(value, torch.Tensor):
                return value, f"[{i}]"
    kinds = {dict: "a dict without a tensor", tuple: "a tuple without a tensor", list: "a list without a tensor"}
    what = next((v for t, v in kinds.items() if isinstance(out, t)), f"a {got}")
    raise PadlibError(f"cannot read a tensor from the forward's output ({what}, type {got}): padlib reads a tensor, "
                      f"a tuple or list (its first tensor) or a dict ('out', else its first tensor); {_HOW}")


def select_output(out, output=None) -> torch.Tensor:
    """What a forward returned -> one tensor.

    Without ``output``: a tensor as is; a tuple or list (namedtuples included): its first tensor; a dict: its
    ``"out"`` entry if that is a tensor, else its first tensor. ``output=`` picks explicitly: a key (dict), an
    index (tuple or list) or a callable applied to the whole output. Anything else raises one
    :class:`~padlib.errors.PadlibError` line naming the type it got and how to choose with ``output=``."""
    return _select(out, output)[0]


def is_channels_last(t: torch.Tensor, channels_last: bool | None = None) -> bool:
    """Whether a 4-D output is (N, H, W, C). ``channels_last=`` forces the answer; otherwise the rule: the last
    dim is at most :data:`CHANNELS_LAST_MAX` (4) and the two middle dims are each at least :data:`SPATIAL_MIN`
    (8): CRAFT's (N, 128, 128, 2) is channels-last, (N, 3, 256, 256) and a bottleneck's (N, 1024, 2, 2) are not.
    A channels-first map with at most 4 columns and at least 8 channels and rows is misread: force it then."""
    if channels_last is not None:
        check_type("channels_last", channels_last, bool)
        return channels_last
    if t.dim() != 4:
        return False
    _, a, b, c = t.shape
    return c <= CHANNELS_LAST_MAX and min(a, b) >= SPATIAL_MIN


def output_kind(t: torch.Tensor, channels_last: bool | None = None) -> str:
    """``"logits"`` for (N, K); ``"dense"`` for a map (N, C, H, W), or (N, H, W, C) read by
    :func:`is_channels_last`; one error line for any other shape."""
    check_type("output", t, torch.Tensor, "pick one tensor with padlib.select_output")
    if t.dim() == 2:
        return "logits"
    if t.dim() == 4:
        is_channels_last(t, channels_last)  # checks channels_last's type
        return "dense"
    raise PadlibError(f"an output of shape {tuple(t.shape)} is neither logits (N, K) nor a dense map "
                      f"(N, C, H, W) or (N, H, W, C); pick another with output=")


def to_nchw(t: torch.Tensor, channels_last: bool | None = None) -> torch.Tensor:
    """A dense output in (N, C, H, W) order (permuted when :func:`is_channels_last`)."""
    if output_kind(t, channels_last) != "dense":
        raise PadlibError(f"an output of shape {tuple(t.shape)} is logits, not a dense map")
    return t.permute(0, 3, 1, 2) if is_channels_last(t, channels_last) else t


def border_band(hw: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool: True on the outputs within :func:`padlib.padding.interior_margin` of an edge, that is
    max(1, ceil(min(H, W) / 8)) (at most (min(H, W) - 1) // 2); a map under 3 px is all border, no interior."""
    h, w = hw
    m = interior_margin((h, w))
    band = torch.ones(h, w, dtype=torch.bool)
    if m >= 1:
        band[m:h - m, m:w - m] = False
    return band


def _relative(diff: torch.Tensor, ref: torch.Tensor, where: torch.Tensor) -> float:
    """Mean over images of ||diff|| / ||ref|| over the positions ``where`` (all channels); NaN if none."""
    if not bool(where.any()):
        return math.nan
    d = diff[:, :, where].flatten(1).norm(dim=1)
    r = ref[:, :, where].flatten(1).norm(dim=1)
    return float((d / r).mean())


def _agreement(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    """Mean over images of the share of positions in ``where`` whose channel argmax agrees; NaN if none."""
    if not bool(where.any()):
        return math.nan
    same = (a.argmax(1) == b.argmax(1))[:, where].double()
    return float(same.mean(1).mean())


def compare_outputs(reference, other, output=None, channels_last: bool | None = None) -> dict:
    """How ``other`` differs from ``reference`` (forward outputs of the same images, read by :func:`select_output`).

    Logits (N, K): ``agreement`` (share of images whose top-1 class agrees) and ``kl`` (mean KL(reference ||
    other), nats), as every intervention computes them. Dense maps (N, C, H, W) or channels-last: ``relative_change``
    (mean over images of ||other - reference|| / ||reference||, all channels and positions; infinite for an image
    whose reference is all zero where other is not) and, when C > 1, ``argmax_agreement`` (mean over images of
    the share of positions whose channel argmax agrees); each also as ``*_border`` (the band of
    :func:`border_band`) and ``*_interior`` (the rest; NaN on maps under 3 px). Also ``kind``, ``n`` (images),
    ``shape`` (per image: (K,), or (C, H, W) for dense maps) and for dense maps ``channels_last`` (how it was
    read) and ``margin`` (the band's width)."""
    ref, oth = select_output(reference, output), select_output(other, output)
    if tuple(ref.shape) != tuple(oth.shape):
        raise PadlibError(f"the outputs differ in shape: reference {tuple(ref.shape)}, other {tuple(oth.shape)}; "
                          "compare outputs of the same images")
    kind = output_kind(ref, channels_last)
    ref, oth = ref.detach().cpu().double(), oth.detach().cpu().double()
    result = {"kind": kind, "n": int(ref.shape[0]), "shape": tuple(ref.shape[1:])}
    if kind == "logits":
        per = _chunk_metrics(oth, ref, None, int(ref.shape[1]))[0]
        return {**result, "agreement": float(per["agreement"].mean()), "kl": float(per["kl"].mean())}
    result["channels_last"] = is_channels_last(ref, channels_last)
    ref, oth = to_nchw(ref, channels_last), to_nchw(oth, channels_last)
    result["shape"] = tuple(ref.shape[1:])
    band = border_band(tuple(ref.shape[-2:]))
    regions = {"": torch.ones_like(band), "_border": band, "_interior": ~band}
    result["margin"] = interior_margin(tuple(ref.shape[-2:]))
    diff = oth - ref
    for suffix, where in regions.items():
        result["relative_change" + suffix] = _relative(diff, ref, where)
    if ref.shape[1] > 1:
        for suffix, where in regions.items():
            result["argmax_agreement" + suffix] = _agreement(ref, oth, where)
    return result


@torch.no_grad()
def describe_outputs(model: nn.Module, images, output=None, channels_last: bool | None = None):
    """One row per image of what ``model`` outputs, for any model (a classifier, a detector, a segmenter):
    ``output`` (the part of the forward's result used, see :func:`select_output`), ``kind``, ``shape`` (per
    image, in (C, H, W) order for dense maps), for logits the top-1 ``class_name`` and its ``probability``
    (ImageNet names for 1000 classes, else the index), for dense maps ``peak`` and ``mean`` of the first channel
    (CRAFT: the region score). ``images``: PIL images or arrays (preprocessed as the model wants) or a
    normalised batch. :func:`padlib.predict` is the top-k table of classifiers."""
    import pandas as pd

    check_type("model", model, nn.Module)
    if isinstance(images, torch.Tensor):
        batch = images if images.dim() == 4 else images.unsqueeze(0)
    else:
        seq = images if isinstance(images, (list, tuple)) else [images]
        prep = preprocessing(model)
        batch = torch.stack([prep(im) for im in seq])
    t, where = _select(model(batch.to(model_device(model))), output)
    kind = output_kind(t, channels_last)
    t = t.detach().float().cpu()
    rows = []
    if kind == "logits":
        probs = t.softmax(-1)
        names = imagenet_classes() if t.shape[-1] == 1000 else [str(i) for i in range(t.shape[-1])]
        p, c = probs.max(-1)
        for i in range(t.shape[0]):
            rows.append({"image": i, "output": where, "kind": kind, "shape": tuple(t.shape[1:]),
                         "class_name": names[int(c[i])], "probability": float(p[i]),
                         "peak": math.nan, "mean": math.nan})
    else:
        t = to_nchw(t, channels_last)
        for i in range(t.shape[0]):
            rows.append({"image": i, "output": where, "kind": kind, "shape": tuple(t.shape[1:]),
                         "class_name": None, "probability": math.nan,
                         "peak": float(t[i, 0].max()), "mean": float(t[i, 0].mean())})
    return pd.DataFrame(rows)
