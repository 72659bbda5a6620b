"""Padding arithmetic, in one place (as timm keeps ``get_padding``/``pad_same`` in one file).

Every method asks the same questions of a layer: how much padding does it add on each side at this input size,
how much of it is read (:func:`padding_read`, :func:`layer_pads`), which outputs read padding (:func:`padding_ring`)
and which stay clear of it (:func:`interior_margin`). The padding *schemes* live in :mod:`padlib.layers`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ._compat import moved_names
from .errors import NoPaddedLayersError, PadlibError, check_type

SIDES = ("top", "bottom", "left", "right")
_DYNAMIC_SAME = ("Conv2dSame", "Conv2dSameExport", "MaxPool2dSame", "AvgPool2dSame")


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def same_padding(n: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding of one dimension: (before, after); the odd extra row goes after."""
    total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def output_size(n: int, k: int, s: int, d: int, before: int, after: int) -> int:
    """Output length of a conv/pool along one dimension (PyTorch floor convention)."""
    return (n + before + after - d * (k - 1) - 1) // s + 1


def padding_read(n: int, k: int, s: int, d: int, before: int, after: int, ceil_mode: bool = False) -> dict:
    """How much of each side's padding the sliding window actually reads along one dimension.

    With m = n + before + after - d(k-1) - 1, the last ``m mod s`` rows are never visited: they eat into
    the far padding first, then into the input (see Mind the Pad, Alsallakh et al., ICLR 2021). With ``ceil_mode``
    (pools) the last window may hang over the far padding; ``read_after`` then exceeds ``after`` by
    ``ceil_extra`` rows of implicit padding (ignored by max pooling, left out of the average by avg pooling).
    """
    m = n + before + after - d * (k - 1) - 1
    if m < 0:
        raise PadlibError(f"kernel extent {d * (k - 1) + 1} exceeds padded input {n + before + after}")
    out = m // s + 1
    if ceil_mode:
        out = -(-m // s) + 1
        if (out - 1) * s >= n + before:  # PyTorch: the last window must start inside the input or left padding
            out -= 1
    last = (out - 1) * s + d * (k - 1)  # last row read, counted from the first row of the near padding
    far = last - (before + n - 1)  # > 0: rows of far padding read; < 0: input rows never read
    return {
        "out": out,
        "read_before": min(before, last + 1),
        "read_after": max(far, 0),
        "unread_input": max(-far, 0),
        "ceil_extra": max(far - after, 0),
    }


def is_dynamic_same(module: nn.Module) -> bool:
    """timm's TF-'SAME' layers that pad at run time, depending on the input size."""
    return type(module).__name__ in _DYNAMIC_SAME or bool(getattr(module, "dynamic_same", False))


def layer_pads(module: nn.Module, in_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding a conv or pool adds to an input of size ``in_hw``."""
    h, w = in_hw
    k, s, d = (_pair(getattr(module, a, 1)) for a in ("kernel_size", "stride", "dilation"))
    if is_dynamic_same(module):
        (t, b), (l, r) = same_padding(h, k[0], s[0], d[0]), same_padding(w, k[1], s[1], d[1])
        return l, r, t, b
    p = getattr(module, "padding", 0)
    if p == "valid":
        return 0, 0, 0, 0
    if p == "same":  # PyTorch 'same' (stride 1): the odd extra goes after
        th, tw = d[0] * (k[0] - 1), d[1] * (k[1] - 1)
        return tw // 2, tw - tw // 2, th // 2, th - th // 2
    ph, pw = _pair(p)
    return pw, pw, ph, ph


def can_read_padding(module: nn.Module) -> bool:
    """A 2-D convolution whose kernel can be centred where it reads padding: kernel > 1 and padding > 0."""
    if not isinstance(module, nn.Conv2d):
        return False
    k = _pair(module.kernel_size)
    if max(k) <= 1:
        return False
    if is_dynamic_same(module) or module.padding == "same":
        return True
    return module.padding != "valid" and max(_pair(module.padding)) > 0


def padded_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every conv of ``model`` that can read padding, in module order (depthwise, grouped, TF-SAME included)."""
    check_type("model", model, nn.Module)
    return [(name, m) for name, m in model.named_modules() if can_read_padding(m)]


def require_padded_convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """:func:`padded_convs`, or a clear error when there are none."""
    convs = padded_convs(model)
    if not convs:
        n = sum(isinstance(m, nn.Conv2d) for m in model.modules())
        raise NoPaddedLayersError(
            f"{type(model).__name__} has no convolution that can read padding ({n} Conv2d layers, all with "
            "kernel 1 or padding 0): there is nothing for padding analysis to measure"
        )
    return convs


CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
LOCATIONS = SIDES + CORNERS


# Method constants of our formulation (printed in the chapter by :func:`method_settings`).
MARGIN_FRACTION = 1 / 8        # interior margin, as a fraction of the map's shorter side (at least the padded rows)


# ---------------------------------------------------------------------------------------------------------
# Where padding acts: the border ring of a conv's output


def padded_taps(n: int, k: int, s: int, d: int, before: int, after: int):
    """Boolean masks over the k taps of one dimension of a window: the taps on padding at the first and at the
    last output (input size n, kernel k, stride s, dilation d, padding before/after); and the output size."""
    out = output_size(n, k, s, d, before, after)
    taps = np.arange(k) * d
    first = taps - before < 0
    last = (out - 1) * s - before + taps >= n
    return first, last, out


def padding_ring(module: nn.Module, in_hw: tuple[int, int]) -> dict[str, int]:
    """Per side, how many output rows/columns of ``module`` have a receptive field that reads its padding.

    Output row i of a conv reads input rows i*s - before .. i*s - before + d(k-1); it touches the near
    padding when i*s < before and the far padding when the last row read lies beyond the input. So a 3x3
    stride-2 conv with PyTorch padding 1 at an even size has a top ring of 1 and a bottom ring of 0, a
    TF-SAME one the opposite.
    """
    left, right, top, bottom = layer_pads(module, in_hw)
    k, s, d = (_pair(getattr(module, a, 1)) for a in ("kernel_size", "stride", "dilation"))
    ring = {}
    for dim, (before, after, n) in enumerate(((top, bottom, in_hw[0]), (left, right, in_hw[1]))):
        extent = d[dim] * (k[dim] - 1)
        out = (n + before + after - extent - 1) // s[dim] + 1
        near = min(out, -(-before // s[dim]))
        first_far = (before + n - 1 - extent) // s[dim] + 1  # first output row whose window reaches past the input
        far = min(out, max(0, out - first_far)) if after > 0 else 0
        ring.update({("top", "left")[dim]: near, ("bottom", "right")[dim]: far})
    return ring


def ring_mask(hw: tuple[int, int], ring: dict[str, int], device=None) -> torch.Tensor:
    """Boolean (H, W) mask of the border ring: ``ring[side]`` rows/columns on each side."""
    h, w = hw
    mask = torch.zeros(h, w, dtype=torch.bool, device=device)
    mask[: ring["top"]] = True
    if ring["bottom"]:
        mask[h - ring["bottom"]:] = True
    mask[:, : ring["left"]] = True
    if ring["right"]:
        mask[:, w - ring["right"]:] = True
    return mask


def _ring_for(module, in_hw, ring) -> dict[str, int]:
    if ring is None:
        return padding_ring(module, in_hw)
    check_type("ring", ring, int)
    return {s: ring for s in SIDES}


def interior_margin(hw: tuple[int, int], ring: dict[str, int] | None = None) -> int:
    """The interior's distance from every border, in rows, for every method that compares border and interior.

    One rule: ceil(min(H, W) * MARGIN_FRACTION), at least 1 and at least the widest padding ring (``ring``: rows
    per side whose window reads padding), at most (min(H, W) - 1) // 2 so that one row and column stay inside
    (0 for maps under 3 px: no interior). The PAN scan, the ablation's interior mean and the spatial-bias index
    all use it."""
    h, w = hw
    m = max(1, math.ceil(min(h, w) * MARGIN_FRACTION), max(ring.values()) if ring else 0)
    return max(0, min(m, (min(h, w) - 1) // 2))


def _interior_mask(hw, ring: dict[str, int]) -> torch.Tensor:
    """Positions at distance >= :func:`interior_margin` from every border (the whole map if it has no interior)."""
    h, w = hw
    m = interior_margin(hw, ring)
    mask = torch.zeros(h, w, dtype=torch.bool)
    if m >= 1:
        mask[m:h - m, m:w - m] = True
    else:
        mask[:] = True
    return mask



# Names that lived here before padlib 0.2 keep working for one release (each old path warns once).
__getattr__ = moved_names(__name__)
