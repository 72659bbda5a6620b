"""The schemes by name: registration of the learned and mirror schemes, ``make_scheme`` and ``pad_with``."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import PadlibError, check_type
from ..layers.base import PADDING_SCHEMES, PaddingScheme, register_scheme
from ..layers.padding_module import PaddingModule
from ..layers.partial import PartialConvPadding
from ..layers.symmetric import SymmetricPadding

register_scheme("symmetric", lambda conv: SymmetricPadding())


register_scheme("partial", lambda conv: PartialConvPadding())


register_scheme("padding_module", lambda conv: PaddingModule(conv.in_channels, conv.groups,
                                                             device=conv.weight.device, dtype=conv.weight.dtype))


ALL_SCHEMES = ("zero", "reflect", "replicate", "circular", "symmetric", "partial", "padding_module")


def make_scheme(scheme: str | PaddingScheme, channels: int = 1) -> PaddingScheme:
    """A scheme instance by name (Padding Module: an untrained one for ``channels``), or the instance given."""
    if isinstance(scheme, PaddingScheme):
        return scheme
    check_type("scheme", scheme, str)
    if scheme not in PADDING_SCHEMES:
        raise PadlibError(f"unknown padding scheme '{scheme}'; available: {', '.join(PADDING_SCHEMES)}")
    return PADDING_SCHEMES[scheme](nn.Conv2d(channels, channels, 3, padding=1))


@torch.no_grad()
def pad_with(x: torch.Tensor, scheme: str | PaddingScheme, pad: int) -> torch.Tensor:
    """``x`` (C, H, W) or (N, C, H, W) padded by ``pad`` on every side the way ``scheme`` pads a conv input.

    For ``partial`` this is zero padding: its effect is the rescaling of the border outputs, not the values.
    """
    squeeze = x.dim() == 3
    x4 = x[None] if squeeze else x
    out = make_scheme(scheme, x4.shape[1]).pad(x4, (pad, pad, pad, pad))
    return out[0] if squeeze else out


def padding_examples(x: torch.Tensor, pad: int, schemes=ALL_SCHEMES, module: PaddingModule | None = None) -> dict:
    """{scheme: ``x`` padded by ``pad``} for each scheme; the Padding Module uses ``module`` (e.g. a trained one)."""
    out = {}
    for s in schemes:
        out[s] = pad_with(x, module if (s == "padding_module" and module is not None) else s, pad)
    return out

