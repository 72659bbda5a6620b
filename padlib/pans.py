"""Padding Aware Neurons (PANs): filters whose response is driven by the padding frame itself (chapter 1).

Our formulation (the paper's exact method is not public; Garcia-Gasulla et al., ICCV 2023 workshops):

* Every conv that can read padding (:func:`padlib.padding.padded_convs`) is scanned. The statistics live in
  the *pre-activation* space, i.e. where the non-linearity sees them: the conv output passed through the
  BatchNorm that directly consumes it (found by tensor identity during the first batch, so it works for
  torchvision's ``Conv2dNormActivation`` and for timm's fused ``BatchNormAct2d``). An eval-mode BN is a
  per-channel affine map ``a * y + b``, so we record the raw conv output (cheap) and apply the affine
  afterwards; its sign matters: a negative ``a`` turns a channel that fires at the border into one that is
  silenced there, and :func:`find_pans` reports the sign after the BN.
* Border contrast per side s: ``z_s = (mean of the outermost row/column, corners excluded - interior mean)
  / interior std``, all over the mean map of the probe images; the interior is every position at distance
  >= ``margin`` from each border (``margin = max(ceil(min(H, W) / 8), rows this layer's own padding
  reaches)``); the interior std pools images and interior positions (estimated on every k-th interior
  row, at least 16 rows, all columns and images), floored at 10% of the layer's median interior std so
  that near-dead channels do not turn tiny border differences into huge scores. Corners get the same
  statistic.
* Causal padding effect per side: inside the conv's forward hook the outermost output row/column is
  recomputed from the *same input* with replicate padding (index clamping on a strip as thin as the kernel),
  and ``effect_s`` is the mean (own output - replicate output) there, in interior-std units: the part of the
  border response that this layer's padding values cause. The recomputation is linear in the input, so it
  runs once per batch on the batch sum of the input (one small conv1d per layer, block-diagonal over sides).

The hooks use :func:`padlib.activations.forward_hooks` (always removed) but not ``layer_map_stats``: the
scan needs the conv input as well as its output, and full-size float64 sum-of-squares maps would cost two
more passes per layer than the per-channel interior moments kept here.
* A side is a PAN side when ``|z_s| > tau`` and ``effect_s / z_s >= min_explained`` (0.5: the padding
  explains most of the contrast, with the same sign). A channel with no PAN side whose corner passes
  ``tau_corner`` is a corner PAN. ``sides`` is "top", "top+left", ..., "frame" (all four), or
  "top-left corner"; ``sign`` is +1 when the channel fires at its PAN border, -1 when it is silenced there.
* ``tau`` and ``tau_corner`` are calibrated on a null where padding cannot create a border: the same model
  with every padding made circular (:func:`padlib.padding.convert_padding`), scanned on the same images.
  Each is the ``1 - fpr`` quantile of the null's per-channel maximum ``|z|`` over sides (resp. corners),
  taken so that at most a fraction ``fpr`` of null channels exceeds it.

``find_pans`` returns the table (a DataFrame; scalar facts in ``.attrs``: tau, tau_corner, fpr, ...).
``scan_pans`` returns a :class:`PanScan` holding the table, the null table, the thresholds, the mean
pre-activation maps and the effective kernels, for plots and the explorer. Statistics are streamed: memory
is per-layer sums only, flat in the number of images.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .activations import forward_hooks, iter_batches
from .errors import PadlibError, check_new_output, check_type
from .padding import convert_padding, layer_pads, padding_scheme_of, require_padded_convs, is_dynamic_same

SIDES = ("top", "bottom", "left", "right")
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
LOCATIONS = SIDES + CORNERS
PAPER_CLAIM = "from dozens to hundreds PANs per model (paper abstract); about 2% of filters (unverified summary)"

# How we read the paper's words as numbers. These are OUR readings, not numbers from the paper.
CLAIM_COUNT_RANGE = (24, 999)  # "from dozens to hundreds": at least two dozen, fewer than a thousand
CLAIM_SHARE_PCT = 2.0          # the unverified secondary summary's "about 2%" of filters
ABOUT_FACTOR = 2.0             # "about": within this factor of CLAIM_SHARE_PCT

# Method constants of our formulation (printed in the chapter by :func:`method_settings`).
MARGIN_FRACTION = 1 / 8        # interior margin, as a fraction of the map's shorter side (at least the padded rows)
VARIANCE_ROWS = 16             # the interior std uses every k-th interior row, at least this many rows
STD_FLOOR = 0.1                # interior std floor, as a fraction of the layer's median interior std
MIN_EXPLAINED = 0.5            # share of a side's contrast the padding effect must explain (same sign)
DEFAULT_FPR = 0.01             # false-positive rate on the circular null that sets tau
REFERENCE_SEEDS = (0, 1)       # random-init copies that make the learned-PAN reference (reference="random_init")
REFERENCE_IMAGES = 8           # of the probe images, the first this many scan the reference copies (one batch)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ---------------------------------------------------------------------------------------------------------
# Streaming accumulation, one object per scanned conv.

class _Workspace:
    """One reusable scratch buffer for the hooks: big temporaries would otherwise be fresh allocations (page
    faults on every batch); the hooks run one at a time, so one buffer of the largest size serves all."""

    def __init__(self):
        self.buffer = None

    def get(self, shape, like: torch.Tensor) -> torch.Tensor:
        numel = math.prod(shape)
        if self.buffer is None or self.buffer.numel() < numel or self.buffer.device != like.device \
                or self.buffer.dtype != like.dtype:
            self.buffer = torch.empty(numel, dtype=like.dtype, device=like.device)
        return self.buffer[:numel].view(shape)


class _LayerStats:
    """Running sums of one conv's raw output: mean map, pooled interior moments, border padding effects."""

    def __init__(self, name: str, depth: int, module: nn.Conv2d):
        self.name, self.depth, self.module = name, depth, module
        self.n = 0
        self.ready = False

    def _init(self, x: torch.Tensor, y: torch.Tensor):
        m = self.module
        (kh, kw), (sh, sw), (dh, dw) = (_pair(getattr(m, a)) for a in ("kernel_size", "stride", "dilation"))
        hin, win = x.shape[-2:]
        hout, wout = y.shape[-2:]
        l, r, t, b = layer_pads(m, (hin, win))
        self.in_hw, self.out_hw, self.pads = (hin, win), (hout, wout), (l, r, t, b)
        self.kernel, self.stride, self.dilation = (kh, kw), (sh, sw), (dh, dw)
        # output rows/columns whose window reaches each side's padding (0 when that padding is never read)
        self.affected = {
            "top": sum(1 for i in range(hout) if i * sh - t < 0),
            "bottom": sum(1 for i in range(hout) if i * sh - t + dh * (kh - 1) > hin - 1),
            "left": sum(1 for j in range(wout) if j * sw - l < 0),
            "right": sum(1 for j in range(wout) if j * sw - l + dw * (kw - 1) > win - 1),
        }
        self.margin = max(math.ceil(min(hout, wout) * MARGIN_FRACTION), *self.affected.values(), 1)
        self.margin = min(self.margin, (min(hout, wout) - 1) // 2)
        self.skip = min(hout, wout) < 3 or self.margin < 1
        dev = y.device
        c = y.shape[1]
        self.map_sum = torch.zeros(c, hout, wout, dtype=torch.float64, device=dev)
        self.int_count = 0  # interior mean (all interior positions) and variance (on a grid, shifted)
        self.int_mean_sum = torch.zeros(c, dtype=torch.float64, device=dev)
        self.int_ref = None
        self.var_step = max(1, (hout - 2 * self.margin) // VARIANCE_ROWS)
        self.var_count = 0
        self.var_s1 = torch.zeros(c, dtype=torch.float64, device=dev)
        self.var_s2 = torch.zeros(c, dtype=torch.float64, device=dev)
        self.in_sum = torch.zeros(x.shape[1], dtype=torch.float64, device=dev)
        self.in_count = 0
        self.strip_groups = _strip_groups(m, self.affected, self.in_hw, self.out_hw, self.pads)
        self.strips = [side for g in self.strip_groups for side in g["sides"]]
        self.effect_sum = {
            s: torch.zeros(c, wout if s in ("top", "bottom") else hout, dtype=torch.float64, device=dev)
            for s in SIDES
        }
        self.ready = True

    def update(self, x: torch.Tensor, y: torch.Tensor, workspace: "_Workspace"):
        if not self.ready:
            self._init(x, y)
        elif tuple(x.shape[-2:]) != self.in_hw:
            raise PadlibError(
                f"layer {self.name}: input size changed from {self.in_hw} to {tuple(x.shape[-2:])}; "
                "all probe images must have the same size"
            )
        y = y.detach()
        bsz = y.shape[0]
        self.n += bsz
        map_batch = y.sum(0)
        self.map_sum += map_batch
        if self.skip:
            return
        m = self.margin
        hout, wout = self.out_hw
        count = bsz * (hout - 2 * m) * (wout - 2 * m)
        interior_sum = map_batch[:, m:hout - m, m:wout - m]
        s1 = interior_sum.sum((1, 2))
        if self.int_ref is None:
            self.int_ref = s1 / count
        self.int_mean_sum += s1.double()
        self.int_count += count
        # interior variance from every var_step-th interior row (all columns, all images): the spread of
        # adjacent rows is redundant; centred by a reference so that float32 sums suffice
        vs = self.var_step
        rows = y[:, :, m:hout - m:vs, m:wout - m]
        g1 = interior_sum[:, ::vs, :].sum((1, 2))
        shifted = torch.sub(rows, self.int_ref[None, :, None, None], out=workspace.get(rows.shape, y))
        n_rows = bsz * rows.shape[-2] * rows.shape[-1]
        self.var_s1 += g1.double() - n_rows * self.int_ref.double()
        self.var_s2 += shifted.square_().sum((2, 3)).sum(0)
        self.var_count += n_rows
        # the replicate recomputation is linear in x: gather the clamped strips from the batch sum of x and
        # convolve once per group of same-shaped strips (block-diagonal weight over sides)
        x_sum = x.sum(0)
        self.in_sum += x_sum.sum((1, 2))
        self.in_count += bsz * x.shape[-2] * x.shape[-1]
        bias = self.module.bias
        own = {"top": map_batch[:, 0, :], "bottom": map_batch[:, hout - 1, :],
               "left": map_batch[:, :, 0], "right": map_batch[:, :, wout - 1]}
        flat = x_sum.view(x_sum.shape[0], -1)
        for g in self.strip_groups:
            strip = flat.index_select(1, g["index"]).view(1, -1, g["length"])
            rep = F.conv1d(strip, g["weight"], None, g["stride"], 0, g["dilation"], g["groups"])
            rep = rep.view(own["top"].shape[0], len(g["sides"]), -1)
            if bias is not None:
                rep = rep + bsz * bias.detach()[:, None, None]
            for j, side in enumerate(g["sides"]):
                self.effect_sum[side] += own[side] - rep[:, j]


def state_bytes(stats: dict) -> dict[str, tuple[int, int]]:
    """Per scanned layer, (bytes of every tensor its accumulator holds, number of held items), walking its
    attributes, dicts and lists (the conv module itself excluded). Streaming means this does not depend on
    the number of images: the tests compare it after 8 and after 64 images."""

    def walk(v):
        if isinstance(v, torch.Tensor):
            return v.numel() * v.element_size(), 1
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, (list, tuple)):
            parts = [walk(x) for x in v]
            return sum(p[0] for p in parts), sum(p[1] for p in parts) + 1
        return 0, 1

    return {name: walk([v for k, v in vars(st).items() if k != "module"]) for name, st in stats.items()}


def _strip_groups(conv: nn.Conv2d, affected: dict, in_hw, out_hw, pads) -> list[dict]:
    """The replicate-padded input strips that feed each border's outermost output row/column, as gathers.

    Replicate padding is index clamping, so each strip is a gather of flat input positions: for the top
    side, the ``kh`` input rows under the first output row (clamped) by all padded columns (clamped). Sides
    whose strips have the same shape share one conv1d call: their rows are stacked per input channel and
    the weight is block-diagonal over sides (left/right use the transposed kernel), output index o*n + j.
    """
    (kh, kw), (sh, sw), (dh, dw) = (_pair(getattr(conv, a)) for a in ("kernel_size", "stride", "dilation"))
    (hin, win), (hout, wout) = in_hw, out_hw
    l, r, t, b = pads
    dev = conv.weight.device
    w = conv.weight.detach()
    cols_all = torch.arange(-l, win + r, device=dev).clamp(0, win - 1)
    rows_all = torch.arange(-t, hin + b, device=dev).clamp(0, hin - 1)
    specs = []
    for side in SIDES:
        if not affected[side]:
            continue
        if side in ("top", "bottom"):
            first = 0 if side == "top" else hout - 1
            rows = (first * sh - t + dh * torch.arange(kh, device=dev)).clamp(0, hin - 1)
            index = rows[:, None] * win + cols_all[None, :]
            specs.append((side, index.reshape(-1), w, (kh, cols_all.numel(), kw, sw, dw)))
        else:
            first = 0 if side == "left" else wout - 1
            cols = (first * sw - l + dw * torch.arange(kw, device=dev)).clamp(0, win - 1)
            index = rows_all[None, :] * win + cols[:, None]
            specs.append((side, index.reshape(-1), w.transpose(2, 3), (kw, rows_all.numel(), kh, sh, dh)))
    groups = []
    for key in dict.fromkeys(spec[3] for spec in specs):
        members = [spec for spec in specs if spec[3] == key]
        k, length, klen, stride, dil = key
        n = len(members)
        cout, cin_g = w.shape[:2]
        block = torch.zeros(cout, n, cin_g, n, k, klen, dtype=w.dtype, device=dev)
        for j, (_, _, wj, _) in enumerate(members):
            block[:, j, :, j] = wj
        groups.append({
            "sides": [spec[0] for spec in members],
            "index": torch.cat([spec[1] for spec in members]),
            "weight": block.reshape(cout * n, cin_g * n * k, klen),
            "length": length, "stride": stride, "dilation": dil, "groups": conv.groups,
        })
    return groups


@dataclass
class _Affine:
    """The eval-mode BatchNorm that consumes a conv's output, as a per-channel ``scale * y + shift``."""

    bn_name: str
    scale: torch.Tensor
    shift: torch.Tensor


def _bn_affine(name: str, bn: nn.modules.batchnorm._BatchNorm) -> _Affine:
    w = bn.weight.detach().double() if bn.weight is not None else torch.ones(bn.num_features, dtype=torch.float64)
    b = bn.bias.detach().double() if bn.bias is not None else torch.zeros_like(w)
    if bn.running_var is None:  # no running statistics: only the sign of gamma is known
        return _Affine(name, w.sign().where(w != 0, torch.ones_like(w)), torch.zeros_like(w))
    scale = w / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    return _Affine(name, scale, b - bn.running_mean.detach().double() * scale)


@contextlib.contextmanager
def _batch_statistics(bns):
    """These BatchNorms normalise with each batch's statistics and keep their cumulative average as running
    statistics (reset first, momentum None); their momenta are restored on leaving."""
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    try:
        yield
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom


@torch.no_grad()
def _stream(model: nn.Module, images, batch_size: int, device, progress, desc: str, bn_batch_stats: bool = False):
    """One pass over ``images``: per padded conv, the raw statistics and the BN that follows it.

    ``bn_batch_stats``: every BatchNorm normalises with the statistics of the batch and keeps them as its running
    statistics (one batch: the exact mean and variance over the images, what :func:`recalibrate_batchnorm` sets,
    in the same pass)."""
    convs = require_padded_convs(model)
    stats = {name: _LayerStats(name, depth, m) for depth, (name, m) in enumerate(convs)}
    bns = {n: m for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    pending: dict[int, tuple[str, weakref.ref]] = {}  # weak: holding outputs would keep activations alive
    follows: dict[str, str] = {}
    first_batch = [True]

    workspace = _Workspace()

    def on_conv(name, module, inputs, output):
        stats[name].update(inputs[0], output, workspace)
        if first_batch[0]:
            pending[id(output)] = (name, weakref.ref(output))

    def on_bn(name, module, inputs, output):
        hit = pending.get(id(inputs[0]))
        if hit is not None and hit[1]() is inputs[0]:
            follows[hit[0]] = name

    first_conv = convs[0][1]
    was_training = model.training
    model.eval()
    try:
        with _batch_statistics(list(bns.values()) if bn_batch_stats else []), \
                forward_hooks(model, list(stats), on_conv):
            bn_hooks = forward_hooks(model, list(bns), on_bn)
            bn_hooks.__enter__()
            try:
                for batch in _batches(images, batch_size, device, progress, desc):
                    if batch.dim() != 4:
                        raise PadlibError(f"image batches must be (N, C, H, W), got shape {tuple(batch.shape)}")
                    model(batch)
                    if first_batch[0]:
                        first_batch[0] = False
                        pending.clear()
                        bn_hooks.__exit__(None, None, None)
            except RuntimeError as e:
                if first_batch[0] and ("channels" in str(e) or "size" in str(e)):
                    raise PadlibError(
                        f"the model cannot run on these images ({str(e).splitlines()[0][:150]}); the first "
                        f"padded conv expects {first_conv.in_channels}-channel input"
                    ) from None
                raise
            finally:
                if first_batch[0]:
                    bn_hooks.__exit__(None, None, None)
                pending.clear()
    finally:
        model.train(was_training)
    if not any(s.n for s in stats.values()):
        raise PadlibError("no images were scanned: the image set is empty")
    affines = {c: _bn_affine(b, bns[b]) for c, b in follows.items()}
    return stats, affines


def _batches(images, batch_size, device, progress, desc):
    if hasattr(images, "batches"):
        yield from images.batches(batch_size, progress=desc if progress else False, device=device)
        return
    if isinstance(images, torch.Tensor):
        from tqdm.auto import tqdm

        bar = tqdm(total=images.shape[0] if images.dim() == 4 else 0, desc=desc, unit="img",
                   disable=not progress, leave=False)
        try:
            for b in iter_batches(images, batch_size, device, False):
                bar.update(b.shape[0])
                yield b
        finally:
            bar.close()
        return
    for b in images:
        if not isinstance(b, torch.Tensor):
            raise PadlibError(f"image batches must be tensors (N, C, H, W), got {type(b).__name__}")
        yield b.to(device)


# ---------------------------------------------------------------------------------------------------------
# From sums to the table.

def _padding_label(conv: nn.Conv2d) -> str:
    if is_dynamic_same(conv):
        return "tf_same"
    p = conv.padding
    if isinstance(p, str):
        return "torch_same" if p == "same" else p
    ph, pw = _pair(p)
    return str(ph) if ph == pw else f"{ph}x{pw}"


def _dim_label(v):
    a, b = _pair(v)
    return int(a) if a == b else f"{a}x{b}"


def _tap_masks(st: _LayerStats) -> dict[str, torch.Tensor]:
    """Which kernel taps fall on padding at each border location (zero padding: those taps read 0)."""
    kh, kw = st.kernel
    sh, sw = st.stride
    dh, dw = st.dilation
    hin, win = st.in_hw
    hout, wout = st.out_hw
    l, r, t, b = st.pads
    ri, qi = torch.arange(kh), torch.arange(kw)
    row = {"top": (-t + dh * ri) < 0, "bottom": ((hout - 1) * sh - t + dh * ri) > hin - 1}
    col = {"left": (-l + dw * qi) < 0, "right": ((wout - 1) * sw - l + dw * qi) > win - 1}
    none_r, none_c = torch.zeros(kh, dtype=torch.bool), torch.zeros(kw, dtype=torch.bool)
    masks = {
        "top": row["top"][:, None] | none_c[None, :],
        "bottom": row["bottom"][:, None] | none_c[None, :],
        "left": none_r[:, None] | col["left"][None, :],
        "right": none_r[:, None] | col["right"][None, :],
    }
    for corner in CORNERS:
        v, h = corner.split("_")
        masks[corner] = row[v][:, None] | col[h][None, :]
    return masks


def _border_cuts(st: _LayerStats) -> dict[str, int]:
    """How many outputs to leave out at each end of a side: the corner, and every output the perpendicular
    side's padding reaches (fewer on tiny maps, so that at least one output is left)."""
    hout, wout = st.out_hw
    room = {"top": (hout - 1) // 2, "bottom": (hout - 1) // 2, "left": (wout - 1) // 2, "right": (wout - 1) // 2}
    return {s: min(max(1, st.affected[s]), room[s]) for s in SIDES}


def _border_effects(st: _LayerStats) -> dict[str, torch.Tensor]:
    """Mean padding effect (own - replicate output, raw units) at the 8 border locations, (C,) each.

    Sides average their outermost row/column without the corner cuts; a corner pixel's effect comes from
    whichever strip covers it (a side whose padding is never read has no strip, but its corners may still
    read the perpendicular padding).
    """
    n = st.n
    hout, wout = st.out_hw
    cut = _border_cuts(st)
    eff = {s: st.effect_sum[s] / n for s in SIDES}
    has = st.strips

    def corner(v, h, i_v, i_h):
        if v in has:
            return eff[v][:, i_h]
        return eff[h][:, i_v]

    return {
        "top": eff["top"][:, cut["left"]:wout - cut["right"]].mean(1),
        "bottom": eff["bottom"][:, cut["left"]:wout - cut["right"]].mean(1),
        "left": eff["left"][:, cut["top"]:hout - cut["bottom"]].mean(1),
        "right": eff["right"][:, cut["top"]:hout - cut["bottom"]].mean(1),
        "top_left": corner("top", "left", 0, 0), "top_right": corner("top", "right", 0, wout - 1),
        "bottom_left": corner("bottom", "left", hout - 1, 0),
        "bottom_right": corner("bottom", "right", hout - 1, wout - 1),
    }


def _layer_frame(st: _LayerStats, aff: _Affine | None, n_layers: int, std_floor: float = STD_FLOOR):
    """One layer's rows of the table, plus its mean pre-activation map and effective kernels.

    ``std_floor``: the interior std used as the unit is at least this fraction of the layer's median
    interior std (in pre-activation units), so that near-dead channels, whose tiny spread would turn any
    small border difference into a huge ``|z|``, do not dominate either the null or the ranking."""
    n = st.n
    mean_map = st.map_sum / n  # raw conv units
    c, hout, wout = mean_map.shape
    dev = mean_map.device
    scale = aff.scale.to(dev) if aff is not None else torch.ones(c, dtype=torch.float64, device=dev)
    shift = aff.shift.to(dev) if aff is not None else torch.zeros(c, dtype=torch.float64, device=dev)
    sgn = torch.where(scale < 0, -1.0, 1.0).to(torch.float64)
    mu = st.int_mean_sum / max(st.int_count, 1)
    vcnt = max(st.var_count, 1)
    shift_mean = st.var_s1 / vcnt  # grid mean - reference
    std = torch.sqrt((st.var_s2 / vcnt - shift_mean ** 2).clamp_min(0))
    floor = 1e-6 * mu.abs() + 1e-12
    constant = (std <= floor) | (scale == 0)
    std_pre = scale.abs() * std
    layer_std = float(std_pre[~constant].median()) if bool((~constant).any()) else 0.0
    std_eff = torch.maximum(torch.maximum(std, floor), std_floor * layer_std / scale.abs().clamp_min(1e-30))
    floored = (std_eff > torch.maximum(std, floor)) & ~constant
    cut = _border_cuts(st)
    border = {
        "top": mean_map[:, 0, cut["left"]:wout - cut["right"]].mean(1),
        "bottom": mean_map[:, hout - 1, cut["left"]:wout - cut["right"]].mean(1),
        "left": mean_map[:, cut["top"]:hout - cut["bottom"], 0].mean(1),
        "right": mean_map[:, cut["top"]:hout - cut["bottom"], wout - 1].mean(1),
        "top_left": mean_map[:, 0, 0], "top_right": mean_map[:, 0, wout - 1],
        "bottom_left": mean_map[:, hout - 1, 0], "bottom_right": mean_map[:, hout - 1, wout - 1],
    }
    effect = _border_effects(st)
    conv = st.module
    # weight-based cross-check from the measured input means: with zero padding the border loses
    # sum_taps-on-padding sum_c mu_c W[o, c, tap] (mu_c measured on the probe images, scaled by the measured
    # interior std like z; padlib.kernels has the data-free variant, with means from BatchNorm statistics)
    mu_in = (st.in_sum / max(st.in_count, 1)).to(conv.weight.device)
    g = conv.groups
    w = conv.weight.detach().double()
    cout, cin_g = w.shape[:2]
    mu_groups = mu_in.view(g, cin_g).repeat_interleave(cout // g, dim=0)  # (Cout, Cin/g)
    weff = (w * mu_groups[:, :, None, None]).sum(1).to(dev)  # effective kernel on the mean input
    masks = _tap_masks(st)
    zero = padding_scheme_of(conv) == "zero"
    cols = {}
    for loc in LOCATIONS:
        keep = ~constant
        z = torch.where(keep, sgn * (border[loc] - mu) / std_eff, torch.zeros_like(mu))
        e = torch.where(keep, sgn * effect[loc] / std_eff, torch.zeros_like(mu))
        cols[f"z_{loc}"] = z
        cols[f"effect_{loc}"] = e
        if zero:
            pred = -(weff * masks[loc].to(dev)).sum((1, 2))
            cols[f"zpred_{loc}"] = torch.where(keep, sgn * pred / std_eff, torch.zeros_like(mu))
        else:
            cols[f"zpred_{loc}"] = torch.full_like(mu, float("nan"))
    l, r, t, b = st.pads
    frame = _broadcast(c, {
        "layer": st.name,
        "channel": np.arange(c),
        "depth": st.depth,
        "rel_depth": st.depth / max(n_layers - 1, 1),
        "kernel": _dim_label(st.kernel),
        "stride": _dim_label(st.stride),
        "dilation": _dim_label(st.dilation),
        "groups": conv.groups,
        "depthwise": conv.groups > 1 and conv.groups == conv.in_channels,
        "padding": _padding_label(conv),
        "scheme": padding_scheme_of(conv),
        "pad_top": t, "pad_bottom": b, "pad_left": l, "pad_right": r,
        **{f"reads_{s}": st.affected[s] > 0 for s in SIDES},
        "height": hout, "width": wout, "margin": st.margin,
        "bn": aff.bn_name if aff is not None else "",
        "bn_scale": scale.cpu().numpy(),
        "interior_mean": (scale * mu + shift).cpu().numpy(),
        "interior_std": (scale.abs() * std).cpu().numpy(),
        "constant": constant.cpu().numpy(),
        "std_floored": floored.cpu().numpy(),
        **{k: v.cpu().numpy() for k, v in cols.items()},
    })
    preact_map = (scale[:, None, None] * mean_map + shift[:, None, None]).float().cpu()
    return frame, preact_map, (weff * scale[:, None, None]).float().cpu(), mu_in.float().cpu()


def _broadcast(n: int, columns: dict) -> dict:
    """Columns of one layer as arrays of length ``n`` (scalars repeated)."""
    return {k: v if isinstance(v, np.ndarray) else np.full(n, v) for k, v in columns.items()}


def _scan_table(model, images, batch_size, device, progress, desc, std_floor: float = STD_FLOOR,
                bn_batch_stats: bool = False):
    stats, affines = _stream(model, images, batch_size, device, progress, desc, bn_batch_stats)
    frames, maps, kernels, in_means, skipped = [], {}, {}, {}, []
    for name, st in stats.items():
        if st.skip:
            skipped.append(name)
            continue
        f, m, k, mu = _layer_frame(st, affines.get(name), len(stats), std_floor)
        frames.append(f)
        maps[name], kernels[name], in_means[name] = m, k, mu
    if not frames:
        raise PadlibError(
            f"every padded layer's output is smaller than 3x3 at this input size ({', '.join(skipped[:3])}...): "
            "use larger images"
        )
    table = pd.DataFrame({k: np.concatenate([f[k] for f in frames]) for k in frames[0]})
    n = next(iter(stats.values())).n
    return table, maps, kernels, in_means, skipped, n


# ---------------------------------------------------------------------------------------------------------
# Threshold and classification.

def side_score(table: pd.DataFrame) -> pd.Series:
    """Per channel, the largest border contrast over the four sides, max_s |z_s| (what tau is compared with)."""
    return table[[f"z_{s}" for s in SIDES]].abs().max(axis=1)


def corner_score(table: pd.DataFrame) -> pd.Series:
    """Per channel, the largest corner contrast, max_c |z_c| (what tau_corner is compared with)."""
    return table[[f"z_{c}" for c in CORNERS]].abs().max(axis=1)


def _upper_threshold(scores, fpr: float) -> float:
    """The smallest value that at most ``floor(fpr * n)`` of ``scores`` exceed (strictly)."""
    v = np.asarray(scores, dtype=float)
    v = np.sort(v[np.isfinite(v)])
    if not len(v):
        raise PadlibError("the null has no finite scores to calibrate a threshold on")
    k = int(math.floor(fpr * len(v) + 1e-9))
    return float(v[len(v) - 1 - k])


def calibrate_tau(null: pd.DataFrame, fpr: float = DEFAULT_FPR) -> tuple[float, float]:
    """(tau, tau_corner), calibrated on the null's side and corner scores for false-positive rate ``fpr``.

    At most a fraction ``fpr`` of the null channels has a side score above tau (and at most ``fpr`` a corner
    score above tau_corner); with fewer than ``1 / fpr`` null channels, tau is the null maximum.
    """
    check_type("fpr", fpr, float)
    if not 0 < fpr < 1:
        raise PadlibError(f"fpr must be between 0 and 1 (e.g. 0.01), got {fpr}")
    if null is None or len(null) == 0:
        raise PadlibError("the null table is empty: scan the circular-padding model first")
    return _upper_threshold(side_score(null), fpr), _upper_threshold(corner_score(null), fpr)


def _join_sides(hit: dict[str, bool]) -> str:
    names = [s for s in SIDES if hit[s]]
    return "frame" if len(names) == 4 else "+".join(names)


def _side_label(code: int) -> str:
    """The ``sides`` label of an 8-bit hit code (bits: top, bottom, left, right, then the four corners)."""
    hit = [(code >> i) & 1 for i in range(8)]
    if any(hit[:4]):
        return _join_sides(dict(zip(SIDES, hit[:4])))
    cs = [CORNERS[j].replace("_", "-") for j in range(4) if hit[4 + j]]
    if not cs:
        return ""
    return "all corners" if len(cs) == 4 else "+".join(cs) + (" corner" if len(cs) == 1 else " corners")


_SIDE_LABELS = [_side_label(code) for code in range(256)]


def classify_pans(table: pd.DataFrame, tau: float, tau_corner: float | None = None,
                  min_explained: float = MIN_EXPLAINED) -> pd.DataFrame:
    """Add ``score``, ``corner_score``, ``sides``, ``sign`` and ``is_pan`` to a scan table (returns a copy).

    A side (corner) counts when ``|z| > tau`` (``tau_corner``) and the padding effect explains at least
    ``min_explained`` of the contrast with the same sign: ``effect / z >= min_explained``.
    """
    tau_corner = tau if tau_corner is None else tau_corner
    out = table.copy()
    hits = {}
    for loc in LOCATIONS:
        z, e = out[f"z_{loc}"].to_numpy(), out[f"effect_{loc}"].to_numpy()
        thr = tau if loc in SIDES else tau_corner
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(z != 0, e / z, 0.0)
        hits[loc] = (np.abs(z) > thr) & (ratio >= min_explained)
    zs = np.stack([out[f"z_{loc}"].to_numpy() for loc in LOCATIONS], 1)
    hit_mat = np.stack([hits[loc] for loc in LOCATIONS], 1)
    side_any = hit_mat[:, :4].any(1)
    codes = (hit_mat * (1 << np.arange(8))).sum(1)
    sides = np.asarray(_SIDE_LABELS, dtype=object)[codes]
    # the sign is read where the channel is flagged: sides if any, else corners
    use = np.where(side_any[:, None], np.pad(hit_mat[:, :4], ((0, 0), (0, 4))), hit_mat)
    strength = np.where(use, np.abs(zs), -1.0)
    best = strength.argmax(1)
    is_pan = use.any(1)
    sign = np.where(is_pan, np.sign(zs[np.arange(len(out)), best]), 0).astype(int)
    out["score"] = side_score(out)
    out["corner_score"] = corner_score(out)
    out["sides"] = sides
    out["sign"] = sign
    out["is_pan"] = is_pan
    return out


# ---------------------------------------------------------------------------------------------------------
# The random-initialisation reference: which padding-caused border responses training built.

def caused_scores(table: pd.DataFrame, min_explained: float = MIN_EXPLAINED) -> tuple[np.ndarray, np.ndarray]:
    """Per channel, (side, corner) padding-caused border scores: the largest ``|z|`` over the sides (corners)
    whose padding effect explains at least ``min_explained`` of the contrast with the same sign, else 0."""
    def best(locs):
        z = np.stack([table[f"z_{loc}"].to_numpy(dtype=float) for loc in locs], 1)
        e = np.stack([table[f"effect_{loc}"].to_numpy(dtype=float) for loc in locs], 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            caused = np.where(z != 0, e / z, 0.0) >= min_explained
        return np.where(caused, np.abs(z), 0.0).max(1)

    return best(SIDES), best(CORNERS)


def _can_rescan(images) -> bool:
    """Whether ``images`` can be scanned more than once (not a one-shot iterator of batches)."""
    return hasattr(images, "batches") or isinstance(images, (int, torch.Tensor, list, tuple))


def first_images(images, k: int):
    """The first ``k`` of ``images`` (a ProbeImages, a tensor or a list of batches), same kind."""
    if hasattr(images, "batches") and dataclasses.is_dataclass(images) and hasattr(images, "n"):
        return dataclasses.replace(images, n=min(k, images.n))
    if isinstance(images, torch.Tensor):
        return images[:k]
    out, n = [], 0
    for b in images:
        if n >= k:
            break
        out.append(b[: k - n])
        n += len(out[-1])
    return out


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images, batch_size: int = 16, device="cpu", progress=False) -> int:
    """Set every BatchNorm's running statistics to the exact mean and variance over ``images`` (cumulative
    average, one forward pass; other layers stay in eval mode). Returns the number of BatchNorm layers."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    model.eval()
    try:
        with _batch_statistics(bns):
            for batch in _batches(images, batch_size, device, progress, "BatchNorm recalibration"):
                model(batch)
    finally:
        model.eval()
    return len(bns)


def init_reference(model: nn.Module, images, seeds=REFERENCE_SEEDS, n_images: int = REFERENCE_IMAGES,
                   bn: str = "recalibrated", device="cpu", progress: bool = True,
                   std_floor: float = STD_FLOOR) -> pd.DataFrame:
    """The scan table of the same architecture at random initialisation (:func:`padlib.models.random_init_copy`),
    one copy per seed, on the first ``n_images`` of ``images``; column ``seed`` added.

    ``bn="recalibrated"`` (default) first sets each copy's BatchNorm statistics to those of the same images: as
    initialised (mean 0, variance 1) an eval-mode BatchNorm is the identity, so the pre-activations' means and
    scales drift with depth in a way no trained network's do; recalibrated, each layer is normalised over the
    probe images as training's BatchNorm normalises it, and the reference measures what the random *weights*
    do at the border. ``bn="initialised"`` keeps them as built.

    The ``n_images`` images make one batch, whatever the scan's batch size: recalibrated, each BatchNorm then
    normalises with the exact statistics of those images in the scan's own pass (one pass per copy, not two),
    and the reference does not depend on how the probe set is batched. Why few images: the thresholds are upper
    quantiles over every channel of a layer, and fewer images only make the random-init scores a little noisier,
    so a little larger (more conservative). Measured on mobilenet_v2 (64 probe images, seeds 0 and 1): 8, 12,
    16 and 32 reference images give 1383, 1376, 1375 and 1367 learned PANs, and a random-init copy scanned the
    same way 1.1, 1.4, 1.5 and 1.9% (our measurement)."""
    from .models import random_init_copy

    if bn not in ("recalibrated", "initialised"):
        raise PadlibError(f"reference_bn must be 'recalibrated' or 'initialised', got {bn!r}")
    check_type("reference_images", n_images, int)
    if n_images < 1 or not len(tuple(seeds)):
        raise PadlibError("the random-init reference needs reference_images >= 1 and at least one seed")
    subset = first_images(images, n_images)
    if isinstance(subset, list):
        subset = torch.cat([b.to(device) for b in subset])
    n = subset.n if hasattr(subset, "batches") else len(subset)
    frames = []
    for seed in seeds:
        control = random_init_copy(model, int(seed))
        t = _scan_table(control, subset, n, device, progress, f"random-init reference (seed {seed})", std_floor,
                        bn_batch_stats=bn == "recalibrated")[0]
        frames.append(t.assign(seed=int(seed)))
        del control
    return pd.concat(frames, ignore_index=True)


def init_thresholds(reference: pd.DataFrame, fpr: float = DEFAULT_FPR,
                    min_explained: float = MIN_EXPLAINED) -> pd.DataFrame:
    """Per layer, the (side, corner) padding-caused scores that at most ``fpr`` of the random-init reference's
    channels of that layer (pooled over seeds) exceed: the random-init distribution changes with depth."""
    side, corner = caused_scores(reference, min_explained)
    df = pd.DataFrame({"layer": reference["layer"].to_numpy(), "side": side, "corner": corner})
    rows = [{"layer": layer, "init_side_threshold": _upper_threshold(g.side, fpr),
             "init_corner_threshold": _upper_threshold(g.corner, fpr), "init_channels": len(g)}
            for layer, g in df.groupby("layer", sort=False)]
    return pd.DataFrame(rows)


def learned_verdict(table: pd.DataFrame, thresholds: pd.DataFrame,
                    min_explained: float = MIN_EXPLAINED) -> pd.DataFrame:
    """Add ``padding_caused`` (the circular-null verdict, the former ``is_pan``), ``init_side_threshold``,
    ``init_corner_threshold``, ``beyond_random_init`` and the learned ``is_pan`` (both) to a classified table."""
    out = table.copy()
    thr = thresholds.set_index("layer")
    missing = set(out["layer"]) - set(thr.index)
    if missing:
        raise PadlibError(f"the random-init reference has no layer {sorted(missing)[0]!r}: not the same architecture")
    out["padding_caused"] = out["is_pan"].astype(bool)
    out["init_side_threshold"] = out["layer"].map(thr["init_side_threshold"]).to_numpy(dtype=float)
    out["init_corner_threshold"] = out["layer"].map(thr["init_corner_threshold"]).to_numpy(dtype=float)
    side, corner = caused_scores(out, min_explained)
    out["beyond_random_init"] = (side > out["init_side_threshold"]) | (corner > out["init_corner_threshold"])
    out["is_pan"] = out["padding_caused"] & out["beyond_random_init"]  # sides and sign: the padding-caused ones
    return out


def random_init_scan(model: nn.Module, images, seed: int, batch_size: int = 16, device="cpu",
                     keep_model: bool = False, **scan_options):
    """The default scan of the same architecture at random initialisation (``seed``), its BatchNorm
    statistics first recalibrated on ``images`` as a trained network's were on its data: the control that
    says what the scanner finds in a network that learned nothing. ``scan_options`` go to :func:`scan_pans`
    (``reference=None`` for padding-caused "PANs" alone). With ``keep_model``, returns (scan, the copy)."""
    from .models import random_init_copy

    control = random_init_copy(model, int(seed))
    recalibrate_batchnorm(control, images, batch_size, device)
    scan = scan_pans(control, images, batch_size=batch_size, device=device, **{"progress": False, **scan_options})
    return (scan, control) if keep_model else scan


def learned_pan_control(model: nn.Module, images, seeds=(10, 11, 12), fpr: float = DEFAULT_FPR,
                        min_explained: float = MIN_EXPLAINED, batch_size: int = 16, device="cpu",
                        progress: bool = True, scan: "PanScan | None" = None) -> tuple[pd.DataFrame, dict]:
    """The model and the same architecture at random initialisation (``seeds``, other than the reference's),
    each scanned with the random-init reference on the same ``images``: one row per network with its filters,
    padding-caused channels (circular null only) and learned PANs (also beyond random init), and shares.

    Each random-init copy's BatchNorm is recalibrated on ``images`` before its scan, as the reference's is: a
    trained network's statistics are calibrated on its data, and a copy left as initialised, scanned against a
    recalibrated reference, flags a fifth or more of its channels (measured on mobilenet_v2). ``scan``: the
    model's own scan when already made (its reference is added when it has none). Returns (table, {label:
    PanScan})."""
    if scan is None:
        scan = scan_pans(model, images, fpr=fpr, min_explained=min_explained, batch_size=batch_size, device=device,
                         progress=progress)
    if "padding_caused" not in scan.table:
        scan = with_reference(scan, model, images, device=device, progress=progress)
    scans = {"trained": scan}
    for seed in seeds:
        scans[f"random init {seed}"] = random_init_scan(model, images, int(seed), fpr=fpr,
                                                        min_explained=min_explained, batch_size=batch_size,
                                                        device=device, progress=progress)
    name = getattr(model, "padlib_name", type(model).__name__)
    rows = []
    for label, sc in scans.items():
        t = sc.table
        rows.append({"model": name, "init": "trained" if label == "trained" else "random init",
                     "seed": None if label == "trained" else int(label.rsplit(" ", 1)[1]), "filters": len(t),
                     "padding_caused": int(t.padding_caused.sum()), "learned": int(t.is_pan.sum()),
                     "padding_caused_pct": 100.0 * t.padding_caused.mean(), "learned_pct": 100.0 * t.is_pan.mean(),
                     "tau": sc.tau})
    return pd.DataFrame(rows), scans


def learned_pan_summary(control: pd.DataFrame) -> pd.DataFrame:
    """Per model: trained counts and shares next to the random-init mean and range over seeds (shares in % and
    means rounded to one decimal: the table is shown as it is)."""
    rows = []
    for m, g in control.groupby("model", sort=False):
        tr, ri = g[g.init == "trained"].iloc[0], g[g.init == "random init"]
        row = {"model": m, "filters": int(tr.filters), "seeds": len(ri), "tau trained": round(float(tr.tau), 2),
               "tau random init mean": round(float(ri.tau.mean()), 2)}
        for col in ("padding_caused", "learned"):
            row[f"{col} trained"] = int(tr[col])
            row[f"{col} trained %"] = round(float(tr[f"{col}_pct"]), 1)
            row[f"{col} random init mean"] = round(float(ri[col].mean()), 1)
            row[f"{col} random init range"] = f"{int(ri[col].min())}-{int(ri[col].max())}"
            row[f"{col} random init % (max)"] = round(float(ri[f"{col}_pct"].max()), 1)
        rows.append(row)
    return pd.DataFrame(rows)


def _learned_beyond_random_init(summary: pd.DataFrame, fpr: float, factor: float = 3.0) -> pd.Series:
    """Per model of :func:`learned_pan_summary`: is the trained share of learned PANs at least ``factor`` times its
    random-init copies' largest share (that share taken as at least ``fpr / factor``, so 0 cannot pass by luck)?"""
    return summary["learned trained %"] >= factor * summary["learned random init % (max)"].clip(lower=100 * fpr / factor)


def learned_pan_headline(summary: pd.DataFrame, fpr: float = DEFAULT_FPR, factor: float = 3.0) -> str:
    """The chapter's main result in plain words, from :func:`learned_pan_summary`: do trained networks have
    learned PANs beyond random initialisation (each model's trained share at least ``factor`` times its
    random-init copies' largest share), how much of the padding-caused set the reference keeps, and what the
    older padding-caused definition says of random networks."""
    tr, ri = summary["learned trained %"], summary["learned random init % (max)"]
    pc_tr = summary["padding_caused trained %"]
    pc_ri = 100.0 * summary["padding_caused random init mean"] / summary["filters"]
    beyond = _learned_beyond_random_init(summary, fpr, factor)
    n = len(summary)
    if beyond.all():
        lead = f"Training builds PANs: in all {n} models"
    elif beyond.any():
        lead = f"Training builds PANs in {int(beyond.sum())} of {n} models ({', '.join(summary.model[beyond])}): there"
    else:
        return (f"PANs are not learned here: no model's share of learned PANs ({tr.min():.1f}-{tr.max():.1f}% of "
                f"padded filters) is {factor:g}x that of random-init copies of its architecture "
                f"(up to {ri.max():.1f}%).")
    sel = summary[beyond]
    text = (f"{lead}, {sel['learned trained %'].min():.1f}-{sel['learned trained %'].max():.1f}% of the padded "
            f"filters are learned PANs, against at most {ri[beyond].max():.1f}% in random-init copies of the same "
            f"architecture (the false-positive level, fpr {fpr:g}).")
    kept = 100.0 * summary["learned trained"] / summary["padding_caused trained"].clip(lower=1)
    if "tau trained" in summary:
        text += (f" In the trained models the reference keeps {kept.min():.0f}-{kept.max():.0f}% of the "
                 f"padding-caused channels: their circular nulls set tau at {summary['tau trained'].min():.2f}-"
                 f"{summary['tau trained'].max():.2f}, while a random-init copy's own null sets it at "
                 f"{summary['tau random init mean'].min():.2f}-{summary['tau random init mean'].max():.2f}.")
    if (pc_ri > pc_tr).all():
        text += (f" The older definition, padding-caused alone, says the opposite: it flags "
                 f"{pc_ri.min():.0f}-{pc_ri.max():.0f}% of the random-init copies and {pc_tr.min():.0f}-"
                 f"{pc_tr.max():.0f}% of the trained models, so on its own it measures what zero padding does to "
                 f"any filter, not what training built.")
    return text


def learned_pan_findings(summary: pd.DataFrame, fpr: float = DEFAULT_FPR) -> list[str]:
    """One plain sentence per model on whether training built PANs beyond random initialisation."""
    out = []
    for _, r in summary.iterrows():
        ratio = r["padding_caused trained"] / max(r["padding_caused random init mean"], 1e-9)
        null_ok = r["learned random init % (max)"] <= 3 * 100 * fpr
        out.append(
            f"{r.model}: {r['learned trained']} learned PANs ({r['learned trained %']:.1f}% of {r.filters} padded "
            f"filters) against {r['learned random init range']} in {r.seeds} random-init copies "
            f"(at most {r['learned random init % (max)']:.1f}%{'' if null_ok else ', above 3x the fpr: the reference is off'}); "
            f"the circular null alone flags {r['padding_caused trained']} trained and "
            f"{r['padding_caused random init mean']:.0f} random-init channels on average ({ratio:.2f}x)."
        )
    return out


def learned_score_table(scans: dict) -> pd.DataFrame:
    """Per channel, the padding-caused side score (:func:`caused_scores`) of each network of a
    :func:`learned_pan_control` (its ``{label: PanScan}``): ``network`` is "trained", "random init" (every
    control copy, column ``seed``) or "circular null" (the trained model's circular-padding copy), with the
    layer's random-init side threshold and the scan's tau beside it, tidy for a histogram."""
    frames = []
    for label, sc in scans.items():
        parts = [(label, sc.table)] + ([("circular null", sc.null)] if label == "trained" and sc.null is not None
                                       else [])
        thr = sc.init_thresholds.set_index("layer")["init_side_threshold"] if sc.init_thresholds is not None \
            else pd.Series(dtype=float)
        for network, t in parts:
            side, _ = caused_scores(t, sc.min_explained)
            frames.append(pd.DataFrame({
                "model": sc.model_name, "network": "random init" if label.startswith("random init") else network,
                "seed": int(label.rsplit(" ", 1)[1]) if label.startswith("random init") else -1,
                "layer": t["layer"].to_numpy(), "rel_depth": t["rel_depth"].to_numpy(), "side_score": side,
                "init_side_threshold": t["layer"].map(thr).to_numpy(dtype=float), "tau": sc.tau}))
    return pd.concat(frames, ignore_index=True)


def learned_depth_profile(scans: dict) -> pd.DataFrame:
    """Per model, padded layer and network (trained / random init, the copies averaged): the share of the
    layer's filters that are padding-caused and that are learned PANs, along relative depth."""
    rows = []
    for label, sc in scans.items():
        t = sc.table
        g = t.groupby("layer", sort=False).agg(rel_depth=("rel_depth", "first"), stride=("stride", "first"),
                                               filters=("channel", "size"), padding_caused=("padding_caused", "mean"),
                                               learned=("is_pan", "mean"))
        g[["padding_caused", "learned"]] *= 100.0
        g.insert(0, "network", "trained" if label == "trained" else "random init")
        g.insert(0, "model", sc.model_name)
        rows.append(g.reset_index())
    out = pd.concat(rows, ignore_index=True)
    out = out.groupby(["model", "network", "layer"], sort=False, as_index=False).agg(
        rel_depth=("rel_depth", "first"), stride=("stride", "first"), filters=("filters", "first"),
        padding_caused_pct=("padding_caused", "mean"), learned_pct=("learned", "mean"))
    return out


# ---------------------------------------------------------------------------------------------------------
# Public entry points.

@dataclass
class PanScan:
    """Everything one PAN scan produced: tables, thresholds, mean maps, kernels, timings.

    ``maps[layer]``: mean pre-activation map per channel (C, H, W); ``kernels[layer]``: effective kernel on
    the mean input, ``scale * sum_c mu_c W[o, c]`` (C, kh, kw), whose taps on padding predict the border
    jump; ``null``: the circular-padding null table (None when tau was given); ``seconds``: wall time of the
    observed pass and of the null pass.
    """

    model_name: str
    table: pd.DataFrame
    null: pd.DataFrame | None
    tau: float
    tau_corner: float
    fpr: float | None
    min_explained: float
    n_images: int
    input_size: tuple
    maps: dict = field(repr=False, default_factory=dict)
    kernels: dict = field(repr=False, default_factory=dict)
    input_means: dict = field(repr=False, default_factory=dict)
    skipped_layers: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    reference: pd.DataFrame | None = field(repr=False, default=None)  # random-init scan tables (column seed)
    init_thresholds: pd.DataFrame | None = field(repr=False, default=None)  # per layer, from ``reference``

    @property
    def pans(self) -> pd.DataFrame:
        """Only the PAN rows, strongest first."""
        return self.table[self.table.is_pan].sort_values("score", ascending=False)

    def null_exceedance(self) -> float:
        """Share of null channels that pass tau on a side or tau_corner on a corner (z only)."""
        if self.null is None:
            return float("nan")
        return float(((side_score(self.null) > self.tau) | (corner_score(self.null) > self.tau_corner)).mean())


def _resolve_inputs(model, images, size, seed, device):
    from .models import load_model, model_device

    if isinstance(model, str):
        model = load_model(model, device=device or "cpu")
    check_type("model", model, nn.Module, "a loaded model or a model name such as 'mobilenet_v2'")
    device = torch.device(device) if device is not None else model_device(model)
    if device.type != model_device(model).type:
        raise PadlibError(f"the model is on {model_device(model)} but device={str(device)!r}: move the model "
                          f"(model.to({str(device)!r})) or leave device out")
    if isinstance(images, (bool, str, bytes, dict)) or images is None:
        raise PadlibError("images must be a number of probe images, a ProbeImages, a (N, C, H, W) tensor or batches")
    if isinstance(images, int):
        from .data import probe_images

        images = probe_images(images, size=size, seed=seed, model=model)
    return model, images, device


def scan_pans(model, images=64, *, fpr: float = DEFAULT_FPR, tau: float | None = None,
              tau_corner: float | None = None, null="circular", min_explained: float = MIN_EXPLAINED,
              std_floor: float = STD_FLOOR, batch_size: int = 16,
              device=None, progress: bool = True, size: int | None = None, seed: int = 0,
              reference: str | None = "random_init", reference_seeds=REFERENCE_SEEDS,
              reference_images: int = REFERENCE_IMAGES, reference_bn: str = "recalibrated") -> PanScan:
    """Scan ``model`` for PANs on ``images`` and calibrate the threshold on the circular-padding null.

    ``model``: a module or a model name. ``images``: a number of probe images (made with
    :func:`padlib.probe_images` for this model, ``size``/``seed``), a ProbeImages, a tensor or an iterable of
    batches. ``null``: "circular" (scan the circular-padding copy on the same images: a second pass, about
    doubling the time), or a null table from an earlier scan to reuse. ``tau`` (and ``tau_corner``): given
    thresholds, skipping the null entirely (one pass). Thresholds are calibrated for ``fpr`` otherwise.
    ``std_floor``: the unit of z is the channel's interior std, but at least this fraction of the layer's
    median interior std (0 disables the floor).
    ``reference="random_init"`` (default): ``is_pan`` is the *learned* verdict: padding-caused (the
    circular-null verdict, kept as ``padding_caused``) and ``beyond_random_init``, i.e. a padding-caused score
    above what the same layer of the same architecture at random initialisation gives on the first
    ``reference_images`` probe images (``reference_seeds`` copies, BatchNorm ``reference_bn``;
    :func:`init_reference`), at the same ``fpr`` per layer (:func:`init_thresholds`). Each copy costs about a
    quarter of a pass at the defaults. ``reference=None`` is the older definition: ``is_pan`` is padding-caused
    alone, which also flags a third to two thirds of a network at random initialisation (chapter 1).
    """
    check_type("batch_size", batch_size, int)
    if reference == "none":
        reference = None
    if reference not in (None, "random_init"):
        raise PadlibError(f"reference must be 'random_init' (the learned-PAN verdict) or None (padding-caused "
                          f"only), got {reference!r}")
    if reference and not _can_rescan(images):
        raise PadlibError("the random-init reference scans the images again: pass a number of images, a "
                          "ProbeImages, a tensor or a list of batches, not a one-shot iterator (or reference=None "
                          "for the padding-caused verdict alone)")
    check_type("min_explained", min_explained, (int, float))
    check_type("std_floor", std_floor, (int, float))
    model, images, device = _resolve_inputs(model, images, size, seed, device)
    name = getattr(model, "padlib_name", type(model).__name__)
    t0 = time.perf_counter()
    table, maps, kernels, in_means, skipped, n = _scan_table(model, images, batch_size, device, progress,
                                                              f"PAN scan {name}", std_floor)
    seconds = {"observed": time.perf_counter() - t0}
    null_table = None
    if tau is None:
        if isinstance(null, pd.DataFrame):
            null_table = null
        elif null == "circular":
            if not _can_rescan(images):
                raise PadlibError("the circular null scans the images a second time: pass a ProbeImages, a tensor "
                                  "or a list of batches, not a one-shot iterator")
            t0 = time.perf_counter()
            circ = convert_padding(model, "circular")
            null_table = _scan_table(circ, images, batch_size, device, progress, f"null (circular) {name}",
                                     std_floor)[0]
            seconds["null"] = time.perf_counter() - t0
            del circ
        else:
            raise PadlibError(f"null must be 'circular' or a null table from an earlier scan, got {null!r}")
        tau, tau_c = calibrate_tau(null_table, fpr)
        tau_corner = tau_c if tau_corner is None else tau_corner
    else:
        check_type("tau", tau, (int, float))
        tau = float(tau)
        tau_corner = tau if tau_corner is None else float(tau_corner)
        fpr = None
    table = classify_pans(table, tau, tau_corner, min_explained)
    if null_table is not None:
        null_table = classify_pans(null_table, tau, tau_corner, min_explained)
    scan = PanScan(name, table, null_table, tau, tau_corner, fpr, float(min_explained), n,
                   _input_size(images), maps, kernels, in_means, skipped, seconds)
    table.attrs.update(model=name, tau=tau, tau_corner=tau_corner, fpr=fpr if fpr is not None else float("nan"),
                       min_explained=float(min_explained), std_floor=float(std_floor), n_images=n,
                       input_size=str(scan.input_size), null_exceedance=scan.null_exceedance(),
                       skipped_layers=",".join(skipped), definition="padding")
    if reference == "random_init":
        scan = with_reference(scan, model, images, reference_seeds, reference_images, reference_bn, device,
                              progress, std_floor)
    return scan


def with_reference(scan: PanScan, model: nn.Module, images, seeds=REFERENCE_SEEDS, n_images: int = REFERENCE_IMAGES,
                   bn: str = "recalibrated", device="cpu", progress: bool = True,
                   std_floor: float = STD_FLOOR) -> PanScan:
    """``scan`` (of ``model`` on ``images``) with the learned verdict added from a random-init reference
    (:func:`init_reference`, :func:`init_thresholds`, :func:`learned_verdict`): what
    ``scan_pans(..., reference="random_init")`` returns, without scanning the model again."""
    t0 = time.perf_counter()
    ref_table = init_reference(model, images, seeds, n_images, bn, device, progress, std_floor)
    thresholds = init_thresholds(ref_table, scan.fpr if scan.fpr is not None else DEFAULT_FPR, scan.min_explained)
    table = learned_verdict(scan.table, thresholds, scan.min_explained)
    table.attrs.update(scan.table.attrs, definition="random_init")
    seconds = dict(scan.seconds, reference=time.perf_counter() - t0)
    return dataclasses.replace(scan, table=table, seconds=seconds, reference=ref_table, init_thresholds=thresholds)


def _input_size(images):
    if hasattr(images, "size") and isinstance(images.size, int):
        return (images.size, images.size)
    if isinstance(images, torch.Tensor):
        return tuple(images.shape[-2:])
    return None


def find_pans(model, images=64, **kwargs) -> pd.DataFrame:
    """The PAN table of ``model``: one row per (layer, channel) of every conv that can read padding.

    Columns: ``layer, channel, depth, rel_depth, kernel, stride, padding`` (a number, or "tf_same"),
    ``pad_*``/``reads_*`` (padding per side at this size and whether it is read), ``z_<loc>`` (border
    contrast), ``effect_<loc>`` (causal padding effect), ``zpred_<loc>`` (weight-based prediction from
    measured input means: the kernel taps on zero padding times the probe images' mean input, in units of
    the measured interior std; NaN for non-zero padding), for the sides top/bottom/left/right and corners
    top_left..., all in interior-std units of the pre-activation;
    ``score``, ``sides``, ``sign``, ``padding_caused`` (beyond the circular null), ``init_side_threshold``,
    ``init_corner_threshold``, ``beyond_random_init`` (beyond the same layer at random initialisation) and
    ``is_pan`` (both: a learned PAN; with ``reference=None``, padding-caused alone and no reference columns).
    Scalars in ``.attrs``: model, tau, tau_corner, fpr, n_images, null_exceedance, definition. Keyword
    arguments as :func:`scan_pans`, which also returns the null table, the reference, the mean maps and the
    kernels.
    """
    return scan_pans(model, images, **kwargs).table


# ---------------------------------------------------------------------------------------------------------
# Summaries and selections the chapter shows.

def pan_summary(tables) -> pd.DataFrame:
    """Per model: layers, filters, PANs, share of filters, and PAN counts per sign and per side, each count
    also as a share of the model's padded filters (``<count>_pct``), so that models of different widths
    compare. A PAN counts once for each flagged side (a frame PAN counts for all four)."""
    rows = []
    for t in _tables(tables):
        p = t[t.is_pan]
        sides = p.sides.fillna("")
        filters = max(len(t), 1)
        row = {
            "model": t.attrs.get("model", ""),
            "layers": t.layer.nunique(),
            "filters": len(t),
            "pans": len(p),
            "share_pct": 100.0 * len(p) / filters,
            "fire": int((p.sign > 0).sum()),
            "silenced": int((p.sign < 0).sum()),
        }
        for s in SIDES:
            row[s] = int(sides.map(lambda v, s=s: s in v.split("+") or v == "frame").sum())
        row["frame"] = int((sides == "frame").sum())
        row["corner_only"] = int(sides.str.endswith("corner").sum() + sides.str.endswith("corners").sum())
        for k in ("fire", "silenced") + SIDES + ("frame", "corner_only"):
            row[f"{k}_pct"] = 100.0 * row[k] / filters
        row["tau"] = t.attrs.get("tau", float("nan"))
        row["fpr"] = t.attrs.get("fpr", float("nan"))
        row["n_images"] = t.attrs.get("n_images", 0)
        rows.append(row)
    return pd.DataFrame(rows)


def side_sign_counts(table: pd.DataFrame) -> pd.DataFrame:
    """PAN counts per side and sign: rows top/bottom/left/right (a PAN counts once per flagged side) and
    corner-only PANs, with each count as a share of the table's filters (``fire_pct``, ``silenced_pct``)."""
    p = table[table.is_pan]
    filters = max(len(table), 1)
    rows = []
    for s in SIDES:
        has = p.sides.map(lambda v, s=s: s in v.split("+") or v == "frame")
        rows.append({"side": s, "fire": int((has & (p.sign > 0)).sum()), "silenced": int((has & (p.sign < 0)).sum())})
    corner = p.sides.str.contains("corner")
    rows.append({"side": "corner only", "fire": int((corner & (p.sign > 0)).sum()),
                 "silenced": int((corner & (p.sign < 0)).sum())})
    out = pd.DataFrame(rows).set_index("side")
    out["fire_pct"] = 100.0 * out["fire"] / filters
    out["silenced_pct"] = 100.0 * out["silenced"] / filters
    return out


def side_sign_shares(tables) -> pd.DataFrame:
    """:func:`side_sign_counts` for several models, one row per (model, side): counts and shares of filters."""
    rows = []
    for t in _tables(tables):
        c = side_sign_counts(t).reset_index()
        c.insert(0, "model", t.attrs.get("model", ""))
        rows.append(c)
    return pd.concat(rows, ignore_index=True)


def strongest_pans(table: pd.DataFrame, per_group: int = 1) -> pd.DataFrame:
    """The strongest PANs of each (side, sign) category, by score (largest |z| over the flagged locations)."""
    p = table[table.is_pan].copy()
    p["strength"] = p[[f"z_{loc}" for loc in LOCATIONS]].abs().max(axis=1)
    p["side_kind"] = p.sides.map(lambda v: v if v in SIDES or v == "frame" else ("corner" if "corner" in v else "several"))
    return (p.sort_values("strength", ascending=False).groupby(["side_kind", "sign"], sort=True)
             .head(per_group).sort_values(["side_kind", "sign"]))


def explorer_channels(table: pd.DataFrame, k: int = 10, n_ordinary: int = 2, seed: int = 0) -> pd.DataFrame:
    """Channels worth a look: the strongest PAN of each (side kind, sign), then ordinary controls; ``k`` rows."""
    pans = strongest_pans(table, 1).sort_values("strength", ascending=False).head(max(k - n_ordinary, 0))
    ordinary = ordinary_channels(table, min(n_ordinary, k - len(pans)), seed)
    return pd.concat([pans, ordinary], ignore_index=True)


def pans_by_depth(tables) -> pd.DataFrame:
    """Per model and padded layer: filters, PANs, share, and the layer's stride and relative depth."""
    rows = []
    for t in _tables(tables):
        g = t.groupby(["layer"], sort=False).agg(depth=("depth", "first"), rel_depth=("rel_depth", "first"),
                                                 stride=("stride", "first"), filters=("channel", "size"),
                                                 pans=("is_pan", "sum"), fire=("sign", lambda s: int((s > 0).sum())),
                                                 silenced=("sign", lambda s: int((s < 0).sum())))
        g["share_pct"] = 100.0 * g["pans"] / g["filters"]
        g.insert(0, "model", t.attrs.get("model", ""))
        rows.append(g.reset_index())
    return pd.concat(rows, ignore_index=True)


def side_counts(tables) -> pd.DataFrame:
    """PAN counts per model, stride, side and sign (a PAN counts once for each flagged side; corner-only
    PANs count for both sides of their corner)."""
    rows = []
    for t in _tables(tables):
        p = t[t.is_pan]
        for stride, ps in p.groupby(p.stride.astype(str), sort=True):
            for s in SIDES:
                has = ps.sides.map(lambda v, s=s: s in v.replace("-", "+").replace(" corners", "")
                                   .replace(" corner", "").split("+") or v in ("frame", "all corners"))
                rows.append({"model": t.attrs.get("model", ""), "stride": stride, "side": s,
                             "fire": int((has & (ps.sign > 0)).sum()), "silenced": int((has & (ps.sign < 0)).sum())})
    return pd.DataFrame(rows)


def _read_top_left_share(tables) -> pd.DataFrame:
    """Per model and stride: of the padding sides that the layers actually read (weighted by filters), the
    share on the top or left. 1 when only top/left padding is read, 0.5 when all four sides are."""
    rows = []
    for t in _tables(tables):
        layers = t.groupby("layer", sort=False).agg(stride=("stride", "first"), filters=("channel", "size"),
                                                    **{f"reads_{s}": (f"reads_{s}", "first") for s in SIDES})
        layers["stride"] = layers["stride"].astype(str)
        for stride, g in layers.groupby("stride", sort=True):
            tl = (g[["reads_top", "reads_left"]].sum(axis=1) * g["filters"]).sum()
            total = (g[[f"reads_{s}" for s in SIDES]].sum(axis=1) * g["filters"]).sum()
            rows.append({"model": t.attrs.get("model", ""), "stride": stride,
                         "padding_kind": "TF SAME" if (t.padding == "tf_same").any() else "PyTorch",
                         "read_top_left_share": float(tl / total) if total else float("nan")})
    return pd.DataFrame(rows)


def _wilson(k: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval for a proportion k / n (nan when n is 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return c - h, c + h


def side_skew(tables) -> pd.DataFrame:
    """Per model and stride: PAN-side flags per side, the share on top+left (with a 95% Wilson interval),
    and the share of the *read* padding that is on top+left (:func:`_read_top_left_share`).

    ``verdict``: "toward the read padding" when the interval lies on the same side of 1/2 as the read share,
    "against the read padding" when on the other side, "no clear skew" when it contains 1/2, and "all sides
    read alike" when the read share is 1/2. (Flags of one PAN are not independent, e.g. a frame PAN flags all
    four sides, so the interval is a rough guide, not an exact test.)
    """
    c = side_counts(tables)
    c["n"] = c["fire"] + c["silenced"]
    piv = c.pivot_table(index=["model", "stride"], columns="side", values="n", aggfunc="sum", fill_value=0)
    piv = piv.reindex(columns=list(SIDES), fill_value=0)
    piv.columns.name = None
    piv["pan_sides"] = piv[list(SIDES)].sum(axis=1)
    piv["top_left_share"] = (piv["top"] + piv["left"]) / piv["pan_sides"].clip(lower=1)
    ci = [_wilson(tl, n) for tl, n in zip(piv["top"] + piv["left"], piv["pan_sides"])]
    piv["ci_low"], piv["ci_high"] = [v[0] for v in ci], [v[1] for v in ci]
    out = piv.reset_index().merge(_read_top_left_share(tables), on=["model", "stride"], how="left")

    def verdict(r):
        read = r.read_top_left_share
        if not np.isfinite(read) or abs(read - 0.5) < 1e-9:
            off = r.ci_low > 0.5 or r.ci_high < 0.5
            return "all sides read alike" + ("; PAN sides still off 1/2" if off else "")
        if r.ci_low > 0.5:
            return "toward the read padding" if read > 0.5 else "against the read padding"
        if r.ci_high < 0.5:
            return "toward the read padding" if read < 0.5 else "against the read padding"
        return "no clear skew"

    out["verdict"] = [verdict(r) for r in out.itertuples()]
    return out


def skew_findings(skew: pd.DataFrame) -> list[str]:
    """Sentences on where PAN sides skew, computed from :func:`side_skew`: per model the stride-2 and
    stride-1 top/left shares against the read padding, then PyTorch padding vs TF SAME side by side."""
    lines = []
    for model, g in skew.groupby("model", sort=False):
        parts = []
        for r in g.itertuples():
            parts.append(f"stride {r.stride}: {r.top_left_share:.0%} of {int(r.pan_sides)} PAN-side flags on top/left "
                         f"(95% CI {r.ci_low:.0%}-{r.ci_high:.0%}; read padding {r.read_top_left_share:.0%} top/left) "
                         f"-> {r.verdict}")
        lines.append(f"{model} ({g.padding_kind.iloc[0]} padding): " + "; ".join(parts) + ".")
    s2 = skew[skew.stride.astype(str) == "2"]
    torch_pad, tf_same = s2[s2.padding_kind == "PyTorch"], s2[s2.padding_kind == "TF SAME"]
    if len(torch_pad) and len(tf_same):
        lo, hi = tf_same.top_left_share.min(), tf_same.top_left_share.max()
        tf_range = f"{lo:.0%}" if len(tf_same) == 1 else f"{lo:.0%}-{hi:.0%}"
        gap = "above every" if torch_pad.top_left_share.min() > hi else (
            "below every" if torch_pad.top_left_share.max() < lo else "within the range of the")
        lines.append(f"Stride-2 top/left share, PyTorch padding ({', '.join(torch_pad.model)}): "
                     f"{', '.join(f'{v:.0%}' for v in torch_pad.top_left_share)}; TF SAME "
                     f"({', '.join(tf_same.model)}): {tf_range}. The PyTorch-padded model's share is {gap} "
                     f"TF-SAME model's; {int((tf_same.verdict == 'toward the read padding').sum())} of "
                     f"{len(tf_same)} TF-SAME models and {int((torch_pad.verdict == 'toward the read padding').sum())} "
                     f"of {len(torch_pad)} PyTorch-padded models skew toward the padding their stride-2 layers read.")
    return lines


def threshold_curve(scan: PanScan, taus=None) -> pd.DataFrame:
    """PANs (side PANs, same effect criterion; learned PANs when the scan has the random-init reference, its
    per-layer thresholds unchanged) and null exceedances as functions of the circular-null threshold tau."""
    taus = np.geomspace(0.5, 50, 41) if taus is None else np.asarray(taus, dtype=float)
    obs, null = scan.table, scan.null
    rows = []
    for tau in taus:
        c = classify_pans(obs, float(tau), float("inf"), scan.min_explained)
        if scan.init_thresholds is not None:  # learned PANs: the random-init thresholds stay the scan's own
            c = learned_verdict(c, scan.init_thresholds, scan.min_explained)
        rows.append({"model": scan.model_name, "tau": float(tau), "pans": int(c.is_pan.sum()),
                     "null_exceed": int((side_score(null) > tau).sum()) if null is not None else np.nan,
                     "calibrated_tau": scan.tau})
    return pd.DataFrame(rows)


def claim_tau_range(curves: pd.DataFrame, count_range: tuple[int, int] = CLAIM_COUNT_RANGE) -> pd.DataFrame:
    """Per model, the thresholds on the :func:`threshold_curve` grid where the side-PAN count (corner-only PANs
    left out, as in the curves) falls in our reading of 'dozens to hundreds', and the null channels above tau
    at the low end of that range (what that strictness costs in null exceedances)."""
    low, high = count_range
    rows = []
    for model, d in curves.groupby("model", sort=False):
        inside = d[d.pans.between(low, high)]
        rows.append({"model": model, "calibrated_tau": d.calibrated_tau.iloc[0],
                     "tau_min_in_range": inside.tau.min() if len(inside) else np.nan,
                     "tau_max_in_range": inside.tau.max() if len(inside) else np.nan,
                     "null_exceed_at_tau_min": inside.null_exceed.iloc[0] if len(inside) else np.nan,
                     "calibrated_tau_in_range": bool(len(inside)) and inside.tau.min() <= d.calibrated_tau.iloc[0]
                     <= inside.tau.max()})
    return pd.DataFrame(rows)


def threshold_sensitivity(scan: PanScan, fprs=(0.001, 0.01, 0.05), min_explained=(0.5,)) -> pd.DataFrame:
    """PAN counts when the thresholds are recalibrated for other false-positive rates: tau on the same null,
    and (when the scan has the random-init reference) the per-layer random-init thresholds on the same reference."""
    if scan.null is None:
        raise PadlibError("this scan has no null table (tau was given); rescan with null='circular'")
    rows = []
    for fpr in fprs:
        tau, tau_c = calibrate_tau(scan.null, float(fpr))
        for me in min_explained:
            c = classify_pans(scan.table, tau, tau_c, float(me))
            if scan.reference is not None:
                c = learned_verdict(c, init_thresholds(scan.reference, float(fpr), float(me)), float(me))
            rows.append({"model": scan.model_name, "fpr": fpr, "min_explained": me, "tau": tau,
                         "tau_corner": tau_c, "pans": int(c.is_pan.sum()),
                         "share_pct": 100.0 * c.is_pan.mean()})
    return pd.DataFrame(rows)


def claim_check(summary: pd.DataFrame, sensitivity: pd.DataFrame | None = None,
                count_range: tuple[int, int] = CLAIM_COUNT_RANGE, share: float = CLAIM_SHARE_PCT,
                about: float = ABOUT_FACTOR) -> pd.DataFrame:
    """Per model (and per false-positive rate, when ``sensitivity`` is given): does the PAN count fall in
    'dozens to hundreds', and is the share 'about 2%'? Both numeric ranges are OUR readings of the paper's
    words (:data:`CLAIM_COUNT_RANGE`; 'about' = within a factor ``about`` of ``share``), not the paper's."""
    low, high = count_range
    if sensitivity is not None and len(sensitivity):
        out = sensitivity[["model", "fpr", "tau", "pans", "share_pct"]].merge(summary[["model", "filters"]], on="model")
        out = out[["model", "fpr", "tau", "filters", "pans", "share_pct"]].sort_values(["fpr", "model"], kind="stable")
    else:
        out = summary[["model", "fpr", "tau", "filters", "pans", "share_pct"]].copy()
    out["dozens_to_hundreds"] = out["pans"].between(low, high)
    out["about_2pct"] = out["share_pct"].between(share / about, share * about)
    out["verdict"] = np.where(out["dozens_to_hundreds"], "count in our reading of the claimed range",
                              np.where(out["pans"] > high, "more than claimed", "fewer than claimed"))
    return out.reset_index(drop=True)


def _spearman(a, b) -> float:
    """Rank correlation (robust to the few channels with a tiny interior std and a huge |z|)."""
    if len(a) < 3:
        return float("nan")
    return float(pd.Series(a).rank().corr(pd.Series(b).rank()))


def effect_agreement(tables) -> pd.DataFrame:
    """Per model, how well the border contrast z agrees with the causal padding effect and with the
    weight-based prediction from measured input means (``zpred``; Spearman rank correlations), over the sides
    that pass tau and over all sides."""
    rows = []
    for t in _tables(tables):
        z = np.concatenate([t[f"z_{s}"] for s in SIDES])
        e = np.concatenate([t[f"effect_{s}"] for s in SIDES])
        zp = np.concatenate([t[f"zpred_{s}"] for s in SIDES])
        big = np.abs(z) > t.attrs.get("tau", 0.0)
        ok = np.isfinite(zp)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = e[big] / z[big]
        rows.append({
            "model": t.attrs.get("model", ""),
            "sides_above_tau": int(big.sum()),
            "explained_median": float(np.median(ratio)) if big.any() else np.nan,
            "explained_ge_half": float((ratio >= 0.5).mean()) if big.any() else np.nan,
            "spearman_z_effect_above_tau": _spearman(z[big], e[big]),
            "spearman_z_prediction_above_tau": _spearman(z[big & ok], zp[big & ok]),
            "spearman_z_effect_all": _spearman(z, e),
        })
    return pd.DataFrame(rows)


def strided_padding(tables) -> pd.DataFrame:
    """Per model, the padding of its stride-2 padded convs at the scanned size and which sides it reads."""
    rows = []
    for t in _tables(tables):
        d = t[t.stride.astype(str) == "2"].drop_duplicates("layer")
        for _, r in d.iterrows():
            rows.append({"model": t.attrs.get("model", ""), "layer": r.layer, "out": f"{r.height}x{r.width}",
                         "padding": r.padding, "pads (t,b,l,r)": f"{r.pad_top},{r.pad_bottom},{r.pad_left},{r.pad_right}",
                         "reads": "+".join(s for s in SIDES if r[f"reads_{s}"]) or "none"})
    return pd.DataFrame(rows)


def pan_findings(summary: pd.DataFrame, sensitivity: pd.DataFrame | None = None, skew: pd.DataFrame | None = None,
                 agreement: pd.DataFrame | None = None, count_range: tuple[int, int] = CLAIM_COUNT_RANGE) -> str:
    """The chapter's conclusions as sentences computed from its tables (no number is typed by hand): per model
    the count, share and sign split at the calibrated threshold, the claim verdict at every false-positive
    rate tried, how much of the contrast the padding causes, and where PAN sides skew."""
    low, high = count_range
    lo_share, hi_share = CLAIM_SHARE_PCT / ABOUT_FACTOR, CLAIM_SHARE_PCT * ABOUT_FACTOR
    lines = [f"Our numeric readings, not the paper's numbers: 'dozens to hundreds' = {low}-{high} PANs per model "
             f"(pans.CLAIM_COUNT_RANGE); 'about {CLAIM_SHARE_PCT:g}%' = {lo_share:g}-{hi_share:g}% of padded "
             f"filters (within a factor pans.ABOUT_FACTOR = {ABOUT_FACTOR:g})."]
    calibrated = claim_check(summary, count_range=count_range).set_index("model")
    for _, r in summary.iterrows():
        c = calibrated.loc[r.model]
        lines.append(f"{r.model} at fpr {r.fpr:g} (tau = {r.tau:.2f}): {r.pans} PANs = {r.share_pct:.1f}% of "
                     f"{r.filters} padded filters -> {c.verdict} ({low}-{high}); share "
                     f"{'is' if c.about_2pct else 'is not'} about {CLAIM_SHARE_PCT:g}%; {r.fire} "
                     f"({r.fire_pct:.1f}% of filters) fire at the border, {r.silenced} ({r.silenced_pct:.1f}%) are "
                     f"silenced there.")
    claims = claim_check(summary, sensitivity, count_range=count_range)
    groups = {"every": [], "some": [], "no": []}
    for fpr, g in claims.groupby("fpr", sort=True):
        k = int(g.dozens_to_hundreds.sum())
        lines.append(f"At fpr {fpr:g}: {k} of {len(g)} models have {low}-{high} PANs (counts {g.pans.min()}-"
                     f"{g.pans.max()}, {g.share_pct.min():.1f}-{g.share_pct.max():.1f}% of filters); "
                     f"{int(g.about_2pct.sum())} of {len(g)} have a share of about {CLAIM_SHARE_PCT:g}%.")
        groups["every" if k == len(g) else "some" if k else "no"].append(f"{fpr:g}")
    parts = [f"for {w} model at fpr {', '.join(v)}" for w, v in groups.items() if v]
    lines.append("Verdict: 'dozens to hundreds' (our reading) holds " + "; ".join(parts) + (
        ": whether the claim holds here depends on how strict the threshold is." if len(parts) > 1 else "."))
    if agreement is not None and len(agreement):
        a = agreement
        lines.append(f"The padding effect explains at least half of the contrast for "
                     f"{a.explained_ge_half.min():.0%}-{a.explained_ge_half.max():.0%} of the sides above tau; rank "
                     f"correlation of z with the causal effect there {a.spearman_z_effect_above_tau.min():.2f}-"
                     f"{a.spearman_z_effect_above_tau.max():.2f}, with the weight-based prediction from measured "
                     f"input means {a.spearman_z_prediction_above_tau.min():.2f}-"
                     f"{a.spearman_z_prediction_above_tau.max():.2f}.")
    if skew is not None and len(skew):
        lines.extend(skew_findings(skew))
    return "\n".join(lines)


def chapter_findings_box(learned: pd.DataFrame | None = None, summary: pd.DataFrame | None = None,
                         sensitivity: pd.DataFrame | None = None, skew: pd.DataFrame | None = None,
                         fpr: float = DEFAULT_FPR) -> list:
    """Chapter 1's findings, one :class:`padlib.findings.Finding` per claim: are PANs learned (against random
    init), the paper's count and share (our readings, at the calibrated rate and the others), and whether
    stride-2 PAN sides follow the padding those layers read. ``learned``: :func:`learned_pan_summary`;
    ``summary``: :func:`pan_summary`; ``sensitivity``: :func:`threshold_sensitivity` rows of every model;
    ``skew``: :func:`side_skew`. A claim whose tables are not given is left out (a section shows its own)."""
    from .findings import Finding, verdict_of

    out = []
    if learned is not None:
        tr, ri = learned["learned trained %"], learned["learned random init % (max)"]
        beyond = _learned_beyond_random_init(learned, fpr)
        n = len(learned)
        out.append(Finding(
            verdict_of(beyond.mean()), "Trained networks have PANs beyond what random initialisation gives",
            f"{int(beyond.sum())} of {n} models: {tr.min():.1f}-{tr.max():.1f}% of padded filters are learned "
            f"PANs, against at most {ri.max():.1f}% in {int(learned.seeds.min())} random-init "
            f"cop{'y' if int(learned.seeds.min()) == 1 else 'ies'} each",
            "are-pans-learned-the-random-initialisation-control"))
    if summary is not None and sensitivity is not None:
        check = claim_check(summary, sensitivity)
        low, high = CLAIM_COUNT_RANGE
        at = check[np.isclose(check.fpr.astype(float), fpr)]
        rates = sorted(check.fpr.unique())
        holds_at = [r for r in rates if check[check.fpr == r].dozens_to_hundreds.all()]
        out.append(Finding(
            verdict_of(at.dozens_to_hundreds.mean()),
            f"'From dozens to hundreds' PANs per model (paper; our reading {low}-{high})",
            f"at fpr {fpr:g}: {int(at.dozens_to_hundreds.sum())} of {len(at)} models, counts {int(at.pans.min())}-"
            f"{int(at.pans.max())}; every model in range at fpr "
            + (", ".join(f"{r:g}" for r in holds_at) or "none of " + ", ".join(f"{r:g}" for r in rates)),
            "how-many-pans-against-the-paper-s-claim"))
        out.append(Finding(
            verdict_of(at.about_2pct.mean()), "'About 2%' of filters (an unverified summary; our reading 1-4%)",
            f"at fpr {fpr:g}: {int(at.about_2pct.sum())} of {len(at)} models, shares {at.share_pct.min():.1f}-"
            f"{at.share_pct.max():.1f}%", "how-many-pans-against-the-paper-s-claim"))
    if skew is not None:
        s2 = skew[skew.stride.astype(str) == "2"]
        toward = s2.verdict == "toward the read padding"
        out.append(Finding(
            verdict_of(toward.mean()) if len(s2) else "not here",
            "Stride-2 PAN sides follow the padding those layers read (PyTorch: top/left; TF SAME: mostly bottom/right)",
            f"{int(toward.sum())} of {len(s2)} models; top/left share of PAN sides "
            + ", ".join(f"{r.model} {100 * r.top_left_share:.0f}% [{100 * r.ci_low:.0f}, {100 * r.ci_high:.0f}]"
                        for r in s2.itertuples()),
            "which-sides-pytorch-padding-vs-tensorflow-same"))
    return out


def planted_findings(check: pd.DataFrame, circular: pd.DataFrame, fpr: float) -> str:
    """What the planted-network validation shows, from :func:`planted_check` and the circular copy's table
    scanned at the same thresholds: how many planted PANs and controls were classified as built, and whether
    the circular copy's PANs are more than a false-positive rate ``fpr`` gives by chance (binomial tail)."""
    from scipy.stats import binom

    planted = check[check.expected != "not a PAN"]
    controls = check[check.expected == "not a PAN"]
    n, k = len(circular), int(circular.is_pan.sum())
    p_tail = float(binom.sf(k - 1, n, fpr)) if k else 1.0
    first = int(circular[circular.layer == "0"].is_pan.sum())
    lines = [
        f"{int(check.correct.sum())} of {len(check)} channels classified as built: {int(planted.correct.sum())} of "
        f"{len(planted)} planted PANs found with their expected sides and sign, "
        f"{int((controls.found != 'not a PAN').sum())} of {len(controls)} controls flagged as PANs.",
        f"Circular-padding copy at the same thresholds: {k} PANs among {n} channels ({first} in the planted layer); "
        f"chance alone at fpr {fpr:g} gives about {fpr * n:.1f}, and P(at least {k} by chance) = {p_tail:.2f} -> "
        + ("consistent with chance." if p_tail >= 0.05 else "more than chance."),
    ]
    return "\n".join(lines)


def method_settings(std_floor: float = STD_FLOOR, min_explained: float = MIN_EXPLAINED,
                    fpr: float = DEFAULT_FPR) -> pd.DataFrame:
    """The constants of our formulation, as the chapter prints them (name in padlib.pans, value, meaning)."""
    return pd.DataFrame([
        ("MARGIN_FRACTION", MARGIN_FRACTION, "interior margin, fraction of the map's shorter side "
                                             "(at least the rows this layer's padding reaches)"),
        ("VARIANCE_ROWS", VARIANCE_ROWS, "interior std from every k-th interior row, at least this many rows"),
        ("std_floor", std_floor, "interior std floor, fraction of the layer's median interior std"),
        ("min_explained", min_explained, "share of a side's contrast the padding effect must cause (same sign)"),
        ("fpr", fpr, "false-positive rate on the circular null that sets tau, and per layer on the "
                     "random-init reference"),
        ("REFERENCE_SEEDS", ", ".join(map(str, REFERENCE_SEEDS)), "random-init copies that make the reference"),
        ("REFERENCE_IMAGES", REFERENCE_IMAGES, "the first this many probe images scan the reference (one batch)"),
        ("CLAIM_COUNT_RANGE", f"{CLAIM_COUNT_RANGE[0]}-{CLAIM_COUNT_RANGE[1]}",
         "our reading of the paper's 'from dozens to hundreds' PANs per model"),
        ("CLAIM_SHARE_PCT x/÷ ABOUT_FACTOR", f"{CLAIM_SHARE_PCT:g}% x/÷ {ABOUT_FACTOR:g}",
         "our reading of the unverified 'about 2%' of filters"),
    ], columns=["setting", "value", "meaning"])


def seed_replicates(scans: dict) -> pd.DataFrame:
    """Scans of one model on different probe seeds: counts, shares, thresholds, and how far each seed's PAN
    set agrees with the first one's (Jaccard overlap of (layer, channel) pairs)."""
    items = list(scans.items())
    if not items:
        raise PadlibError("no replicate scans given")

    def pan_set(sc):
        p = sc.table[sc.table.is_pan]
        return set(zip(p.layer, p.channel))

    ref = pan_set(items[0][1])
    rows = []
    for seed, sc in items:
        cur = pan_set(sc)
        rows.append({"model": sc.model_name, "seed": seed, "pans": len(cur),
                     "share_pct": 100.0 * len(cur) / len(sc.table), "tau": sc.tau,
                     "jaccard_vs_first": len(cur & ref) / max(len(cur | ref), 1)})
    return pd.DataFrame(rows)


def _tables(tables) -> list[pd.DataFrame]:
    if isinstance(tables, (pd.DataFrame, PanScan)):
        tables = [tables]
    return [t.table if isinstance(t, PanScan) else t for t in tables]


def ordinary_channels(table: pd.DataFrame, k: int = 4, seed: int = 0) -> pd.DataFrame:
    """``k`` random non-PAN, non-constant channels (seeded), as controls next to the PANs."""
    pool = table[~table.is_pan & ~table.constant]
    return pool.sample(min(k, len(pool)), random_state=seed)


def border_profile(scan: PanScan, layer: str, channel: int, depth: int | None = None) -> pd.DataFrame:
    """Mean pre-activation at distance 0, 1, ... from each border (averaged along it), in interior-std units."""
    if layer not in scan.maps:
        raise PadlibError(f"layer '{layer}' was not scanned; scanned layers: {', '.join(list(scan.maps)[:4])}...")
    m = scan.maps[layer][channel].double()
    row = scan.table[(scan.table.layer == layer) & (scan.table.channel == channel)]
    if row.empty:
        raise PadlibError(f"channel {channel} does not exist in layer '{layer}'")
    row = row.iloc[0]
    h, w = m.shape
    depth = depth or max(1, min(h, w) // 2)
    std = row.interior_std if row.interior_std > 0 else 1.0
    rows = []
    for d in range(min(depth, (min(h, w) + 1) // 2)):
        inner_w, inner_h = slice(1, w - 1) if w > 2 else slice(None), slice(1, h - 1) if h > 2 else slice(None)
        vals = {"top": m[d, inner_w].mean(), "bottom": m[h - 1 - d, inner_w].mean(),
                "left": m[inner_h, d].mean(), "right": m[inner_h, w - 1 - d].mean()}
        for s, v in vals.items():
            rows.append({"distance": d, "side": s, "z": float((v - row.interior_mean) / std)})
    return pd.DataFrame(rows)


def channel_view(scan: PanScan, model: nn.Module | None, layer: str, channel: int) -> dict:
    """Everything the explorer shows for one channel: map, profile, kernels, scores."""
    row = scan.table[(scan.table.layer == layer) & (scan.table.channel == channel)]
    if row.empty:
        raise PadlibError(f"no channel {channel} in layer '{layer}' of {scan.model_name}")
    raw = None
    if model is not None:
        conv = dict(model.named_modules())[layer]
        raw = conv.weight.detach()[channel].float().cpu()
    return {"row": row.iloc[0], "map": scan.maps[layer][channel], "profile": border_profile(scan, layer, channel),
            "kernel": raw, "effective_kernel": scan.kernels[layer][channel]}


# ---------------------------------------------------------------------------------------------------------
# Planted ground truth: a tiny network whose PANs are known by construction (tests and the chapter use it).

PLANTED_ROLES = [  # (channel role, expected sides, expected sign); "" / 0 for controls
    ("top detector", "top", 1), ("left detector", "left", 1), ("top-left corner detector", "top-left corner", 1),
    ("silenced at the top", "top", -1), ("silenced on the frame (Laplacian of the mean channel)", "frame", -1),
    ("top+left detector (diagonal)", "top+left", 1), ("top detector behind a negative BN gamma", "top", -1),
    ("Sobel x (content edges)", "", 0), ("Sobel y (content edges)", "", 0), ("Laplacian (content)", "", 0),
    ("constant response", "", 0),
] + [(f"random content kernel {i}", "", 0) for i in range(13)]


def planted_probe_images(n: int = 48, size: int = 24, seed: int = 0) -> torch.Tensor:
    """Stationary smooth noise; channel 0 has mean 1 (what a padding detector can use), channels 1, 2 mean 0."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.randn(n, 3, size + 4, size + 4, generator=g), 5, stride=1)
    x = x / x.std(dim=(0, 2, 3), keepdim=True) * 0.15
    x[:, 0] += 1.0
    return x


def planted_pan_network(padding_mode: str = "zeros", seed: int = 0) -> nn.Module:
    """conv(3->24) -> BN -> ReLU -> depthwise conv -> BN -> ReLU -> pool -> linear, first conv planted.

    Channels 0-6 are PANs by construction (see :data:`PLANTED_ROLES`): their kernels read the constant-mean
    input channel 0 only where zero padding removes it. Channels 7-23 are controls that must not be found:
    edge detectors and random kernels on the zero-mean channels, and a constant (bias-only) channel.
    """
    torch.manual_seed(seed)
    c = len(PLANTED_ROLES)
    conv = nn.Conv2d(3, c, 3, padding=1, padding_mode=padding_mode)
    w = torch.zeros(c, 3, 3, 3)
    w[0, 0, 0, :], w[0, 0, 1, :] = -1.0, 1.0  # row above the pixel minus the pixel row: columns sum to 0
    w[1, 0, :, 0], w[1, 0, :, 1] = -1.0, 1.0
    w[2, 0] = torch.tensor([[1.0, -1, 0], [-1, 1, 0], [0, 0, 0]])  # rows and columns sum to 0: corner only
    w[3] = -w[0]  # the pixel row minus the row above: drops at the top
    w[4, 0] = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])  # Laplacian of the mean channel: drops on every side
    w[5, 0, 0, 0], w[5, 0, 1, 1] = -1.0, 1.0  # diagonal neighbour: top and left
    w[6] = w[0]  # same kernel as channel 0; its BN gamma is negative below
    w[7, 1] = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    w[8, 2] = torch.tensor([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])
    w[9, 1] = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    w[11:, 1:] = torch.randn(c - 11, 2, 3, 3)
    conv.weight.data = w
    conv.bias.data = torch.zeros(c)
    conv.bias.data[10] = 0.5
    bn = nn.BatchNorm2d(c).eval()
    bn.weight.data[6] = -1.0
    dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False, padding_mode=padding_mode)
    net = nn.Sequential(conv, bn, nn.ReLU(), dw, nn.BatchNorm2d(c), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 5))
    return net.eval()


def planted_check(scan: PanScan) -> pd.DataFrame:
    """The planted network's first layer: expected vs found sides and sign, per channel."""
    t = scan.table[scan.table.layer == "0"].set_index("channel")
    rows = []
    for ch, (role, sides, sign) in enumerate(PLANTED_ROLES):
        r = t.loc[ch]
        rows.append({"channel": ch, "role": role, "expected": f"{sides} {sign:+d}" if sides else "not a PAN",
                     "found": f"{r.sides} {int(r.sign):+d}" if r.is_pan else "not a PAN",
                     "score": round(float(max(r.score, r.corner_score)), 2)})
    out = pd.DataFrame(rows)
    out["correct"] = out["expected"] == out["found"]
    return out


# ---------------------------------------------------------------------------------------------------------
# CLI and benchmark.

def register_cli(subparsers) -> None:
    p = subparsers.add_parser("scan", help="find Padding Aware Neurons in a model (chapter 1)")
    p.add_argument("model", help="model name, e.g. mobilenet_v2 or tf_efficientnet_lite0 (NAME=PATH: your checkpoint)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--images", type=int, default=64, help="number of probe images (default 64)")
    src.add_argument("--image-dir", help="a folder of images instead of the offline photographs")
    p.add_argument("--size", type=int, default=None, help="input size in pixels (default: the model's own)")
    p.add_argument("--fpr", type=float, default=0.01, help="false-positive rate on the circular null (0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference", choices=("random_init", "none"), default="random_init",
                   help="random_init (default): a PAN must also be beyond what the same layer gives at random "
                        "initialisation (the padding_caused column keeps the circular-null verdict); none: the "
                        "older definition, padding-caused alone")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="write the table to FILE.csv or FILE.json (a new file unless --force)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=_cmd_scan)


def _cmd_scan(args) -> int:
    from .data import probe_images
    from .models import load_model

    if args.out and not args.out.endswith((".csv", ".json")):
        raise PadlibError(f"--out must end in .csv or .json, got '{args.out}'")
    if args.out:
        check_new_output(args.out, args.force, "--out file")  # before the scan, not after it
    model = load_model(args.model, device=args.device)
    n = args.images
    images = probe_images(n, size=args.size, seed=args.seed, image_dir=args.image_dir, model=model)
    reference = None if args.reference == "none" else args.reference
    scan = scan_pans(model, images, fpr=args.fpr, batch_size=args.batch_size, device=args.device,
                     reference=reference)
    t = scan.table
    s = pan_summary(t).iloc[0]
    print(f"{scan.model_name}: {len(images)} images at {scan.input_size}, {s.layers} padded layers, "
          f"{s.filters} filters")
    print(f"threshold tau={scan.tau:.3f} (corners {scan.tau_corner:.3f}) for fpr={args.fpr} on the circular null; "
          f"null exceedance {scan.null_exceedance():.4f}")
    if reference:
        print(f"padding-caused (circular null only): {int(t.padding_caused.sum())}; beyond random init "
              f"({len(scan.init_thresholds)} layers, seeds {', '.join(map(str, sorted(set(scan.reference.seed))))}): "
              f"{int(t.is_pan.sum())}")
    print(f"PANs: {s.pans} ({s.share_pct:.2f}% of filters); fire at border {s.fire} ({s.fire_pct:.2f}%), "
          f"silenced {s.silenced} ({s.silenced_pct:.2f}%)")
    print("per side (fire/silenced, counts and % of filters): " + ", ".join(
        f"{side} {r.fire}/{r.silenced} ({r.fire_pct:.2f}%/{r.silenced_pct:.2f}%)"
        for side, r in side_sign_counts(t).iterrows()))
    print(f"paper: {PAPER_CLAIM}")
    if args.out:
        cols = [c for c in t.columns]
        if args.out.endswith(".csv"):
            t[cols].to_csv(args.out, index=False)
        else:
            t[cols].to_json(args.out, orient="records", indent=1)
        print(f"wrote {len(t)} rows to {args.out}")
    return 0


_PEAK_SCRIPT = r"""
import sys, torch, padlib
from padlib.pans import find_pans
torch.set_num_threads(int(sys.argv[2]))
model = padlib.load_model("mobilenet_v2")
images = padlib.probe_images(int(sys.argv[1]), model=model)
def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) / 1024
warm = padlib.probe_images(16, model=model, seed=1).tensor()
find_pans(model, warm, batch_size=16, progress=False)  # warm-up at full batch size: allocator, imports
del warm
before = rss("VmRSS:")
try:
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current RSS
except OSError:
    pass
find_pans(model, images, batch_size=16, progress=False)  # the default scan: observed, null, reference
print(rss("VmHWM:") - before)
"""


def bench_pan_scan() -> dict:
    """PAN scan cost on mobilenet_v2 at 224 px, 64 probe images (one tensor), all measured in this one run.

    Every time is the best of three, the calls interleaved with a plain forward of the same tensor (batch 16),
    which damps the noise of a shared machine.
    ``pan_scan_default_overhead``: the default ``find_pans`` (observed pass, circular null, random-init
    reference: two random-init copies scanned on the first REFERENCE_IMAGES of the 64 images, their BatchNorm
    computed in that pass)
    / the plain forward. The cost a user waits for.
    ``pan_scan_overhead``: ONE observed pass with the thresholds given and no reference (``find_pans(...,
    tau=..., reference=None)``: hooks, streamed sums, replicate border strips and the table) / forward.
    ``pan_scan_with_null_overhead``: (observed pass + circular null pass) / forward, i.e. the older default,
    the padding-caused verdict alone (``reference=None``).
    ``pan_scan_peak_mb_ratio``: peak extra resident memory of a default scan of 256 images / of 32 images,
    each in a fresh process after a full-batch warm-up (Linux VmHWM reset through /proc/self/clear_refs), with
    a fixed glibc mmap threshold so that the peak measures live memory rather than allocator history.
    """
    import os
    import subprocess
    import sys

    from .data import probe_images
    from .models import load_model

    model = load_model("mobilenet_v2")
    x = probe_images(64, model=model).tensor()
    batch = 16

    def forward():
        with torch.no_grad():
            for s in range(0, len(x), batch):
                model(x[s:s + batch])

    def timed(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    full = scan_pans(model, x, batch_size=batch, progress=False)  # calibration, also the warm-up
    tau, tau_c = full.tau, full.tau_corner
    circular = convert_padding(model, "circular")
    t_fwd, t_scan, t_null, t_default = [], [], [], []
    for _ in range(3):
        t_fwd.append(timed(forward))
        t_scan.append(timed(lambda: scan_pans(model, x, tau=tau, tau_corner=tau_c, batch_size=batch,
                                              progress=False, reference=None)))
        t_null.append(timed(lambda: scan_pans(circular, x, tau=tau, tau_corner=tau_c, batch_size=batch,
                                              progress=False, reference=None)))
        t_default.append(timed(lambda: find_pans(model, x, batch_size=batch, progress=False)))
    fwd = min(t_fwd)
    peaks = {}
    # glibc's dynamic mmap threshold makes RSS peaks depend on allocation history; a fixed threshold returns
    # every large block at once, so the peak is the live memory (same settings for both sizes)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="131072", MALLOC_ARENA_MAX="2")
    for n in (32, 256):
        out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(n), str(torch.get_num_threads())],
                             capture_output=True, text=True, check=True, env=env)
        peaks[n] = float(out.stdout.strip().splitlines()[-1])
    return {
        "pan_scan_default_overhead": round(min(t_default) / fwd, 3),
        "pan_scan_overhead": round(min(t_scan) / fwd, 3),
        "pan_scan_with_null_overhead": round((min(t_scan) + min(t_null)) / fwd, 3),
        "pan_scan_peak_mb_32": round(peaks[32], 1),
        "pan_scan_peak_mb_256": round(peaks[256], 1),
        "pan_scan_peak_mb_ratio": round(peaks[256] / max(peaks[32], 1.0), 3),
    }
