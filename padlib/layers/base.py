"""A padding scheme as a module a conv calls (``PaddingScheme``), torch's own modes, the scheme registry and
:func:`convert_padding`, which puts a scheme into every padded conv of a model."""
from __future__ import annotations

import copy
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PaddingImpossibleError, PadlibError, check_type
from ..padding import is_dynamic_same, layer_pads, require_padded_convs

# ---------------------------------------------------------------------------------------------------------
# Padding schemes: a scheme pads a conv's input explicitly and runs the conv without implicit padding.

class PaddingScheme(nn.Module):
    """Zero padding, done explicitly. Subclasses override :meth:`pad` (or :meth:`forward` to rescale)."""

    name = "zero"

    def pad(self, x: torch.Tensor, pads: tuple[int, int, int, int]) -> torch.Tensor:
        return F.pad(x, pads)

    def forward(self, conv: nn.Conv2d, x: torch.Tensor, pads) -> torch.Tensor:
        return F.conv2d(self.pad(x, pads), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


def _same_format(x: torch.Tensor):
    """The memory format to give a new map made from ``x`` (channels-last stays channels-last)."""
    cl = x.dim() == 4 and x.stride(1) == 1 and x.is_contiguous(memory_format=torch.channels_last)
    return torch.channels_last if cl else torch.contiguous_format


class _CopyPad(torch.autograd.Function):
    """Circular or symmetric padding written into one new tensor in the input's memory format, with a
    hand-written backward (autograd through the slice writes costs more than the padding itself)."""

    @staticmethod
    def forward(ctx, x, pads, mirror):
        l, r, t, b = pads
        n, c, h, w = x.shape
        out = torch.empty((n, c, h + t + b, w + l + r), dtype=x.dtype, device=x.device, memory_format=_same_format(x))
        out[:, :, t:t + h, l:l + w] = x
        if t:
            out[:, :, :t, l:l + w] = x[:, :, :t].flip(2) if mirror else x[:, :, h - t:]
        if b:
            out[:, :, t + h:, l:l + w] = x[:, :, h - b:].flip(2) if mirror else x[:, :, :b]
        if l:  # columns from the row-padded tensor itself, so the corners come out right
            out[..., :l] = out[..., l:2 * l].flip(3) if mirror else out[..., w:w + l]
        if r:
            out[..., l + w:] = out[..., l + w - r:l + w].flip(3) if mirror else out[..., l:l + r]
        ctx.pads, ctx.mirror, ctx.hw = pads, mirror, (h, w)
        return out

    @staticmethod
    def backward(ctx, grad):
        (l, r, t, b), mirror, (h, w) = ctx.pads, ctx.mirror, ctx.hw
        g = grad[..., l:l + w].clone(memory_format=_same_format(grad))  # full height, the map's columns
        if l:
            if mirror:
                g[..., :l] += grad[..., :l].flip(3)
            else:
                g[..., w - l:] += grad[..., :l]
        if r:
            if mirror:
                g[..., w - r:] += grad[..., l + w:].flip(3)
            else:
                g[..., :r] += grad[..., l + w:]
        if t:
            if mirror:
                g[:, :, t:2 * t] += g[:, :, :t].flip(2)
            else:
                g[:, :, h:h + t] += g[:, :, :t]
        if b:
            if mirror:
                g[:, :, t + h - b:t + h] += g[:, :, t + h:].flip(2)
            else:
                g[:, :, t:t + b] += g[:, :, t + h:]
        return g[:, :, t:t + h], None, None


def copy_pad(x: torch.Tensor, pads, mirror: bool) -> torch.Tensor:
    """Circular (``mirror=False``) or symmetric (mirror with the edge pixel) padding of at most the map size,
    in the input's memory format (``F.pad``'s circular mode and index-based padding return contiguous maps,
    which sends a channels-last network back to the slow layout)."""
    return _CopyPad.apply(x, tuple(pads), mirror)


class TorchModePadding(PaddingScheme):
    """``F.pad`` modes: reflect (mirror without the edge), replicate (edge repeated), circular (wrap)."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode
        self.name = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}[mode]

    def pad(self, x, pads):
        h, w = x.shape[-2:]
        l, r, t, b = pads
        if self.mode == "circular" and (max(l, r) > w or max(t, b) > h):
            # wider than the map (a dilated ASPP on a small map): the periodic extension, wrapping as often as it
            # takes, is still a map without a border (what the PAN scan's circular null needs at any size)
            rows = torch.arange(-t, h + b, device=x.device) % h
            cols = torch.arange(-l, w + r, device=x.device) % w
            return x[..., rows, :][..., cols]
        limit = (w - 1, h - 1) if self.mode == "reflect" else (10**9,) * 2
        if max(l, r) > limit[0] or max(t, b) > limit[1]:
            raise PaddingImpossibleError(f"{self.mode} padding of {pads} is impossible on a {h}x{w} feature map")
        if self.mode == "circular" and x.dim() == 4:
            return copy_pad(x, pads, mirror=False)
        return F.pad(x, pads, mode=self.mode)

    def extra_repr(self):
        return self.mode


PADDING_SCHEMES: dict[str, Callable[[nn.Conv2d], PaddingScheme]] = {
    "zero": lambda conv: PaddingScheme(),
    "reflect": lambda conv: TorchModePadding("reflect"),
    "replicate": lambda conv: TorchModePadding("replicate"),
    "circular": lambda conv: TorchModePadding("circular"),
}


def register_scheme(name: str, factory: Callable[[nn.Conv2d], PaddingScheme]) -> None:
    """Make a padding scheme available to :func:`convert_padding` (factory gets the conv it will serve)."""
    PADDING_SCHEMES[name] = factory


class PadConv2d(nn.Conv2d):
    """A Conv2d whose padding is done by a :class:`PaddingScheme`; same weights, same name, same output shape.

    It stays a Conv2d (hooks, ``padded_convs`` and state-dict keys work as before) and remembers whether the
    original padded statically or with TF 'SAME' at run time.
    """

    def __init__(self, conv: nn.Conv2d, scheme: PaddingScheme):
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                         conv.padding if not is_dynamic_same(conv) else 0, conv.dilation, conv.groups,
                         bias=conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype)
        self.weight = conv.weight
        self.bias = conv.bias
        self.dynamic_same = is_dynamic_same(conv)
        self.original_mode = "zero" if conv.padding_mode == "zeros" else conv.padding_mode
        self.scheme = scheme

    def forward(self, x):
        return self.scheme(self, x, layer_pads(self, x.shape[-2:]))

    def extra_repr(self):
        return super().extra_repr() + (", dynamic_same=True" if self.dynamic_same else "")


def padding_scheme_of(conv: nn.Conv2d) -> str:
    """The scheme a conv pads with: 'zero', 'reflect', 'replicate', 'circular' or a registered name."""
    if isinstance(conv, PadConv2d):
        return conv.scheme.name
    return "zero" if conv.padding_mode == "zeros" else conv.padding_mode


def convert_padding(model: nn.Module, scheme: str, inplace: bool = False) -> nn.Module:
    """Every padded conv of ``model`` pads with ``scheme`` instead (weights kept, output shapes unchanged).

    Works on torchvision, timm (including dynamic TF 'SAME' convs, whose asymmetric amounts are kept) and
    padlib models. Returns a new model unless ``inplace``. Converting a zero-padded conv to 'zero' leaves
    it untouched, so outputs stay bit-for-bit identical.
    """
    check_type("scheme", scheme, str)
    if scheme not in PADDING_SCHEMES:
        raise PadlibError(f"unknown padding scheme '{scheme}'; available: {', '.join(PADDING_SCHEMES)}")
    convs = require_padded_convs(model)
    target = model if inplace else copy.deepcopy(model)
    for name, _ in convs:
        parent_name, _, child = name.rpartition(".")
        parent = target.get_submodule(parent_name) if parent_name else target
        conv = getattr(parent, child)
        if isinstance(conv, PadConv2d):
            if conv.original_mode == scheme == "zero":
                new = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                conv.padding, conv.dilation, conv.groups, conv.bias is not None)
                new.weight, new.bias = conv.weight, conv.bias
                if conv.dynamic_same:
                    new = PadConv2d(new, PaddingScheme())
                    new.dynamic_same = True
                setattr(parent, child, new)
                continue
            base = conv
        else:
            if scheme == "zero" and conv.padding_mode == "zeros":
                continue
            base = conv
        setattr(parent, child, PadConv2d(base, PADDING_SCHEMES[scheme](base)))
    return target

