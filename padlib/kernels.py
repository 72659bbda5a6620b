"""PAN kernels from the weights: the data-free border response, kernel profiles, a taxonomy, mean-kernel asymmetry.

A zero-padded convolution evaluated on a constant input equal to the input channel means gives, at the
border, the interior response minus the taps that land on padding. That shift is computable from the
weights alone (:func:`padding_response`), so the weights predict which filters respond to the border
(:func:`data_free_pans`), what their kernels look like (:func:`kernel_profile`, :func:`classify_pan_kernels`),
and whether uneven padding left a lean in the learned kernels (:func:`mean_kernel_asymmetry`).
All formulas here are our formulation (the PAN paper's method is not public), validated against brute force.
"""
from __future__ import annotations

from dataclasses import dataclass

import math
import weakref

import numpy as np
import pandas as pd
import torch
from torch import nn

from .errors import PadlibError, check_type
from .padding import (
    SIDES,
    is_dynamic_same,
    layer_pads,
    output_size,
    padded_convs,
    padding_read,
    require_padded_convs,
)

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
PAN_TYPES = ("side", "corner", "opposite", "frame", "edge", "silenced")
_OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _check_conv(conv) -> nn.Conv2d:
    check_type("conv", conv, nn.Conv2d, "pass one torch.nn.Conv2d layer (e.g. from padlib.padding.padded_convs)")
    from .padding import padding_scheme_of

    scheme = padding_scheme_of(conv)
    if scheme != "zero":
        raise PadlibError(f"the data-free border response is derived for zero padding; this conv pads with "
                          f"'{scheme}' (convert it back with padlib.padding.convert_padding(model, 'zero'))")
    return conv


def _input_mean_vector(conv: nn.Conv2d, input_mean) -> torch.Tensor:
    c = conv.in_channels
    if input_mean is None:
        return torch.ones(c, dtype=torch.float64)
    mu = torch.as_tensor(np.asarray(input_mean, dtype=np.float64)).flatten()
    if mu.numel() == 1:
        mu = mu.expand(c).clone()
    if mu.numel() != c:
        raise PadlibError(f"input_mean has {mu.numel()} values but the conv reads {c} input channels")
    return mu


def weighted_profile(conv: nn.Conv2d, input_mean=None) -> torch.Tensor:
    """Per output channel, the spatial kernel summed over its input channels weighted by their means: (O, kh, kw).

    With ``input_mean=None`` every input channel weighs 1 (the plain channel sum). Groups are respected:
    output channel o reads only its group's input channels.
    """
    _check_conv(conv)
    w = conv.weight.detach().to("cpu", torch.float64)
    o, cg, kh, kw = w.shape
    g = conv.groups
    mu = _input_mean_vector(conv, input_mean).view(g, cg)
    mu_out = mu.repeat_interleave(o // g, dim=0)  # (O, Cg): the means of the channels each output reads
    return (w * mu_out[:, :, None, None]).sum(1)


def _padded_taps(n, k, s, d, before, after):
    """Boolean masks over the k taps of one dimension: taps on padding at the first and at the last output."""
    out = output_size(n, k, s, d, before, after)
    taps = np.arange(k) * d
    first = taps - before < 0
    last = (out - 1) * s - before + taps >= n
    return first, last, out


def _tap_masks(conv: nn.Conv2d, in_hw):
    kh, kw = _pair(conv.kernel_size)
    (sh, sw), (dh, dw) = _pair(conv.stride), _pair(conv.dilation)
    if in_hw is None:
        if is_dynamic_same(conv) or max(sh, sw) > 1:
            raise PadlibError("pass in_hw=(height, width): with stride > 1 or TF-'SAME' padding, how much of the "
                              "bottom/right padding is read depends on the input size")
        # stride 1, static padding: the answer does not depend on the size; any size with an interior will do
        in_hw = (4 * kh * dh + 8, 4 * kw * dw + 8)
    h, w = (int(v) for v in in_hw)
    left, right, top, bottom = layer_pads(conv, (h, w))
    rows_top, rows_bottom, out_h = _padded_taps(h, kh, sh, dh, top, bottom)
    cols_left, cols_right, out_w = _padded_taps(w, kw, sw, dw, left, right)
    return {"top": rows_top, "bottom": rows_bottom, "left": cols_left, "right": cols_right}, (out_h, out_w)


def padding_response(conv: nn.Conv2d, input_mean=None, in_hw=None) -> pd.DataFrame:
    """Data-free border shift of each output channel of a zero-padded conv, per side and corner.

    For a constant input equal to ``input_mean`` (one value per input channel), the output at the outermost
    row/column of a side (away from corners) minus the interior output is minus the weight, times the input
    mean, of the taps that land on padding there; at a corner the union of both sides' taps. Handles any
    kernel size, padding, stride, dilation, groups and TF-'SAME' (extra bottom/right row; pass ``in_hw``).
    Columns: channel, interior (the interior output), top, bottom, left, right, the four corners.
    """
    _check_conv(conv)
    profile = weighted_profile(conv, input_mean)  # (O, kh, kw)
    masks, _ = _tap_masks(conv, in_hw)
    m = {k: torch.as_tensor(v) for k, v in masks.items()}
    rows = {"top": m["top"][:, None] & torch.ones_like(m["left"])[None, :],
            "bottom": m["bottom"][:, None] & torch.ones_like(m["left"])[None, :],
            "left": torch.ones_like(m["top"])[:, None] & m["left"][None, :],
            "right": torch.ones_like(m["top"])[:, None] & m["right"][None, :]}
    bias = conv.bias.detach().to("cpu", torch.float64) if conv.bias is not None else torch.zeros(profile.shape[0],
                                                                                                dtype=torch.float64)
    data = {"channel": np.arange(profile.shape[0]), "interior": (bias + profile.sum((1, 2))).numpy()}
    for side in SIDES:
        data[side] = -(profile * rows[side]).sum((1, 2)).numpy()
    for corner in CORNERS:
        a, b = corner.split("_")
        data[corner] = -(profile * (rows[a] | rows[b])).sum((1, 2)).numpy()
    return pd.DataFrame(data)


def brute_force_response(conv: nn.Conv2d, input_mean, in_hw) -> pd.DataFrame:
    """The same quantities as :func:`padding_response`, measured by running ``conv`` on a constant input.

    The reference that the formula is tested against: border rows/columns are compared with an output
    position whose window reads no padding (an error if the size leaves no such position).
    """
    _check_conv(conv)
    mu = _input_mean_vector(conv, input_mean)
    h, w = in_hw
    x = mu.to(conv.weight.dtype).view(1, -1, 1, 1).expand(1, mu.numel(), h, w).to(conv.weight.device).contiguous()
    with torch.no_grad():
        y = conv(x)[0].detach().to("cpu", torch.float64)  # (O, out_h, out_w)
    masks, (out_h, out_w) = _tap_masks(conv, in_hw)
    left, right, top, bottom = layer_pads(conv, (h, w))
    (kh, kw), (sh, sw), (dh, dw) = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
    inner_r = [r for r in range(out_h) if r * sh - top >= 0 and r * sh - top + (kh - 1) * dh <= h - 1]
    inner_c = [c for c in range(out_w) if c * sw - left >= 0 and c * sw - left + (kw - 1) * dw <= w - 1]
    if not inner_r or not inner_c:
        raise PadlibError(f"input {in_hw} is too small: every output position of this conv reads padding")
    r0, c0 = inner_r[len(inner_r) // 2], inner_c[len(inner_c) // 2]
    interior = y[:, r0, c0]
    pos = {"top": (0, c0), "bottom": (out_h - 1, c0), "left": (r0, 0), "right": (r0, out_w - 1),
           "top_left": (0, 0), "top_right": (0, out_w - 1), "bottom_left": (out_h - 1, 0),
           "bottom_right": (out_h - 1, out_w - 1)}
    data = {"channel": np.arange(y.shape[0]), "interior": interior.numpy()}
    for key, (r, c) in pos.items():
        data[key] = (y[:, r, c] - interior).numpy()
    return pd.DataFrame(data)


# ---------------------------------------------------------------------------------------------------------
# Kernel profiles and their features


def _regions(k: int) -> np.ndarray:
    """Tap index -> region 0 (first border band), 1 (centre) or 2 (last band); bands are (k-1)//2 taps wide."""
    b = max((k - 1) // 2, 1) if k > 1 else 0
    idx = np.ones(k, dtype=int)
    idx[:b] = 0
    idx[k - b:] = 2
    return idx


def profile_3x3(profile: np.ndarray) -> np.ndarray:
    """Pool a (kh, kw) profile into 3x3 bands (border band, centre, border band) so all kernel sizes compare."""
    kh, kw = profile.shape
    rr, cc = _regions(kh), _regions(kw)
    out = np.zeros((3, 3))
    np.add.at(out, (rr[:, None].repeat(kw, 1), cc[None, :].repeat(kh, 0)), profile)
    return out


def _profile_features(p: np.ndarray) -> dict:
    return _profile_frame(p[None])[0]


def _profile_frame(profiles: np.ndarray) -> list[dict]:
    """Features of a stack of profiles (O, kh, kw), vectorised; one dict per profile."""
    o, kh, kw = profiles.shape
    rr, cc = _regions(kh), _regions(kw)
    rows = np.stack([profiles[:, rr == i, :].sum(1) for i in range(3)], 1)  # (O, 3, kw)
    q = np.stack([rows[:, :, cc == j].sum(2) for j in range(3)], 2)  # (O, 3, 3)
    l1 = np.abs(profiles).sum((1, 2))
    scale = np.where(l1 > 0, l1, 1.0)
    mass = {"top": q[:, 0].sum(1), "bottom": q[:, 2].sum(1), "left": q[:, :, 0].sum(1), "right": q[:, :, 2].sum(1)}
    ring = q.sum((1, 2)) - q[:, 1, 1]
    positive = np.where(l1 > 0, np.clip(profiles, 0, None).sum((1, 2)) / scale, 0.5)
    cols = {"l1": l1, "dc": profiles.sum((1, 2)) / scale,
            **{f"mass_{k}": v / scale for k, v in mass.items()},
            "asym_lr": (mass["right"] - mass["left"]) / scale, "asym_tb": (mass["bottom"] - mass["top"]) / scale,
            "centre_surround": (q[:, 1, 1] - ring) / scale, "positive_fraction": positive}
    q = q / scale[:, None, None]
    return [{**{k: float(v[i]) for k, v in cols.items()}, "profile": profiles[i], "profile3": q[i]} for i in range(o)]


def kernel_profile(conv: nn.Conv2d, input_mean=None) -> pd.DataFrame:
    """Per filter: its input-mean-weighted spatial profile and the features a taxonomy needs.

    Features (all divided by the profile's L1 norm, so they compare across layers): ``dc`` (the whole
    profile's sum), ``mass_<side>`` (signed weight on that border band: the taps the padding replaces at
    that side), ``asym_lr`` / ``asym_tb`` (right minus left, bottom minus top), ``centre_surround`` (centre
    band minus the ring), ``positive_fraction`` (share of positive weight). ``profile`` is the raw (kh, kw)
    array, ``profile3`` the L1-normalised 3x3 band summary. Border bands are (k-1)//2 taps wide.
    """
    prof = weighted_profile(conv, input_mean).numpy()
    return pd.DataFrame([{"channel": o, **f} for o, f in enumerate(_profile_frame(prof))])


# ---------------------------------------------------------------------------------------------------------
# Whole models: input sizes, data-free input means, the data-free detector


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


def trace_convs(model: nn.Module, input_size: int | tuple | None = None) -> ConvTrace:
    """One forward pass of zeros at ``input_size`` (default: the model's own) recording :class:`ConvTrace`.

    The trace is structural (sizes and which module feeds which), so it is cached per model and input size,
    and recomputed when any submodule is replaced.
    """
    from .models import preprocessing

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
    from .activations import forward_hooks
    from .models import model_device

    convs = dict(require_padded_convs(model))
    h, w = input_size
    channels = next((m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)), 3)
    x = torch.zeros(1, channels, h, w, device=model_device(model))
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
    with forward_hooks(model, names, hook):
        model(x)
    missing = [n for n in convs if n not in sizes]
    if missing:
        raise PadlibError(f"padded convs {missing[:3]} did not run in a forward pass of {type(model).__name__}")
    return ConvTrace(sizes, feeding, {n: following.get(n) for n in convs})


def conv_input_sizes(model: nn.Module, input_size: int | tuple | None = None) -> dict[str, tuple[int, int]]:
    """Input (height, width) of every padded conv at the model's input size (one forward pass of zeros)."""
    return trace_convs(model, input_size).sizes


def _gaussian_activation_mean(act: nn.Module | None, mean: torch.Tensor, std: torch.Tensor, n: int = 2001):
    """E[act(X)] for X ~ N(mean, std^2) per channel, by the trapezoid rule on +-8 std (kinks such as ReLU6's
    clip make Gauss-Hermite quadrature inaccurate; a dense grid is accurate to ~1e-6 for them)."""
    if act is None:
        return mean.clone()
    u = torch.linspace(-8.0, 8.0, n, dtype=torch.float64)
    pdf = torch.exp(-0.5 * u * u)
    wts = pdf * (u[1] - u[0])
    wts[0] *= 0.5
    wts[-1] *= 0.5
    wts = wts / wts.sum()
    z = mean[:, None] + std.abs()[:, None] * u[None, :]
    with torch.no_grad():
        fz = act(z.float()).double()
    return (fz * wts[None, :]).sum(1)


def data_free_input_means(model: nn.Module, input_size=None, trace: ConvTrace | None = None) -> pd.DataFrame:
    """Per padded conv, the input channel means predicted from the weights alone (our formulation).

    A conv fed by BatchNorm (+ activation) reads, on average, E[act(Y)] with Y ~ N(beta, gamma^2): the
    BatchNorm output has mean beta and standard deviation |gamma| when its running statistics match the
    data. A conv reading the model input sees the normalised image, whose expected value is the ImageNet
    mean pushed through the model's own normalisation. Convs fed by anything else (a residual sum, a
    pooling) get NaN. What feeds each conv is traced by tensor identity (:func:`trace_convs`).
    Columns: layer, source ('bn', 'image' or 'unknown'), mean (array over channels).
    """
    from .models import IMAGENET_MEAN, preprocessing

    trace = trace or _structure(model, input_size)
    modules = dict(model.named_modules())
    rows = []
    for name, conv in require_padded_convs(model):
        feed = trace.feeding.get(name)
        if feed is not None and feed[0] == "bn" and modules[feed[1]].num_features == conv.in_channels:
            bn = modules[feed[1]]
            beta = bn.bias.detach().double().cpu() if bn.bias is not None else torch.zeros(bn.num_features)
            gamma = bn.weight.detach().double().cpu() if bn.weight is not None else torch.ones(bn.num_features)
            act = modules[feed[2]] if feed[2] is not None else getattr(bn, "act", None)  # timm's BatchNormAct2d
            act = None if isinstance(act, _PASS_THROUGH) else act
            mu, source = _gaussian_activation_mean(act, beta, gamma), "bn"
        elif feed is not None and feed[0] == "image" and conv.in_channels == 3:
            p = preprocessing(model)
            mu = (torch.tensor(IMAGENET_MEAN, dtype=torch.float64) - torch.tensor(p.mean, dtype=torch.float64)) \
                / torch.tensor(p.std, dtype=torch.float64)
            source = "image"
        else:
            mu, source = torch.full((conv.in_channels,), float("nan"), dtype=torch.float64), "unknown"
        rows.append({"layer": name, "source": source, "mean": mu.numpy()})
    return pd.DataFrame(rows)


def data_free_output_scale(model: nn.Module, input_size=None,
                           trace: ConvTrace | None = None) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """Per padded conv, (std, sign) of its output per channel from the BatchNorm that consumes it.

    A BatchNorm's running variance is the training-data variance of the conv output (over images and
    positions), stored in the weights: the scale against which a border shift counts as large. The sign
    of its gamma orients the shift as the non-linearity sees it (a negative gamma turns firing into
    silencing), matching ``padlib.pans``, whose statistics are taken after that BatchNorm.
    """
    trace = trace or _structure(model, input_size)
    modules = dict(model.named_modules())
    out = {}
    for name, conv in padded_convs(model):
        bn = modules.get(trace.following.get(name)) if trace.following.get(name) else None
        if bn is not None and getattr(bn, "running_var", None) is not None and bn.num_features == conv.out_channels:
            std = (bn.running_var.detach().double().cpu() + bn.eps).sqrt().numpy()
            gamma = bn.weight.detach().double().cpu().numpy() if bn.weight is not None else np.ones_like(std)
            out[name] = (std, np.where(gamma < 0, -1.0, 1.0))
        else:
            out[name] = None
    return out


def data_free_pans(model: nn.Module, tau: float, input_size=None, input_means=None,
                   tau_corner: float | None = None) -> pd.DataFrame:
    """The data-free PAN detector: predicted border contrast per side and corner from the weights, thresholded.

    Predicted z per side (corner) = :func:`padding_response` shift (with :func:`data_free_input_means`, or
    ``input_means`` {layer: array} e.g. measured ones) / the following BatchNorm's running std, times the
    sign of its gamma (:func:`data_free_output_scale`). A channel is a predicted PAN when max |z| >= ``tau``
    on a side whose padding is read, or max |z| >= ``tau_corner`` (default ``tau``) on a corner, which is how
    ``padlib.pans`` flags corner-only PANs (a corner loses the union of both sides' taps, so the shared tap
    is counted once). One row per (layer, channel), keyed like ``padlib.pans.find_pans``: layer, channel,
    depth, kernel, stride, zp_<side>, zp_<corner>, zp_max, zp_corner_max, pred_sides, pred_corners,
    pred_is_pan.
    """
    check_type("tau", tau, (int, float))
    tau_corner = float(tau) if tau_corner is None else tau_corner
    check_type("tau_corner", tau_corner, (int, float))
    convs = require_padded_convs(model)
    trace = trace_convs(model, input_size)
    sizes = trace.sizes
    means = data_free_input_means(model, trace=trace).set_index("layer")["mean"].to_dict()
    if input_means is not None:
        means.update({k: np.asarray(v, dtype=np.float64) for k, v in input_means.items()})
    scales = data_free_output_scale(model, trace=trace)
    frames = []
    for depth, (name, conv) in enumerate(convs):
        resp = padding_response(conv, means[name], sizes[name])
        if scales[name] is None:  # no BatchNorm after the conv: the scale is unknown from the weights
            std, sign = np.full(len(resp), np.nan), np.ones(len(resp))
        else:
            std, sign = scales[name]
        df = pd.DataFrame({"layer": name, "channel": resp["channel"], "depth": depth,
                           "kernel": _pair(conv.kernel_size)[0], "stride": _pair(conv.stride)[0],
                           "in_size": sizes[name][0], "groups": conv.groups})
        masks, _ = _tap_masks(conv, sizes[name])
        for side in SIDES:
            df[f"shift_{side}"] = resp[side].to_numpy()
            df[f"zp_{side}"] = sign * resp[side].to_numpy() / std if masks[side].any() else 0.0
        for corner in CORNERS:  # a corner whose two sides are both unread loses no tap: its shift is 0
            df[f"zp_{corner}"] = sign * resp[corner].to_numpy() / std
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    z = out[[f"zp_{s}" for s in SIDES]].to_numpy()
    zc = out[[f"zp_{c}" for c in CORNERS]].to_numpy()
    out["zp_max"] = np.nanmax(np.abs(z), axis=1)
    out["zp_corner_max"] = np.nanmax(np.abs(zc), axis=1)
    out["pred_sides"] = ["+".join(s for s, v in zip(SIDES, row) if abs(v) >= tau) for row in z]
    out["pred_corners"] = ["+".join(c for c, v in zip(CORNERS, row) if abs(v) >= tau_corner) for row in zc]
    out["pred_is_pan"] = (out["zp_max"] >= tau) | (out["zp_corner_max"] >= tau_corner)
    out.attrs.update(tau=float(tau), tau_corner=float(tau_corner))
    return out


def model_kernel_profiles(model: nn.Module, input_means=None, orient: bool = True, input_size=None) -> pd.DataFrame:
    """:func:`kernel_profile` for every padded conv of ``model`` (data-free input means unless given).

    With ``orient`` each profile is multiplied by the sign of the following BatchNorm's gamma, so that
    positive border mass means the same thing as a positive ``z`` in ``padlib.pans`` (pre-activation).
    """
    trace = trace_convs(model, input_size)
    means = data_free_input_means(model, trace=trace).set_index("layer")["mean"].to_dict()
    if input_means is not None:
        means.update(input_means)
    scales = data_free_output_scale(model, trace=trace) if orient else {}
    frames = []
    for name, conv in require_padded_convs(model):
        mu = means.get(name)
        mu = None if mu is None or np.isnan(np.asarray(mu, dtype=float)).any() else mu
        df = kernel_profile(conv, mu)
        if scales.get(name) is not None:
            sign = scales[name][1]
            flip = sign < 0
            if flip.any():
                prof = np.stack(list(df["profile"])) * sign[:, None, None]
                df = pd.DataFrame([{"channel": o, **f} for o, f in enumerate(_profile_frame(prof))])
        df.insert(0, "layer", name)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------------------
# Mean-kernel asymmetry (Mind the Pad, Fig. 6b, quantified; our formulation)


def _padding_reads(conv: nn.Conv2d, in_hw) -> dict:
    h, w = in_hw
    left, right, top, bottom = layer_pads(conv, (h, w))
    (kh, kw), (sh, sw), (dh, dw) = _pair(conv.kernel_size), _pair(conv.stride), _pair(conv.dilation)
    rows, cols = padding_read(h, kh, sh, dh, top, bottom), padding_read(w, kw, sw, dw, left, right)
    reads = {"read_top": rows["read_before"], "read_bottom": rows["read_after"],
             "read_left": cols["read_before"], "read_right": cols["read_after"]}
    near = reads["read_top"] + reads["read_left"]
    far = reads["read_bottom"] + reads["read_right"]
    reads["reads"] = "even" if near == far else ("top/left" if near > far else "bottom/right")
    return reads


def _asymmetry(mean_kernel: np.ndarray) -> tuple[float, float]:
    """Lean of a mean of L1-normalised kernels: (right - left, bottom - top), taps weighted by offset in [-1, 1].

    Not renormalised by the mean kernel's own norm: a signed mean of random kernels is close to zero and
    renormalising it would turn noise into a large lean. The index is the mean over slices of each slice's
    lean, in units of the slice's L1 mass, so it is bounded by 1 and near 0 for i.i.d. symmetric weights.
    """
    kh, kw = mean_kernel.shape
    x = np.linspace(-1, 1, kw) if kw > 1 else np.zeros(1)
    y = np.linspace(-1, 1, kh) if kh > 1 else np.zeros(1)
    return float((mean_kernel * x[None, :]).sum()), float((mean_kernel * y[:, None]).sum())


def mean_kernel_asymmetry(model: nn.Module, input_size=None, mode: str = "abs", n_boot: int = 200,
                          seed: int = 0, ci: float = 0.95, in_sizes: dict | None = None) -> pd.DataFrame:
    """Per padded conv: the mean L1-normalised spatial kernel and its left-right / top-bottom asymmetry index.

    Every 2-D kernel slice W[o, c] is divided by its L1 norm (``mode='abs'`` takes |W| first) and the slices
    are averaged; ``asym_lr`` is the mean kernel's first moment along x (taps at offsets in [-1, 1]; > 0
    leans right; the mean over slices of each slice's right-minus-left mass), ``asym_tb`` along y (> 0
    leans down). Bootstrap intervals
    resample the slices. ``reads`` says which padding the layer reads at ``input_size`` (default: the
    model's own): 'even', 'top/left' (PyTorch at even sizes and stride 2) or 'bottom/right' (TF 'SAME').
    ``in_sizes``: precomputed :func:`conv_input_sizes` (saves a forward pass).
    """
    check_type("mode", mode, str)
    if mode not in ("signed", "abs"):
        raise PadlibError(f"mode must be 'signed' or 'abs', got '{mode}'")
    check_type("n_boot", n_boot, int)
    check_type("ci", ci, float)
    if not 0 < ci < 1:
        raise PadlibError(f"ci is the coverage of the bootstrap interval, between 0 and 1 (e.g. 0.95), got {ci}")
    convs = require_padded_convs(model)
    sizes = in_sizes if in_sizes is not None else conv_input_sizes(model, input_size)
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    rows = []
    for depth, (name, conv) in enumerate(convs):
        w = conv.weight.detach().to("cpu", torch.float64).flatten(0, 1).numpy()  # (slices, kh, kw)
        w = np.abs(w) if mode == "abs" else w
        l1 = np.abs(w).sum((1, 2), keepdims=True)
        k = (w / np.where(l1 > 0, l1, 1.0))[l1[:, 0, 0] > 0]
        n, kh, kw = k.shape
        mean_kernel = k.mean(0)
        lr, tb = _asymmetry(mean_kernel)
        row = {"layer": name, "depth": depth, "kernel": kh, "stride": _pair(conv.stride)[0], "groups": conv.groups,
               "in_size": sizes[name][0], **_padding_reads(conv, sizes[name]), "n_kernels": n,
               "asym_lr": lr, "asym_tb": tb, "mean_kernel": mean_kernel}
        if n_boot > 0:
            counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)  # (n_boot, n)
            boots = (counts @ k.reshape(n, -1) / n).reshape(n_boot, kh, kw)
            b = np.array([_asymmetry(m) for m in boots])
            row.update(asym_lr_lo=float(np.quantile(b[:, 0], lo_q)), asym_lr_hi=float(np.quantile(b[:, 0], hi_q)),
                       asym_tb_lo=float(np.quantile(b[:, 1], lo_q)), asym_tb_hi=float(np.quantile(b[:, 1], hi_q)))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(mode=mode, n_boot=n_boot, seed=seed, ci=ci)
    return out


def row_energy(model: nn.Module, input_size=None, n_boot: int = 200, seed: int = 0, ci: float = 0.95,
               strided_only: bool = True) -> pd.DataFrame:
    """Per padded conv (stride 2 only by default): how a kernel's energy splits between its outer rows and columns.

    Each 2-D slice W[o, c] (k x k, k >= 3) gives the share of its squared weights on the top row, bottom row,
    left and right column; ``energy_tb`` = top share - bottom share (> 0: more energy on the row that reads the
    top padding), ``energy_lr`` = left - right. Means over slices with bootstrap intervals (resampling slices).
    At random initialisation every row has the same expected share, so both are 0 up to sampling noise; a trained
    network that compensates or follows uneven padding should move them (Mind the Pad's Fig. 6b shows such
    asymmetries around down-sampling layers). ``reads`` says which padding the layer reads at ``input_size``."""
    check_type("n_boot", n_boot, int)
    convs = require_padded_convs(model)
    sizes = conv_input_sizes(model, input_size)
    rng = np.random.default_rng(seed)
    lo_q, hi_q = (1 - ci) / 2, 1 - (1 - ci) / 2
    rows = []
    for depth, (name, conv) in enumerate(convs):
        kh, kw = _pair(conv.kernel_size)
        if kh < 3 or kw < 3 or (strided_only and _pair(conv.stride)[0] < 2):
            continue
        w2 = conv.weight.detach().to("cpu", torch.float64).flatten(0, 1).numpy() ** 2  # (slices, kh, kw)
        total = w2.sum((1, 2))
        keep = total > 0
        w2, total = w2[keep], total[keep]
        tb = (w2[:, 0, :].sum(1) - w2[:, -1, :].sum(1)) / total
        lr = (w2[:, :, 0].sum(1) - w2[:, :, -1].sum(1)) / total
        row = {"layer": name, "depth": depth, "stride": _pair(conv.stride)[0], "groups": conv.groups,
               "in_size": sizes[name][0], **_padding_reads(conv, sizes[name]), "n_kernels": len(tb),
               "energy_tb": float(tb.mean()), "energy_lr": float(lr.mean())}
        if n_boot > 0 and len(tb) > 1:
            idx = rng.integers(0, len(tb), size=(n_boot, len(tb)))
            btb, blr = tb[idx].mean(1), lr[idx].mean(1)
            row.update(energy_tb_lo=float(np.quantile(btb, lo_q)), energy_tb_hi=float(np.quantile(btb, hi_q)),
                       energy_lr_lo=float(np.quantile(blr, lo_q)), energy_lr_hi=float(np.quantile(blr, hi_q)))
        rows.append(row)
    return pd.DataFrame(rows)


def row_energy_with_control(model: nn.Module, input_size=None, seeds=(0, 1, 2, 3), n_boot: int = 200,
                            seed: int = 0) -> pd.DataFrame:
    """:func:`row_energy` of ``model`` (``init`` "pretrained") and of random-init copies of its architecture
    (``init`` "random init", one block per seed in ``seeds``, :func:`padlib.models.random_init_copy`)."""
    from .models import random_init_copy

    frames = [row_energy(model, input_size, n_boot, seed).assign(init="pretrained", seed=-1)]
    for s in seeds:
        frames.append(row_energy(random_init_copy(model, int(s)), input_size, n_boot, seed)
                      .assign(init="random init", seed=int(s)))
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "model", getattr(model, "padlib_name", type(model).__name__))
    return out


def row_energy_summary(energy: pd.DataFrame, floor: float = 0.02) -> pd.DataFrame:
    """Per model and init: the mean ``energy_tb``/``energy_lr`` over its stride-2 layers that read uneven padding,
    and for the pretrained model, whether it differs from the random-init copies by at least ``floor`` (ours) and
    beyond their spread (the pretrained mean outside the copies' min-max range over seeds)."""
    rows = []
    for model, g in energy.groupby("model", sort=False):
        uneven = g[g["reads"] != "even"]
        if uneven.empty:
            continue
        reads = uneven["reads"].mode().iloc[0]
        pre = uneven[uneven.init == "pretrained"]
        per_seed = uneven[uneven.init == "random init"].groupby("seed")[["energy_tb", "energy_lr"]].mean()
        row = {"model": model, "reads": reads, "layers": len(pre)}
        for col in ("energy_tb", "energy_lr"):
            v = float(pre[col].mean())
            lo, hi = float(per_seed[col].min()), float(per_seed[col].max())
            row.update({col: v, f"{col}_init_min": lo, f"{col}_init_max": hi,
                        f"{col}_differs": bool((v > hi or v < lo) and abs(v - per_seed[col].mean()) >= floor)})
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs["floor"] = floor
    return out


def asymmetry_summary(asym: pd.DataFrame) -> pd.DataFrame:
    """Per group (e.g. model x init) and layer kind (stride 2 vs stride 1): mean lean and how many layers lean
    significantly (bootstrap interval excluding 0) each way. ``asym``: :func:`mean_kernel_asymmetry` frames
    concatenated, with any extra grouping columns (``model``, ``init``) kept."""
    keys = [c for c in ("model", "init", "mode") if c in asym.columns]
    df = asym.assign(layer_kind=np.where(asym["stride"] > 1, "stride 2", "stride 1"))
    rows = []
    for key, g in df.groupby(keys + ["layer_kind", "reads"], sort=False):
        row = dict(zip(keys + ["layer_kind", "reads"], key if isinstance(key, tuple) else (key,)))
        row.update(n_layers=len(g), asym_lr=g["asym_lr"].mean(), asym_tb=g["asym_tb"].mean())
        if "asym_lr_lo" in g:
            row.update(lean_right=int((g["asym_lr_lo"] > 0).sum()), lean_left=int((g["asym_lr_hi"] < 0).sum()),
                       lean_down=int((g["asym_tb_lo"] > 0).sum()), lean_up=int((g["asym_tb_hi"] < 0).sum()))
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Taxonomy of PANs (our rule) and its unsupervised check


def _flagged_signs(z: dict, sides: set) -> dict:
    return {s: (1 if z[s] > 0 else -1) for s in SIDES if s in sides}


def _extent(flagged: dict) -> str:
    s = set(flagged)
    if not s:
        return "none"
    if len(s) == 1:
        return "side"
    if len(s) == 2:
        a, b = sorted(s)
        return "opposite" if _OPPOSITE[a] == b else "corner"
    return "frame"


def pan_type(flagged: dict) -> str:
    """The type of a border response given the sign (+1 fires, -1 silenced) on each flagged side (our rule).

    Justification from the linear formula (:func:`padding_response`): the shift at a side is minus the
    mean-weighted mass of the taps that padding replaces there. Mixed signs mean the kernel has mass of
    both signs across its border bands, as an oriented derivative has: the zero step at the border is,
    to that kernel, an edge ('edge'). All-negative means padding removes net excitation: the filter is
    'silenced' at the border whatever the extent. All-positive: the filter fires on the border, on one
    side ('side'), two adjacent sides ('corner'), two opposite sides ('opposite') or three or four sides
    ('frame'). The extent is also limited by which padding the layer reads (uneven stride-2 layers read
    two adjacent sides only), so types are compared within layer kinds.
    """
    if not flagged:
        return "none"
    signs = set(flagged.values())
    if len(signs) > 1:
        return "edge"
    if signs == {-1}:
        return "silenced"
    return _extent(flagged)


def _parse_sides(value) -> tuple[set, set]:
    """(flagged sides, flagged corners) from a ``padlib.pans`` sides label: 'top', 'left+right', 'frame',
    'top-left corner', 'top-left+bottom-right corners', 'all corners' (or a collection of names)."""
    if isinstance(value, (set, list, tuple)):
        return {s for s in value if s in SIDES}, {c for c in value if c in CORNERS}
    if not isinstance(value, str) or not value.strip():
        return set(), set()
    v = value.strip().lower()
    if v == "frame":
        return set(SIDES), set()
    if v == "all corners":
        return set(), set(CORNERS)
    if "corner" in v:
        names = v.replace("corners", "").replace("corner", "").strip()
        return set(), {n.strip().replace("-", "_") for n in names.split("+") if n.strip().replace("-", "_") in CORNERS}
    return {t.strip() for t in v.split("+") if t.strip() in SIDES}, set()


def classify_pan_kernels(pans: pd.DataFrame, profiles: pd.DataFrame | None = None, tau: float | None = None,
                         z_prefix: str = "z_", only_pans: bool = True) -> pd.DataFrame:
    """Assign each PAN a type with :func:`pan_type` and attach its kernel profile features.

    ``pans``: the activation-based detector's table (``padlib.pans.find_pans``): z_<side> border contrasts
    and ``sides`` (the flagged sides), or any table with ``<z_prefix><side>`` columns, then flagged where
    |z| >= ``tau`` (e.g. the data-free ``zp_`` columns). ``profiles``: :func:`model_kernel_profiles` rows,
    merged on (layer, channel). Adds: type, extent, sign_pattern (e.g. 'T+ L-'), n_sides.
    """
    check_type("pans", pans, pd.DataFrame)
    zcols = [f"{z_prefix}{s}" for s in SIDES]
    missing = [c for c in zcols + ["layer", "channel"] if c not in pans.columns]
    if missing:
        raise PadlibError(f"pans table lacks columns {missing}; pass padlib.pans.find_pans(...) output")
    df = pans
    if only_pans and "is_pan" in df.columns and tau is None:
        df = df[df["is_pan"].astype(bool)]
    use_sides = tau is None and "sides" in df.columns
    if tau is None and not use_sides:
        raise PadlibError("pass tau: the table has no 'sides' column saying which sides are flagged")
    ccols = [f"{z_prefix}{c}" for c in CORNERS]
    has_corners = use_sides and all(c in df.columns for c in ccols)
    cols = zcols + (ccols if has_corners else []) + (["sides"] if use_sides else [])
    types, extents, patterns, counts = [], [], [], []
    for row in df[cols].itertuples(index=False):
        z = dict(zip(SIDES, row[:4]))
        if use_sides:
            sides, corners = _parse_sides(row[-1])
        else:
            sides, corners = {s for s in SIDES if abs(z[s]) >= tau}, set()
        flagged = _flagged_signs(z, sides)
        if not flagged and corners and has_corners:  # a corner-only PAN: fires -> corner, silenced -> silenced
            zc = dict(zip(CORNERS, row[4:8]))
            signs = {c: (1 if zc[c] > 0 else -1) for c in CORNERS if c in corners}
            kind = "edge" if len(set(signs.values())) > 1 else ("silenced" if -1 in signs.values() else "corner")
            types.append(kind)
            extents.append("corner only")
            patterns.append(" ".join(f"{''.join(w[0].upper() for w in c.split('_'))}{'+' if v > 0 else '-'}"
                                     for c, v in signs.items()))
            counts.append(0)
            continue
        types.append(pan_type(flagged))
        extents.append(_extent(flagged))
        patterns.append(" ".join(f"{s[0].upper()}{'+' if v > 0 else '-'}" for s, v in flagged.items()))
        counts.append(len(flagged))
    out = df.assign(type=types, extent=extents, sign_pattern=patterns, n_sides=counts)
    if only_pans and tau is not None:
        out = out[out["type"] != "none"]
    if profiles is not None:
        cols = [c for c in profiles.columns if c not in out.columns or c in ("layer", "channel")]
        out = out.merge(profiles[cols], on=["layer", "channel"], how="left")
    return out.reset_index(drop=True)


BORDER_FEATURES = ("mass_top", "mass_bottom", "mass_left", "mass_right", "dc", "centre_surround")


def _coarse(types) -> np.ndarray:
    return np.array(["edge" if t == "edge" else "silenced" if t == "silenced" else "fires" for t in types])


def taxonomy_clusters(classified: pd.DataFrame, n_clusters: int | None = None, seed: int = 0,
                      n_perm: int = 200, features: str = "profile") -> tuple[pd.DataFrame, dict]:
    """Unsupervised check of the rule: k-means on kernel features alone, compared with the rule types.

    ``features='profile'``: the L1-normalised 3x3 band profile (``profile3``, 9 numbers: the kernel's shape);
    ``'border'``: the signed border-band masses, DC and centre-surround of :func:`kernel_profile` (the
    quantities the formula says decide the border response). Agreement is the adjusted Rand index (0 for
    chance, 1 for identical partitions) with a permutation null (types shuffled ``n_perm`` times), and
    the ARI with the coarse classes fires / silenced / edge. The clusters see only the weights (times the
    data-free input means); the types come from the measured border response, so a high ARI says the
    kernel alone separates the types. Returns (classified with a ``cluster`` column, summary dict).
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    if features not in ("profile", "border"):
        raise PadlibError(f"features must be 'profile' or 'border', got '{features}'")
    need = "profile3" if features == "profile" else "mass_top"
    if need not in classified.columns:
        raise PadlibError("classified has no kernel features: pass profiles= to classify_pan_kernels")
    df = classified.dropna(subset=[need])
    types = df["type"].to_numpy()
    k = n_clusters or len(set(types))
    if len(df) < max(k, 2) or k < 2:
        raise PadlibError(f"need at least {max(k, 2)} classified PANs of at least 2 types to cluster, got {len(df)}")
    if features == "profile":
        x = np.stack([np.asarray(p, dtype=float).ravel() for p in df["profile3"]])
    else:
        x = df[list(BORDER_FEATURES)].to_numpy(float)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # tiny problem: OpenMP threads only add overhead (25 s instead of 0.2 s on 2 busy cores)
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x)
    ari = adjusted_rand_score(types, km.labels_)
    rng = np.random.default_rng(seed)
    null = np.array([adjusted_rand_score(rng.permutation(types), km.labels_) for _ in range(n_perm)])
    summary = {"features": features, "n": len(df), "k": k, "ari": float(ari),
               "ari_coarse": float(adjusted_rand_score(_coarse(types), km.labels_)),
               "null_mean": float(null.mean()) if n_perm else float("nan"),
               "null_q95": float(np.quantile(null, 0.95)) if n_perm else float("nan"),
               "p_value": float((1 + (null >= ari).sum()) / (1 + n_perm)),
               "centroids": km.cluster_centers_.reshape(k, 3, 3) if features == "profile" else km.cluster_centers_}
    return df.assign(cluster=km.labels_), summary


# ---------------------------------------------------------------------------------------------------------
# Data-free vs activation-based detector


def _read_sides(table: pd.DataFrame) -> dict:
    return {s: table[f"reads_{s}"].to_numpy(bool) if f"reads_{s}" in table else np.ones(len(table), bool)
            for s in SIDES}


def merge_detectors(table: pd.DataFrame, predicted: pd.DataFrame) -> pd.DataFrame:
    """The activation-based table (``padlib.pans``) joined with :func:`data_free_pans` on (layer, channel)."""
    check_type("table", table, pd.DataFrame)
    keep = ["layer", "channel", "pred_is_pan", "pred_sides", "zp_max"] + [f"zp_{s}" for s in SIDES]
    keep += [c for c in ["pred_corners", "zp_corner_max"] + [f"zp_{c}" for c in CORNERS] if c in predicted]
    merged = table.merge(predicted[keep], on=["layer", "channel"], how="inner")
    if merged.empty:
        raise PadlibError("no (layer, channel) in common: were both tables made from the same model?")
    merged.attrs.update(table.attrs)
    return merged


def corner_only_pans(table: pd.DataFrame) -> np.ndarray:
    """Boolean mask of PANs that ``padlib.pans`` flags on corners only (``sides`` ends in 'corner(s)')."""
    if "sides" not in table:
        return np.zeros(len(table), bool)
    sides = table["sides"].astype(str)
    return (table["is_pan"].to_numpy(bool) & sides.str.contains("corner").to_numpy(bool))


def detector_agreement(merged: pd.DataFrame, tau: float | None = None, tau_corner: float | None = None
                       ) -> pd.DataFrame:
    """Precision, recall and average precision of weight-based predictions against the activation-based PANs.

    Two predictors: 'data-free' (:func:`data_free_pans`: input means and scale from BatchNorm statistics)
    and 'measured means' (``zpred_<loc>`` of ``padlib.pans``: the same formula with the probe images'
    input means and interior std). Both flag a channel when max |z| over read sides >= ``tau`` or, where
    the table has corner columns, max |z| over corners >= ``tau_corner`` (defaults: the scan's calibrated
    thresholds), the same two routes by which ``padlib.pans`` flags a PAN. AP ranks channels by the larger
    of the two maxima, each divided by its threshold, so it does not depend on tau's level. Recall is also
    given separately for side PANs and corner-only PANs (``recall_sides``, ``recall_corner_only``), and
    ``recall_sides_only_rule`` / ``precision_sides_only_rule`` are what a sides-only predictor reaches
    (corners ignored).
    """
    from sklearn.metrics import average_precision_score

    tau = merged.attrs.get("tau") if tau is None else tau
    if tau is None:
        raise PadlibError("pass tau: the merged table carries no calibrated tau in .attrs")
    tau_corner = merged.attrs.get("tau_corner", tau) if tau_corner is None else tau_corner
    tau_corner = tau if tau_corner is None or not np.isfinite(tau_corner) else tau_corner
    truth = merged["is_pan"].to_numpy(bool)
    corner_only = corner_only_pans(merged)
    reads = _read_sides(merged)
    rows = []
    for name, prefix in (("data-free", "zp_"), ("measured means", "zpred_")):
        z = np.stack([np.where(reads[s], np.abs(merged[f"{prefix}{s}"].to_numpy(float)), 0.0) for s in SIDES], 1)
        side_score = np.nan_to_num(z, nan=0.0).max(1)
        has_corners = all(f"{prefix}{c}" in merged for c in CORNERS)
        if has_corners:
            zc = np.abs(merged[[f"{prefix}{c}" for c in CORNERS]].to_numpy(float))
            corner_score = np.nan_to_num(zc, nan=0.0).max(1)
        else:
            corner_score = np.zeros(len(merged))
        pred = (side_score >= tau) | (has_corners & (corner_score >= tau_corner))
        score = np.maximum(side_score / tau, corner_score / tau_corner if has_corners else 0.0)
        tp = int((pred & truth).sum())
        side_pans = truth & ~corner_only
        rows.append({"predictor": name, "tau": float(tau), "tau_corner": float(tau_corner),
                     "uses_corners": bool(has_corners), "pans": int(truth.sum()),
                     "corner_only_pans": int(corner_only.sum()), "predicted": int(pred.sum()),
                     "true_positives": tp, "precision": tp / max(int(pred.sum()), 1),
                     "recall": tp / max(int(truth.sum()), 1),
                     "recall_sides": int((pred & side_pans).sum()) / max(int(side_pans.sum()), 1),
                     "recall_corner_only": (int((pred & corner_only).sum()) / int(corner_only.sum())
                                            if corner_only.any() else np.nan),
                     "recall_sides_only_rule": int(((side_score >= tau) & truth).sum()) / max(int(truth.sum()), 1),
                     "precision_sides_only_rule": (int(((side_score >= tau) & truth).sum())
                                                   / max(int((side_score >= tau).sum()), 1)),
                     "average_precision": float(average_precision_score(truth, score)) if truth.any() else np.nan})
    out = pd.DataFrame(rows)
    out["f1"] = 2 * out.precision * out.recall / (out.precision + out.recall).replace(0, np.nan)
    return out


def _corr(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or a[ok].std() == 0 or b[ok].std() == 0:
        return np.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def disagreement_by_layer(merged: pd.DataFrame, model: nn.Module | None = None,
                          measured_input_means: dict | None = None) -> pd.DataFrame:
    """Per layer, where the data-free prediction and the measurement part ways, split into three gaps.

    For a read side, in interior-std units of the pre-activation (means over channels and read sides of
    absolute gaps; ``gap_total`` = mean |zp - z| is at most the sum of the three, by the triangle inequality,
    but not equal to it; the ``signed_*`` columns are the means of the signed differences, which add up
    exactly: signed_estimate + signed_position + signed_inherited = signed_total = mean(zp - z)):
    ``gap_estimate`` = |zp - zpred|: input means and scale estimated from BatchNorm statistics instead of
    measured; ``gap_position`` = |zpred - effect|: the formula assumes the input equals its mean up to the
    border, but ``effect`` (own minus replicate padding) is exactly minus the padded taps times the mean
    *edge* input, so this gap is the position dependence of the input, left by upstream padding through
    non-linearities; ``gap_inherited`` = |effect - z|: border contrast that this layer's padding did not
    cause (inherited from earlier layers, or content). With ``model`` and ``measured_input_means``
    ({layer: tensor}, e.g. ``PanScan.input_means``) it adds the data-free means' correlation and median
    ratio to the measured ones.
    """
    reads = _read_sides(merged)
    tau = merged.attrs.get("tau")
    mu_df = None
    if model is not None and measured_input_means is not None:
        mu_df = data_free_input_means(model).set_index("layer")["mean"]
    rows = []
    for layer, g in merged.groupby("layer", sort=False):
        idx = g.index.to_numpy()
        r = {"layer": layer, "depth": int(g["depth"].iloc[0]), "stride": g["stride"].iloc[0],
             "channels": len(g), "pans": int(g["is_pan"].sum()), "predicted": int(g["pred_is_pan"].sum())}
        tp = int((g["is_pan"] & g["pred_is_pan"]).sum())
        r["precision"] = tp / r["predicted"] if r["predicted"] else np.nan
        r["recall"] = tp / r["pans"] if r["pans"] else np.nan
        sides = [s for s in SIDES if reads[s][merged.index.get_indexer(idx)].any()]
        cat = lambda col: np.concatenate([g[f"{col}_{s}"].to_numpy(float) for s in sides])  # noqa: E731
        zp, zpred, eff, z = cat("zp"), cat("zpred"), cat("effect"), cat("z")
        ok = np.isfinite(zp) & np.isfinite(zpred) & np.isfinite(eff) & np.isfinite(z)  # one set for every gap
        zp, zpred, eff, z = zp[ok], zpred[ok], eff[ok], z[ok]
        mean = lambda v: float(v.mean()) if len(v) else np.nan  # noqa: E731
        r.update(corr_datafree_effect=_corr(zp, eff), corr_measured_effect=_corr(zpred, eff),
                 corr_effect_z=_corr(eff, z), gap_estimate=mean(np.abs(zp - zpred)),
                 gap_position=mean(np.abs(zpred - eff)), gap_inherited=mean(np.abs(eff - z)),
                 gap_total=mean(np.abs(zp - z)), signed_estimate=mean(zp - zpred),
                 signed_position=mean(zpred - eff), signed_inherited=mean(eff - z), signed_total=mean(zp - z))
        if mu_df is not None and layer in measured_input_means and layer in mu_df.index:
            a = np.asarray(mu_df[layer], float)
            b = np.asarray(measured_input_means[layer], float)
            r["mean_corr"] = _corr(a, b)
            ok = np.abs(b) > 1e-6
            r["mean_ratio"] = float(np.median(a[ok] / b[ok])) if ok.any() else np.nan
            r["mean_zero_by_construction"] = bool(np.abs(a).max() < 1e-9)  # e.g. a stem reading a normalised image
        rows.append(r)
    out = pd.DataFrame(rows)
    out.attrs["tau"] = tau
    return out


# ---------------------------------------------------------------------------------------------------------
# Gallery selection


def gallery_entries(classified: pd.DataFrame, table: pd.DataFrame, maps: dict, model: nn.Module,
                    per_type: int = 2, types=PAN_TYPES, seed: int = 0) -> list[dict]:
    """Representative PANs per type (strongest by ``score``), each next to a non-PAN of the same layer.

    Each entry: model, type, layer, channel, is_pan, sign_pattern, score, ``bn_sign`` (sign of the
    following BatchNorm's scale, from the table's ``bn_scale``; 1 without one), ``kernel`` (the spatial
    kernel summed over input channels, multiplied by ``bn_sign`` so that it reads as the non-linearity
    sees it: a kernel behind a negative gamma is shown flipped, as the mean map and z are), profile
    (input-mean weighted, oriented), map (mean pre-activation map from ``maps[layer]``, e.g.
    ``PanScan.maps``), ``border_profile`` (``padlib.pans.border_profile``: the map's mean at distance 0,
    1, ... from each side minus the interior mean, over the interior std: chapter 1's z units; None
    without a map), z (the table's z per side). The non-PAN control is the channel of that layer with the
    smallest ``score`` among non-constant ones that is not a PAN (seeded choice among the 5 weakest).
    """
    from types import SimpleNamespace

    from .pans import border_profile

    scan_view = SimpleNamespace(maps=maps, table=table)  # all that border_profile reads of a PanScan
    modules = dict(model.named_modules())
    rng = np.random.default_rng(seed)
    name = getattr(model, "padlib_name", type(model).__name__)
    entries = []
    for t in types:
        sub = classified[classified["type"] == t].sort_values("score", ascending=False).head(per_type)
        for _, row in sub.iterrows():
            layer = row["layer"]
            pool = table[(table["layer"] == layer) & ~table["is_pan"].astype(bool)]
            if "constant" in pool:
                pool = pool[~pool["constant"].astype(bool)]
            control = None
            if len(pool):
                weakest = pool.sort_values("score").head(5)
                control = int(weakest["channel"].iloc[rng.integers(len(weakest))])
            for ch, is_pan in ((int(row["channel"]), True), (control, False)):
                if ch is None:
                    continue
                trow = table[(table["layer"] == layer) & (table["channel"] == ch)].iloc[0]
                bn_sign = -1.0 if "bn_scale" in trow and float(trow["bn_scale"]) < 0 else 1.0
                w = bn_sign * modules[layer].weight.detach().double().cpu()[ch].sum(0).numpy()
                m = maps[layer][ch].double().numpy() if layer in maps else None
                prof = border_profile(scan_view, layer, ch, depth=6) if m is not None and "interior_std" in trow else None
                entries.append({
                    "model": name, "type": t, "layer": layer, "channel": ch, "is_pan": is_pan,
                    "sign_pattern": row["sign_pattern"] if is_pan else "",
                    "score": float(trow["score"]), "bn_sign": bn_sign, "kernel": w,
                    "profile": row["profile"] if is_pan and "profile" in row else None, "map": m,
                    "border_profile": prof, "z": {s: float(trow[f"z_{s}"]) for s in SIDES},
                })
    return entries


# ---------------------------------------------------------------------------------------------------------
# Checks and computed conclusions the chapter prints


def check_padding_response(model: nn.Module, input_size=None, input_means=None) -> pd.DataFrame:
    """The formula against brute force on every padded conv of a real model, at its real input sizes.

    Per layer: the largest |predicted - measured| over channels, sides and corners, and the largest
    |measured shift| for scale (float32 layers, so agreement is to float32 rounding). Layers too small to
    have an interior output at this size get NaN.
    """
    trace = trace_convs(model, input_size)
    sizes = trace.sizes
    means = data_free_input_means(model, trace=trace).set_index("layer")["mean"].to_dict()
    if input_means is not None:
        means.update(input_means)
    rows = []
    for name, conv in require_padded_convs(model):
        mu = np.nan_to_num(np.asarray(means[name], dtype=float), nan=1.0)
        row = {"layer": name, "in_size": sizes[name][0], "kernel": _pair(conv.kernel_size)[0],
               "stride": _pair(conv.stride)[0], "tf_same": is_dynamic_same(conv)}
        try:
            b = brute_force_response(conv, mu, sizes[name])
        except PadlibError:  # every output reads padding at this size: no interior to compare with
            rows.append({**row, "max_abs_error": np.nan, "max_abs_shift": np.nan, "max_abs_interior": np.nan})
            continue
        a = padding_response(conv, mu, sizes[name])
        keys = ["interior"] + list(SIDES) + list(CORNERS)
        err = np.abs(a[keys].to_numpy() - b[keys].to_numpy())
        rows.append({**row, "max_abs_error": float(err.max()),
                     "max_abs_shift": float(np.abs(b[keys[1:]].to_numpy()).max()),
                     "max_abs_interior": float(np.abs(b["interior"].to_numpy()).max())})
    return pd.DataFrame(rows)


def asymmetry_verdict(asym: pd.DataFrame, mode: str | None = None) -> str:
    """Plain-language summary of concatenated :func:`mean_kernel_asymmetry` tables (columns model, init).

    Compares the mean lean of stride-2 layers that read only top/left padding with those that read only
    bottom/right, pretrained and at random init, and counts layers whose bootstrap interval excludes 0.
    Every number in the text is computed here from ``asym``.
    """
    df = asym if mode is None or "mode" not in asym else asym[asym["mode"] == mode]
    lines = []
    leans = {}
    for init in ("pretrained", "random init"):
        for reads in ("top/left", "bottom/right"):
            g = df[(df["init"] == init) & (df["stride"] > 1) & (df["reads"] == reads)]
            if g.empty:
                continue
            lean = float((g["asym_lr"].mean() + g["asym_tb"].mean()) / 2)
            leans[(init, reads)] = lean
            n = len(g)
            pos = int(((g["asym_lr_lo"] > 0) & (g["asym_tb_lo"] > 0)).sum()) if "asym_lr_lo" in g else 0
            neg = int(((g["asym_lr_hi"] < 0) & (g["asym_tb_hi"] < 0)).sum()) if "asym_lr_lo" in g else 0
            models = ", ".join(dict.fromkeys(g["model"]))
            lines.append(f"{init}, stride-2 layers reading {reads} padding ({n} layers; {models}): mean lean "
                         f"{lean:+.3f} (x and y averaged; > 0 = towards bottom/right); {pos} lean significantly "
                         f"towards bottom/right on both axes, {neg} towards top/left")
    even = df[(df["stride"] > 1) & (df["reads"] == "even")]
    for init in ("pretrained", "random init"):
        g = even[even["init"] == init]
        if len(g):
            lean = float((g["asym_lr"].mean() + g["asym_tb"].mean()) / 2)
            neg = int(((g["asym_lr_hi"] < 0) & (g["asym_tb_hi"] < 0)).sum()) if "asym_lr_hi" in g else 0
            pos = int(((g["asym_lr_lo"] > 0) & (g["asym_tb_lo"] > 0)).sum()) if "asym_lr_lo" in g else 0
            lines.append(f"{init}, stride-2 layers that pad evenly at the model's input size ({len(g)} layers; "
                         f"{', '.join(dict.fromkeys(g['model']))}): mean lean {lean:+.3f}; {pos} lean significantly "
                         f"towards bottom/right on both axes, {neg} towards top/left")
    a, b = leans.get(("pretrained", "top/left")), leans.get(("pretrained", "bottom/right"))
    if a is not None and b is not None:
        opposite = a * b < 0
        lines.append(f"pretrained: the two groups lean {'in opposite directions' if opposite else 'the same way'} "
                     f"({a:+.3f} vs {b:+.3f})" + (", each away from the side whose padding it reads"
                                                  if opposite and a > 0 > b else ""))
        ra, rb = leans.get(("random init", "top/left")), leans.get(("random init", "bottom/right"))
        if ra is not None and rb is not None:
            ratio = max(abs(ra), abs(rb)) / max(min(abs(a), abs(b)), 1e-12)
            lines.append(f"random init: {ra:+.3f} vs {rb:+.3f}; the largest random-init lean is {ratio:.2f} times "
                         "the smaller pretrained lean")
    else:
        lines.append("not both padding conventions are present among the stride-2 layers: no comparison")
    return "\n".join(lines)


def agreement_verdict(agreement: pd.DataFrame, layers: pd.DataFrame) -> str:
    """Plain-language summary of :func:`detector_agreement` and :func:`disagreement_by_layer` (with ``model``).

    Ends with conclusions worded by fixed rules: a detector is called precise when its precision is >= 0.5
    in every model and said to miss most PANs when its recall is < 0.5 in every model; the measured input
    means are said to help when they raise recall by more than 0.1 in every model; the dominant gap is the
    largest mean absolute one. Every number is computed here from the two tables.
    """
    lines = []
    for name, g in agreement.groupby("model", sort=False):
        d = g.set_index("predictor")
        lines.append(f"{name}: data-free precision {d.loc['data-free', 'precision']:.2f}, recall "
                     f"{d.loc['data-free', 'recall']:.2f}, AP {d.loc['data-free', 'average_precision']:.2f}; with "
                     f"measured input means precision {d.loc['measured means', 'precision']:.2f}, recall "
                     f"{d.loc['measured means', 'recall']:.2f}, AP {d.loc['measured means', 'average_precision']:.2f}")
        if "recall_corner_only" in d:
            r = d.loc["data-free"]
            lines.append(f"  {int(r['corner_only_pans'])} of {int(r['pans'])} PANs are corner-only; data-free recall on "
                         f"side PANs {r['recall_sides']:.2f}, on corner-only PANs {r['recall_corner_only']:.2f} "
                         f"(a sides-only predictor: recall {r['recall_sides_only_rule']:.2f}, precision "
                         f"{r['precision_sides_only_rule']:.2f})")
    df = agreement[agreement["predictor"] == "data-free"]
    mm = agreement[agreement["predictor"] == "measured means"]
    prec, rec = df["precision"], df["recall"]
    if len(df):
        kind = ("right at least half of the time it flags a filter (precision >= 0.5 in every model)"
                if (prec >= 0.5).all() else "wrong more often than right in some models (precision < 0.5)")
        reach = ("misses most PANs (recall < 0.5 in every model)" if (rec < 0.5).all() else
                 "finds most PANs (recall >= 0.5 in every model)" if (rec >= 0.5).all() else
                 "finds most PANs in some models and misses most in others")
        conj = "but" if (prec >= 0.5).all() and (rec < 0.5).all() else "and"
        lines.append(f"conclusion: the data-free detector, precision {prec.min():.2f}-{prec.max():.2f} and recall "
                     f"{rec.min():.2f}-{rec.max():.2f} over {len(df)} models, is {kind} {conj} {reach}")
        if len(mm) == len(df):
            gain = mm["recall"].to_numpy() - df["recall"].to_numpy()
            lines.append(f"conclusion: measured input means change recall by {gain.min():+.2f} to {gain.max():+.2f}: "
                         + ("estimating the input means and scale from BatchNorm statistics costs recall"
                            if (gain > 0.1).all() else "the misses are not mainly due to estimating the input "
                            "means and scale from BatchNorm statistics"))
    gaps = layers[["gap_estimate", "gap_position", "gap_inherited"]].mean()
    lines.append("mean absolute gaps over all layers (interior-std units): " +
                 ", ".join(f"{k.replace('gap_', '')} {v:.2f}" for k, v in gaps.items()) +
                 f"; the largest is '{gaps.idxmax().replace('gap_', '')}'" +
                 (f"; mean |zp - z| {layers['gap_total'].mean():.2f} (at most their sum, not equal to it)"
                  if "gap_total" in layers else ""))
    if "signed_total" in layers:
        sg = layers[["signed_estimate", "signed_position", "signed_inherited", "signed_total"]].mean()
        lines.append(f"mean signed gaps (these add up exactly): estimate {sg['signed_estimate']:+.3f} + position "
                     f"{sg['signed_position']:+.3f} + inherited {sg['signed_inherited']:+.3f} = "
                     f"{sg['signed_estimate'] + sg['signed_position'] + sg['signed_inherited']:+.3f} "
                     f"(mean zp - z: {sg['signed_total']:+.3f})")
    meaning = {"gap_inherited": "border contrast that the layer's own padding did not cause (handed down from "
                                "earlier layers, or content), which no single-layer formula can see",
               "gap_position": "the layer's input near the border differing from its mean (earlier layers' "
                               "padding responses passed through BatchNorm and the non-linearity)",
               "gap_estimate": "input means and scale estimated from BatchNorm statistics instead of measured"}
    lines.append(f"conclusion: the largest part of the disagreement is '{gaps.idxmax().replace('gap_', '')}': "
                 f"{meaning[gaps.idxmax()]}")
    deep = layers["depth"] >= layers.groupby("model")["depth"].transform("median")
    for col in ("gap_inherited", "gap_position", "gap_estimate"):
        lines.append(f"{col.replace('gap_', '')}: shallow half {layers.loc[~deep, col].mean():.2f}, "
                     f"deep half {layers.loc[deep, col].mean():.2f}")
    shallow = layers.loc[~deep, ["gap_estimate", "gap_position", "gap_inherited"]].mean()
    if shallow.notna().any():
        top = shallow.idxmax()
        lines.append(f"conclusion: in the shallow half the largest gap is '{top.replace('gap_', '')}' "
                     f"({shallow[top]:.2f}); " + ("the formula's own assumptions (input means, flat input up to the "
                                                  "border) fail most where little can be inherited"
                                                  if top != "gap_inherited" else
                                                  "even there most of the disagreement is inherited, not a failure "
                                                  "of the formula's assumptions"))
    rec = layers.groupby(deep)["recall"].mean()
    lines.append(f"recall of the data-free detector: shallow half {rec.get(False, np.nan):.2f}, deep half "
                 f"{rec.get(True, np.nan):.2f}")
    if "mean_ratio" in layers:
        zero = (layers["mean_zero_by_construction"].fillna(False).astype(bool) if "mean_zero_by_construction"
                in layers else pd.Series(False, index=layers.index))
        bad = layers[((layers["mean_ratio"] > 2) | (layers["mean_ratio"] < 0.5)) & ~zero]
        lines.append(f"layers where the BatchNorm-derived input means are off by more than 2x (median ratio): "
                     f"{len(bad)}" + (": " + ", ".join(f"{r.model} {r.layer} ({r.mean_ratio:.1f}x)"
                                                      for r in bad.itertuples()) if len(bad) else ""))
        if zero.any():
            lines.append("layers whose data-free input mean is 0 by construction (no data-free prediction possible): "
                         + ", ".join(f"{r.model} {r.layer}" for r in layers[zero].itertuples()))
    return "\n".join(lines)


def _group_lean(g: pd.DataFrame) -> float:
    """One number per group of layers: the mean of the left-right and top-bottom leans (> 0: bottom/right)."""
    return float((g["asym_lr"].mean() + g["asym_tb"].mean()) / 2) if len(g) else np.nan


def _significant(g: pd.DataFrame) -> np.ndarray:
    """Layers whose bootstrap interval excludes 0 on at least one axis."""
    if "asym_lr_lo" not in g:
        return np.zeros(len(g), bool)
    lr = (g["asym_lr_lo"] > 0) | (g["asym_lr_hi"] < 0)
    tb = (g["asym_tb_lo"] > 0) | (g["asym_tb_hi"] < 0)
    return (lr | tb).to_numpy(bool)


def asymmetry_findings(asym: pd.DataFrame) -> pd.DataFrame:
    """Mind the Pad's prediction, broken into checks, each answered from :func:`asymmetry_with_control` tables.

    Per index mode, four checks (our reading of "uneven padding leads to asymmetric learned weights ...
    around down-sampling layers ... mostly disappears at the even size"; Alsallakh et al., ICLR 2021, Fig. 6b):
    ``opposite``: stride-2 layers reading top/left padding and those reading bottom/right lean with opposite
    signs (pretrained); ``learned``: the smaller of those two pretrained leans exceeds the larger random-init
    lean of the same groups (else noise of the same size is not excluded); ``even leans less``: per model
    with evenly padded stride-2 layers, their lean is smaller in magnitude than that of the same model's
    unevenly padded stride-2 layers; ``at down-sampling``: per model, fewer than half of the stride-1
    layers lean significantly (interval excluding 0 on at least one axis) and a larger share of the
    stride-2 layers does: if most stride-1 layers lean, the asymmetry is not confined to the down-sampling
    layers, and if stride-2 layers lean no more often, it is not concentrated there (our strict reading of
    "around down-sampling layers"; the random-init count is shown as the noise level).
    ``consistent`` is True / False, or None when the groups needed are absent. Every number is computed here.
    """
    rows = []
    modes = list(dict.fromkeys(asym["mode"])) if "mode" in asym else [None]
    for mode in modes:
        df = asym if mode is None else asym[asym["mode"] == mode]
        pre, rnd = df[df["init"] == "pretrained"], df[df["init"] == "random init"]
        s2 = lambda d, reads: d[(d["stride"] > 1) & (d["reads"] == reads)]  # noqa: E731
        a, b = _group_lean(s2(pre, "top/left")), _group_lean(s2(pre, "bottom/right"))
        ra, rb = _group_lean(s2(rnd, "top/left")), _group_lean(s2(rnd, "bottom/right"))
        both = np.isfinite(a) and np.isfinite(b)
        rows.append({"mode": mode, "check": "opposite", "model": "all",
                     "measured": f"top/left-reading stride-2 layers {a:+.3f}, bottom/right-reading {b:+.3f}",
                     "consistent": bool(a * b < 0) if both else None})
        if both and np.isfinite(ra) and np.isfinite(rb):
            small, big = min(abs(a), abs(b)), max(abs(ra), abs(rb))
            rows.append({"mode": mode, "check": "learned", "model": "all",
                         "measured": f"smaller pretrained |lean| {small:.3f}, larger random-init |lean| {big:.3f} "
                                     f"(random init = {big / max(small, 1e-12):.2f}x pretrained)",
                         "consistent": bool(small > big)})
        for name, g in pre.groupby("model", sort=False):
            even, uneven = g[(g["stride"] > 1) & (g["reads"] == "even")], g[(g["stride"] > 1) & (g["reads"] != "even")]
            if len(even) and len(uneven):
                e, u = _group_lean(even), _group_lean(uneven)
                rows.append({"mode": mode, "check": "even leans less", "model": name,
                             "measured": f"{len(even)} even stride-2 layers {e:+.3f}, {len(uneven)} uneven {u:+.3f}",
                             "consistent": bool(abs(e) < abs(u))})
        for name, g in pre.groupby("model", sort=False):
            r = rnd[rnd["model"] == name]
            one, two, r1 = g[g["stride"] == 1], g[g["stride"] > 1], r[r["stride"] == 1]
            if not len(one) or not len(two):
                continue
            k1, k2, kr = int(_significant(one).sum()), int(_significant(two).sum()), int(_significant(r1).sum())
            rows.append({"mode": mode, "check": "at down-sampling", "model": name,
                         "measured": f"stride-1: {k1} of {len(one)} layers lean significantly (mean lean "
                                     f"{_group_lean(one):+.3f}; random init {kr} of {len(r1)}); stride-2: {k2} of "
                                     f"{len(two)} ({_group_lean(two):+.3f})",
                         "consistent": bool(k1 < len(one) / 2 and k2 / len(two) > k1 / len(one))})
    return pd.DataFrame(rows, columns=["mode", "check", "model", "measured", "consistent"])


def asymmetry_conclusion(findings: pd.DataFrame) -> str:
    """One line per mode from :func:`asymmetry_findings`: which checks hold, which count against the prediction."""
    lines = []
    for mode, g in findings.groupby("mode", sort=False, dropna=False):
        ok = g[g["consistent"] == True]  # noqa: E712 (None is neither)
        bad = g[g["consistent"] == False]  # noqa: E712
        fmt = lambda d: ", ".join(f"{r.check}" + (f" ({r.model})" if r.model != "all" else "")  # noqa: E731
                                  for r in d.itertuples()) or "none"
        core = g[g["check"].isin(["opposite", "learned"])]
        core_ok = len(core) == 2 and bool((core["consistent"] == True).all())  # noqa: E712
        verdict = ("the measurements support the prediction" if len(bad) == 0 and core_ok else
                   "the core prediction (opposite and learned leans) holds, but not every corollary" if core_ok else
                   "the core prediction (opposite and learned leans) fails")
        lines.append(f"{mode} index: {len(ok)} of {len(ok) + len(bad)} checks consistent with Mind the Pad "
                     f"({fmt(ok)}); against it: {fmt(bad)}; {verdict}")
    core = {m: bool(((g["check"].isin(["opposite", "learned"])) & (g["consistent"] == True)).sum() == 2)  # noqa: E712
            for m, g in findings.groupby("mode", sort=False)}
    if core.get("abs") and core.get("signed") is False:
        lines.append("the abs index leans opposite ways and beyond random init, the signed index does not: the lean "
                     "is in where the weight magnitude sits, not in the kernels' net (signed) response")
    elif core.get("abs") and core.get("signed"):
        lines.append("both indices lean opposite ways and beyond random init: the lean is in the weight magnitude "
                     "and in the net (signed) response")
    return "\n".join(lines)


ARI_POOR, ARI_GOOD = 0.2, 0.5  # wording bands for the adjusted Rand index (our convention, printed with it)


def taxonomy_findings(cluster_checks: dict, alpha: float = 0.05) -> str:
    """Conclusions of the unsupervised check: {(model, features): (clustered, summary)} from
    :func:`taxonomy_clusters`. Per feature set: the ARI range over the entries, how many beat the permutation
    null at ``alpha``, and a wording band (ARI < 0.2: poorly, < 0.5: partly, else well; our convention)."""
    lines = []
    feats = list(dict.fromkeys(f for _, f in cluster_checks))
    for f in feats:
        s = {name: v[1] for (name, ff), v in cluster_checks.items() if ff == f}
        ari = np.array([v["ari"] for v in s.values()])
        coarse = np.array([v["ari_coarse"] for v in s.values()])
        sig = sum(v["p_value"] < alpha for v in s.values())
        top = float(ari.max())
        band = "poorly" if top < ARI_POOR else "partly" if top < ARI_GOOD else "well"
        lines.append(f"{f} features: ARI {ari.min():.2f} to {top:.2f} over {len(ari)} sets ({', '.join(s)}); "
                     f"above the permutation null (p < {alpha}) in {sig} of {len(ari)}; coarse ARI "
                     f"{coarse.min():.2f} to {coarse.max():.2f}")
        lines.append(f"  -> with {f} features the kernels separate the rule types {band} (ARI bands: < {ARI_POOR} "
                     f"poorly, < {ARI_GOOD} partly); "
                     + ("better than chance, so the type is partly written in the weights, but most of it is not"
                        if sig and band != "well" else "not better than chance" if not sig else
                        "the type is largely written in the weights"))
    return "\n".join(lines)


def stem_findings(models: dict, merged: dict, measured_input_means: dict | None = None) -> pd.DataFrame:
    """Per model, what the data-free detector can say about the stem (the conv reading the image).

    The stem's data-free input mean is the ImageNet mean after the model's own normalisation: exactly 0
    when the model normalises with the ImageNet mean itself (then the predicted border shift is 0 and no
    stem PAN can be predicted from the weights), small otherwise. Columns: model, layer, max |data-free
    mean|, max |measured mean| (``measured_input_means``: {model: {layer: tensor}}), PANs measured in the
    stem, predicted data-free, note.
    """
    rows = []
    for name, model in models.items():
        means = data_free_input_means(model).set_index("layer")
        stems = means.index[means["source"] == "image"]
        for layer in stems:
            mu = np.abs(np.asarray(means.loc[layer, "mean"], float)).max()
            m = merged[name][merged[name]["layer"] == layer]
            meas = np.nan
            if measured_input_means and layer in measured_input_means.get(name, {}):
                meas = float(np.abs(np.asarray(measured_input_means[name][layer], float)).max())
            zero = mu < 1e-9
            rows.append({"model": name, "layer": layer, "datafree_mean_max": float(mu), "measured_mean_max": meas,
                         "pans": int(m["is_pan"].sum()), "predicted": int(m["pred_is_pan"].sum()),
                         "note": "data-free mean is 0 by construction (normalised input): no prediction possible"
                         if zero else "data-free mean is non-zero: the prediction uses it"})
    return pd.DataFrame(rows)


def chapter_findings(agreement: pd.DataFrame, layers: pd.DataFrame, cluster_checks: dict,
                     asym_findings: pd.DataFrame) -> str:
    """The chapter's conclusions in one place: the 'conclusion' lines of :func:`agreement_verdict`, the
    verdict lines of :func:`taxonomy_findings` and :func:`asymmetry_conclusion` (all computed there)."""
    detector = [ln for ln in agreement_verdict(agreement, layers).splitlines() if ln.startswith("conclusion")]
    taxonomy = [ln.strip() for ln in taxonomy_findings(cluster_checks).splitlines() if ln.strip().startswith("->")]
    return "\n".join(["data-free detector:"] + [f"  {ln}" for ln in detector] + ["taxonomy:"] +
                     [f"  {ln}" for ln in taxonomy] + ["mean-kernel asymmetry:"] +
                     [f"  {ln}" for ln in asymmetry_conclusion(asym_findings).splitlines()])


def chapter_findings_box(type_diff: pd.DataFrame | None = None, agreement: pd.DataFrame | None = None,
                         cluster_checks: dict | None = None, asym_findings: pd.DataFrame | None = None) -> list:
    """Chapter 2's findings, one :class:`padlib.findings.Finding` per question: learned PAN types against a
    random network's, the data-free detector, the rule types in the kernels, Mind the Pad's lean (abs index).
    A question whose table is not given is left out (a section shows its own line)."""
    from .findings import Finding, verdict_of

    out = []
    vs_random = (type_diff[type_diff.set_b == PAN_SETS[2]].dropna(subset=["tv_distance"]) if type_diff is not None
                 else [])
    if len(vs_random):
        out.append(Finding(
            verdict_of(vs_random.differs.mean()), "Learned PANs' kernel types differ from a random network's border responses",
            f"{int(vs_random.differs.sum())} of {len(vs_random)} models (Holm-adjusted chi-square); total-variation "
            f"distance {vs_random.tv_distance.min():.2f}-{vs_random.tv_distance.max():.2f}; largest moves: "
            + "; ".join(f"{r.model} {r.rises}, {r.falls}" for r in vs_random.itertuples()),
            "learned-pans-against-random-init-pans"))
    if agreement is not None:
        df = agreement[agreement.predictor == "data-free"]
        good = (df.precision >= 0.5) & (df.recall >= 0.5)
        out.append(Finding(
            verdict_of(good.mean()), "The weights alone predict which filters are PANs (our data-free formula)",
            f"precision {df.precision.min():.2f}-{df.precision.max():.2f}, recall {df.recall.min():.2f}-"
            f"{df.recall.max():.2f} over {len(df)} models; both at least 0.5 in {int(good.sum())}",
            "the-activation-based-detector"))
    if cluster_checks is not None:
        per_model = {name: v for (name, f), (_, v) in cluster_checks.items() if name != "all models" and f == "profile"}
        if per_model:
            aris = np.array([v["ari"] for v in per_model.values()])
            sig = np.array([v["p_value"] <= 0.05 for v in per_model.values()])
            out.append(Finding(
                "partly" if sig.any() and aris.max() < 0.5 else verdict_of(float((aris >= 0.5).mean())),
                "PAN types (our rule) are written in the kernel shapes",
                f"adjusted Rand index {aris.min():.2f}-{aris.max():.2f} (0 chance, 1 identical) over {len(aris)} models, "
                f"above the permutation null in {int(sig.sum())}", "unsupervised-check"))
    if asym_findings is not None:
        a = asym_findings[asym_findings["mode"] == "abs"]
        core = a[a.check.isin(["opposite", "learned"])]
        rest = a[~a.check.isin(["opposite", "learned"]) & a.consistent.notna()]
        core_ok = bool(len(core)) and bool(core.consistent.fillna(False).all())
        verdict = ("holds" if core_ok and rest.consistent.astype(bool).all() else "partly" if core_ok else "not here")
        out.append(Finding(
            verdict, "Uneven padding leaves opposite, learned leans in the mean kernels (Mind the Pad)",
            "; ".join(f"{r.check}: {r.measured}" for r in core.itertuples())
            + f"; {int(rest.consistent.astype(bool).sum())} of {len(rest)} corollary checks pass (abs index)",
            "mean-kernel-asymmetry-did-uneven-padding-leave-a-lean"))
    return out


def asymmetry_with_control(model: nn.Module, modes=("abs", "signed"), n_boot: int = 200, seed: int = 0,
                           input_size=None, ci: float = 0.95) -> pd.DataFrame:
    """:func:`mean_kernel_asymmetry` of a pretrained model and of its random initialisation (same architecture,
    ``pretrained=False``, seeded), in each mode; columns ``model``, ``init``, ``mode`` added.

    The random-init control shows how large a lean sampling noise alone produces for the same number of
    kernels: a lean is learned only where the pretrained interval leaves the control's range.
    """
    from .models import load_model, model_device

    name = getattr(model, "padlib_name", None)
    if name is None:
        raise PadlibError("the random-init control needs a model loaded with padlib.load_model (it rebuilds it by name)")
    torch.manual_seed(seed)
    control = load_model(name, pretrained=False, device=model_device(model))
    sizes = conv_input_sizes(model, input_size)  # same architecture: same sizes for the control
    frames = []
    for init, m in (("pretrained", model), ("random init", control)):
        for mode in modes:
            df = mean_kernel_asymmetry(m, mode=mode, n_boot=n_boot, seed=seed, in_sizes=sizes, ci=ci)
            frames.append(df.assign(model=name, init=init, mode=mode))
    return pd.concat(frames, ignore_index=True)


def gallery_pages(classified: dict, scans: dict, models: dict, per_type: int = 2, seed: int = 0) -> dict:
    """{'model: type': gallery entries} for every model and PAN type present, for ``plots.kernel_browser``.

    ``classified``: {model name: :func:`classify_pan_kernels` table}; ``scans``: {name: object with
    ``.table`` and ``.maps``, e.g. ``padlib.pans.PanScan``}; ``models``: {name: loaded model}.
    """
    pages = {}
    for name, cl in classified.items():
        entries = gallery_entries(cl, scans[name].table, scans[name].maps, models[name], per_type=per_type, seed=seed)
        for t in PAN_TYPES:
            chosen = [e for e in entries if e["type"] == t]
            if chosen:
                pages[f"{name}: {t}"] = chosen
    return pages


def scan_overview(scans: dict, models: dict, size=None) -> pd.DataFrame:
    """One row per model: input size (``size`` or the model's own), probe images, the calibrated thresholds,
    filters, PANs and corner-only PANs, scan seconds. ``scans``: {name: ``padlib.pans.PanScan``}."""
    from .models import preprocessing

    rows = {}
    for name, s in scans.items():
        rows[name] = {"input_size": int(size or preprocessing(models[name]).input_size), "images": s.n_images,
                      "tau": s.tau, "tau_corner": s.tau_corner, "filters": len(s.table),
                      "PANs": int(s.table["is_pan"].sum()), "corner_only_PANs": int(corner_only_pans(s.table).sum()),
                      "seconds": sum(s.seconds.values())}
    return pd.DataFrame(rows).T


def type_counts(classified: pd.DataFrame) -> pd.DataFrame:
    """PANs per type (columns, in :data:`PAN_TYPES` order) per model (rows), from concatenated tables."""
    table = pd.crosstab(classified["model"], classified["type"])
    cols = [t for t in PAN_TYPES if t in table.columns]
    out = table[cols].copy()
    out["total"] = out.sum(1)
    return out


# ---------------------------------------------------------------------------------------------------------
# Learned PANs against random-init "PANs": do their kernel types differ?

PAN_SETS = ("learned (trained)", "padding-caused (trained)", "padding-caused (random init)")


def pan_sets(trained: pd.DataFrame, trained_profiles: pd.DataFrame, control: pd.DataFrame,
             control_profiles: pd.DataFrame, model: str) -> pd.DataFrame:
    """The typed kernels (:func:`classify_pan_kernels`) of one model's three sets of :data:`PAN_SETS`: its
    learned PANs (the default scan's ``is_pan``), its padding-caused channels (the older definition) and the
    padding-caused channels of a random-init copy of its architecture (what any random network shows);
    column ``set``. ``trained``/``control``: ``find_pans`` tables of the model and of the copy."""
    def caused(t):
        return t.assign(is_pan=t["padding_caused"]) if "padding_caused" in t else t

    parts = [(PAN_SETS[0], trained, trained_profiles), (PAN_SETS[1], caused(trained), trained_profiles),
             (PAN_SETS[2], caused(control), control_profiles)]
    return pd.concat([classify_pan_kernels(t, prof).assign(model=model, set=name) for name, t, prof in parts],
                     ignore_index=True)


def type_shares(sets: pd.DataFrame) -> pd.DataFrame:
    """Per model and set: PANs per type and their share of the set (%), tidy, types in :data:`PAN_TYPES` order."""
    counts = sets.groupby(["model", "set", "type"], sort=False).size().rename("count").reset_index()
    full = pd.MultiIndex.from_product([list(dict.fromkeys(sets.model)), [s for s in PAN_SETS if s in set(sets.set)],
                                       list(PAN_TYPES)], names=["model", "set", "type"])
    out = counts.set_index(["model", "set", "type"]).reindex(full, fill_value=0).reset_index()
    out["share_pct"] = 100.0 * out["count"] / out.groupby(["model", "set"])["count"].transform("sum").clip(lower=1)
    return out


def holm_adjust(p) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (controls the family-wise error rate); NaN counts as 1.
    The one implementation the chapters share."""
    p = np.nan_to_num(np.asarray(p, dtype=float), nan=1.0)
    order = np.argsort(p, kind="stable")
    adj = np.empty_like(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(p) - rank) * p[i])
        adj[i] = min(1.0, running)
    return adj


def type_difference(sets: pd.DataFrame, a: str = PAN_SETS[0], b: str = PAN_SETS[2],
                    alpha: float = 0.05) -> pd.DataFrame:
    """Per model, do the type distributions of sets ``a`` and ``b`` differ? Total-variation distance between
    the two distributions (0 same, 1 disjoint), chi-square test of independence (types absent from both
    dropped), Holm-adjusted across models, and the types whose share rises and falls most from ``b`` to
    ``a``. With a few hundred PANs per set the test resolves distances of about 0.1 (our rough power)."""
    from scipy.stats import chi2_contingency

    shares = type_shares(sets[sets.set.isin([a, b])])
    rows = []
    for model, d in shares.groupby("model", sort=False):
        ca = d[d.set == a].set_index("type")["count"]
        cb = d[d.set == b].set_index("type")["count"]
        table = pd.concat([ca, cb], axis=1).fillna(0)
        table = table[table.sum(1) > 0]
        na, nb = int(ca.sum()), int(cb.sum())
        if na == 0 or nb == 0 or len(table) < 2:
            rows.append({"model": model, "set_a": a, "set_b": b, "n_a": na, "n_b": nb, "tv_distance": np.nan,
                         "cramers_v": np.nan, "p": np.nan, "rises": "", "falls": ""})
            continue
        chi2, p, dof, _ = chi2_contingency(table.to_numpy())
        sa, sb = ca / na, cb / nb
        diff = (sa - sb)
        rows.append({"model": model, "set_a": a, "set_b": b, "n_a": na, "n_b": nb,
                     "tv_distance": float(0.5 * diff.abs().sum()),
                     "cramers_v": float(np.sqrt(chi2 / (na + nb) / max(min(table.shape) - 1, 1))), "p": float(p),
                     "rises": f"{diff.idxmax()} {100 * sb[diff.idxmax()]:.0f}->{100 * sa[diff.idxmax()]:.0f}%",
                     "falls": f"{diff.idxmin()} {100 * sb[diff.idxmin()]:.0f}->{100 * sa[diff.idxmin()]:.0f}%"})
    out = pd.DataFrame(rows)
    ok = out.p.notna()
    out["p_holm"] = np.nan
    out.loc[ok, "p_holm"] = holm_adjust(out.loc[ok, "p"])
    out["differs"] = out.p_holm < alpha
    return out


def type_difference_findings(diff: pd.DataFrame, alpha: float = 0.05) -> list[str]:
    """One sentence per model on whether the learned PANs' kernel types differ from the comparison set's."""
    out = []
    for _, r in diff.iterrows():
        if not np.isfinite(r.tv_distance):
            out.append(f"{r.model}: too few PANs in one of the sets to compare ({r.n_a} vs {r.n_b}).")
            continue
        verdict = "differ" if r.differs else "do not differ detectably"
        moves = f"; largest rise {r.rises}, largest fall {r.falls}" if r.differs else ""
        out.append(f"{r.model}: the types of its {r.n_a} {r.set_a} PANs {verdict} from those of the {r.n_b} "
                   f"{r.set_b} channels (total-variation distance {r.tv_distance:.2f}, Holm-adjusted p "
                   f"{r.p_holm:.2g} at alpha {alpha:g}){moves}.")
    return out


# ---------------------------------------------------------------------------------------------------------
# CLI and benchmark


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("kernels", help="data-free PAN prediction and mean-kernel asymmetry (chapter 2)")
    p.add_argument("model", help="model name, e.g. mobilenet_v2 or tf_efficientnet_lite0 (NAME=PATH: your checkpoint)")
    p.add_argument("--tau", type=float, default=2.0,
                   help="threshold on the predicted border contrast |z| (chapter 1 calibrates it; default 2.0)")
    p.add_argument("--size", type=int, default=None, help="input size in pixels (default: the model's own)")
    p.add_argument("--mode", choices=("abs", "signed"), default="abs", help="mean-kernel asymmetry index")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_kernels)


def _cmd_kernels(args) -> int:
    from .models import load_model

    model = load_model(args.model)
    pred = data_free_pans(model, tau=args.tau, input_size=args.size)
    n = int(pred["pred_is_pan"].sum())
    print(f"{args.model}: {n} of {len(pred)} filters predicted to respond to the border (|z_p| >= {args.tau}), "
          "from the weights alone")
    asym = mean_kernel_asymmetry(model, input_size=args.size, mode=args.mode, seed=args.seed)
    cols = ["layer", "kernel", "stride", "in_size", "reads", "asym_lr", "asym_lr_lo", "asym_lr_hi", "asym_tb",
            "asym_tb_lo", "asym_tb_hi"]
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(asym[cols].to_string(index=False))
    return 0


def bench_data_free() -> dict:
    """Chapter 2: the data-free PAN prediction and the mean-kernel asymmetry of MobileNetV2, as ratios to a plain
    forward of 32 probe images at 224 px measured in the same run (best of 2): what the weights-only view costs."""
    from .bench import time_call
    from .data import probe_images
    from .models import load_model

    model = load_model("mobilenet_v2")
    x = probe_images(32, model=model).tensor()

    def forward():
        with torch.no_grad():
            model(x)

    t_fwd = time_call(forward, repeats=2)
    t_pred = time_call(lambda: data_free_pans(model, tau=2.0), repeats=2)
    t_asym = time_call(lambda: mean_kernel_asymmetry(model, n_boot=200), repeats=2)
    return {"data_free_pans_over_forward32": round(t_pred / t_fwd, 3),
            "mean_kernel_asymmetry_over_forward32": round(t_asym / t_fwd, 3)}
