"""Interventions on a model and what they do to its outputs: channel ablation against random controls, padding and
size swaps, border shifts. Each is evaluated by :mod:`padlib.evaluation` in the output's own terms (class logits:
agreement and KL; dense maps: relative change and per-pixel agreement, border band and interior), with intervals
over images; its names (``evaluate``, ``Evaluation``, ``model_logits``, ...) are re-exported here."""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ._hooks import (
    bn_affine,
    check_device,
    check_images,
    eval_mode,
    forward_hooks,
    iter_batches,
    keeps_model,
    layer_map_stats,
    model_device,
    model_dtype,
)
from .data import ProbeImages
from .errors import PadlibError, check_type
from .evaluation import (  # noqa: F401 - re-exported: they lived here before, and chapter 3 imports them here
    COMPARE_CHUNK,
    PER_IMAGE_METRICS,
    Evaluation,
    compare_logits,
    compare_maps,
    evaluate,
    evaluate_outputs,
    model_logits,
    model_outputs,
    reference_logits,
    reference_outputs,
)
from .layers.base import PADDING_SCHEMES, convert_padding
from .outputs import check_output, read_output
from .padding import SIDES, _interior_mask, _ring_for, ring_mask
from .stats import bootstrap_ci

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


@keeps_model
@torch.no_grad()
def channel_means(model: nn.Module, images, layers, ring: int | None = None, batch_size: int = 8,
                  device=None, progress: bool | str = False) -> dict[str, torch.Tensor]:
    """Per layer, each output channel's probe-set mean over images and interior positions, (C,) float64.

    The interior is the PAN scanner's (distance >= max(ceil(min(H, W) / 8), padding ring) from every border),
    so the mean is the channel's typical value away from padding: replacing the border by it erases the
    border response. Streamed with
    :func:`padlib._hooks.layer_map_stats` (memory flat in the number of images).
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


@keeps_model
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

    with eval_mode(model):
        with forward_hooks(model, layers, on_layer), forward_hooks(model, list(bns), on_bn):
            model(torch.zeros(1, first.in_channels, size, size, device=model_device(model)))
    return {layer: follows.get(layer, "") for layer in layers}


def preactivation_zero(bn: nn.modules.batchnorm._BatchNorm) -> torch.Tensor:
    """Per channel, the input value that an eval-mode BatchNorm maps to 0 (0 where the BN ignores its input
    or keeps no running statistics)."""
    scale, shift = bn_affine(bn)
    safe = torch.where(scale != 0, scale, torch.ones_like(scale))
    return torch.where(scale != 0, -shift / safe, torch.zeros_like(scale))


def _bn_affine(bn) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`padlib._hooks.bn_affine`, or (None, None) where no BatchNorm follows."""
    return (None, None) if bn is None else bn_affine(bn)


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


@keeps_model
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

    A thin wrapper over :func:`padlib.layers.base.convert_padding` (which keeps timm's dynamic TF-SAME amounts).
    """
    check_type("model", model, nn.Module)
    check_type("mode", mode, str)
    if mode not in PADDING_SCHEMES:
        raise PadlibError(f"unknown padding mode '{mode}'; available: {', '.join(PADDING_SCHEMES)}")
    swapped = convert_padding(model, mode)
    swapped.padlib_padding = mode
    return swapped


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


@keeps_model
def padding_interventions(model: nn.Module, images, modes=("reflect", "replicate", "circular"), reference=None,
                          labels=None, batch_size: int = 8, n_boot: int = 1000, seed: int = 0,
                          progress: bool = True, output=None) -> dict:
    """Each padding swap of :func:`swap_padding`, evaluated against the intact model: ``{mode: Evaluation}``.

    ``output``: the part of the forward's result compared (:func:`padlib.select_output`); logits by top-1
    agreement and KL, dense maps by relative change and per-pixel agreement (:func:`padlib.evaluate`). Dense maps
    are compared batch by batch and not kept (``Evaluation.logits`` is None): the intact maps are held once."""
    from tqdm.auto import tqdm

    check_output(output)
    labels, reference = reference_outputs(model, images, labels, reference, batch_size, output)
    out = {}
    for mode in tqdm(list(modes), desc="padding swaps", disable=not progress, leave=False):
        out[mode] = evaluate_outputs(swap_padding(model, mode), images, reference, labels, batch_size,
                                     n_boot=n_boot, seed=seed, output=output, keep=False)
    return out


@keeps_model
def size_interventions(model: nn.Module, images: ProbeImages, sizes=(225, 223), base_size: int = 224,
                       reference=None, batch_size: int = 8, n_boot: int = 1000, seed: int = 0,
                       progress: bool = True, output=None) -> dict:
    """The same images (same crops, same files) resized to other input sizes, against ``base_size``.

    At 225 (= 1 mod 32) every stride-2 stage of these models pads evenly (Mind the Pad); 223 is an equally
    small resize that keeps uneven padding, so it controls for the resize itself. Returns
    ``{size: Evaluation}`` plus ``"reference"`` (the model at ``base_size``, with accuracy when labelled).
    ``reference`` (outputs at ``base_size``) is reused when ``images`` are already at that size. ``output``: as
    in :func:`padding_interventions`.

    Dense maps: a map at another input size has another size, so each is resized (bilinear, align_corners=False)
    to the reference's before the comparison, rather than the size being skipped: the test is the point of the
    report's size stage, and a segmenter's or detector's map is a picture of the input, so resizing it back
    compares the same places of the image. The resize adds its own small change (interpolation, and the shift of
    up to half an input pixel between the two grids), the same for the even size and its uneven control at the
    same distance, which is why the control is the comparison, not zero.
    """
    import dataclasses

    check_output(output)
    if not isinstance(images, ProbeImages):
        raise PadlibError("size_interventions needs a ProbeImages / labelled_images set (it re-renders the images "
                          "at each size), not a tensor")
    labels = getattr(images, "labels", None) or None

    def at(size):
        return dataclasses.replace(images, size=int(size))

    if reference is None or images.size != base_size:
        reference = model_outputs(model, at(base_size), batch_size, progress=False, output=output)
    else:
        reference = reference_outputs(model, images, labels, reference, batch_size, output)[1]
    if reference.dim() == 2:
        out = {"reference": compare_logits(reference, None, labels, n_boot, seed)}
    else:
        out = {"reference": compare_maps(reference, None, n_boot, seed)}
    for size in sizes:
        out[size] = evaluate_outputs(model, at(size), reference, labels, batch_size, n_boot=n_boot, seed=seed,
                                     progress=progress and f"size {size}", output=output, keep=False, resize=True)
    return out


def intervention_table(evaluations: dict, key: str = "intervention") -> pd.DataFrame:
    """``{name: Evaluation}`` -> one tidy table (``key``, metric, value, ci_low, ci_high, n)."""
    return _tidy({k: v for k, v in evaluations.items() if k != "reference"}, (key,))


# ---------------------------------------------------------------------------------------------------------
# Characteristic biases: which classes gain and lose predictions


def _logit_evaluations(evaluations: dict, what: str) -> dict:
    """The evaluations of class logits; the others (dense maps have no classes to move) left out with one warning."""
    dense = [k for k, ev in evaluations.items() if getattr(ev, "kind", "logits") != "logits"]
    if dense:
        warnings.warn(f"{what}: {len(dense)} of {len(evaluations)} evaluations compare dense maps, not class logits; "
                      f"they are skipped (movers are classes that gain or lose top-1 predictions)", stacklevel=3)
    return {k: ev for k, ev in evaluations.items() if k not in dense}


def top_movers(evaluations: dict, k: int = 5, keys: tuple[str, ...] = ("model", "intervention")) -> pd.DataFrame:
    """Per intervention, the ``k`` classes that gained and lost the most top-1 predictions (ties broken by
    probability mass), with the counts before and after. Class logits only: evaluations of dense maps are
    skipped with a one-line warning."""
    rows = []
    for key, ev in _logit_evaluations(evaluations, "top_movers").items():
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
    a generic 'damaged network' drift also correlates across models. Class logits only: evaluations of dense
    maps are skipped with a one-line warning.
    """
    by_int: dict = {}
    for (model, intervention), ev in _logit_evaluations(evaluations, "mover_consistency").items():
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


@keeps_model
@torch.no_grad()
def border_sensitivity(model: nn.Module, images, shifts=(16, 32), sides=SIDES, fill: str = "reflect",
                       reference=None, batch_size: int = 8, device=None, n_boot: int = 1000, seed: int = 0,
                       progress: bool | str = False, output=None) -> pd.DataFrame:
    """Prediction stability when the content moves toward each border, per side and shift.

    Translation only (:func:`shift_toward`): the strip the content vacates is filled from the image itself
    (``fill``: mirrored by default, or replicated / wrapped); there is no crop variant (re-cropping the
    source photograph), so the image never gains content it did not have.

    Each image's own (unshifted) prediction is the reference, so the figure measures stability, not
    accuracy; it can run inside :func:`ablate_channels` ("without PANs"). ``reference``: the same model's
    logits on the unshifted images when already computed (an :class:`Evaluation` or (N, K) tensor).
    Returns a tidy table: side, shift, metric (agreement, kl, confidence_change), value, ci_low, ci_high, n.
    Streams over batches. Class logits only (``output=`` picks them from a tuple or dict, as
    :func:`padlib.select_output`); a dense map is refused in one line.
    """
    check_type("model", model, nn.Module)
    check_output(output)

    def logits_of(x):
        t, where, kind = read_output(model(x), output)
        if kind != "logits":
            raise PadlibError(f"border_sensitivity compares top-1 classes; the model's output {where} is a dense map "
                              f"of shape {tuple(t.shape[1:])}: compare maps with padlib.evaluate")
        return t.to(x.device)

    shifts = [int(s) for s in shifts]
    images = check_images(images, number=False)
    device = check_device(device) or model_device(model)
    if isinstance(reference, Evaluation):
        reference = reference.logits
    per: dict = {(s, d): {"agreement": [], "kl": [], "confidence_change": []} for s in sides for d in shifts}
    start = 0
    for batch in iter_batches(images, batch_size, device, progress, model_dtype(model)):
        if reference is not None:
            if start + len(batch) > len(reference):
                raise PadlibError(f"reference has logits for {len(reference)} images, fewer than the images given")
            ref_logits = reference[start:start + len(batch)].to(batch.device)
        else:
            ref_logits = logits_of(batch)
        start += len(batch)
        ref_logp = F.log_softmax(ref_logits.double(), -1)
        ref_p = ref_logp.exp()
        ref_conf, ref_top = ref_p.max(-1)
        for side in sides:
            for d in shifts:
                logp = F.log_softmax(logits_of(shift_toward(batch, side, d, fill)).double(), -1)
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

