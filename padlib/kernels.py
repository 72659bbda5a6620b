"""PAN kernels from the weights: the data-free border response, kernel profiles, a taxonomy, mean-kernel asymmetry.

A zero-padded convolution evaluated on a constant input equal to the input channel means gives, at the
border, the interior response minus the taps that land on padding. That shift is computable from the
weights alone (:func:`padding_response`), so the weights predict which filters respond to the border
(:func:`data_free_pans`), what their kernels look like (:func:`kernel_profile`, :func:`classify_pan_kernels`),
and whether uneven padding left a lean in the learned kernels (:func:`mean_kernel_asymmetry`).
All formulas here are our formulation (the PAN paper's method is not public), validated against brute force.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._compat import moved_names
from ._hooks import keeps_model
from ._trace import _PASS_THROUGH, ConvTrace, _structure, conv_input_sizes, trace_convs
from .errors import PadlibError, check_type
from .layers.base import padding_scheme_of
from .models import preprocessing, random_init_copy
from .padding import (
    CORNERS,
    SIDES,
    _pair,
    is_dynamic_same,
    layer_pads,
    padded_convs,
    padded_taps,
    padding_read,
    require_padded_convs,
)
from .preprocess import IMAGENET_MEAN
from .stats import bootstrap_ci, interval_sign

_OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def _check_conv(conv) -> nn.Conv2d:
    check_type("conv", conv, nn.Conv2d, "pass one torch.nn.Conv2d layer (e.g. from padlib.padding.padded_convs)")

    scheme = padding_scheme_of(conv)
    if scheme != "zero":
        raise PadlibError(f"the data-free border response is derived for zero padding; this conv pads with "
                          f"'{scheme}' (convert it back with padlib.layers.base.convert_padding(model, 'zero'))")
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
    rows_top, rows_bottom, out_h = padded_taps(h, kh, sh, dh, top, bottom)
    cols_left, cols_right, out_w = padded_taps(w, kw, sw, dw, left, right)
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


@keeps_model
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


@keeps_model
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


@keeps_model
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
        if n_boot > 0:  # the lean is linear in the kernel: the mean kernel's lean is the mean of the slices' leans
            leans = np.array([_asymmetry(s) for s in k])  # (slices, 2): lr, tb
            (lr_lo, tb_lo), (lr_hi, tb_hi) = bootstrap_ci(leans, n_boot, seed, ci)
            row.update(asym_lr_lo=float(lr_lo), asym_lr_hi=float(lr_hi), asym_tb_lo=float(tb_lo),
                       asym_tb_hi=float(tb_hi))
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(mode=mode, n_boot=n_boot, seed=seed, ci=ci)
    return out


@keeps_model
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
            (tb_lo, lr_lo), (tb_hi, lr_hi) = bootstrap_ci(np.stack([tb, lr], 1), n_boot, seed, ci)
            row.update(energy_tb_lo=float(tb_lo), energy_tb_hi=float(tb_hi), energy_lr_lo=float(lr_lo),
                       energy_lr_hi=float(lr_hi))
        rows.append(row)
    return pd.DataFrame(rows)


@keeps_model
def row_energy_with_control(model: nn.Module, input_size=None, seeds=(0, 1, 2, 3), n_boot: int = 200,
                            seed: int = 0) -> pd.DataFrame:
    """:func:`row_energy` of ``model`` (``init`` "pretrained") and of random-init copies of its architecture
    (``init`` "random init", one block per seed in ``seeds``, :func:`padlib.models.random_init_copy`)."""

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
            lr = interval_sign(g["asym_lr_lo"], g["asym_lr_hi"], g["asym_lr"])
            tb = interval_sign(g["asym_tb_lo"], g["asym_tb_hi"], g["asym_tb"])
            row.update(lean_right=int((lr > 0).sum()), lean_left=int((lr < 0).sum()),
                       lean_down=int((tb > 0).sum()), lean_up=int((tb < 0).sum()))
        rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# Checks and computed conclusions the chapter prints


@keeps_model
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


# Names that lived here before padlib 0.2 keep working for one release (each old path warns once).
__getattr__ = moved_names(__name__)
