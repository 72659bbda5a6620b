"""Interventions on a trained model and what they do to its predictions (chapter 3, our formulation).

Four interventions, each judged against the intact model on the same images:

- :func:`ablate_channels`: a context manager that replaces chosen channels (PANs from ``find_pans``, or a
  :func:`random_control` of equal size per layer) by their probe-set mean or by zero, on the whole map or
  only on the border ring where the layer reads padding. Hooks only: the model is untouched afterwards.
- :func:`swap_padding`: zero padding replaced by reflect / replicate / circular at inference (a thin
  wrapper over :func:`padlib.padding.convert_padding`, which handles timm's dynamic TF-SAME padding).
- :func:`border_sensitivity`: the content moved toward each border (vacated strip filled with the
  image's own mirrored content), prediction stability per side. Translation only: the issue's crop
  variant (re-cropping the source photograph) is not implemented.
- :func:`evaluate`: top-1 agreement with a reference, mean KL divergence, confidence change, per-class
  prediction counts and, when labels exist, top-1/top-5 accuracy; bootstrap confidence intervals over
  images with a fixed seed.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .activations import forward_hooks, iter_batches, layer_map_stats
from .data import ProbeImages, list_images
from .errors import PadlibError, ProbeDataError, check_new_folder, check_type
from .models import channels_last_inference, imagenet_classes, model_device, preprocessing
from .padding import PADDING_SCHEMES, SIDES, _pair, convert_padding, layer_pads

ABLATION_MODES = ("mean", "zero")
ABLATION_REGIONS = ("all", "border")


# ---------------------------------------------------------------------------------------------------------
# Which channels


def channel_selection(channels) -> dict[str, list[int]]:
    """Normalise a channel choice to ``{layer: sorted channels}``.

    Accepts rows of a ``find_pans`` table (columns ``layer``, ``channel``), a :func:`random_control` table
    of one control, a list of ``(layer, channel)`` pairs, or a dict ``{layer: [channels]}``. A whole
    ``find_pans`` table (with non-PAN rows) is refused: pass ``table[table.is_pan]``.
    """
    if isinstance(channels, pd.DataFrame):
        missing = {"layer", "channel"} - set(channels.columns)
        if missing:
            raise PadlibError(f"channel table needs columns 'layer' and 'channel' (missing {sorted(missing)})")
        if "is_pan" in channels.columns and not channels["is_pan"].astype(bool).all():
            raise PadlibError(
                f"the table has {int((~channels['is_pan'].astype(bool)).sum())} non-PAN rows: pass the rows to "
                "ablate, e.g. pans[pans.is_pan]"
            )
        if "control" in channels.columns and channels["control"].nunique() > 1:
            raise PadlibError("the table holds several random controls: pass one, e.g. controls[controls.control == 0]")
        pairs = list(zip(channels["layer"], channels["channel"]))
    elif isinstance(channels, dict):
        pairs = [(layer, c) for layer, cs in channels.items() for c in cs]
    elif isinstance(channels, (list, tuple)):
        pairs = list(channels)
    else:
        raise PadlibError(
            f"channels must be a find_pans table, a list of (layer, channel) pairs or a dict, got {type(channels).__name__}"
        )
    out: dict[str, set] = {}
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
            raise PadlibError(f"each channel must be a (layer name, channel index) pair, got {pair!r}")
        layer, c = pair
        check_type("layer name", layer, str)
        if isinstance(c, (np.integer,)):
            c = int(c)
        check_type("channel index", c, int)
        if c < 0:
            raise PadlibError(f"channel index must be >= 0, got {c} for layer '{layer}'")
        out.setdefault(layer, set()).add(c)
    return {layer: sorted(cs) for layer, cs in out.items()}


def _n_channels(module: nn.Module) -> int | None:
    for attr in ("out_channels", "num_features"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    return None


def random_control(pans, model: nn.Module | None = None, k: int = 5, seed: int = 0) -> pd.DataFrame:
    """``k`` random channel sets, each with as many channels per layer as ``pans``, drawn from the non-PAN
    channels of the same layers (without replacement). Returns a tidy table: control, layer, channel.

    ``pans`` is a whole ``find_pans`` table (its ``is_pan`` column marks the PANs; the other rows are the
    pool), or PAN rows / (layer, channel) pairs together with ``model`` (the pool is every other output
    channel of the layer). Deterministic for a given ``seed``.
    """
    check_type("k", k, int)
    check_type("seed", seed, int)
    if k < 1:
        raise PadlibError(f"k (number of random controls) must be >= 1, got {k}")
    if isinstance(pans, pd.DataFrame) and "is_pan" in pans.columns and not pans["is_pan"].astype(bool).all():
        is_pan = pans["is_pan"].astype(bool)
        chosen = channel_selection(pans[is_pan][["layer", "channel"]])
        pool = {layer: sorted(set(pans.loc[(~is_pan) & (pans["layer"] == layer), "channel"].astype(int)) - set(cs))
                for layer, cs in chosen.items()}
    else:
        chosen = channel_selection(pans)
        if model is None:
            raise PadlibError("random_control needs the model (to know each layer's channels) unless pans is a "
                              "whole find_pans table with an is_pan column")
        modules = dict(model.named_modules())
        pool = {}
        for layer, cs in chosen.items():
            if layer not in modules or _n_channels(modules[layer]) is None:
                raise PadlibError(f"no conv or norm layer named '{layer}' in {type(model).__name__}")
            pool[layer] = sorted(set(range(_n_channels(modules[layer]))) - set(cs))
    rng = np.random.default_rng(seed)
    rows = []
    for control in range(k):
        for layer in sorted(chosen):
            need, have = len(chosen[layer]), pool[layer]
            if need > len(have):
                warnings.warn(f"layer '{layer}' has {need} PANs but only {len(have)} other channels: its random "
                              "control is smaller than the PAN set", stacklevel=2)
            picked = rng.choice(np.asarray(have, dtype=int), size=min(need, len(have)), replace=False) if have else []
            rows += [{"control": control, "layer": layer, "channel": int(c)} for c in sorted(picked)]
    return pd.DataFrame(rows, columns=["control", "layer", "channel"])


# ---------------------------------------------------------------------------------------------------------
# Where padding acts: the border ring of a conv's output


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


def _interior_mask(hw, ring: dict[str, int]) -> torch.Tensor:
    """Positions at distance >= margin from every border, margin = max(ceil(min(H, W) / 8), widest ring, 1)
    as in the PAN scanner's interior (the whole map if that leaves nothing)."""
    h, w = hw
    m = max(1, math.ceil(min(h, w) / 8), max(ring.values()))
    mask = torch.zeros(h, w, dtype=torch.bool)
    if h > 2 * m and w > 2 * m:
        mask[m:h - m, m:w - m] = True
    else:
        mask[:] = True
    return mask


@torch.no_grad()
def channel_means(model: nn.Module, images, layers, ring: int | None = None, batch_size: int = 8,
                  device=None, progress: bool | str = False) -> dict[str, torch.Tensor]:
    """Per layer, each output channel's probe-set mean over images and interior positions, (C,) float64.

    The interior is the PAN scanner's (distance >= max(ceil(min(H, W) / 8), padding ring) from every border),
    so the mean is the channel's typical value away from padding: replacing the border by it erases the
    border response. Streamed with
    :func:`padlib.activations.layer_map_stats` (memory flat in the number of images).
    """
    layers = list(layers)
    device = device if device is not None else model_device(model)

    def interior_mean(name, module, inputs, output):
        mask = _interior_mask(output.shape[-2:], _ring_for(module, inputs[0].shape[-2:], ring)).to(output.device)
        return output[..., mask].mean(-1)  # (N, C)

    stats = layer_map_stats(model, images, layers, batch_size=batch_size, device=device,
                            progress=progress, transform=interior_mean)
    return {layer: stats[layer].mean for layer in layers}


# ---------------------------------------------------------------------------------------------------------
# The pre-activation: a conv's output as the BatchNorm that consumes it turns it into the non-linearity's input


@torch.no_grad()
def consuming_norms(model: nn.Module, layers, size: int | None = None) -> dict[str, str]:
    """Per layer, the name of the BatchNorm that directly consumes its output ('' when none).

    Found by tensor identity on one dummy forward (as the PAN scanner does), so it works for torchvision's
    ``Conv2dNormActivation`` and timm's fused ``BatchNormAct2d`` alike.
    """
    layers = list(layers)
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None or not bns:
        return {layer: "" for layer in layers}
    size = size or getattr(getattr(model, "padlib_preprocessing", None), "input_size", 64)
    produced, follows = {}, {}

    def on_layer(name, module, inputs, output):
        produced[id(output)] = (name, output)

    def on_bn(name, module, inputs, output):
        hit = produced.get(id(inputs[0]))
        if hit is not None and hit[1] is inputs[0]:
            follows.setdefault(hit[0], name)

    was_training = model.training
    model.eval()
    try:
        with forward_hooks(model, layers, on_layer), forward_hooks(model, list(bns), on_bn):
            model(torch.zeros(1, first.in_channels, size, size, device=model_device(model)))
    finally:
        model.train(was_training)
    return {layer: follows.get(layer, "") for layer in layers}


def preactivation_zero(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Per channel, the input value that an eval-mode BatchNorm maps to 0 (0 where the BN ignores its input
    or keeps no running statistics)."""
    w = bn.weight.detach().double() if bn.weight is not None else torch.ones(bn.num_features, dtype=torch.float64)
    b = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(w)
    if bn.running_var is None:
        return torch.zeros_like(w)
    scale = w / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    shift = b - bn.running_mean.detach().double() * scale
    return torch.where(scale != 0, -shift / torch.where(scale != 0, scale, torch.ones_like(scale)), torch.zeros_like(w))


def _bn_affine(bn) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), float64, of an eval-mode BatchNorm as an affine map per channel (identity for None)."""
    if bn is None:
        return None, None
    w = bn.weight.detach().double() if bn.weight is not None else torch.ones(bn.num_features, dtype=torch.float64)
    b = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(w)
    if bn.running_var is None:
        return torch.ones_like(w), torch.zeros_like(w)
    scale = w / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    return scale, b - bn.running_mean.detach().double() * scale


def _table_norms(table: pd.DataFrame) -> dict[str, str]:
    if "bn" not in table.columns:
        raise PadlibError("the table has no 'bn' column: pass a find_pans table")
    return dict(zip(table["layer"], table["bn"].fillna("").astype(str)))


def means_from_scan(table: pd.DataFrame, model: nn.Module, layers=None) -> dict[str, torch.Tensor]:
    """The probe-set interior means of :func:`channel_means`, read from a ``find_pans`` table instead of a
    second pass over the probe images.

    The scanner records each channel's interior mean in the pre-activation (``interior_mean``: the conv
    output through the BatchNorm that consumes it, over the same interior as :func:`channel_means`); the
    eval-mode BN is affine, so the conv-output mean is ``(interior_mean - shift) / scale``. A channel the BN
    ignores (``scale == 0``) is constant after it, and gets the value the BN maps to 0.
    """
    check_type("table", table, pd.DataFrame)
    missing = {"layer", "channel", "interior_mean", "bn"} - set(table.columns)
    if missing:
        raise PadlibError(f"means_from_scan needs a find_pans table (missing columns {sorted(missing)})")
    modules = dict(model.named_modules())
    layers = sorted(set(table["layer"])) if layers is None else list(layers)
    out = {}
    for layer in layers:
        rows = table[table["layer"] == layer].sort_values("channel")
        if rows.empty:
            raise PadlibError(f"layer '{layer}' is not in the PAN table")
        n = _n_channels(modules[layer]) if layer in modules else None
        if n is None or len(rows) != n or list(rows["channel"]) != list(range(n)):
            raise PadlibError(f"the PAN table does not hold every channel of layer '{layer}' (a whole find_pans table "
                              "of this model is needed)")
        pre = torch.as_tensor(rows["interior_mean"].to_numpy(dtype=np.float64))
        bn_name = str(rows["bn"].iloc[0] or "")
        if not bn_name:
            out[layer] = pre
            continue
        scale, shift = _bn_affine(modules[bn_name])
        safe = torch.where(scale != 0, scale, torch.ones_like(scale))
        out[layer] = torch.where(scale != 0, (pre - shift) / safe, preactivation_zero(modules[bn_name]))
    return out


@dataclass
class Perturbations:
    """How large each ablation is where it acts, measured on the intact model (see :func:`ablation_perturbations`).

    ``per_channel[(mode, region)][layer]``: (N images, C channels) mean over the map of the squared change
    the ablation makes to the channel's pre-activation, in units of the channel's interior variance
    (zero outside the region). ``logits``: the intact model's logits from the same forward.
    """

    per_channel: dict
    logits: torch.Tensor | None = None

    def size(self, channels, mode: str, region: str) -> np.ndarray:
        """Per image, the mean over the chosen channels of their squared change (interior-std units)."""
        selection = channel_selection(channels)
        table = self.per_channel.get((mode, region))
        if table is None:
            raise PadlibError(f"no perturbation measured for {mode}/{region}")
        parts = []
        for layer, cs in selection.items():
            if layer not in table:
                raise PadlibError(f"no perturbation measured for layer '{layer}'")
            parts.append(table[layer][:, cs])
        if not parts:
            n = len(self.logits) if self.logits is not None else 0
            return np.zeros(n)
        return np.concatenate(parts, axis=1).mean(1)


@torch.no_grad()
def ablation_perturbations(model: nn.Module, images, table: pd.DataFrame, means=None, layers=None,
                           ring: int | None = None, space: str = "preact", std_floor: float = 0.1,
                           batch_size: int = 8, device=None, progress: bool | str = False) -> Perturbations:
    """The size of every ablation of :func:`ablate_channels`, per image and channel, from one forward of the
    intact model (whose logits come back too, so this forward doubles as the reference).

    An ablation that changes its channels more perturbs the network more whatever the channels encode: mean
    ablation of a PAN removes its border response on top of its ordinary spatial variation, so it is a
    larger intervention than the same ablation of a random channel. To compare like with like, the change
    at each ablated channel is measured directly: d = the replaced pre-activation minus the intact one
    (mode 'mean': the probe-set mean minus the activation; 'zero' in ``space='preact'``: minus the
    pre-activation; in ``space='output'``: minus the BN-scaled conv output), squared, averaged over the
    map (positions outside the region count as 0), in units of the channel's interior variance from the
    scan (``interior_std`` of the ``find_pans`` table, at least ``std_floor`` times the layer's median so
    that near-dead channels do not explode). Measured on the intact network: a channel's change does not
    include what ablations upstream do to its input; that knock-on effect is what KL measures. For small
    changes KL grows with the square of the change, so KL per unit of this mean squared change is the
    natural size-adjusted disruption. ``table``: the model's whole ``find_pans`` table; ``means``: conv-output
    means (:func:`means_from_scan`); ``layers``: which layers to measure (default: every layer of ``table``).
    """
    check_type("model", model, nn.Module)
    if space not in ("preact", "output"):
        raise PadlibError(f"space must be 'preact' or 'output', got {space!r}")
    missing = {"layer", "channel", "interior_std", "bn"} - set(table.columns)
    if missing:
        raise PadlibError(f"ablation_perturbations needs a find_pans table (missing columns {sorted(missing)})")
    layers = sorted(set(table["layer"])) if layers is None else list(layers)
    device = device if device is not None else model_device(model)
    modules = dict(model.named_modules())
    norms = _table_norms(table)
    affine, inv_var = {}, {}
    for layer in layers:
        rows = table[table["layer"] == layer].sort_values("channel")
        if layer not in modules or rows.empty:
            raise PadlibError(f"layer '{layer}' is not in the model and its PAN table")
        std = torch.as_tensor(rows["interior_std"].to_numpy(dtype=np.float64))
        live = std[std > 0]
        floor = std_floor * float(live.median()) if len(live) else 1.0
        inv_var[layer] = 1.0 / torch.maximum(std, torch.full_like(std, max(floor, 1e-12))).square()
        scale, shift = _bn_affine(modules[norms[layer]]) if norms.get(layer) else (None, None)
        if scale is None:
            scale, shift = torch.ones_like(std), torch.zeros_like(std)
        affine[layer] = (scale, shift)
    keys = [(m, r) for m in ABLATION_MODES for r in ABLATION_REGIONS if m != "mean" or means is not None]
    acc: dict = {key: {layer: [] for layer in layers} for key in keys}

    def measure(name, module, inputs, output):
        a = output.detach().float()
        scale, shift = (t.to(a.device, torch.float32).view(-1, 1, 1) for t in affine[name])
        w = inv_var[name].to(a.device, torch.float32).view(-1, 1, 1)
        hw = a.shape[-2] * a.shape[-1]
        mask = ring_mask(a.shape[-2:], _ring_for(module, inputs[0].shape[-2:], ring), a.device)
        changes = {"zero": (a * scale + shift) if space == "preact" else a * scale}
        if means is not None:
            changes["mean"] = (a - means[name].to(a.device, torch.float32).view(-1, 1, 1)) * scale
        for mode, d in changes.items():
            sq = d.square_().mul_(w)
            acc[(mode, "all")][name].append(sq.mean((2, 3)).double().cpu())
            acc[(mode, "border")][name].append((sq[..., mask].sum(-1) / hw).double().cpu())

    if means is not None:
        absent = [layer for layer in layers if layer not in means]
        if absent:
            raise PadlibError(f"means has no entry for layer(s) {absent[:3]}")
    with forward_hooks(model, layers, measure):
        logits = model_logits(model, images, batch_size, device, progress)
    per_channel = {key: {layer: torch.cat(parts).numpy() for layer, parts in by_layer.items() if parts}
                   for key, by_layer in acc.items()}
    return Perturbations(per_channel, logits)


# ---------------------------------------------------------------------------------------------------------
# Ablation


@contextlib.contextmanager
def ablate_channels(model: nn.Module, channels, mode: str = "mean", region: str = "all", means=None,
                    images=None, ring: int | None = None, space: str = "preact", norms: dict | None = None,
                    batch_size: int = 8, progress: bool | str = False):
    """Within the ``with`` block, the chosen channels are replaced by their probe-set mean or by zero.

    ``channels``: see :func:`channel_selection`. The hook sits on the output of the module named in
    ``layer`` (for ``find_pans`` rows: the conv). Why ``space="preact"`` is the default: our PAN definition
    (our PAN formulation: "record the layer's output before the non-linearity") makes ``find_pans`` measure the
    *pre-activation*, i.e. the conv output after the BatchNorm that consumes it, so a PAN's border response
    lives there. ``mode="zero"`` with ``space="preact"`` sets that pre-activation to 0 (the conv output is set
    to the value the BN maps to 0), so zero-ablating every channel of a conv equals zeroing its BN's output;
    ``space="output"`` zeroes the module's own output instead (after a BN that is the BN's shift, not 0). ``mode="mean"`` uses :func:`channel_means` (pass ``means`` to
    reuse them, or ``images`` to compute them now); an eval-mode BN is affine, so the mean is the same in
    both spaces. ``region="all"`` replaces the whole map, ``"border"`` only the ring where the layer reads
    padding (``ring=None``: from the layer's geometry at the actual input size) or a ring of ``ring``
    pixels. Only forward hooks are added; they are removed on exit, whatever happens, so the model is
    restored bit for bit. ``norms`` ({layer: BN name}, from :func:`consuming_norms`) saves the dummy
    forward that finds the BNs when a table without a ``bn`` column is given. Yields the model.
    """
    check_type("model", model, nn.Module)
    if mode not in ABLATION_MODES:
        raise PadlibError(f"mode must be one of {ABLATION_MODES}, got {mode!r}")
    if region not in ABLATION_REGIONS:
        raise PadlibError(f"region must be one of {ABLATION_REGIONS}, got {region!r}")
    if space not in ("preact", "output"):
        raise PadlibError(f"space must be 'preact' or 'output', got {space!r}")
    selection = channel_selection(channels)
    modules = dict(model.named_modules())
    for layer, cs in selection.items():
        if layer not in modules:
            raise PadlibError(f"no layer named '{layer}' in {type(model).__name__} (channels from another model?)")
        n = _n_channels(modules[layer])
        if n is not None and cs[-1] >= n:
            raise PadlibError(f"channel {cs[-1]} out of range for layer '{layer}' with {n} channels")
    if not selection:
        yield model
        return
    if mode == "mean":
        if means is None:
            if images is None:
                raise PadlibError("mode='mean' needs the probe-set means: pass means=channel_means(...) or images=")
            means = channel_means(model, images, list(selection), ring=ring, batch_size=batch_size, progress=progress)
        missing = [layer for layer in selection if layer not in means]
        if missing:
            raise PadlibError(f"means has no entry for layer(s) {missing[:3]}; compute channel_means for them")
    index = {layer: torch.tensor(cs) for layer, cs in selection.items()}
    values = {}
    if mode == "mean":
        values = {layer: means[layer][index[layer]] for layer in selection}
    else:
        if space == "output":
            norms = {}
        elif isinstance(channels, pd.DataFrame) and "bn" in channels.columns:
            norms = dict(zip(channels["layer"], channels["bn"].fillna("")))
        elif norms is None or any(layer not in norms for layer in selection):
            norms = consuming_norms(model, list(selection))
        for layer, cs in index.items():
            values[layer] = (preactivation_zero(modules[norms[layer]])[cs] if norms.get(layer)
                             else torch.zeros(len(cs), dtype=torch.float64))

    def channel_mask_and_values(layer, n):
        """(channel mask, value per channel) over ``n`` channels, so that one broadcast torch.where does the work."""
        chosen = torch.zeros(n, dtype=torch.bool)
        chosen[index[layer]] = True
        value = torch.zeros(n, dtype=torch.float64)
        value[index[layer]] = values[layer].double()
        return chosen, value

    full = {layer: channel_mask_and_values(layer, _n_channels(modules[layer]) or int(idx.max()) + 1)
            for layer, idx in index.items()}

    def replace(name, module, inputs, output):
        chosen, value = full[name]
        c = output.shape[1]
        if chosen.numel() != c:  # a module without out_channels / num_features: size from its output
            chosen, value = full[name] = channel_mask_and_values(name, c)
        mask = chosen.to(output.device).view(1, c, 1, 1)
        if region == "border":
            ring_hw = ring_mask(output.shape[-2:], _ring_for(module, inputs[0].shape[-2:], ring), output.device)
            mask = mask & ring_hw.view(1, 1, *ring_hw.shape)
        return torch.where(mask, value.to(device=output.device, dtype=output.dtype).view(1, c, 1, 1), output)

    with forward_hooks(model, list(selection), replace):
        yield model


def swap_padding(model: nn.Module, mode: str) -> nn.Module:
    """A new model whose padded convs pad with ``mode`` ('reflect', 'replicate', 'circular', 'zero' or a
    registered scheme) instead, at inference: same weights (copied), the original untouched.

    A thin wrapper over :func:`padlib.padding.convert_padding` (which keeps timm's dynamic TF-SAME amounts).
    """
    check_type("model", model, nn.Module)
    check_type("mode", mode, str)
    if mode not in PADDING_SCHEMES:
        raise PadlibError(f"unknown padding mode '{mode}'; available: {', '.join(PADDING_SCHEMES)}")
    swapped = convert_padding(model, mode)
    swapped.padlib_padding = mode
    return swapped


# ---------------------------------------------------------------------------------------------------------
# Labelled image folders (ImageNet validation arranged by class, or any class-per-folder layout)


@dataclass
class LabelledImages(ProbeImages):
    """A :class:`~padlib.data.ProbeImages` (centre crops of files) that also knows each image's class index."""

    labels: list = field(default_factory=list)
    class_names: list = field(default_factory=list)


def read_class_index(path: str) -> dict[str, int]:
    """A class-index mapping file -> ``{folder name: class index}``.

    Accepted: JSON ``{"0": ["n01440764", "tench"], ...}`` (Keras' imagenet_class_index.json) or
    ``{"folder": index}``; or a text file with one class per line, first token the folder name (e.g.
    ``LOC_synset_mapping.txt``: "n01440764 tench, Tinca tinca"), the line number the index unless the
    second token is an integer.
    """
    check_type("class index file", path, (str, os.PathLike))
    if not os.path.isfile(path):
        raise ProbeDataError(f"class index file '{path}' does not exist")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    mapping: dict[str, int] = {}
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProbeDataError(f"class index file '{path}' is not valid JSON: {e}") from None
        for key, value in data.items():
            if isinstance(value, (list, tuple)) and str(key).lstrip("-").isdigit():
                mapping[str(value[0])] = int(key)
                if len(value) > 1:
                    mapping.setdefault(str(value[1]), int(key))
            elif isinstance(value, int):
                mapping[str(key)] = value
            else:
                raise ProbeDataError(f"class index file '{path}': cannot read entry {key!r}: {value!r}")
    else:
        for i, line in enumerate(l for l in text.splitlines() if l.strip()):
            tokens = line.replace(",", " ").split()
            mapping[tokens[0]] = int(tokens[1]) if len(tokens) > 1 and tokens[1].isdigit() else i
    if not mapping:
        raise ProbeDataError(f"class index file '{path}' has no entries")
    return mapping


def labelled_images(folder: str, class_index: str | dict | None = None, n: int | None = None, model=None,
                    size: int | None = None, seed: int = 0) -> LabelledImages:
    """Images arranged one folder per class (``folder/<class>/<image>``) with their class indices.

    ``class_index`` maps folder names to model class indices: a mapping file (see :func:`read_class_index`)
    or a dict. Without it, folder names that are integers or ImageNet class names are understood. ``n``
    keeps a seeded random subset. Each image is resized and centre-cropped as the model expects.
    """
    paths = list_images(folder)
    if isinstance(class_index, (str, os.PathLike)):
        class_index = read_class_index(os.fspath(class_index))
    names = imagenet_classes()
    by_name = {c: i for i, c in enumerate(names)}
    labels, kept, unknown = [], [], set()
    for p in paths:
        rel = os.path.relpath(p, folder)
        cls = rel.split(os.sep)[0] if os.sep in rel else None
        if cls is None:
            raise ProbeDataError(f"'{rel}' is not inside a class folder: arrange images as {folder}/<class>/<image>")
        if class_index is not None:
            idx = class_index.get(cls)
        elif cls.isdigit():
            idx = int(cls)
        else:
            idx = by_name.get(cls, by_name.get(cls.replace("_", " ")))
        if idx is None:
            unknown.add(cls)
            continue
        labels.append(int(idx))
        kept.append(p)
    if unknown:
        raise ProbeDataError(
            f"{len(unknown)} class folder(s) have no class index (e.g. {sorted(unknown)[:3]}): pass class_index= "
            "a mapping file (imagenet_class_index.json or LOC_synset_mapping.txt) or name folders by class index"
        )
    if n is not None:
        check_type("n", n, int)
        if n < len(kept):
            pick = np.sort(np.random.default_rng(seed).choice(len(kept), n, replace=False))
            kept, labels = [kept[i] for i in pick], [labels[i] for i in pick]
    prep = preprocessing(model) if model is not None else preprocessing("mobilenet_v2")
    return LabelledImages(kept, [os.path.relpath(p, folder) for p in kept], len(kept), size or prep.input_size, prep,
                          seed, "center", labels=labels, class_names=names)


# ---------------------------------------------------------------------------------------------------------
# Evaluation


@torch.no_grad()
def model_logits(model: nn.Module, images, batch_size: int = 8, device=None, progress: bool | str = False) -> torch.Tensor:
    """Logits (N, K) on the CPU, float32, for a ProbeImages set, a tensor (N, 3, H, W) or batches.

    A fixed batch size keeps CPU kernels warm (the first call at a new batch shape is slow).
    """
    check_type("model", model, nn.Module)
    device = device if device is not None else model_device(model)
    out = [model(b).float().cpu() for b in iter_batches(images, batch_size, device, progress)]
    if not out:
        raise ProbeDataError("no images to evaluate")
    return torch.cat(out)


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-image ``values`` (resampling images)."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, v.size, size=(n_boot, v.size))
    boots = v[idx].mean(1)
    a = (1 - ci) / 2
    return float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


@dataclass
class Evaluation:
    """What an intervention did: ``summary`` (metric, value, ci_low, ci_high, n), ``per_image`` values,
    ``class_counts`` (per class: predictions and probability mass, with the reference's) and ``logits``."""

    summary: pd.DataFrame
    per_image: pd.DataFrame
    class_counts: pd.DataFrame
    logits: torch.Tensor

    def value(self, metric: str) -> float:
        row = self.summary[self.summary["metric"] == metric]
        if row.empty:
            raise PadlibError(f"no metric '{metric}'; available: {', '.join(self.summary['metric'])}")
        return float(row["value"].iloc[0])


PER_IMAGE_METRICS = ("confidence", "agreement", "kl", "confidence_change", "top1_accuracy", "top5_accuracy",
                     "reference_top1_accuracy")


def compare_logits(logits: torch.Tensor, reference: torch.Tensor | None = None, labels=None, n_boot: int = 1000,
                   seed: int = 0, ci: float = 0.95, class_names=None) -> Evaluation:
    """The metrics of :func:`evaluate` from logits already computed (so one reference serves many runs)."""
    logp = F.log_softmax(logits.double(), -1)
    p = logp.exp()
    conf, top1 = p.max(-1)
    n, k = p.shape
    names = class_names or (imagenet_classes() if k == 1000 else [str(i) for i in range(k)])
    per = {"image": np.arange(n), "top1": top1.numpy(), "top1_name": [names[i] for i in top1.tolist()],
           "confidence": conf.numpy()}
    ref_p = None
    if reference is not None:
        if tuple(reference.shape) != (n, k):
            raise PadlibError(f"reference logits have shape {tuple(reference.shape)}, the model's {(n, k)}: "
                              "evaluate both on the same images")
        ref_logp = F.log_softmax(reference.double(), -1)
        ref_p = ref_logp.exp()
        ref_conf, ref_top1 = ref_p.max(-1)
        per.update({
            "reference_top1": ref_top1.numpy(),
            "agreement": (top1 == ref_top1).double().numpy(),
            "kl": (ref_p * (ref_logp - logp)).sum(-1).clamp_min(0).numpy(),
            "confidence_change": (conf - ref_conf).numpy(),
        })
    if labels is not None:
        lab = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if lab.shape != (n,):
            raise PadlibError(f"{lab.numel()} labels for {n} images")
        top5 = p.topk(min(5, k), -1).indices
        per.update({"label": lab.numpy(), "top1_accuracy": (top1 == lab).double().numpy(),
                    "top5_accuracy": (top5 == lab[:, None]).any(-1).double().numpy()})
        if ref_p is not None:
            per["reference_top1_accuracy"] = (ref_p.argmax(-1) == lab).double().numpy()
    per_image = pd.DataFrame(per)
    rows = []
    for i, metric in enumerate(m for m in PER_IMAGE_METRICS if m in per_image):
        lo, hi = bootstrap_ci(per_image[metric], n_boot, seed, ci)
        rows.append({"metric": metric, "value": float(per_image[metric].mean()), "ci_low": lo, "ci_high": hi, "n": n})
    summary = pd.DataFrame(rows, columns=["metric", "value", "ci_low", "ci_high", "n"])
    counts = np.bincount(top1.numpy(), minlength=k)
    classes = pd.DataFrame({"class_index": np.arange(k), "class_name": names, "count": counts,
                            "prob_mass": p.sum(0).numpy()})
    if ref_p is not None:
        classes["reference_count"] = np.bincount(ref_p.argmax(-1).numpy(), minlength=k)
        classes["reference_prob_mass"] = ref_p.sum(0).numpy()
        classes["count_change"] = classes["count"] - classes["reference_count"]
        classes["prob_mass_change"] = classes["prob_mass"] - classes["reference_prob_mass"]
    return Evaluation(summary, per_image, classes, logits)


def evaluate(model: nn.Module, images, reference=None, labels=None, batch_size: int = 8, device=None,
             n_boot: int = 1000, seed: int = 0, ci: float = 0.95, progress: bool | str = False) -> Evaluation:
    """How ``model`` predicts on ``images``, against a ``reference`` and/or labels.

    ``images``: a ProbeImages / :func:`labelled_images` set, a normalised tensor, or the path of a folder
    arranged by class (then ``labels`` may be its class-index mapping file or dict). ``reference``: a model
    (run on the same images), an :class:`Evaluation` or logits (N, K) computed before (the intact model's,
    reused across interventions). ``labels``: class indices, or taken from a labelled set. Metrics:
    confidence (mean top-1 probability); with a reference, top-1 agreement, mean KL(reference || model) and
    confidence change; with labels, top-1/top-5 accuracy. Each with a seeded percentile bootstrap interval
    over images.
    """
    if isinstance(images, (str, os.PathLike)):
        mapping = labels if isinstance(labels, (str, os.PathLike, dict)) else None
        images = labelled_images(images, mapping, model=model)
        labels = None if mapping is not None else labels
    if labels is None:
        labels = getattr(images, "labels", None) or None
    logits = model_logits(model, images, batch_size, device, progress)
    if isinstance(reference, nn.Module):
        reference = model_logits(reference, images, batch_size, device, progress)
    elif isinstance(reference, Evaluation):
        reference = reference.logits
    elif reference is not None:
        check_type("reference", reference, (nn.Module, Evaluation, torch.Tensor))
    return compare_logits(logits, reference, labels, n_boot, seed, ci)


# ---------------------------------------------------------------------------------------------------------
# Studies: many interventions, one tidy table


def _tidy(evaluations: dict, keys: tuple[str, ...]) -> pd.DataFrame:
    frames = []
    for key, ev in evaluations.items():
        key = key if isinstance(key, tuple) else (key,)
        frames.append(ev.summary.assign(**dict(zip(keys, key))))
    if not frames:
        return pd.DataFrame(columns=list(keys) + ["metric", "value", "ci_low", "ci_high", "n"])
    return pd.concat(frames, ignore_index=True)[list(keys) + ["metric", "value", "ci_low", "ci_high", "n"]]


@dataclass
class AblationStudy:
    """PAN ablation against random controls: ``summary`` (one row per run and metric), ``evaluations``
    keyed by (channels, control, mode, region), and the PAN-vs-control ``comparison``."""

    summary: pd.DataFrame
    evaluations: dict
    comparison: pd.DataFrame


def pan_ablation(model: nn.Module, images, pans, controls: pd.DataFrame | None = None, modes=ABLATION_MODES,
                 regions=ABLATION_REGIONS, means=None, reference=None, labels=None, batch_size: int = 8,
                 n_boot: int = 1000, seed: int = 0, progress: bool = True, norms: dict | None = None,
                 perturbations: Perturbations | None = None) -> AblationStudy:
    """Ablate the PANs, and each random control of equal size, under every mode and region.

    ``pans``: the PAN rows (or pairs); ``controls``: a :func:`random_control` table. ``means`` (from
    :func:`channel_means` over every layer involved) and ``reference`` logits are reused when given. The
    comparison gives, per mode, region and metric, the PAN value, the controls' mean and range, the paired
    difference PAN - mean of controls with a bootstrap interval over images, and how many controls the
    PAN ablation exceeds. With ``perturbations`` (:func:`ablation_perturbations`) every run also gets the
    metric 'perturbation' (the size of the ablation where it acts) and the comparison a row
    'kl_per_perturbation' (mean KL / mean perturbation: the disruption per unit of intervention size).
    ``norms``: {layer: BN name} (e.g. from the table's ``bn`` column), saving the dummy forward.
    """
    from tqdm.auto import tqdm

    if labels is None:
        labels = getattr(images, "labels", None) or None
    if reference is None:
        reference = model_logits(model, images, batch_size)
    elif isinstance(reference, Evaluation):
        reference = reference.logits
    sets = [("PANs", -1, channel_selection(pans))]
    if controls is not None and len(controls):
        sets += [("random", int(c), channel_selection(g[["layer", "channel"]])) for c, g in controls.groupby("control")]
    layers = sorted({layer for _, _, sel in sets for layer in sel})
    if "mean" in modes and means is None:
        means = channel_means(model, images, layers, batch_size=batch_size) if layers else {}
    if norms is None or any(layer not in norms for layer in layers):
        norms = consuming_norms(model, layers) if "zero" in modes and layers else {}
    runs = [(s, m, r) for s in sets for m in modes for r in regions]
    evaluations = {}
    for (kind, control, sel), mode, region in tqdm(runs, desc="ablations", disable=not progress, leave=False):
        with ablate_channels(model, sel, mode, region, means=means, norms=norms):
            logits = model_logits(model, images, batch_size)
        ev = compare_logits(logits, reference, labels, n_boot, seed)
        if perturbations is not None:
            _add_metric(ev, "perturbation", perturbations.size(sel, mode, region), n_boot, seed)
        evaluations[(kind, control, mode, region)] = ev
    summary = _tidy(evaluations, ("channels", "control", "mode", "region"))
    sizes = {(kind, control): sum(map(len, sel.values())) for kind, control, sel in sets}
    summary["n_channels"] = [sizes[k] for k in zip(summary["channels"], summary["control"])]
    return AblationStudy(summary, evaluations, _pan_vs_controls(evaluations, n_boot, seed))


def _add_metric(ev: Evaluation, metric: str, values, n_boot: int, seed: int) -> None:
    """Attach a per-image metric (and its summary row with a bootstrap interval) to an evaluation."""
    v = np.asarray(values, dtype=float)
    ev.per_image[metric] = v
    lo, hi = bootstrap_ci(v, n_boot, seed)
    row = pd.DataFrame([{"metric": metric, "value": float(v.mean()), "ci_low": lo, "ci_high": hi, "n": len(v)}])
    ev.summary = pd.concat([ev.summary, row], ignore_index=True)


def _ratio_of_means_row(pan: Evaluation, ctrls: list, num: str, den: str, n_boot: int, seed: int) -> dict:
    """PAN vs controls on mean(num) / mean(den), with a paired bootstrap over images of the difference
    (PAN ratio - mean of the controls' ratios)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pn, pd_ = (pan.per_image[c].to_numpy(dtype=float) for c in (num, den))
        row = {"pans": float(pn.mean() / pd_.mean()), "n_controls": len(ctrls)}
        if ctrls:
            cn = np.stack([ev.per_image[num].to_numpy(dtype=float) for ev in ctrls])
            cd = np.stack([ev.per_image[den].to_numpy(dtype=float) for ev in ctrls])
            cm = cn.mean(1) / cd.mean(1)
            idx = np.random.default_rng(seed).integers(0, len(pn), size=(n_boot, len(pn)))
            diffs = pn[idx].mean(1) / pd_[idx].mean(1) - (cn[:, idx].mean(2) / cd[:, idx].mean(2)).mean(0)
            diffs = diffs[np.isfinite(diffs)]
            lo, hi = (float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))) if len(diffs) else (np.nan, np.nan)
            row.update({"controls_mean": float(cm.mean()), "controls_min": float(cm.min()),
                        "controls_max": float(cm.max()), "difference": float(row["pans"] - cm.mean()),
                        "diff_ci_low": lo, "diff_ci_high": hi, "controls_below_pans": int((cm < row["pans"]).sum()),
                        "controls_above_pans": int((cm > row["pans"]).sum())})
    return row


def _pan_vs_controls(evaluations: dict, n_boot: int, seed: int) -> pd.DataFrame:
    rows = []
    conditions = sorted({(m, r) for (_, _, m, r) in evaluations})
    for mode, region in conditions:
        pan = evaluations.get(("PANs", -1, mode, region))
        ctrls = [ev for (kind, _, m, r), ev in evaluations.items() if kind == "random" and (m, r) == (mode, region)]
        if pan is None:
            continue
        for metric in ("agreement", "kl", "confidence_change", "top1_accuracy", "perturbation"):
            if metric not in pan.per_image:
                continue
            v = pan.per_image[metric].to_numpy()
            row = {"mode": mode, "region": region, "metric": metric, "pans": float(v.mean()),
                   "n_controls": len(ctrls)}
            if ctrls:
                c = np.stack([ev.per_image[metric].to_numpy() for ev in ctrls])
                cm = c.mean(1)
                lo, hi = bootstrap_ci(v - c.mean(0), n_boot, seed)
                row.update({"controls_mean": float(cm.mean()), "controls_min": float(cm.min()),
                            "controls_max": float(cm.max()), "difference": float(v.mean() - cm.mean()),
                            "diff_ci_low": lo, "diff_ci_high": hi,
                            "controls_below_pans": int((cm < v.mean()).sum()),
                            "controls_above_pans": int((cm > v.mean()).sum())})
            rows.append(row)
        if "perturbation" in pan.per_image and all("perturbation" in ev.per_image for ev in ctrls):
            rows.append({"mode": mode, "region": region, "metric": "kl_per_perturbation",
                         **_ratio_of_means_row(pan, ctrls, "kl", "perturbation", n_boot, seed)})
    return pd.DataFrame(rows)


def padding_interventions(model: nn.Module, images, modes=("reflect", "replicate", "circular"), reference=None,
                          labels=None, batch_size: int = 8, n_boot: int = 1000, seed: int = 0,
                          progress: bool = True) -> dict:
    """Each padding swap of :func:`swap_padding`, evaluated against the intact model: ``{mode: Evaluation}``."""
    from tqdm.auto import tqdm

    if labels is None:
        labels = getattr(images, "labels", None) or None
    if reference is None:
        reference = model_logits(model, images, batch_size)
    elif isinstance(reference, Evaluation):
        reference = reference.logits
    out = {}
    for mode in tqdm(list(modes), desc="padding swaps", disable=not progress, leave=False):
        out[mode] = compare_logits(model_logits(swap_padding(model, mode), images, batch_size), reference,
                                   labels, n_boot, seed)
    return out


def size_interventions(model: nn.Module, images: ProbeImages, sizes=(225, 223), base_size: int = 224,
                       reference=None, batch_size: int = 8, n_boot: int = 1000, seed: int = 0,
                       progress: bool = True) -> dict:
    """The same images (same crops, same files) resized to other input sizes, against ``base_size``.

    At 225 (= 1 mod 32) every stride-2 stage of these models pads evenly (Mind the Pad); 223 is an equally
    small resize that keeps uneven padding, so it controls for the resize itself. Returns
    ``{size: Evaluation}`` plus ``"reference"`` (the model at ``base_size``, with accuracy when labelled).
    ``reference`` (logits at ``base_size``) is reused when ``images`` are already at that size.
    """
    import dataclasses

    if not isinstance(images, ProbeImages):
        raise PadlibError("size_interventions needs a ProbeImages / labelled_images set (it re-renders the images "
                          "at each size), not a tensor")
    labels = getattr(images, "labels", None) or None

    def at(size):
        return dataclasses.replace(images, size=int(size))

    if reference is None or images.size != base_size:
        reference = model_logits(model, at(base_size), batch_size, progress=False)
    elif isinstance(reference, Evaluation):
        reference = reference.logits
    out = {"reference": compare_logits(reference, None, labels, n_boot, seed)}
    for size in sizes:
        out[size] = compare_logits(model_logits(model, at(size), batch_size, progress=progress and f"size {size}"),
                                   reference, labels, n_boot, seed)
    return out


def intervention_table(evaluations: dict, key: str = "intervention") -> pd.DataFrame:
    """``{name: Evaluation}`` -> one tidy table (``key``, metric, value, ci_low, ci_high, n)."""
    return _tidy({k: v for k, v in evaluations.items() if k != "reference"}, (key,))


# ---------------------------------------------------------------------------------------------------------
# Characteristic biases: which classes gain and lose predictions


def top_movers(evaluations: dict, k: int = 5, keys: tuple[str, ...] = ("model", "intervention")) -> pd.DataFrame:
    """Per intervention, the ``k`` classes that gained and lost the most top-1 predictions (ties broken by
    probability mass), with the counts before and after."""
    rows = []
    for key, ev in evaluations.items():
        key = key if isinstance(key, tuple) else (key,)
        cc = ev.class_counts
        if "count_change" not in cc:
            continue
        for direction, asc in (("gains", False), ("losses", True)):
            part = cc[(cc["count_change"] < 0) if asc else (cc["count_change"] > 0)]
            part = part.sort_values(["count_change", "prob_mass_change"], ascending=[asc, asc]).head(k)
            for rank, r in enumerate(part.itertuples(), 1):
                rows.append({**dict(zip(keys, key)), "direction": direction, "rank": rank,
                             "class_name": r.class_name, "reference_count": int(r.reference_count),
                             "count": int(r.count), "count_change": int(r.count_change),
                             "prob_mass_change": float(r.prob_mass_change)})
    return pd.DataFrame(rows, columns=list(keys) + ["direction", "rank", "class_name", "reference_count", "count",
                                                    "count_change", "prob_mass_change"])


def mover_consistency(evaluations: dict) -> pd.DataFrame:
    """Do interventions push different models toward the same classes? For each intervention, the Pearson
    correlation between two models' per-class probability-mass changes (over all classes), per model pair.

    ``evaluations`` is keyed by (model, intervention). Compare with the same figure for random controls:
    a generic 'damaged network' drift also correlates across models.
    """
    by_int: dict = {}
    for (model, intervention), ev in evaluations.items():
        if "prob_mass_change" in ev.class_counts:
            by_int.setdefault(intervention, {})[model] = ev.class_counts["prob_mass_change"].to_numpy()
    rows = []
    for intervention, vecs in by_int.items():
        names = list(vecs)
        if len(names) < 2:
            continue
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                va, vb = vecs[a], vecs[b]
                r = float(np.corrcoef(va, vb)[0, 1]) if va.std() > 0 and vb.std() > 0 else float("nan")
                rows.append({"intervention": intervention, "model_a": a, "model_b": b, "correlation": r})
    return pd.DataFrame(rows, columns=["intervention", "model_a", "model_b", "correlation"])


# ---------------------------------------------------------------------------------------------------------
# Border sensitivity


def shift_toward(x: torch.Tensor, side: str, pixels: int, fill: str = "reflect") -> torch.Tensor:
    """Move the content of (N, C, H, W) images ``pixels`` toward ``side``; the vacated strip on the opposite
    side is filled from the image itself (``reflect``: mirrored, ``replicate``, ``circular``: wrapped)."""
    if side not in SIDES:
        raise PadlibError(f"side must be one of {SIDES}, got {side!r}")
    check_type("pixels", pixels, int)
    h, w = x.shape[-2:]
    if pixels < 0 or pixels >= (h if side in ("top", "bottom") else w):
        raise PadlibError(f"cannot shift a {h}x{w} image by {pixels} pixels")
    if pixels == 0:
        return x
    # pad on the opposite side, then crop the window that moved toward `side`
    pads = {"top": (0, 0, 0, pixels), "bottom": (0, 0, pixels, 0), "left": (0, pixels, 0, 0), "right": (pixels, 0, 0, 0)}
    y = F.pad(x, pads[side], mode=fill)
    crop = {"top": y[..., pixels:, :], "bottom": y[..., :h, :], "left": y[..., :, pixels:], "right": y[..., :, :w]}
    return crop[side].contiguous()


@torch.no_grad()
def border_sensitivity(model: nn.Module, images, shifts=(16, 32), sides=SIDES, fill: str = "reflect",
                       reference=None, batch_size: int = 8, device=None, n_boot: int = 1000, seed: int = 0,
                       progress: bool | str = False) -> pd.DataFrame:
    """Prediction stability when the content moves toward each border, per side and shift.

    Translation only (:func:`shift_toward`): the strip the content vacates is filled from the image itself
    (``fill``: mirrored by default, or replicated / wrapped); there is no crop variant (re-cropping the
    source photograph), so the image never gains content it did not have.

    Each image's own (unshifted) prediction is the reference, so the figure measures stability, not
    accuracy; it can run inside :func:`ablate_channels` ("without PANs"). ``reference``: the same model's
    logits on the unshifted images when already computed (an :class:`Evaluation` or (N, K) tensor).
    Returns a tidy table: side, shift, metric (agreement, kl, confidence_change), value, ci_low, ci_high, n.
    Streams over batches.
    """
    check_type("model", model, nn.Module)
    shifts = [int(s) for s in shifts]
    device = device if device is not None else model_device(model)
    if isinstance(reference, Evaluation):
        reference = reference.logits
    per: dict = {(s, d): {"agreement": [], "kl": [], "confidence_change": []} for s in sides for d in shifts}
    start = 0
    for batch in iter_batches(images, batch_size, device, progress):
        if reference is not None:
            if start + len(batch) > len(reference):
                raise PadlibError(f"reference has logits for {len(reference)} images, fewer than the images given")
            ref_logits = reference[start:start + len(batch)].to(batch.device)
        else:
            ref_logits = model(batch)
        start += len(batch)
        ref_logp = F.log_softmax(ref_logits.double(), -1)
        ref_p = ref_logp.exp()
        ref_conf, ref_top = ref_p.max(-1)
        for side in sides:
            for d in shifts:
                logp = F.log_softmax(model(shift_toward(batch, side, d, fill)).double(), -1)
                conf, top = logp.exp().max(-1)
                acc = per[(side, d)]
                acc["agreement"].append((top == ref_top).double().cpu())
                acc["kl"].append((ref_p * (ref_logp - logp)).sum(-1).clamp_min(0).cpu())
                acc["confidence_change"].append((conf - ref_conf).cpu())
    rows = []
    for (side, d), acc in per.items():
        for metric, parts in acc.items():
            v = torch.cat(parts).numpy()
            lo, hi = bootstrap_ci(v, n_boot, seed)
            rows.append({"side": side, "shift": d, "metric": metric, "value": float(v.mean()),
                         "ci_low": lo, "ci_high": hi, "n": len(v)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# The chapter's per-model run: one PAN scan, every intervention, batch evaluations reused


@dataclass
class ModelAblation:
    """Everything chapter 3 measures on one model (see :func:`ablation_report`)."""

    model: str
    table: pd.DataFrame  # the find_pans table (every channel of every padded conv)
    controls: pd.DataFrame
    reference: Evaluation
    study: AblationStudy
    padding: dict
    sizes: dict
    border: pd.DataFrame
    n_images: int
    labelled: bool
    seconds: dict = field(default_factory=dict)
    evenness: pd.DataFrame = field(default_factory=pd.DataFrame)  # uneven padding layers per input size

    @property
    def pans(self) -> pd.DataFrame:
        return self.table[self.table.is_pan]

    def interventions(self) -> dict:
        """``{label: Evaluation}`` for every intervention: 'PANs zero/all', 'random zero/all #0', ...,
        'reflect padding', 'size 225'."""
        out = {}
        for (kind, control, mode, region), ev in self.study.evaluations.items():
            out[f"{kind} {mode}/{region}" + (f" #{control}" if kind == "random" else "")] = ev
        out.update({f"{mode} padding": ev for mode, ev in self.padding.items()})
        out.update({f"size {size}": ev for size, ev in self.sizes.items() if size != "reference"})
        return out


def ablation_report(model, n_images: int = 32, n_scan: int = 32, seed: int = 0, image_dir=None,
                    labelled_dir=None, class_index=None, n_controls: int = 5, modes=ABLATION_MODES,
                    regions=ABLATION_REGIONS, paddings=("reflect", "replicate", "circular"), sizes=(225, 223),
                    base_size: int = 224, shifts=(32,), border_ablation=("mean", "border"), size: int | None = None,
                    batch_size: int = 8, n_boot: int = 1000, device="cpu", progress: bool = True,
                    scan_options: dict | None = None, channels_last: bool = True) -> ModelAblation:
    """Chapter 3 on one model: scan PANs once, then every intervention against the intact model.

    PANs come from :func:`padlib.pans.find_pans` on ``n_scan`` probe images (seed ``seed``), whose table also
    gives the probe-set means (:func:`means_from_scan`, no second pass). The intact model's forward on the
    evaluation images is made once: it gives the reference logits and the size of every ablation
    (:func:`ablation_perturbations`). The interventions are evaluated on ``n_images`` other images: held-out random crops
    of the offline photos (seed ``seed + 1``), centre crops of ``image_dir``, or, with ``labelled_dir``, a
    labelled folder (then accuracy is reported too). Border sensitivity is measured intact, with the PANs
    ablated (``border_ablation``: mode and region; by default their border response is replaced by the
    interior mean, so the network keeps working) and with random control #0 ablated the same way.
    Each image set is rendered once and every
    evaluation reuses the intact model's logits. ``size``: the image size (default: the model's own).
    ``channels_last``: run the evaluations (after the scan, forward passes only) in channels-last memory
    format, 10-35% faster on CPU for these depthwise-conv models (:func:`padlib.models.channels_last_inference`);
    the weights' values are unchanged and the model is returned to the default format at the end.
    """
    import time

    from .data import probe_images
    from .models import load_model
    from .pans import find_pans

    seconds = {}
    t0 = time.perf_counter()
    if isinstance(model, str):
        model = load_model(model, device=device)
    name = getattr(model, "padlib_name", type(model).__name__)
    if labelled_dir:  # built first (cheap, lazy) so that a bad folder fails before the scan
        evalset = labelled_images(labelled_dir, class_index, n=n_images, model=model, size=size, seed=seed)
    else:
        evalset = probe_images(n_images, size=size, seed=seed + 1, image_dir=image_dir, model=model)
    probe = probe_images(n_scan, size=size, seed=seed, image_dir=image_dir, model=model)
    table = find_pans(model, probe, batch_size=batch_size, progress=progress, device=device, **(scan_options or {}))
    pans = table[table.is_pan]
    with warnings.catch_warnings():  # a short control is reported in report_tables' 'control_channels'
        warnings.filterwarnings("ignore", message="layer .* PANs but only")
        controls = random_control(table, k=n_controls, seed=seed)
    layers = sorted(set(pans["layer"]) | set(controls["layer"]))
    means = means_from_scan(table, model, layers) if layers else {}  # the scan's interior means: no extra pass
    norms = _table_norms(table)
    seconds["scan"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels = getattr(evalset, "labels", None) or None
    x = evalset.tensor(device=device) if len(evalset) <= 1024 else evalset
    if channels_last and isinstance(x, torch.Tensor):
        x = x.contiguous(memory_format=torch.channels_last)
    with channels_last_inference(model, channels_last):  # forward passes only, weights restored
        # one forward of the intact model gives its logits and the size of every ablation (per image, channel)
        perturbations = ablation_perturbations(model, x, table, means, layers=layers, batch_size=batch_size,
                                               device=device)
        reference = compare_logits(perturbations.logits, None, labels, n_boot, seed)
        seconds["reference"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        study = pan_ablation(model, x, pans, controls, modes, regions, means, reference.logits, labels, batch_size,
                             n_boot, seed, progress, norms=norms, perturbations=perturbations)
        seconds["ablation"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        padding = padding_interventions(model, x, paddings, reference.logits, labels, batch_size, n_boot, seed,
                                        progress)
        size_results = size_interventions(model, evalset, sizes, base_size, reference.logits, batch_size, n_boot, seed,
                                          progress) if sizes else {}
        seconds["padding"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        mode, region = border_ablation
        border = [border_sensitivity(model, x, shifts, reference=reference, batch_size=batch_size, n_boot=n_boot,
                                     seed=seed).assign(channels="intact")]
        choices = [("PANs ablated", pans, study.evaluations.get(("PANs", -1, mode, region)))]
        if len(controls):
            choices.append(("random ablated", controls[controls.control == 0],
                            study.evaluations.get(("random", 0, mode, region))))
        for label, chosen, unshifted in choices:  # the study already has these ablations' unshifted logits
            if len(chosen):
                with ablate_channels(model, chosen, mode, region, means=means, norms=norms):
                    border.append(border_sensitivity(model, x, shifts, reference=unshifted, batch_size=batch_size,
                                                     n_boot=n_boot, seed=seed).assign(channels=label))
        seconds["border"] = time.perf_counter() - t0
    return ModelAblation(name, table, controls, reference, study, padding, size_results,
                         pd.concat(border, ignore_index=True), len(evalset), labels is not None, seconds,
                         padding_evenness(model, [evalset.size, base_size, *sizes]))


def padding_evenness(model: nn.Module, sizes) -> pd.DataFrame:
    """Per input size, how many padding layers read their padding unevenly (chapter 4's traced audit)."""
    from .audit import audit_summary, padding_audit

    rows = []
    for size in dict.fromkeys(int(s) for s in sizes):
        summary = audit_summary(padding_audit(model, size))
        rows.append({"size": size, "padding_layers": summary["n_padding_layers"], "uneven": summary["n_uneven"],
                     "unread_sides": summary["unread_sides"], "extra_sides": summary["extra_sides"]})
    return pd.DataFrame(rows)


def report_tables(reports) -> dict[str, pd.DataFrame]:
    """Tidy tables over models from :func:`ablation_report` results (a dict or list).

    Keys: 'pans' (PAN and channel counts), 'ablation' (every run and metric), 'comparison' (PANs vs random),
    'interventions' (padding swaps, sizes and the PAN ablations, one row per metric), 'border', 'seconds'.
    """
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    pans, ablation, comparison, interventions, border, seconds, evenness = [], [], [], [], [], [], []
    for r in reports:
        t = r.table
        pans.append({"model": r.model, "padded_convs": t["layer"].nunique(), "channels": len(t),
                     "pans": int(t["is_pan"].sum()),
                     # the older definition's set (padding-caused alone), of which the learned PANs are a part
                     "padding_caused": int(t["padding_caused"].sum()) if "padding_caused" in t
                     else int(t["is_pan"].sum()),
                     "control_channels": int(r.controls.groupby("control").size().min()) if len(r.controls) else 0,
                     "pan_layers": r.pans["layer"].nunique(),
                     "share": float(t["is_pan"].mean()), "eval_images": r.n_images})
        ablation.append(r.study.summary.assign(model=r.model))
        comparison.append(r.study.comparison.assign(model=r.model))
        evs = {k: v for k, v in r.interventions().items() if not k.startswith("random")}
        interventions.append(intervention_table(evs).assign(model=r.model))
        border.append(r.border.assign(model=r.model))
        evenness.append(r.evenness.assign(model=r.model))
        seconds.append({"model": r.model, **{k: round(v, 1) for k, v in r.seconds.items()}})
    if reports and reports[0].labelled:
        interventions.append(pd.concat([_tidy({"intact": r.reference}, ("intervention",)).assign(model=r.model)
                                        for r in reports]))
    return {"pans": pd.DataFrame(pans), "ablation": pd.concat(ablation, ignore_index=True),
            "comparison": pd.concat(comparison, ignore_index=True),
            "interventions": pd.concat(interventions, ignore_index=True),
            "border": pd.concat(border, ignore_index=True), "seconds": pd.DataFrame(seconds),
            "evenness": pd.concat(evenness, ignore_index=True)}


_DISRUPTION = {"kl": 1, "agreement": -1, "top1_accuracy": -1, "top5_accuracy": -1, "kl_per_perturbation": 1}


def pan_set_change(pans: pd.DataFrame) -> str:
    """One sentence per model: how many of the padding-caused channels (the older PAN definition) are learned
    PANs, the set this chapter ablates (``report_tables(...)["pans"]``)."""
    lines = []
    for _, r in pans.iterrows():
        kept = 100.0 * r.pans / max(r.padding_caused, 1)
        lines.append(f"{r.model}: {r.pans} learned PANs ablated, of {r.padding_caused} padding-caused channels "
                     f"(the older definition; {kept:.1f}% kept, {r.padding_caused - r.pans} dropped as within what "
                     f"random initialisation gives).")
    return "\n".join(lines)


def pan_verdicts(comparison: pd.DataFrame, metric: str = "kl") -> pd.DataFrame:
    """Per model, mode and region: is ablating the PANs more or less disruptive than ablating random
    channels? Disruptive means higher KL / lower agreement or accuracy. 'more' (or 'less') needs both the
    paired bootstrap interval of the difference to exclude 0 in that direction and the PAN value to lie
    beyond every control; otherwise 'indistinguishable'."""
    if metric not in _DISRUPTION:
        raise PadlibError(f"metric must be one of {', '.join(_DISRUPTION)}, got {metric!r}")
    sign = _DISRUPTION[metric]
    t = comparison[comparison["metric"] == metric].copy()
    if t.empty or "difference" not in t:
        return t
    lo, hi = sign * t["diff_ci_low"], sign * t["diff_ci_high"]
    lower_bound, upper_bound = np.minimum(lo, hi), np.maximum(lo, hi)
    beyond = t["pans"] * sign > t["controls_max" if sign > 0 else "controls_min"] * sign
    short = t["pans"] * sign < t["controls_min" if sign > 0 else "controls_max"] * sign
    t["more_disruptive_than"] = t["controls_below_pans"] if sign > 0 else t["controls_above_pans"]
    t["verdict"] = np.where((lower_bound > 0) & beyond, "more disruptive than random",
                            np.where((upper_bound < 0) & short, "less disruptive than random", "indistinguishable"))
    cols = ["model", "mode", "region", "pans", "controls_mean", "controls_min", "controls_max", "difference",
            "diff_ci_low", "diff_ci_high", "more_disruptive_than", "n_controls", "verdict"]
    return t[[c for c in cols if c in t]].reset_index(drop=True)


def _fmt_ci(lo, hi) -> str:
    return f"[{lo:+.3g}, {hi:+.3g}]"


def ablation_findings(comparison: pd.DataFrame) -> str:
    """The chapter's answer to "is removing PANs worse than removing random channels?", in plain text.

    Per ablation (mode/region): how many models put the PANs above, below or level with their random
    controls on KL (:func:`pan_verdicts`), then the same after dividing KL by the size of the ablation where
    it acts ('kl_per_perturbation', when measured), so that "PANs matter more" can be told from "we
    perturbed more". Per model: the KL values with the paired interval, the perturbation sizes (PANs vs
    controls, ratio), and the agreement, with a floor flag when PANs and every control leave no image's
    top-1 class unchanged (agreement 0: the measure cannot tell them apart, only KL can).
    """
    check_type("comparison", comparison, pd.DataFrame)
    if comparison.empty:
        return "no PAN ablation to report (no PANs found)"
    kl = pan_verdicts(comparison, "kl").set_index(["model", "mode", "region"])
    sized = (pan_verdicts(comparison, "kl_per_perturbation").set_index(["model", "mode", "region"])
             if (comparison["metric"] == "kl_per_perturbation").any() else None)
    rows = comparison.set_index(["model", "mode", "region", "metric"])
    short = {"more disruptive than random": "more", "less disruptive than random": "less",
             "indistinguishable": "indistinguishable"}
    lines = []
    for (mode, region), block in kl.groupby(level=["mode", "region"], sort=False):
        n = len(block)
        counts = block["verdict"].map(short).value_counts()
        head = (f"{mode}/{region}: on KL, PAN ablation is more disruptive than random in {counts.get('more', 0)}/{n} "
                f"models, less in {counts.get('less', 0)}/{n}, indistinguishable in {counts.get('indistinguishable', 0)}/{n}")
        if sized is not None:
            sc = sized.xs((mode, region), level=["mode", "region"])["verdict"].map(short).value_counts()
            head += (f"; per unit of perturbation: more in {sc.get('more', 0)}/{n}, less in {sc.get('less', 0)}/{n}, "
                     f"indistinguishable in {sc.get('indistinguishable', 0)}/{n}")
        lines.append(head)
        for (model, _, _), r in block.iterrows():
            text = (f"  {model}: KL PANs {r.pans:.3g} vs random {r.controls_mean:.3g} (controls {r.controls_min:.3g}"
                    f"..{r.controls_max:.3g}), difference {r.difference:+.3g} {_fmt_ci(r.diff_ci_low, r.diff_ci_high)}"
                    f" -> {short[r.verdict]}")
            key = (model, mode, region)
            if key + ("perturbation",) in rows.index:
                p = rows.loc[key + ("perturbation",)]
                ratio = p.pans / p.controls_mean if p.controls_mean > 0 else float("nan")
                text += f"; perturbation PANs {p.pans:.3g} vs random {p.controls_mean:.3g} (x{ratio:.2g})"
            if sized is not None and key in sized.index:
                q = sized.loc[key]
                text += f"; KL per unit {q.pans:.3g} vs {q.controls_mean:.3g} -> {short[q.verdict]}"
            if key + ("agreement",) in rows.index:
                a = rows.loc[key + ("agreement",)]
                text += f"; agreement PANs {a.pans:.3f} vs random {a.controls_mean:.3f}"
                if a.pans == 0 and a.get("controls_max", np.nan) == 0:
                    text += " (FLOOR: agreement 0 for PANs and every control; only KL discriminates)"
                elif a.pans == 1 and a.get("controls_min", np.nan) == 1:
                    text += " (CEILING: no top-1 class changed for PANs or any control)"
            lines.append(text)
    return "\n".join(lines)


def chapter_findings_box(comparison: pd.DataFrame | None = None, consistency: pd.DataFrame | None = None,
                         size_table=None) -> list:
    """Chapter 3's findings, one :class:`padlib.findings.Finding` per claim: is removing the PANs' border
    response more disruptive than removing random channels' (KL, and per unit of perturbation), are the class
    movers characteristic (shared across models beyond the random-control null), and does the even-padding
    size move predictions less than the control size. A claim whose table is not given is left out."""
    from .findings import Finding, verdict_of

    out = []
    if comparison is not None:
        raw = pan_verdicts(comparison, "kl")
        unit = pan_verdicts(comparison, "kl_per_perturbation")
        r = raw[(raw["mode"] == "mean") & (raw.region == "border")]
        u = unit[(unit["mode"] == "mean") & (unit.region == "border")]
        more, more_u = r.verdict.eq("more disruptive than random"), u.verdict.eq("more disruptive than random")
        out.append(Finding(
            verdict_of(more_u.mean()) if more.any() else "not here",
            "PANs induce strong biases: removing their border response (mean, border ring) disrupts more than "
            "removing random channels'",
            f"more disruptive on KL in {int(more.sum())} of {len(r)} models (paired 95% intervals beyond every "
            f"control), per unit of perturbation in {int(more_u.sum())} of {len(u)}",
            "pan-ablation-against-random-controls"))
    if consistency is not None and len(consistency):
        verdicts = [v for *_, v in _mover_verdicts(consistency)[0] if v is not None]
        above, total = verdicts.count("above"), len(verdicts)
        out.append(Finding(verdict_of(above / max(total, 1)),
                           "The biases are characteristic: PAN ablations move the same classes across models",
                           f"cross-model correlation above the random-control null in {above} of {total} PAN ablations",
                           "characteristic-biases-which-classes-gain-and-lose"))
    if size_table is not None and len(size_table):
        less = size_table.verdict.eq("even size moves predictions less")
        more = size_table.verdict.eq("even size moves predictions more")
        out.append(Finding(verdict_of(less.mean()),
                           "An input size that pads evenly suits the trained models better than an equally small "
                           "resize that keeps uneven padding",
                           f"moves predictions less in {int(less.sum())} of {len(size_table)} models, more in "
                           f"{int(more.sum())} (paired 95% intervals on KL)", "padding-at-inference-and-input-size"))
    return out


def _mover_verdicts(consistency: pd.DataFrame) -> tuple[list, pd.Series, pd.DataFrame]:
    """Per PAN ablation family of a consistency table: (family, mean correlation, the random-control null's
    per-control means, "above"/"below"/"within", or None without a matched null); with the per-control means of
    every random family and the table with its ``family`` column."""
    c = consistency.copy()
    if "family" not in c:
        c["family"] = c["intervention"].astype(str).str.replace(r" #\d+$", "", regex=True)
    per_control = c[c["family"].str.startswith("random ")].groupby(["family", "intervention"])["correlation"].mean()
    out = []
    for family in dict.fromkeys(f for f in c["family"] if f.startswith("PANs ")):
        pan = float(c.loc[c["family"] == family, "correlation"].mean())
        null_family = "random " + family[len("PANs "):]
        if null_family not in per_control.index.get_level_values(0):
            out.append((family, pan, None, None))
            continue
        null = per_control.loc[null_family]
        out.append((family, pan, null, "above" if pan > null.max() else "below" if pan < null.min() else "within"))
    return out, per_control, c


def mover_findings(consistency: pd.DataFrame) -> str:
    """Are the class movers of PAN ablations "characteristic", i.e. shared across models beyond what any
    ablation does? Per ablation family, the mean cross-model correlation of per-class probability-mass
    changes against the random-control null of the same mode/region: 'above the null' needs the PAN mean
    to exceed the mean of every single control index, 'below' to fall under every one, else 'within'.
    Padding swaps and sizes have no matched null; their mean is printed next to the range of all
    random-control means for scale."""
    check_type("consistency", consistency, pd.DataFrame)
    if consistency.empty:
        return "one model only: no cross-model consistency to report"
    verdicts, per_control, c = _mover_verdicts(consistency)
    lines, tally = [], {"above": 0, "below": 0, "within": 0}
    for family, pan, null, verdict in verdicts:
        if verdict is None:
            lines.append(f"{family}: mean correlation {pan:.3f} (no random control to compare)")
            continue
        tally[verdict] += 1
        lines.append(f"{family}: mean cross-model correlation {pan:.3f}; random-control null {null.mean():.3f} "
                     f"(per control {null.min():.3f}..{null.max():.3f}) -> {verdict} the null")
    n = sum(tally.values())
    if n:
        lines.insert(0, f"PAN class movers vs the random-control null: above in {tally['above']}/{n} ablations, "
                        f"below in {tally['below']}/{n}, within in {tally['within']}/{n}")
    others = [f for f in dict.fromkeys(c["family"]) if not f.startswith(("PANs ", "random "))]
    if others and len(per_control):
        lines.append(f"no matched null for the following; random-control means range {per_control.min():.3f}.."
                     f"{per_control.max():.3f}:")
        for family in others:
            lines.append(f"  {family}: mean cross-model correlation {c.loc[c['family'] == family, 'correlation'].mean():.3f}")
    return "\n".join(lines)


def size_findings(size_table: pd.DataFrame) -> str:
    """Plain-text reading of :func:`size_comparison`: per model the two sizes' values, the paired interval and
    the verdict, and how many models the even-padding size moves more / less than the control size."""
    check_type("size_table", size_table, pd.DataFrame)
    if size_table.empty:
        return "no size comparison (needs two sizes)"
    value_cols = [col for col in size_table.columns if col.count("_") >= 1 and col.split("_")[-1].isdigit()]
    (even_col, control_col) = value_cols[:2]
    even, control = even_col.split("_")[-1], control_col.split("_")[-1]
    n = len(size_table)
    counts = size_table["verdict"].value_counts()
    lines = [f"size {even} vs size {control}: moves predictions more in {counts.get('even size moves predictions more', 0)}/{n}"
             f" models, less in {counts.get('even size moves predictions less', 0)}/{n}, indistinguishable in "
             f"{counts.get('indistinguishable', 0)}/{n}"]
    for r in size_table.itertuples():
        lines.append(f"  {r.model}: {even_col} {getattr(r, even_col):.3g} vs {control_col} {getattr(r, control_col):.3g},"
                     f" difference {r.difference:+.3g} {_fmt_ci(r.diff_ci_low, r.diff_ci_high)} -> {r.verdict}")
    return "\n".join(lines)


def movers_across_models(reports, k: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(top movers per model and intervention, cross-model consistency per intervention family).

    Consistency: the Pearson correlation of two models' per-class probability-mass changes, per model pair;
    the random controls form a family of their own ('random zero/all' pooling #0..#k), the null for
    'characteristic' biases.
    """
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    evs = {(r.model, label): ev for r in reports for label, ev in r.interventions().items()}
    movers = top_movers({k_: v for k_, v in evs.items() if not k_[1].startswith("random")}, k=k)
    consistency = mover_consistency(evs)
    consistency["family"] = consistency["intervention"].astype(str).str.replace(r" #\d+$", "", regex=True)
    return movers, consistency


def consistent_movers(movers: pd.DataFrame, min_models: int = 2) -> pd.DataFrame:
    """Classes that move the same way under the same intervention in at least ``min_models`` models."""
    if movers.empty:
        return movers.assign(models=[])
    g = movers.groupby(["intervention", "direction", "class_name"])
    out = g.agg(models=("model", "nunique"), total_change=("count_change", "sum"),
                which=("model", lambda m: ", ".join(sorted(set(m))))).reset_index()
    return out[out["models"] >= min_models].sort_values(["models", "total_change"], ascending=[False, False])


# ---------------------------------------------------------------------------------------------------------
# Command line and benchmark


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("ablate", help="PAN ablation vs random controls, padding swaps, border shifts (chapter 3)")
    p.add_argument("model", help="model name, e.g. mobilenet_v2 (NAME=PATH: your checkpoint of that architecture)")
    p.add_argument("--images", type=int, default=24, help="evaluation images (default 24)")
    p.add_argument("--scan-images", type=int, default=32, help="probe images for the PAN scan (default 32)")
    p.add_argument("--image-dir", help="unlabelled folder of images instead of the offline photographs")
    p.add_argument("--labelled-dir", help="folder arranged <class>/<image>: report accuracy too")
    p.add_argument("--class-index", help="class-index mapping file for --labelled-dir")
    p.add_argument("--controls", type=int, default=5, help="random control sets (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="write the tidy tables to this folder (one CSV each; new or empty unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite the CSVs in a non-empty --out folder")
    p.set_defaults(func=_cmd_ablate)


def _cmd_ablate(args) -> int:
    if args.out:  # before the long run
        check_new_folder(args.out, args.force, "--out folder", "CSVs")
    report = ablation_report(args.model, n_images=args.images, n_scan=args.scan_images, seed=args.seed,
                             image_dir=args.image_dir, labelled_dir=args.labelled_dir, class_index=args.class_index,
                             n_controls=args.controls, batch_size=args.batch_size, device=args.device)
    tables = report_tables([report])
    metric = "top1_accuracy" if report.labelled else "agreement"
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.precision", 3):
        print(tables["pans"].to_string(index=False))
        print("\nPAN ablation vs random controls (KL from the intact model):")
        print(pan_verdicts(tables["comparison"], "kl").drop(columns="model").to_string(index=False))
        t = tables["interventions"]
        print(f"\ninterventions ({metric}, kl):")
        print(t[t["metric"].isin([metric, "kl"])].pivot_table(index="intervention", columns="metric",
                                                            values="value").to_string())
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        for key, table in tables.items():
            table.to_csv(os.path.join(args.out, f"{key}.csv"), index=False)
        print(f"wrote {len(tables)} tables to {args.out}")
    return 0


def bench_ablation() -> dict:
    """Cost of the ablation hooks on mobilenet_v2 (32 probe images, batch 8), as ratios to a plain forward
    measured in the same run: 16% of every padded conv's channels mean-ablated everywhere / on the ring."""
    from .bench import time_call
    from .data import probe_images
    from .models import load_model
    from .padding import padded_convs

    model = load_model("mobilenet_v2")
    x = probe_images(32, model=model).tensor()
    layers = {name: conv.out_channels for name, conv in padded_convs(model)}
    rng = np.random.default_rng(0)
    chosen = [(name, int(c)) for name, n in layers.items() for c in rng.choice(n, max(1, n * 16 // 100), replace=False)]
    means = channel_means(model, x, list(layers))
    plain = time_call(lambda: model_logits(model, x), repeats=2)
    out = {}
    for region in ABLATION_REGIONS:
        with ablate_channels(model, chosen, "mean", region, means=means):
            out[f"ablation_{region}_hook_overhead"] = round(time_call(lambda: model_logits(model, x), repeats=2) / plain, 3)
    return out


def size_comparison(reports, even: int = 225, control: int = 223, metric: str = "kl", n_boot: int = 1000,
                    seed: int = 0) -> pd.DataFrame:
    """Per model: does rendering at the even-padding size move predictions more than the equally small
    control resize? Paired bootstrap over images of (metric at ``even`` - metric at ``control``)."""
    if metric not in _DISRUPTION:
        raise PadlibError(f"metric must be one of {', '.join(_DISRUPTION)}, got {metric!r}")
    reports = list(reports.values()) if isinstance(reports, dict) else list(reports)
    rows = []
    for r in reports:
        if even not in r.sizes or control not in r.sizes:
            continue
        a, b = (r.sizes[s].per_image[metric].to_numpy() for s in (even, control))
        lo, hi = bootstrap_ci(a - b, n_boot, seed)
        more = _DISRUPTION[metric] * np.array([lo, hi])
        verdict = ("even size moves predictions more" if more.min() > 0 else
                   "even size moves predictions less" if more.max() < 0 else "indistinguishable")
        rows.append({"model": r.model, f"{metric}_{even}": float(a.mean()), f"{metric}_{control}": float(b.mean()),
                     "difference": float((a - b).mean()), "diff_ci_low": lo, "diff_ci_high": hi, "verdict": verdict})
    return pd.DataFrame(rows)


def chapter_summary(tables: dict, metric: str = "kl", padding: str = "reflect", even: int = 225,
                    control: int = 223) -> pd.DataFrame:
    """One row per model, one metric (from :func:`report_tables`): the PAN ablations next to the mean of
    their random controls, the padding swap and the two sizes, so their magnitudes can be compared."""
    comp = tables["comparison"][tables["comparison"]["metric"] == metric]
    inter = tables["interventions"][tables["interventions"]["metric"] == metric]
    rows = []
    for model in dict.fromkeys(tables["pans"]["model"]):
        row = {"model": model}
        for r in comp[comp["model"] == model].itertuples():
            row[f"PANs {r.mode}/{r.region}"] = r.pans
            row[f"random {r.mode}/{r.region}"] = getattr(r, "controls_mean", float("nan"))
        values = inter[inter["model"] == model].set_index("intervention")["value"]
        for label in (f"{padding} padding", f"size {even}", f"size {control}"):
            if label in values:
                row[label] = float(values[label])
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")
