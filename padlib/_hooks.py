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
from .padding import require_padded_convs


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


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """``model`` in eval mode for the block, then every submodule back in its own mode (also on error).

    Restoring ``model.train(was)`` would set every submodule to the top module's mode and undo a user's frozen
    BatchNorm in a training model; this puts back each module's own flag."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, was in modes:
            m.training = was



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


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for parameter-free modules)."""
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def conv_input(model: nn.Module, image: torch.Tensor, index: int = 1) -> tuple[str, torch.Tensor]:
    """(name, input map (C, H, W)) of the ``index``-th padded conv of ``model`` for one image: what it pads."""

    convs = require_padded_convs(model)
    if not -len(convs) <= index < len(convs):
        raise PadlibError(f"the model has {len(convs)} padded convolutions; index {index} is out of range")
    name = convs[index][0]
    seen = {}
    with eval_mode(model):
        with forward_hooks(model, [name], lambda n, m, inputs, out: seen.update(x=inputs[0])):  # returns None
            model(image[None] if image.dim() == 3 else image[:1])
    return name, seen["x"][0]


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), float64, of an eval-mode BatchNorm as the per-channel affine map ``scale * x + shift``.

    One rule for a BatchNorm that keeps no running statistics (it normalises each batch by itself): only the sign
    of gamma is known, so scale is that sign (1 where gamma is 0 or absent) and shift is 0."""
    w = bn.weight.detach().double() if bn.weight is not None else torch.ones(bn.num_features, dtype=torch.float64)
    b = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(w)
    if bn.running_var is None:
        return w.sign().where(w != 0, torch.ones_like(w)), torch.zeros_like(w)
    scale = w / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    return scale, b - bn.running_mean.detach().double() * scale
