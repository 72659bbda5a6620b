"""One trace of a model's convolutions: input size, structure and the BatchNorm/activation that follows each conv."""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from ._hooks import eval_mode, forward_hooks, keeps_model, meta_forward, model_device
from ._memory import check_run_memory
from .errors import PadlibError, check_type
from .models import preprocessing
from .padding import _pair, require_padded_convs

# ---------------------------------------------------------------------------------------------------------
# Whole models: one forward pass of zeros, cached per model and input size


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.GELU, nn.LeakyReLU, nn.ELU, nn.Hardtanh, nn.Sigmoid,
                nn.Tanh, nn.Mish, nn.Hardsigmoid)


_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout2d)


@dataclass
class ConvTrace:
    """What one forward pass tells about each padded conv: its input size, what feeds it, what follows it.

    ``feeding[conv]``: ('bn', BatchNorm name, activation name or None) when the conv reads a BatchNorm's
    output (possibly through one activation and pass-through modules), ('image', None, None) when it reads
    the model input, None otherwise (a residual sum, a pooling, a concatenation...). ``following[conv]``:
    the BatchNorm that consumes the conv's output directly, or None. Found by tensor identity, so it works
    whatever the module order (torchvision's Conv2dNormActivation, timm's fused BatchNormAct2d, ResNets).
    """

    sizes: dict
    feeding: dict
    following: dict


_TRACE_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


@keeps_model
def trace_convs(model: nn.Module, input_size: int | tuple | None = None) -> ConvTrace:
    """One forward pass of zeros at ``input_size`` (default: the model's own) recording :class:`ConvTrace`.

    The trace is structural (sizes and which module feeds which), so it is cached per model and input size,
    and recomputed when any submodule is replaced.
    """

    check_type("model", model, nn.Module)
    if input_size is None:
        input_size = preprocessing(model).input_size
    key = (_pair(input_size), tuple(id(m) for m in model.modules()))
    cache = _TRACE_CACHE.setdefault(model, {})
    if key not in cache:
        cache.clear()
        cache[key] = _trace_convs(model, _pair(input_size))
    return cache[key]


def _structure(model: nn.Module, input_size=None) -> ConvTrace:
    """A trace for structure only (what feeds what): any cached size will do when none is asked for."""
    if input_size is None:
        cache = _TRACE_CACHE.get(model, {})
        sig = tuple(id(m) for m in model.modules())
        for (size, key_sig), trace in cache.items():
            if key_sig == sig:
                return trace
    return trace_convs(model, input_size)


@torch.no_grad()
def _trace_convs(model: nn.Module, input_size: tuple) -> ConvTrace:

    convs = dict(require_padded_convs(model))
    h, w = input_size
    channels = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), 3)
    x = torch.empty(1, channels, h, w, device="meta")  # shapes and identities only: free at any input size
    alive, produced, conv_out = [x], {}, {}
    sizes, feeding, following = {}, {}, {}

    def hook(name, module, inputs, output):
        if not inputs or not isinstance(inputs[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            return
        inp = inputs[0]
        alive.extend((inp, output))  # keep tensors alive so that ids are not reused during the pass
        if name in convs:
            sizes[name] = tuple(inp.shape[-2:])
            feeding[name] = produced.get(id(inp)) or (("image", None, None) if inp is x else None)
            conv_out[id(output)] = name
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            src = conv_out.get(id(inp))
            if src is not None and src not in following:
                following[src] = name
            produced[id(output)] = ("bn", name, None)
        elif isinstance(module, _ACTIVATIONS):
            src = produced.get(id(inp))
            if src is not None and src[0] == "bn" and src[2] is None:
                produced[id(output)] = ("bn", src[1], name)
        elif isinstance(module, _PASS_THROUGH):
            src = produced.get(id(inp))
            if src is not None:
                produced[id(output)] = src

    names = [n for n, m in model.named_modules()
             if n and (n in convs or isinstance(m, (nn.modules.batchnorm._BatchNorm,) + _ACTIVATIONS + _PASS_THROUGH))]
    with eval_mode(model), forward_hooks(model, names, hook):  # a model in train mode keeps its BN statistics
        try:
            meta_forward(model, x)
        except Exception:  # noqa: BLE001 - a model keeping plain tensors: a real forward of zeros, if it fits
            for d in (sizes, feeding, following, produced, conv_out):
                d.clear()
            check_run_memory(model, "trace", size=max(h, w), batch_size=1, device=model_device(model))
            x = torch.zeros(1, channels, h, w, device=model_device(model))
            alive[:] = [x]
            model(x)
    missing = [n for n in convs if n not in sizes]
    if missing:
        raise PadlibError(f"padded convs {missing[:3]} did not run in a forward pass of {type(model).__name__}")
    return ConvTrace(sizes, feeding, {n: following.get(n) for n in convs})


def conv_input_sizes(model: nn.Module, input_size: int | tuple | None = None) -> dict[str, tuple[int, int]]:
    """Input (height, width) of every padded conv at the model's input size (one forward pass of zeros)."""
    return trace_convs(model, input_size).sizes

