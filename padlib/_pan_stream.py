"""The PAN scan's streamed statistics: per layer and channel, sums over images that never grow with their number.

Private to :mod:`padlib.pans`: the hooks that collect border and interior moments, the padding-effect pass and
the table built from the sums.
"""
from __future__ import annotations

import contextlib
import math
import weakref
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ._distributed import all_gather_objects, all_reduce_sum, world
from ._hooks import bn_affine, eval_mode, forward_hooks, iter_batches, rank_batches
from .errors import PadlibError
from .layers.base import padding_scheme_of
from .padding import (
    CORNERS,
    LOCATIONS,
    SIDES,
    _pair,
    interior_margin,
    is_dynamic_same,
    layer_pads,
    padded_taps,
    padding_ring,
    require_padded_convs,
)

VARIANCE_ROWS = 16             # the interior std uses every k-th interior row, at least this many rows
SELECTIVITY_IMAGES = 16        # the interior reference of the selectivity pools the first this many images ...
SELECTIVITY_SAMPLE = 16        # ... at this many evenly spaced interior positions each
SELECTIVITY_BORDER = 8         # at most this many positions per side (evenly spaced) are ranked, per image
STD_FLOOR = 0.1                # interior std floor, as a fraction of the layer's median interior std


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

    def __init__(self, name: str, depth: int, module: nn.Conv2d, selectivity: bool = True):
        self.name, self.depth, self.module = name, depth, module
        self.selectivity = selectivity
        self.n = 0
        self.ready = False
        # several processes (padlib._distributed): the global index of the current batch's first image, and the
        # selectivity reference closed by _share_reference once every process has seen its share of it
        self.start = None
        self.deferred = False
        self.early_ref = None  # the shared reference, when it came before this process's first batch

    def _init(self, x: torch.Tensor, y: torch.Tensor):
        m = self.module
        (kh, kw), (sh, sw), (dh, dw) = (_pair(getattr(m, a)) for a in ("kernel_size", "stride", "dilation"))
        hin, win = x.shape[-2:]
        hout, wout = y.shape[-2:]
        self.shapes = (tuple(x.shape[1:]), tuple(y.shape[1:]))
        l, r, t, b = layer_pads(m, (hin, win))
        self.in_hw, self.out_hw, self.pads = (hin, win), (hout, wout), (l, r, t, b)
        self.kernel, self.stride, self.dilation = (kh, kw), (sh, sw), (dh, dw)
        # output rows/columns whose window reaches each side's padding (0 when that padding is never read)
        self.affected = padding_ring(m, (hin, win))
        self.margin = interior_margin((hout, wout), self.affected)
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
        # per image, the share of interior positions that each border location's responses exceed (an AUROC,
        # raw conv units), summed over images: 8 locations (4 sides without their corner cuts, 4 corners)
        self.cut = _border_cuts(self)
        self.auc_sum = torch.zeros(c, len(LOCATIONS), dtype=torch.float64, device=dev)
        self.sel_ref, self.sel_parts, self.sel_pending = self.early_ref, [], []
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
        if self.selectivity:
            self._rank_border(y, rows)
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


    def _rank_border(self, y: torch.Tensor, rows: torch.Tensor):
        """Selectivity sums: every border response ranked against one pooled interior reference.

        The reference is the interior of the first ``SELECTIVITY_IMAGES`` images (``SELECTIVITY_SAMPLE`` evenly
        spaced grid positions each), sorted per channel, so the AUROC says how well ONE threshold on the channel
        tells a border position from an interior one whatever the image (a within-image ranking would let a
        smoother's intensity-proportional drop pass as selective). Border responses of the images seen before
        the reference is complete wait in a buffer of at most that many images; the result does not depend on
        the batch size."""
        bsz, c = y.shape[:2]
        hout, wout = self.out_hw
        cut = self.cut
        cols = slice(cut["left"], wout - cut["right"], max(1, math.ceil((wout - cut["left"] - cut["right"])
                                                                       / SELECTIVITY_BORDER)))
        rws = slice(cut["top"], hout - cut["bottom"], max(1, math.ceil((hout - cut["top"] - cut["bottom"])
                                                                      / SELECTIVITY_BORDER)))
        parts = [y[:, :, 0, cols], y[:, :, hout - 1, cols], y[:, :, rws, 0], y[:, :, rws, wout - 1],
                 y[:, :, 0, :1], y[:, :, 0, wout - 1:], y[:, :, hout - 1, :1], y[:, :, hout - 1, wout - 1:]]
        self.sel_sizes = [p.shape[-1] for p in parts]
        border = torch.cat(parts, dim=-1)  # (B, C, positions)
        if self.sel_ref is not None:
            self._rank(border)
            return
        have = sum(p.shape[0] for p in self.sel_parts)
        take = max(0, min(bsz, SELECTIVITY_IMAGES - (have if self.start is None else self.start)))
        if take:
            inner = rows[:take].reshape(take, c, -1)
            step = max(1, inner.shape[-1] // SELECTIVITY_SAMPLE)
            self.sel_parts.append(inner[:, :, ::step][:, :, :SELECTIVITY_SAMPLE].clone())
        self.sel_pending.append(border.clone())
        if not self.deferred and have + take >= SELECTIVITY_IMAGES:
            self._close_reference()

    def _close_reference(self):
        """Sort the pooled interior reference and rank the border responses that waited for it."""
        if self.sel_ref is not None or not self.sel_parts:
            return
        self.sel_ref = _sorted_reference(self.sel_parts)
        pending, self.sel_parts, self.sel_pending = self.sel_pending, [], []
        for border in pending:
            self._rank(border)

    # -- merging the sums of several processes (padlib._distributed) ---------------------------------------
    _SUMS = ("map_sum", "int_mean_sum", "var_s1", "var_s2", "in_sum", "auc_sum")
    _COUNTS = ("n", "int_count", "var_count", "in_count")

    def sums(self) -> dict:
        """Every statistic that adds up over images: float64 sums (the padding effects per side) and counts."""
        out = {k: getattr(self, k) for k in self._SUMS}
        out.update({f"effect_{s}": self.effect_sum[s] for s in SIDES})
        out.update({k: float(getattr(self, k)) for k in self._COUNTS})
        return out

    def load_sums(self, sums: dict):
        """Set the sums and counts to ``sums`` (what :meth:`sums` gives, added up over the processes)."""
        for k in self._SUMS:
            setattr(self, k, sums[k].to(getattr(self, k).device))
        for s in SIDES:
            self.effect_sum[s] = sums[f"effect_{s}"].to(self.effect_sum[s].device)
        for k in self._COUNTS:
            setattr(self, k, int(round(sums[k])))

    def recentre(self, ref: torch.Tensor | None):
        """Express the interior variance sums about ``ref`` instead of this process's own first-batch reference
        (the one statistic of the stream that is not a plain sum): with d = own - ref, sum(x - ref) = s1 + n d
        and sum((x - ref)^2) = s2 + 2 d s1 + n d^2, in float64."""
        if ref is None:
            return
        ref = ref.to(self.var_s1.device)
        if self.int_ref is not None and self.var_count:
            d = self.int_ref.double() - ref.double()
            self.var_s2 = self.var_s2 + 2 * d * self.var_s1 + self.var_count * d * d
            self.var_s1 = self.var_s1 + self.var_count * d
        self.int_ref = ref.to(self.int_ref.dtype if self.int_ref is not None else ref.dtype)

    def _rank(self, border: torch.Tensor):
        bsz, c, npos = border.shape
        vals = border.transpose(0, 1).reshape(c, bsz * npos).contiguous()
        below = torch.searchsorted(self.sel_ref, vals, side="left")
        below = below + torch.searchsorted(self.sel_ref, vals, side="right")
        share = below.to(torch.float64).div_(2 * self.sel_ref.shape[1]).view(c, bsz, npos)
        self.auc_sum += torch.stack([chunk.mean(2).sum(1) for chunk in share.split(self.sel_sizes, dim=2)], 1)


def _sorted_reference(parts: list) -> torch.Tensor:
    """The pooled interior reference from its parts (images, C, samples): per channel, every sample, sorted."""
    ref = torch.cat(parts).transpose(0, 1).reshape(parts[0].shape[1], -1)
    return ref.contiguous().sort(dim=1).values


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
    return _Affine(name, *bn_affine(bn))


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
def _stream(model: nn.Module, images, batch_size: int, device, progress, desc: str, bn_batch_stats: bool = False,
            selectivity: bool = True):
    """One pass over ``images``: per padded conv, the raw statistics and the BN that follows it.

    ``bn_batch_stats``: every BatchNorm normalises with the statistics of the batch and keeps them as its running
    statistics (one batch: the exact mean and variance over the images, what :func:`recalibrate_batchnorm` sets,
    in the same pass)."""
    convs = require_padded_convs(model)
    stats = {name: _LayerStats(name, depth, m, selectivity) for depth, (name, m) in enumerate(convs)}
    several = world()[1] > 1  # a process group: this process scans its batches, the sums are merged below
    for st in stats.values():
        st.deferred = several
    shared = not (several and selectivity)  # the selectivity reference, shared once (several processes)
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
    with eval_mode(model):
        with _batch_statistics(list(bns.values()) if bn_batch_stats else []), \
                forward_hooks(model, list(stats), on_conv):
            bn_hooks = forward_hooks(model, list(bns), on_bn)
            bn_hooks.__enter__()
            try:
                batches = _rank_batches(images, batch_size, device, progress, desc) if several else \
                    ((None, b) for b in _batches(images, batch_size, device, progress, desc))
                for start, batch in batches:
                    if batch.dim() != 4:
                        raise PadlibError(f"image batches must be (N, C, H, W), got shape {tuple(batch.shape)}")
                    if several:
                        if not shared and start >= SELECTIVITY_IMAGES:
                            shared = _share_reference(stats)
                        for st in stats.values():
                            st.start = start
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
    if several:
        if not shared:
            _share_reference(stats)
        follows = _merge(stats, follows)
    if not any(s.n for s in stats.values()):
        raise PadlibError("no images were scanned: the image set is empty")
    affines = {c: _bn_affine(b, bns[b]) for c, b in follows.items()}
    return stats, affines


def _share_reference(stats: dict) -> bool:
    """Several processes: every process's interior samples of the first ``SELECTIVITY_IMAGES`` images (those it
    scanned), gathered, make the one pooled selectivity reference on every process, which ranks the border
    responses that waited for it. Each process calls this once, before its first batch that starts at or past
    image ``SELECTIVITY_IMAGES`` (or after its last): what waits is at most its share of those images' batches.
    The reference is sorted, so the order in which the samples arrive does not matter."""
    mine = {name: torch.cat(st.sel_parts).cpu() for name, st in stats.items() if st.ready and st.sel_parts}
    everyone = all_gather_objects(mine)
    for name, st in stats.items():
        parts = [d[name].to(st.module.weight.device) for d in everyone if name in d]
        if parts and st.ready:
            st.sel_parts = parts
            st._close_reference()
        elif parts:  # this process has not run the layer yet: its first batch finds the reference ready
            st.early_ref = _sorted_reference(parts)
    return True


def _merge(stats: dict, follows: dict) -> dict:
    """Several processes: add up every process's sums (one float64 all-reduce) so that each holds the statistics
    of all the images; returns the conv -> BatchNorm pairs. A layer this process never ran (it had no batch) is
    set up from another's shapes with zero sums; the variance sums are first re-centred on the first process's
    reference (:meth:`_LayerStats.recentre`), which rank 0 took from image 0's batch as one process does."""
    mine = {"follows": follows,
            "layout": {name: st.shapes for name, st in stats.items() if st.ready},
            "ref": {name: st.int_ref.cpu() for name, st in stats.items() if st.ready and st.int_ref is not None}}
    everyone = all_gather_objects(mine)
    layout, refs, merged_follows = {}, {}, {}
    for d in everyone:
        for k, v in d["layout"].items():
            layout.setdefault(k, v)
        for k, v in d["ref"].items():
            refs.setdefault(k, v)
        for k, v in d["follows"].items():
            merged_follows.setdefault(k, v)
    for name, st in stats.items():
        if name not in layout:
            continue
        if not st.ready:
            w = st.module.weight
            st._init(*(torch.zeros((1, *shape), dtype=w.dtype, device=w.device) for shape in layout[name]))
        st.recentre(refs.get(name))
    total = all_reduce_sum({name: st.sums() for name, st in stats.items() if name in layout})
    for name, sums in total.items():
        stats[name].load_sums(sums)
    return merged_follows


def _rank_batches(images, batch_size, device, progress, desc):
    """(index of its first image, batch) for each batch this process scans (:func:`padlib._hooks.rank_batches`)."""
    main = world()[0] == 0
    for _, start, batch in rank_batches(images, batch_size, device, desc if progress and main else False,
                                        batches=_batches(images, batch_size, device, progress and main, desc)):
        yield start, batch


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
    top, bottom, _ = padded_taps(hin, kh, sh, dh, t, b)
    left, right, _ = padded_taps(win, kw, sw, dw, l, r)
    row = {"top": torch.from_numpy(top), "bottom": torch.from_numpy(bottom)}
    col = {"left": torch.from_numpy(left), "right": torch.from_numpy(right)}
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
    # selectivity: how well one border location's pre-activations separate from the interior's (AUROC against
    # the pooled interior reference, either direction; a negative BatchNorm scale reverses the order)
    st._close_reference()
    auc = st.auc_sum / max(n, 1) if st.selectivity else torch.full_like(st.auc_sum, float("nan"))
    auc = torch.where((sgn < 0)[:, None], 1.0 - auc, auc)
    if st.selectivity:
        auc = torch.where(constant[:, None], torch.full_like(auc, 0.5), auc)
    for j, loc in enumerate(LOCATIONS):
        cols[f"auroc_{loc}"] = auc[:, j]
    cols["selectivity"] = torch.maximum(auc, 1.0 - auc)[:, :len(SIDES)].max(1).values  # sides: corners are 1 px
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
                bn_batch_stats: bool = False, selectivity: bool = True):
    stats, affines = _stream(model, images, batch_size, device, progress, desc, bn_batch_stats, selectivity)
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

