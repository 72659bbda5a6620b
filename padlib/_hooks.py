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

from ._distributed import shard_batches, world
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


IMAGES_ACCEPTED = ("a ProbeImages from padlib.probe_images, an (N, C, H, W) float tensor, a number of probe images "
                   "(int) or a re-iterable of batches (a list of (B, C, H, W) float tensors)")


def _shown(value) -> str:
    """A user's value as a message names it: its type and a short repr (an array's shape, not its contents)."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def check_image_tensor(x: torch.Tensor, name: str = "images", dims=(4,)) -> torch.Tensor:
    """Refuse a tensor no model can take as images, in one line: wrong rank, integer pixels (uint8 needs the
    model's normalisation first) or NaN/inf (which would surface much later as 'no finite scores')."""
    if x.dim() not in dims:
        raise PadlibError(f"{name} must be a (N, C, H, W) tensor, got shape {tuple(x.shape)}"
                          + ("; add the batch dimension with x[None]" if x.dim() == 3 else ""))
    if not x.is_floating_point():
        raise PadlibError(f"{name} must be a float tensor of normalised images, got dtype {x.dtype}: normalise "
                          "with the model's preprocessing (padlib.probe_images(..., model=model) or "
                          "padlib.preprocessing(model).normalize(x.float() / 255))")
    if x.device.type != "meta" and x.numel() and not bool(torch.isfinite(x).all()):
        first = int((~torch.isfinite(x)).flatten(1).any(1).nonzero()[0, 0]) if x.dim() == 4 else 0
        raise PadlibError(f"{name} contain NaN or infinite values (first in image {first}); pass finite "
                          "normalised images")
    return x


def check_images(images, name: str = "images", number: bool = True):
    """The one check of a method's ``images`` argument, before any work: what was given and what is accepted,
    in one line (a numpy array gets the torch.from_numpy hint). ``number``: whether an int (a count of probe
    images) is accepted. Tensors and lists of tensors are checked for rank, dtype and finite values."""
    if hasattr(images, "batches"):
        return images
    if isinstance(images, int) and not isinstance(images, bool) and number:
        if images < 1:
            raise PadlibError(f"{name} must be at least 1 probe image, got {images}")
        return images
    if isinstance(images, torch.Tensor):
        return check_image_tensor(images, name)
    accepted = IMAGES_ACCEPTED if number else IMAGES_ACCEPTED.replace(", a number of probe images (int)", "")
    if type(images).__module__ == "numpy":
        raise PadlibError(f"{name} is a numpy {_shown(images)}; pass a torch tensor: "
                          "torch.from_numpy(x).float() (normalised, (N, C, H, W))")
    if isinstance(images, (list, tuple)):
        if not images:
            raise PadlibError(f"{name} is an empty {type(images).__name__}; pass {accepted}")
        for i, b in enumerate(images):
            if not isinstance(b, torch.Tensor):
                raise PadlibError(f"{name}[{i}] is a {_shown(b)}; a list of images must hold (B, C, H, W) tensors")
            check_image_tensor(b, f"{name}[{i}]")
        return images
    if images is None or isinstance(images, (bool, str, bytes, float, dict, int)) or not hasattr(images, "__iter__"):
        count = (images.strip() if isinstance(images, str) and images.strip().isdigit() else
                 int(images) if isinstance(images, float) and images.is_integer() else None)
        hint = f" (for {count} probe images pass the int {count})" if count is not None and number else ""
        raise PadlibError(f"{name} must be {accepted}; got {_shown(images)}{hint}")
    return images  # another iterable of batches: each batch is checked as it comes (iter_batches)


def check_device(device, name: str = "device", allow_none: bool = True):
    """A device argument as torch.device, refused in one line when it is not one ('cpu', 'cuda', 'cuda:0',
    'mps' or a torch.device; torch would read 123 as 'cuda:123') or names a GPU this machine lacks."""
    if device is None and allow_none:
        return None
    if not isinstance(device, (str, torch.device)):
        raise PadlibError(f"{name} must be 'cpu', 'cuda', 'cuda:0', 'mps' or a torch.device, got {_shown(device)}")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise PadlibError(f"{name} {device!r} is not a device: pass 'cpu', 'cuda', 'cuda:0', 'mps' or a "
                          "torch.device") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PadlibError(f"{name} {str(device)!r} needs a CUDA GPU and this machine has none; use device='cpu'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise PadlibError(f"{name} {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s) "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise PadlibError(f"{name} 'mps' needs Apple's Metal GPU, which this machine lacks; use device='cpu'")
    return dev


def _as_input(b, dtype, i: int, checked: bool = False):
    """One batch as a model takes it: float64 converted to ``dtype`` (the model's), anything else refused."""
    if not isinstance(b, torch.Tensor):
        raise PadlibError(f"batch {i} of images is a {_shown(b)}; batches must be (B, C, H, W) float tensors")
    if not checked:
        check_image_tensor(b, f"batch {i} of images")
    return b.to(dtype) if b.dtype != dtype and (b.dtype == torch.float64 or dtype != torch.float32) else b


def iter_batches(images, batch_size: int = 16, device="cpu", progress: bool | str = True,
                 dtype: torch.dtype | None = None) -> Iterable[torch.Tensor]:
    """Batches from a :class:`~padlib.data.ProbeImages`, a tensor (N, C, H, W) or an iterable of batches, each
    checked (float, finite) and cast to ``dtype`` (the model's; float64 images become float32 by default)."""
    dtype = dtype or torch.get_default_dtype()
    if hasattr(images, "batches"):
        yield from images.batches(batch_size, progress=progress, device=device)
    elif isinstance(images, torch.Tensor):
        check_image_tensor(images)
        for s in range(0, images.shape[0], batch_size):
            yield _as_input(images[s:s + batch_size], dtype, s // batch_size, checked=True).to(device)
    else:
        check_images(images, number=False)  # a list: every batch checked here, before any work
        for i, b in enumerate(images):
            yield _as_input(b, dtype, i, checked=isinstance(images, (list, tuple))).to(device)


def rank_batches(images, batch_size: int = 16, device="cpu", progress: bool | str = True,
                 dtype: torch.dtype | None = None, batches: Iterable[torch.Tensor] | None = None):
    """(batch number, index of its first image, batch) for the batches this process handles: of the batches one
    process makes (:func:`iter_batches`, or ``batches``), batch ``b`` goes to rank ``b % world_size``
    (:mod:`padlib._distributed`; alone, every batch). A ProbeImages makes only this process's images; tensors and
    iterables of batches are walked through. Progress on rank 0 only."""
    rank, size = world()
    if size > 1 and hasattr(images, "batches") and hasattr(images, "__getitem__") and isinstance(
            getattr(images, "n", None), int):
        from tqdm.auto import tqdm

        check_type("batch_size", batch_size, int)
        if batch_size < 1:
            raise PadlibError(f"batch_size must be >= 1, got {batch_size}")
        starts = range(0, images.n, batch_size)
        mine = list(shard_batches(len(starts)))
        bar = tqdm(total=sum(min(starts[b] + batch_size, images.n) - starts[b] for b in mine), unit="img",
                   desc=progress if isinstance(progress, str) else "probe images", disable=not progress or rank != 0,
                   leave=False)
        try:
            for b in mine:
                s = starts[b]
                batch = torch.stack([images[i] for i in range(s, min(s + batch_size, images.n))])
                bar.update(batch.shape[0])
                yield b, s, batch.to(device)
        finally:
            bar.close()
        return
    if batches is None:
        batches = iter_batches(images, batch_size, device, progress if rank == 0 else False, dtype)
    start = 0
    for b, batch in enumerate(batches):
        if not isinstance(batch, torch.Tensor) or batch.dim() != 4:
            raise PadlibError(f"image batches must be (N, C, H, W) tensors, got {_shown(batch)}")
        if b % size == rank:
            yield b, start, batch
        start += batch.shape[0]


def model_dtype(model) -> torch.dtype:
    """The floating dtype of a model's first floating parameter (the default dtype for parameter-free ones)."""
    p = next((p for p in model.parameters() if p.is_floating_point()), None) if isinstance(model, nn.Module) else None
    return p.dtype if p is not None else torch.get_default_dtype()


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
        for batch in iter_batches(images, batch_size, device, progress, model_dtype(model)):
            model(batch)
    return stats


def meta_forward(model: nn.Module, x: torch.Tensor):
    """``model(x)`` on meta copies of its parameters and buffers (``torch.func.functional_call``): output shapes and
    module calls at any input size, no arithmetic and no memory, and the model's own tensors untouched. ``x`` is a
    meta tensor; a model keeping plain tensors that cannot mix with meta ones raises (callers fall back)."""
    from torch.func import functional_call

    state = {k: torch.empty_like(v, device="meta") for k, v in
             list(model.named_parameters()) + list(model.named_buffers())}
    return functional_call(model, state, (x,), strict=False)


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
