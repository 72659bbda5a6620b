"""Activation statistics, streamed: per layer, per channel, sums of activation maps over images.

Memory is O(channels x height x width) per layer whatever the number of images, so the same code runs on
twenty probe crops or on ImageNet validation. Hooks are always removed, also when a batch fails.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from .errors import PadlibError, check_type


@dataclass
class MapStats:
    """Running sums of one layer's output maps: ``sum`` and ``sumsq`` are (C, H, W) float64 tensors."""

    n: int
    sum: torch.Tensor
    sumsq: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        """Mean activation map per channel, (C, H, W)."""
        return self.sum / self.n

    @property
    def var(self) -> torch.Tensor:
        """Variance over images at each position, (C, H, W)."""
        return (self.sumsq / self.n - self.mean**2).clamp_min(0)


def iter_batches(images, batch_size: int = 16, device="cpu", progress: bool | str = True) -> Iterable[torch.Tensor]:
    """Batches from a :class:`~padlib.data.ProbeImages`, a tensor (N, C, H, W) or an iterable of batches."""
    if hasattr(images, "batches"):
        yield from images.batches(batch_size, progress=progress, device=device)
    elif isinstance(images, torch.Tensor):
        if images.dim() != 4:
            raise PadlibError(f"images must be a (N, C, H, W) tensor, got shape {tuple(images.shape)}")
        for s in range(0, images.shape[0], batch_size):
            yield images[s:s + batch_size].to(device)
    else:
        for b in images:
            yield b.to(device)


@contextlib.contextmanager
def forward_hooks(model: nn.Module, layers: list[str], fn: Callable[[str, nn.Module, tuple, torch.Tensor], None]):
    """Call ``fn(name, module, inputs, output)`` after each named layer's forward; hooks removed on exit."""
    modules = dict(model.named_modules())
    missing = [l for l in layers if l not in modules]
    if missing:
        raise PadlibError(f"no layer named {missing[:3]} in {type(model).__name__}")
    handles = []
    try:
        for name in layers:
            handles.append(modules[name].register_forward_hook(
                lambda mod, inp, out, name=name: fn(name, mod, inp, out)))
        yield
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def layer_map_stats(model: nn.Module, images, layers: list[str], batch_size: int = 16, device="cpu",
                    progress: bool | str = True, transform: Callable | None = None) -> dict[str, MapStats]:
    """Stream ``images`` through ``model`` and sum each named layer's output maps (optionally ``transform``-ed)."""
    check_type("model", model, nn.Module)
    stats: dict[str, MapStats] = {}

    def accumulate(name, module, inputs, output):
        y = transform(name, module, inputs, output) if transform else output
        y = y.detach().double()
        s, ss = y.sum(0).cpu(), (y * y).sum(0).cpu()
        if name not in stats:
            stats[name] = MapStats(0, torch.zeros_like(s), torch.zeros_like(ss))
        st = stats[name]
        st.n += y.shape[0]
        st.sum += s
        st.sumsq += ss

    with forward_hooks(model, layers, accumulate):
        for batch in iter_batches(images, batch_size, device, progress):
            model(batch)
    return stats
