"""Partial-convolution-based padding (Liu et al. 2018): outputs near the border rescaled by window / real pixels."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.base import PaddingScheme
from ..padding import _pair


class PartialConvPadding(PaddingScheme):
    """Partial-convolution-based padding: zero-pad, convolve, rescale by window size / real pixels in window.

    The ratio depends only on the map size, padding and conv geometry, so it is cached per shape.
    """

    name = "partial"

    def __init__(self):
        super().__init__()
        self._ratio_cache: dict = {}

    def window_ratio(self, conv: nn.Conv2d, hw, pads, device, dtype) -> torch.Tensor:
        """(1, 1, H_out, W_out): kernel area / number of non-padding pixels under each output's window."""
        key = (tuple(hw), tuple(pads), tuple(_pair(conv.kernel_size)), tuple(_pair(conv.stride)),
               tuple(_pair(conv.dilation)), str(device), dtype)
        if key not in self._ratio_cache:
            kh, kw = _pair(conv.kernel_size)
            mask = F.pad(torch.ones(1, 1, *hw, device=device, dtype=dtype), pads)
            ones = torch.ones(1, 1, kh, kw, device=device, dtype=dtype)
            count = F.conv2d(mask, ones, None, conv.stride, 0, conv.dilation)
            self._ratio_cache[key] = (kh * kw) / count.clamp_min(1)
        return self._ratio_cache[key]

    def forward(self, conv, x, pads):
        out = F.conv2d(self.pad(x, pads), conv.weight, None, conv.stride, 0, conv.dilation, conv.groups)
        out = out * self.window_ratio(conv, x.shape[-2:], pads, x.device, x.dtype)
        if conv.bias is not None:
            out = out + conv.bias.view(1, -1, 1, 1)
        return out

