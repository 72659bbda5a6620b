"""Symmetric (mirror with the edge) padding: Mind the Pad's mitigation."""
from __future__ import annotations

import torch

from ..layers.base import PaddingScheme, copy_pad


def symmetric_index(n: int, before: int, after: int, device=None) -> torch.Tensor:
    """Source index of each padded position for mirror-with-edge padding (any amount: the mirror repeats)."""
    idx = torch.arange(-before, n + after, device=device) % (2 * n)
    return torch.where(idx < n, idx, 2 * n - 1 - idx)


class SymmetricPadding(PaddingScheme):
    """Mirror including the edge pixel: ``[c b a | a b c d | d c b]`` (reflect would give ``c b | a b c d | c b``)."""

    name = "symmetric"

    def pad(self, x, pads):
        l, r, t, b = pads
        h, w = x.shape[-2:]
        if x.dim() == 4 and max(l, r) <= w and max(t, b) <= h:
            return copy_pad(x, pads, mirror=True)
        if l or r:
            x = x.index_select(-1, symmetric_index(w, l, r, x.device))
        if t or b:
            x = x.index_select(-2, symmetric_index(h, t, b, x.device))
        return x

