"""Activation statistics, streamed: per layer, per channel, sums of activation maps over images.

Memory is O(channels x height x width) per layer whatever the number of images, so the same code runs on
twenty probe crops or on ImageNet validation. Hooks are always removed, also when a batch fails.

:func:`model_untouched` (:func:`keeps_model` as a decorator) is the promise every method that runs a user's model
keeps: eval mode inside, and the model exactly as it was afterwards, also on an error or Ctrl-C.
"""
from __future__ import annotations

import contextlib
import functools
import warnings
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



# Every dict in which a module keeps hooks keyed by handle id (RemovableHandle.remove deletes from the same ones).
_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called", "_forward_pre_hooks",
               "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks")


@contextlib.contextmanager
def model_untouched(model, method: str = "padlib"):
    """The user's model exactly as it was after the block: what every method that runs a model promises.

    Inside, the model is in eval mode (a method measures the model as it predicts, and a training-mode BatchNorm
    would rewrite its running statistics on the probe images). On leaving, also on an error or Ctrl-C: every
    submodule's own train/eval flag is back (:func:`eval_mode`), every hook added during the block is removed,
    replaced submodules, parameters, buffers and gradients are put back, and a moved tensor returns to its
    device. Methods must not need the repair: when one was made, a warning names it (a padlib bug to report).
    Buffers are compared with a copy (small: BatchNorm statistics); parameters by identity, device and version
    counter (copying every weight on each call would double a large model's memory). Not a module (a model
    name the method loads itself): nothing to guard."""
    if not isinstance(model, nn.Module):
        yield model
        return
    modules = list(model.modules())
    hooks = [(m, {attr: set(getattr(m, attr, {})) for attr in _HOOK_DICTS}) for m in modules]
    children = [(m, dict(m._modules)) for m in modules]
    params = [(m, k, p, p.device, p._version, p.grad) for m in modules for k, p in m._parameters.items()
              if p is not None]
    buffers = [(m, k, b, b.device, b.detach().clone()) for m in modules for k, b in m._buffers.items()
               if b is not None]
    failed = False
    try:
        with eval_mode(model):
            yield model
    except BaseException:
        failed = True
        raise
    finally:
        repaired = _restore(hooks, children, params, buffers)
        if repaired and not failed:
            warnings.warn(f"{method} changed the model it was given ({', '.join(repaired)}) and padlib put it "
                          "back; please report this", RuntimeWarning, stacklevel=3)


def _restore(hooks, children, params, buffers) -> list[str]:
    """Undo what a block did to a model (see :func:`model_untouched`); returns what had to be repaired."""
    repaired = []
    for m, before in hooks:
        for attr, keys in before.items():
            d = getattr(m, attr, None)
            for k in [k for k in (d or {}) if k not in keys]:
                del d[k]  # hooks a method left behind (its own are removed already): not a repair to report
    for m, kids in children:
        if m._modules != kids:
            m._modules.clear()
            m._modules.update(kids)
            repaired.append("submodules replaced")
    for m, k, p, dev, version, grad in params:
        if m._parameters.get(k) is not p:
            m._parameters[k] = p
            repaired.append(f"parameter {k} replaced")
        if p.device != dev:
            p.data = p.data.to(dev)
            repaired.append(f"parameter {k} moved")
        if p.grad is not grad:
            p.grad = grad
        if p._version != version:
            repaired.append(f"parameter {k} written in place (not restorable)")
    for m, k, b, dev, saved in buffers:
        if m._buffers.get(k) is not b:
            m._buffers[k] = b
            repaired.append(f"buffer {k} replaced")
        if b.device != dev:
            m._buffers[k] = b = b.to(dev)
            repaired.append(f"buffer {k} moved")
        if not b.is_meta and not torch.equal(b, saved):
            with torch.no_grad():
                b.copy_(saved)
            repaired.append(f"buffer {k} written")
    return list(dict.fromkeys(repaired))


def keeps_model(fn):
    """Run ``fn(model, ...)`` inside :func:`model_untouched` (the model: the first argument or ``model=``)."""
    @functools.wraps(fn)
    def guarded(*args, **kwargs):
        model = args[0] if args else kwargs.get("model")
        with model_untouched(model, fn.__name__):
            return fn(*args, **kwargs)

    return guarded


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


@keeps_model
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
