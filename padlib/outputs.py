"""One output adapter: whatever a model's forward returns, as one tensor, what kind it is, and how two differ.

Classifiers return class logits (N, K); detectors and segmenters return dense maps, often inside a tuple or a
dict (CRAFT: ``(scores (N, H, W, 2), features)``; torchvision's segmentation models: ``{"out": ..., "aux": ...}``).

* :func:`select_output` turns a forward's result into one tensor (rules below; ``output=`` picks explicitly).
* :func:`output_kind` says ``"logits"`` (N, K) or ``"dense"`` (N, C, H, W); :func:`to_nchw` puts a channels-last
  map (N, H, W, C) in (N, C, H, W) order, by the rule of :func:`is_channels_last` or by ``channels_last=``.
* :func:`read_output` is what every padlib method that compares outputs reads: the selected tensor, detached,
  float32 on the CPU, dense maps in (N, C, H, W) order, with where it came from and its kind;
  :func:`check_output` refuses a bad ``output=`` before any work.
* :func:`compare_outputs` measures how ``other`` differs from ``reference``: for logits top-1 agreement and mean
  KL(reference || other) (:func:`logit_metrics`, what :func:`padlib.evaluate` computes per image); for dense maps
  the relative change and (C > 1) the per-pixel argmax agreement, each also in the border band and the interior
  (:func:`dense_metrics`, per image).
* :func:`describe_outputs` runs a model on photos and gives one row per photo: the output used, its shape, its
  kind and, for logits, the top-1 class, for dense maps the peak of the first channel.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import model_device
from .errors import PadlibError, check_type
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


def check_output(output, name: str = "output=") -> None:
    """Refuse an ``output=`` that can never select anything (not None, a key, an index or a callable), in one
    line naming ``name``, before any work; whether a key or index exists is known at the first forward."""
    if output is None or callable(output) or (isinstance(output, (int, str)) and not isinstance(output, bool)):
        if isinstance(output, str) and not output:
            raise PadlibError(f"{name} is an empty key; {_HOW}")
        return
    raise PadlibError(f"{name} must be a key, an index or a function, got {type(output).__name__} ({output!r}); "
                      f"{_HOW}")


def output_words(where: str, kind: str, shape) -> str:
    """How a page names the output used: "['out'] (dense, 21 x 64 x 64)", "tensor (logits, 1000 classes)"."""
    shape = tuple(shape)
    what = f"{shape[0]} classes" if kind == "logits" and len(shape) == 1 else " x ".join(map(str, shape))
    return f"{where} ({kind}, {what})"


def read_output(out, output=None, channels_last: bool | None = None) -> tuple[torch.Tensor, str, str]:
    """(tensor, where, kind) of what a forward returned: :func:`select_output`'s tensor detached, float32, on the
    CPU, a dense map in (N, C, H, W) order (:func:`to_nchw`); where it came from ('tensor', "['out']", '[0]', ...)
    and :func:`output_kind`. The one reading every method that compares outputs uses."""
    t, where = _select(out, output)
    kind = output_kind(t, channels_last)
    if kind == "dense":
        t = to_nchw(t, channels_last)
    t = t.detach().float()
    return (t if t.device.type == "meta" else t.cpu()), where, kind  # meta: shapes only (padlib.output_info)


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


def logit_metrics(logits: torch.Tensor, reference: torch.Tensor | None, lab: torch.Tensor | None,
                  k: int) -> tuple[dict, torch.Tensor]:
    """Per image of logits (N, K): top-1 and confidence; with a reference, its top-1, ``agreement`` (top-1
    unchanged), ``kl`` (KL(reference || logits), nats) and ``confidence_change``; with labels, top-1/top-5
    accuracy. Also (2, K): the summed probabilities (model, reference). :func:`padlib.compare_logits` runs it on
    chunks of images."""
    logp = F.log_softmax(logits.double(), -1)
    p = logp.exp()
    conf, top1 = p.max(-1)
    per = {"top1": top1.numpy(), "confidence": conf.numpy()}
    ref_p = None
    if reference is not None:
        ref_logp = F.log_softmax(reference.double(), -1)
        ref_p = ref_logp.exp()
        ref_conf, ref_top1 = ref_p.max(-1)
        per.update({
            "reference_top1": ref_top1.numpy(),
            "agreement": (top1 == ref_top1).double().numpy(),
            "kl": (ref_p * (ref_logp - logp)).sum(-1).clamp_min(0).numpy(),
            "confidence_change": (conf - ref_conf).numpy(),
        })
    if lab is not None:
        top5 = p.topk(min(5, k), -1).indices
        per.update({"label": lab.numpy(), "top1_accuracy": (top1 == lab).double().numpy(),
                    "top5_accuracy": (top5 == lab[:, None]).any(-1).double().numpy()})
        if ref_p is not None:
            per["reference_top1_accuracy"] = (ref_p.argmax(-1) == lab).double().numpy()
    mass = torch.stack([p.sum(0), ref_p.sum(0) if ref_p is not None else torch.zeros(k, dtype=torch.float64)])
    return per, mass


DENSE_METRICS = ("relative_change", "relative_change_border", "relative_change_interior", "argmax_agreement",
                 "argmax_agreement_border", "argmax_agreement_interior")


CHANGE_TOTALS = ("sq_change", "sq_size")  # per image, the squared norms whose totals give the pooled relative change


def pooled_relative_change(totals: np.ndarray) -> np.ndarray:
    """The relative change of maps pooled over images, from per-image (or resampled) totals (..., 2) of
    ||changed - intact||^2 and ||intact||^2: sqrt(sum of the first) / sqrt(sum of the second). Pooled, an image
    whose intact map is near zero (a text detector on a photograph without text) adds its small change to the
    numerator instead of a huge ratio to a mean of ratios."""
    t = np.asarray(totals, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(t[..., 0]) / np.sqrt(t[..., 1])


def dense_metrics(reference: torch.Tensor, other: torch.Tensor) -> dict[str, np.ndarray]:
    """Per image of two (N, C, H, W) maps: ``relative_change`` (||other - reference|| / ||reference|| over all
    channels and positions; infinite where the reference is all zero and other is not; ``sq_change`` and
    ``sq_size`` hold the two squared norms, which :func:`pooled_relative_change` pools over images) and, when C > 1,
    ``argmax_agreement`` (share of positions whose channel argmax agrees), each also as ``*_border`` (the band of
    :func:`border_band`) and ``*_interior`` (the rest; NaN on maps under 3 px). Computed one image at a time, in
    the maps' own precision over channels and in float64 over positions: a batch of large maps needs no float64
    copy, and on 21 x 512 x 512 maps it costs about a fifth of a forward of LR-ASPP rather than most of one."""
    if tuple(reference.shape) != tuple(other.shape) or reference.dim() != 4:
        raise PadlibError(f"dense maps to compare must be (N, C, H, W) of one shape, got {tuple(reference.shape)} "
                          f"and {tuple(other.shape)}")
    band = border_band(tuple(reference.shape[-2:]))
    regions = {"": torch.ones_like(band), "_border": band, "_interior": ~band}
    keys = [k for k in DENSE_METRICS if reference.shape[1] > 1 or not k.startswith("argmax")]
    keys += [f"{total}{suffix}" for total in CHANGE_TOTALS for suffix in regions]
    out = {k: np.full(reference.shape[0], math.nan) for k in keys}
    for i in range(reference.shape[0]):
        r, o = reference[i].detach().cpu(), other[i].detach().cpu()
        # (H, W): squared change and size per position, summed over channels in the maps' precision (a few dozen
        # terms), then in float64 over positions; the argmax by max(0) (its indices: half argmax's time on CPU)
        d2, r2 = (o - r).square_().sum(0).double(), r.square().sum(0).double()
        same = (r.max(0).indices == o.max(0).indices) if r.shape[0] > 1 else None
        for suffix, where in regions.items():
            if not bool(where.any()):
                continue
            change, size = float(d2[where].sum()), float(r2[where].sum())
            out["sq_change" + suffix][i], out["sq_size" + suffix][i] = change, size
            out["relative_change" + suffix][i] = math.sqrt(change) / math.sqrt(size) if size > 0 else (
                math.inf if change > 0 else 0.0)
            if same is not None:
                out["argmax_agreement" + suffix][i] = float(same[where].double().mean())
    return out


def compare_outputs(reference, other, output=None, channels_last: bool | None = None) -> dict:
    """How ``other`` differs from ``reference`` (forward outputs of the same images, read by :func:`select_output`).

    Logits (N, K): ``agreement`` (share of images whose top-1 class agrees) and ``kl`` (mean KL(reference ||
    other), nats), as every intervention computes them (:func:`logit_metrics`). Dense maps (N, C, H, W) or
    channels-last: the means over images of :func:`dense_metrics`: ``relative_change`` and, when C > 1,
    ``argmax_agreement``, each also as ``*_border`` and ``*_interior``. Also ``kind``, ``n`` (images),
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
        per = logit_metrics(oth, ref, None, int(ref.shape[1]))[0]
        return {**result, "agreement": float(per["agreement"].mean()), "kl": float(per["kl"].mean())}
    result["channels_last"] = is_channels_last(ref, channels_last)
    ref, oth = to_nchw(ref, channels_last), to_nchw(oth, channels_last)
    result["shape"] = tuple(ref.shape[1:])
    result["margin"] = interior_margin(tuple(ref.shape[-2:]))
    return {**result, **{k: float(v.mean()) for k, v in dense_metrics(ref, oth).items() if k in DENSE_METRICS}}


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
