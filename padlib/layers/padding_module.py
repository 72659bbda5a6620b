"""The Padding Module (Alrasheedi et al. 2023), our reading: a learned linear predictor of the edge rows that
extrapolates one ring outward, trained by its own loss; and the edge-prediction error of any scheme."""
from __future__ import annotations

import functools
import math
import types
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    import pandas as pd

from .._hooks import eval_mode, forward_hooks, iter_batches
from ..errors import PadlibError
from ..layers.base import PadConv2d, PaddingScheme
from ..padding import _pair

MODULE_SIDES = ("top", "bottom", "left", "right")


# ---------------------------------------------------------------------------------------------------------
# Padding Module (our reading)


def _strip_conv(strip: torch.Tensor, w: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """A (depth x 1) grouped convolution of a (N, C, depth, L) strip to (N, C_out, 1, L), done as one batched
    matrix product (far cheaper than a convolution call on such thin inputs)."""
    n, c, k, length = strip.shape
    c_out = w.shape[0]
    x = strip.reshape(n, groups, (c // groups) * k, length).permute(1, 2, 0, 3).reshape(groups, -1, n * length)
    out = torch.bmm(w.reshape(groups, c_out // groups, (c // groups) * k), x)  # (G, C_out/G, N*L)
    out = out.reshape(groups, c_out // groups, n, length).permute(2, 0, 1, 3).reshape(n, c_out, 1, length)
    return out + b.view(1, -1, 1, 1)


def _edge_index(n: int, start: int, rows: int, device) -> torch.Tensor:
    """Indices of ``rows`` rows from ``start`` inward at the near end, then at the far end (nearest first);
    a map thinner than that repeats its innermost row."""
    i = torch.arange(start, start + rows, device=device).clamp(max=n - 1)
    return torch.cat([i, n - 1 - i])


@functools.lru_cache(maxsize=256)
def _edge_positions(h: int, w: int, k: int, device: str) -> torch.Tensor:
    """Flat (row * w + col) positions of the edge strips, each nearest-first: the top k rows, the bottom k
    rows, then the left k columns and the right k columns, columns laid out as rows (k, H)."""
    ri, ci = _edge_index(h, 0, k, device), _edge_index(w, 0, k, device)
    rows = (ri[:, None] * w + torch.arange(w, device=device)[None]).reshape(-1)
    cols = (ci[:, None] + torch.arange(h, device=device)[None] * w).reshape(-1)
    return torch.cat([rows, cols])


class _LearnedPad(torch.autograd.Function):
    """Padding by a :class:`PaddingModule` for any amounts and map shapes (used to show and measure padding).

    Forward gathers the edge strips, extrapolates the border ring by ring and writes border and map into one
    new tensor. Backward: the map's gradient is the interior of the output gradient, plus the border's
    gradient sent back through the (linear, small) border computation into the edge positions. The
    predictor weights are constants here: the main loss never trains the module.
    """

    @staticmethod
    def forward(ctx, x, module, pads):
        n, c, h, w = x.shape
        l, r, t, b = pads
        with torch.no_grad():
            pos = _edge_positions(h, w, module.depth, str(x.device))
            edges = x.flatten(2).index_select(2, pos)
            top, bottom, left, right = module._border(edges, h, w, pads)
            out = x.new_empty(n, c, h + t + b, w + l + r)
            out[:, :, t:t + h, l:l + w] = x
            out[:, :, :t] = top
            out[:, :, t + h:] = bottom
            out[:, :, t:t + h, :l] = left
            out[:, :, t:t + h, l + w:] = right
        ctx.module, ctx.pads, ctx.hw, ctx.pos = module, pads, (h, w), pos
        ctx.save_for_backward(edges)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (edges,) = ctx.saved_tensors
        (h, w), (l, r, t, b) = ctx.hw, ctx.pads
        grad_x = grad_out[:, :, t:t + h, l:l + w].contiguous()
        grads = (grad_out[:, :, :t], grad_out[:, :, t + h:], grad_out[:, :, t:t + h, :l],
                 grad_out[:, :, t:t + h, l + w:])
        with torch.enable_grad():
            e = edges.detach().requires_grad_()
            border = ctx.module._border(e, h, w, ctx.pads)
            used = [(o, g) for o, g in zip(border, grads) if o.numel()]
            (grad_edges,) = torch.autograd.grad([o for o, _ in used], [e], [g for _, g in used])
        grad_x.view(grad_x.shape[0], grad_x.shape[1], -1).index_add_(2, ctx.pos, grad_edges)
        return grad_x, None, None


# ---- the common case, done fast: one ring of padding, a square map (side L), a 3x3 conv of stride 1 or 2.
# All edge data is laid out (pixels, channels), contiguous memory for channels-last maps, border first:
# strips (4, N, L, depth + 1, C) hold the depth + 1 outermost rows of the sides top, bottom, left, right
# (columns laid out as rows), the border row first. The padding rings share one buffer (4, N R + 2, C): each
# image's ring of one side takes R rows (L + 2 rounded up to a multiple of the stride): the ring's first end,
# its L pixels, its second end, zeros. The conv's border outputs then read stride-s views of that one buffer.
# The code counts calls: on small maps each eager call costs as much as the arithmetic.


def _to_groups(v: torch.Tensor, g: int) -> torch.Tensor:
    """(S, ..., K, C) -> (S * g, M, K * C/g): pixels by (K, channel within group), for one batched product."""
    s, kk, c = v.shape[0], v.shape[-2], v.shape[-1]
    m = math.prod(v.shape[1:-2])
    if g == 1:
        return v.reshape(s, m, kk * c)
    return v.reshape(s, m, kk, g, c // g).permute(0, 3, 1, 2, 4).reshape(s * g, m, kk * (c // g))


def _from_groups(v: torch.Tensor, s: int, g: int, kk: int = 1) -> torch.Tensor:
    """Inverse of :func:`_to_groups`: (S * g, M, K * C/g) -> (S, M, K, C)."""
    m, cg = v.shape[1], v.shape[2] // kk
    if g == 1:
        return v.view(s, m, kk, cg)
    return v.view(s, g, m, kk, cg).permute(0, 2, 3, 1, 4).reshape(s, m, kk, g * cg)


# The four corners (tl, tr, bl, br), each the mean of two extrapolations: a top/bottom ring extended by the
# left/right predictor, and a left/right ring extended by the top/bottom predictor. Per corner and extension:
# the ring, which end of it (0: first, 1: last), the predictor side. Every (ring, end) occurs once.
_CORNER_PAIRS = (((0, 0, 2), (2, 0, 0)), ((0, 1, 3), (3, 0, 0)), ((1, 0, 2), (2, 1, 1)), ((1, 1, 3), (3, 1, 1)))


@functools.lru_cache(maxsize=64)
def _strip_index(n: int, length: int, k: int, device: str) -> torch.Tensor:
    """Flat indices of the strips' pixels, border first, into the (N H W) pixel rows of a channels-last map."""
    d, j = torch.arange(k + 1)[None], torch.arange(length)[:, None]
    far = length - 1 - d
    pos = torch.stack([d * length + j, far * length + j, j * length + d, j * length + far])  # (4, L, k + 1)
    pos = pos[:, None] + (torch.arange(n) * length * length)[:, None, None]
    return pos.reshape(-1).to(device)


def _tap_index(far: int) -> torch.Tensor:
    """Positions in the flattened 3x3 kernel of the entries reading each side's padding, per tap: row 0 (top),
    row ``far`` (bottom), column 0 (left), column ``far`` (right); (4 * 3,)."""
    t = torch.arange(3)
    return torch.stack([t, far * 3 + t, t * 3, t * 3 + far]).reshape(-1)


def _by_depth(w: torch.Tensor, g: int, k: int) -> torch.Tensor:
    """Predictor weights (4, C, C/g, k, 1), or their positions, as (4, g, k, C/g in, C/g out): matrices applied to
    (pixels, channels) rows, one per row depth, nearest the border first (the layout of the fast products)."""
    cg = w.shape[2]
    return w.view(4, g, cg, cg, k).permute(0, 1, 4, 3, 2)


def _loss_residual(xs: torch.Tensor, plain: torch.Tensor, b: torch.Tensor, cg: int) -> torch.Tensor:
    """(4 g, M, C/g): each strip's border row predicted from the k rows inside it, minus the border row, from
    grouped strips ``xs`` (4 g, M, (k+1) C/g), predictors ``plain`` (4 g, k C/g, C/g) and bias ``b``."""
    return torch.baddbmm(xs[..., :cg], xs[..., cg:], plain, beta=-1).add_(b)


def _predictor_index(c: int, g: int, k: int) -> tuple:
    """Where each entry of the fast path's predictor matrices sits in ``weight.flatten()``: the predictors
    (4 g, k C/g, C/g: strip rows, depth-major, times it give the predicted row), the corner predictors
    (4 g, 2 k C/g, C/g: per corner its two extensions stacked, rows in the order of the plan's ``ends``) and
    the transposed predictors for the backward pass (4 g, C/g, k C/g: deepest row first on bottom/right,
    which is map order there)."""
    cg = c // g
    by_depth = _by_depth(torch.arange(4 * c * cg * k).view(4, c, cg, k, 1), g, k)  # (4, g, k, in, out)
    plain = by_depth.reshape(4 * g, k * cg, cg)
    i = torch.arange(k)
    rows = torch.stack([torch.stack([side * k + (i if end == 0 else k - 1 - i) for _, end, side in pair])
                        for pair in _CORNER_PAIRS]).reshape(-1)  # (4 corners * 2 extensions * k,)
    corner = by_depth.transpose(1, 2).reshape(4 * k, g, cg, cg)[rows]
    corner = corner.view(4, 2 * k, g, cg, cg).transpose(1, 2).reshape(4 * g, 2 * k * cg, cg)
    far = torch.tensor([False, True, False, True]).view(4, 1, 1, 1, 1)
    back = torch.where(far, by_depth.flip(2), by_depth).permute(0, 1, 4, 2, 3).reshape(4 * g, cg, k * cg)
    return plain, corner, back


@functools.lru_cache(maxsize=16)  # per-batch-size index tensors: keep a few shapes
def _fast_plan(n: int, length: int, c: int, c_out: int, g: int, k: int, stride: int, device: str):
    """Everything the fast path needs that depends only on shapes, as index tensors (built once per shape):
    so that each step is a few gathers and products, not dozens of small reshapes."""
    cg, cog = c // g, c_out // g
    ho = (length - 1) // stride + 1
    far = length + 1 - stride * (ho - 1)  # the kernel row/column that reads the bottom/right padding
    pitch = -(-(length + 2) // stride) * stride  # ring rows per image in the ring buffer
    per = pitch // stride  # correction rows per image
    p = types.SimpleNamespace(ho=ho, far=far, pitch=pitch, per=per, q=n * per)
    p.sides = (0, 1, 2, 3) if far <= 2 else (0, 2)  # stride 2 on an even map never reads bottom/right
    p.plain, p.corner, p.back = _predictor_index(c, g, k)
    p.corner_t = p.corner.transpose(1, 2).contiguous()
    # conv kernel rows/columns reading each side's padding, by tap (3, 4 g, C/g, C_out/g): indices into the
    # conv weight in logical order (torch.take works on channels-last weights)
    taps = torch.arange(c_out * cg * 9).view(c_out, cg, 9)[:, :, _tap_index(min(far, 2))]
    taps = taps.view(g, cog, cg, 4, 3).permute(4, 3, 0, 2, 1).reshape(3, 4 * g, cg, cog)
    p.taps = taps
    if stride == 1:  # backward products over 3-row windows of the border gradients (taps 2, 1, 0)
        p.taps_back = taps.flip(0).permute(1, 0, 3, 2).reshape(4 * g, 3 * cog, cg)
        p.taps_grad = taps.flip(0).permute(1, 2, 0, 3).reshape(4 * g, cg, 3 * cog)
    else:
        p.taps_back = taps.permute(1, 3, 0, 2).reshape(4 * g, cog, 3 * cg)
        p.taps_grad = taps.permute(1, 2, 0, 3).reshape(4 * g, cg, 3 * cog)
    # ring-buffer rows (flat.view(-1, C)) of the pixels each corner extension reads, (corner, N, extension,
    # k), and of the corners themselves (corner, N); forward buffer (4, N R + 2, C), backward (4, N R, C)
    i = torch.arange(k)
    img = torch.arange(n)[None, :, None, None] * pitch
    ring = torch.tensor([[e[0] for e in pair] for pair in _CORNER_PAIRS])[:, None, :, None]
    end = torch.tensor([[e[1] for e in pair] for pair in _CORNER_PAIRS])[:, None, :, None]
    pos = img + torch.where(end == 0, 1 + i, length + 1 - k + i)
    corner_pos = torch.arange(n)[None] * pitch + torch.tensor([0, length + 1, 0, length + 1])[:, None]
    corner_ring = torch.tensor([0, 0, 1, 1])[:, None]
    for name, side_rows in (("", n * pitch + 2), ("_back", n * pitch)):
        setattr(p, "ends" + name, (ring * side_rows + pos).reshape(-1))
        setattr(p, "corners" + name, (corner_ring * side_rows + corner_pos).reshape(-1))
    # rows that must hold zeros (the buffers are allocated uninitialised): in the ring buffer, the ends of the
    # left/right rings, the rows after each ring and the two spare rows; in the backward buffer of border
    # gradients, the leading rows and the rows past each image's outputs
    after = torch.arange(length + 2, pitch)
    tail = torch.arange(n)[:, None] * pitch + after[None]
    lr_ends = torch.arange(n)[:, None] * pitch + torch.tensor([0, length + 1])[None]
    side_rows = n * pitch + 2
    spare = torch.tensor([side_rows - 2, side_rows - 1])
    p.ring_zeros = torch.cat([(torch.arange(4)[:, None, None] * side_rows + tail[None]).reshape(-1),
                              (torch.tensor([2, 3])[:, None, None] * side_rows + lr_ends[None]).reshape(-1),
                              (torch.arange(4)[:, None] * side_rows + spare).reshape(-1)])
    p.lead = lead = 2 if stride == 1 else 0  # leading zero rows of the backward gradient buffer
    past = (torch.arange(n)[:, None] * per + torch.arange(ho, per)[None]).reshape(-1) + lead
    p.grad_zeros = (torch.arange(4)[:, None] * (lead + n * per) + torch.cat([torch.arange(lead), past])).reshape(-1)
    if far > 2:  # the bottom/right outputs read no padding: all their rows zero
        p.grad_zeros = torch.cat([p.grad_zeros, (torch.tensor([1, 3])[:, None] * (lead + n * per)
                                                 + torch.arange(lead + n * per)).reshape(-1)])
    sides = torch.tensor([[e[2] for e in pair] for pair in _CORNER_PAIRS])
    p.mean_bias = torch.zeros(4, 4).scatter_(1, sides, 0.5)  # (corner, side): the two biases averaged
    for name, value in vars(p).items():
        if isinstance(value, torch.Tensor):
            setattr(p, name, value.to(device))
    return p


def _edge_strips(x: torch.Tensor, k: int) -> torch.Tensor:
    """(4, N, L, k + 1, C) border-first strips of a square map (see above): one gather from a channels-last
    map, one stack of four views from any other."""
    n, c, h, _ = x.shape
    xr = x.permute(0, 2, 3, 1)
    if c > 1 and xr.is_contiguous():
        idx = _strip_index(n, h, k, str(x.device))
        return xr.reshape(-1, c).index_select(0, idx).view(4, n, h, k + 1, c)
    e = k + 1  # other layouts: one stack of four views (a gather along the last dim is ~10x slower)
    return torch.stack([xr[:, :e].transpose(1, 2), xr[:, h - e:].flip(1).transpose(1, 2),
                        xr[:, :, :e], xr[:, :, h - e:].flip(2)])


def _border_lines(t: torch.Tensor) -> tuple:
    """Views (N, L, C) of a map's top row, bottom row, left column and right column."""
    tp = t.permute(0, 2, 3, 1)
    return tp[:, 0], tp[:, -1], tp[:, :, 0], tp[:, :, -1]


def _can_pad_fast(conv: nn.Conv2d, x: torch.Tensor, pads, depth: int) -> bool:
    h, w = x.shape[-2:]
    return (tuple(pads) == (1, 1, 1, 1) and h == w and h > depth and _pair(conv.kernel_size) == (3, 3)
            and _pair(conv.dilation) == (1, 1) and _pair(conv.stride)[0] == _pair(conv.stride)[1] <= 2)


def _mse_and_grads(inner: torch.Tensor, residual: torch.Tensor, c: int, g: int, k: int, grads: bool) -> tuple:
    """The module loss (mean squared residual) and, if ``grads``, its gradients to the predictor weight
    (4, C, C/g, k, 1) and bias (4, C) for d(loss) = 1, from the residuals (4 g, M, C/g) of the strip rows
    ``inner`` (4 g, M, k C/g)."""
    scale = 2.0 / residual.numel()
    r = residual.view(-1)
    loss = torch.dot(r, r) / r.numel()
    if not grads:
        return loss, None, None
    cg = c // g
    gw = torch.bmm(inner.transpose(1, 2), residual).mul_(scale)  # (4 g, k C/g, C/g out), depth-major rows
    gw = gw.view(4, g, k, cg, cg).permute(0, 1, 4, 3, 2).reshape(4, c, cg, k, 1)
    return loss, gw, residual.sum(1).mul_(scale).view(4, c)


class _EdgeLoss(torch.autograd.Function):
    """The module loss of a map the fast path does not take, from residuals computed without autograd; its
    gradient (to the predictor only) by hand, in the forward pass (backward only scales it)."""

    @staticmethod
    def forward(ctx, weight, bias, inner, residual, module):
        need = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        loss, ctx.gw, ctx.gb = _mse_and_grads(inner, residual, module.channels, module.groups, module.depth, need)
        return loss

    @staticmethod
    def backward(ctx, grad):
        return ctx.gw * grad, ctx.gb * grad, None, None, None


class _PaddedConv(torch.autograd.Function):
    """conv(Padding Module padding of x) as the zero-padded conv plus a correction of its border outputs,
    and (``with_loss``) the module loss of x, from the same strips.

    The padding ring only reaches the conv's border outputs, through one kernel row or column per side, so
    the ring's contribution is three thin products (one per kernel tap, over shifted views of all rings)
    added to the native zero-padded convolution: no padded canvas is built. Backward: the native convolution
    backward plus the same thin products transposed; the ring's gradient goes back through the (linear)
    predictors into the edge rows of x. The predictors get gradients from the module loss only (computed by
    hand in the forward pass): the main loss never trains the module, the module loss never reaches x.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, m_weight, m_bias, module, stride, with_loss):
        n, c, h, _ = x.shape
        co = weight.shape[0]
        g, k = module.groups, module.depth
        gcg = c // g
        p = _fast_plan(n, h, c, co, g, k, stride, str(x.device))
        xs = _to_groups(_edge_strips(x, k), g)  # (4 g, N L, (k + 1) C/g), depth-major columns
        src = m_weight.view(-1)  # the predictors; the matrices below are gathers from it
        b = m_bias.view(4 * g, 1, gcg)
        plain = src.take(p.plain)
        ctx.gw_m = ctx.gb_m = None
        pads = torch.bmm(xs[..., :k * gcg], plain)  # rows 0..k-1 predict the padding row
        if with_loss:  # rows 1..k predict row 0: the residual, border row subtracted by the product's beta
            residual = _loss_residual(xs, plain, b, gcg)
            loss, ctx.gw_m, ctx.gb_m = _mse_and_grads(xs[..., gcg:], residual, c, g, k,
                                                      ctx.needs_input_grad[3] or ctx.needs_input_grad[4])
        # the ring buffer: rings with their ends, zeros after (see above)
        flat = xs.new_empty(4, n * p.pitch + 2, c)
        ring = flat[:, :n * p.pitch].view(4, n, p.pitch, c)[:, :, 1:h + 1]
        if g == 1:
            torch.add(pads.view(4, n, h, c), b.view(4, 1, 1, c), out=ring)
        else:
            ring.copy_(_from_groups(pads + b, 4, g).reshape(4, n, h, c))
        rows = flat.view(-1, c)
        rows.index_fill_(0, p.ring_zeros, 0)
        ends = rows.index_select(0, p.ends).view(4, n, 2 * k, c)
        corner_weights = src.take(p.corner)
        bc = torch.mm(p.mean_bias.to(x.dtype), m_bias).view(4 * g, 1, gcg)
        corners = torch.baddbmm(bc, _to_groups(ends, g), corner_weights, alpha=0.5)  # tl tr bl br
        rows.index_copy_(0, p.corners, _from_groups(corners, 4, g).reshape(4 * n, c))
        # the native conv, then the padding ring's contribution to its border outputs
        out = F.conv2d(x, weight, bias, stride, 1, 1, g)
        w_taps = weight.take(p.taps)  # (3, 4 g, C/g, C_out/g)
        rings = _to_groups(flat.unsqueeze(2), g)  # (4 g, N R + 2, C/g)
        q, s = p.q, stride
        corr = torch.bmm(rings[:, 0:q * s:s], w_taps[0])
        corr.baddbmm_(rings[:, 1:1 + q * s:s], w_taps[1])
        corr.baddbmm_(rings[:, 2:2 + q * s:s], w_taps[2])
        corr = _from_groups(corr, 4, g).reshape(4, n, p.per, co)[:, :, :p.ho]
        lines = _border_lines(out)  # one add per side: views and sources in the same order (cheap)
        for j in p.sides:
            lines[j].add_(corr[j])
        ctx.module, ctx.stride, ctx.plan, ctx.has_bias = module, stride, p, bias is not None
        ctx.set_materialize_grads(False)  # an unused module loss sends no (zero) gradient to the module
        ctx.save_for_backward(x, weight, rings, src)
        return (out, loss) if with_loss else out

    @staticmethod
    def backward(ctx, grad, grad_loss=None):
        x, weight, rings, src = ctx.saved_tensors
        p, s, module = ctx.plan, ctx.stride, ctx.module
        n, c, h, _ = x.shape
        co = weight.shape[0]
        g, k = module.groups, module.depth
        gcg, cog, q = c // g, co // g, p.q
        need_x, need_w, need_b = ctx.needs_input_grad[:3] if grad is not None else (False,) * 3
        g_mw = g_mb = None
        if grad_loss is not None and ctx.gw_m is not None:
            g_mw, g_mb = ctx.gw_m * grad_loss, ctx.gb_m * grad_loss
        if not (need_x or need_w or need_b):
            return None, None, None, g_mw, g_mb, None, None, None
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, [co] if ctx.has_bias else None, [s, s], [1, 1], [1, 1], False, [0, 0], g,
            [need_x, need_w, need_b and ctx.has_bias])
        # the border outputs' gradients laid out like the corrections, after two zero rows for stride 1 (row r
        # of the 3-row windows below then holds the gradients that ring row r feeds through taps 2, 1, 0)
        lead = p.lead
        gs = grad.new_empty(4, lead + q, co)
        gs.view(-1, co).index_fill_(0, p.grad_zeros, 0)
        gsi = gs[:, lead:].view(4, n, p.per, co)[:, :, :p.ho]
        lines = _border_lines(grad)
        for j in p.sides:
            gsi[j] = lines[j]
        gsg = _to_groups(gs.unsqueeze(2), g)  # (4 g, lead + q, C_out/g)
        if s == 1:
            gsg = gsg.as_strided((4 * g, q, 3 * cog), (gsg.stride(0), cog, 1)).contiguous()
        if need_w:
            if s == 1:
                g_taps = torch.bmm(rings[:, :q].transpose(1, 2), gsg)
            else:
                g_taps = torch.cat([torch.bmm(rings[:, t:t + q * s:s].transpose(1, 2), gsg) for t in range(3)], 2)
            gw.put_(p.taps_grad, g_taps, accumulate=True)  # (gw may be channels-last: put_ indexes logically)
        if need_x:
            w_back = weight.take(p.taps_back)
            if s == 1:
                g_rings = torch.bmm(gsg, w_back)  # (4 g, N R, C/g)
            else:
                each = torch.bmm(gsg, w_back)
                g_rings = gsg.new_zeros(4 * g, q * s, gcg)
                for t in range(3):
                    rows_t = g_rings[:, t:t + q * s:s]
                    rows_t.add_(each[:, :rows_t.shape[1], t * gcg:(t + 1) * gcg])
            g_rows = _from_groups(g_rings, 4, g).reshape(-1, c)  # (4 N R, C)
            # the corners back into the ring pixels they were extrapolated from
            g_corners = g_rows.index_select(0, p.corners_back).view(4, n, 1, c)
            g_ends = torch.bmm(_to_groups(g_corners, g), src.take(p.corner_t)).mul_(0.5)
            g_rows.index_add_(0, p.ends_back, _from_groups(g_ends, 4, g, 2 * k).reshape(-1, c))
            # the rings back through the predictors into the map's edge rows, in map order (4, N, L, k, C)
            g_in = torch.bmm(_to_groups(g_rows.view(4, -1, 1, c), g), src.take(p.back))
            g_in = _from_groups(g_in, 4, g, k).reshape(4, n, p.pitch, k, c)[:, :, 1:h + 1]
            # one add per row of the top/bottom bands and per column band, each source in the view's order
            # (adds between differently ordered layouts run several times slower)
            gxp = gx.permute(0, 2, 3, 1)
            for d in range(k):
                gxp[:, d] += g_in[0, :, :, d]
                gxp[:, h - k + d] += g_in[1, :, :, d]
            gxp[:, :, :k] += g_in[2]
            gxp[:, :, h - k:] += g_in[3]
        return gx, gw, gb if ctx.has_bias else None, g_mw, g_mb, None, None, None


class PaddingModule(PaddingScheme):
    """Learned padding: per side, a linear predictor of the outermost row from the ``depth`` rows inside it.

    ``weight[s]`` (sides top, bottom, left, right) has shape (C, C/groups, depth, 1): a convolution over a
    strip of rows ordered from the border inward. Initialised to replicate padding (the outermost row
    predicts the next one), so an untrained module pads like ``replicate``. In training mode (with gradients
    enabled) each forward stores its self-supervised loss in ``last_loss``; :func:`padding_module_loss`
    collects and clears them. More than one ring is extrapolated one ring at a time. Corners: the new
    top/bottom row is extended by the left/right predictor and the new left/right column by the top/bottom
    predictor; the corner is the mean of the two (exact for any affine image, like the sides).
    One ring on a square map before a 3x3 conv (the common case) runs as a zero-padded conv plus a border
    correction, fastest on channels-last maps (what :func:`padlib.experiments.training.train` uses).
    """

    name = "padding_module"

    def __init__(self, channels: int, groups: int = 1, depth: int = 2, device=None, dtype=None):
        super().__init__()
        if depth < 1:
            raise PadlibError(f"Padding Module depth must be >= 1 row, got {depth}")
        if channels % groups:
            raise PadlibError(f"{channels} channels cannot be split into {groups} groups")
        self.channels, self.groups, self.depth = channels, groups, depth
        w = torch.zeros(4, channels, channels // groups, depth, 1, device=device, dtype=dtype)
        per = channels // groups
        for c in range(channels):
            w[:, c, c % per, 0, 0] = 1.0  # replicate: predict the edge row as a copy of its neighbour
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(4, channels, device=device, dtype=dtype))
        self.last_loss: torch.Tensor | None = None

    def extra_repr(self):
        return f"channels={self.channels}, groups={self.groups}, depth={self.depth}"

    # ---- the predictors
    def _strip(self, x, side: int, start: int, rows: int) -> torch.Tensor:
        """(N, C, rows, L): ``rows`` rows of ``x`` from ``start`` inward on ``side``, the outermost first."""
        n = x.shape[-2] if side < 2 else x.shape[-1]
        idx = _edge_index(n, start, rows, x.device)
        idx = idx[:rows] if side in (0, 2) else idx[rows:]
        return x.index_select(2, idx) if side < 2 else x.index_select(3, idx).transpose(2, 3)

    def _side_weights(self, sides, detach: bool = True):
        w, b = self.weight[sides], self.bias[sides]
        if detach:
            w, b = w.detach(), b.detach()
        c = self.channels
        return w.reshape(len(sides) * c, c // self.groups, self.depth, 1), b.reshape(-1)

    def predict(self, strip: torch.Tensor, side: int, detach: bool = True) -> torch.Tensor:
        """The row beyond ``strip[:, :, 0]`` predicted from ``strip[:, :, :depth]``: (N, C, 1, L)."""
        w, b = self._side_weights([side], detach)
        return _strip_conv(strip, w, b, self.groups)

    # ---- the border, general case (any padding, any map): one ring at a time, with autograd
    def _band(self, x, side: int, p: int) -> torch.Tensor:
        """``p`` extrapolated rings beyond one side, in image orientation (rows for top/bottom, columns else)."""
        n, c, h, w = x.shape
        if p == 0 or h == 0 or w == 0:
            return x.new_zeros((n, c, p, w) if side < 2 else (n, c, h, p))
        strip = self._strip(x, side, 0, self.depth)
        rings = []
        for _ in range(p):
            new = self.predict(strip, side)
            rings.append(new)
            strip = torch.cat([new, strip[:, :, :-1]], 2)
        band = torch.cat(rings[::-1] if side in (0, 2) else rings, 2)  # outermost ring first on top/left
        return band if side < 2 else band.transpose(2, 3)

    def _border(self, edges: torch.Tensor, h: int, w: int, pads):
        """Top and bottom bands (corners included), left and right bands, from the gathered edge strips."""
        l, r, t, b = pads
        n, c, _ = edges.shape
        k = self.depth
        top, bottom = edges[:, :, :k * w].view(n, c, k, w), edges[:, :, k * w:2 * k * w].view(n, c, k, w)
        left = edges[:, :, 2 * k * w:2 * k * w + k * h].view(n, c, k, h)
        right = edges[:, :, 2 * k * w + k * h:].view(n, c, k, h)
        rows = torch.cat([top, bottom.flip(2)], 2)  # the map's k outermost rows at either end, in map order
        cols = torch.cat([left, right.flip(2)], 2).transpose(2, 3)
        top, bottom = self._band(rows, 0, t), self._band(rows, 1, b)
        left, right = self._band(cols, 2, l), self._band(cols, 3, r)
        tl = 0.5 * (self._band(top, 2, l) + self._band(left, 0, t))
        tr = 0.5 * (self._band(top, 3, r) + self._band(right, 0, t))
        bl = 0.5 * (self._band(bottom, 2, l) + self._band(left, 1, b))
        br = 0.5 * (self._band(bottom, 3, r) + self._band(right, 1, b))
        return torch.cat([tl, top, tr], 3), torch.cat([bl, bottom, br], 3), left, right

    def pad(self, x, pads):
        if not any(pads):
            return x
        return _LearnedPad.apply(x, self, tuple(pads))

    # ---- the module's own loss
    def edge_loss(self, x: torch.Tensor) -> torch.Tensor | None:
        """Mean squared error of predicting each side's outermost row from the rows inside it (input detached)."""
        x = x.detach()
        h, w = x.shape[-2:]
        k = self.depth
        if h == w and h > k:
            g = self.groups
            cg = self.channels // g
            xs = _to_groups(_edge_strips(x, k), g)
            plain = _by_depth(self.weight.detach(), g, k).reshape(4 * g, k * cg, cg)
            residual = _loss_residual(xs, plain, self.bias.detach().view(4 * g, 1, cg), cg)
            return _EdgeLoss.apply(self.weight, self.bias, xs[..., cg:], residual, self)
        sides = [s for s in range(4) if (h if s < 2 else w) >= k + 1]
        if not sides:
            return None
        return torch.stack([F.mse_loss(self.predict(self._strip(x, s, 1, k), s, detach=False),
                                       self._strip(x, s, 0, 1)) for s in sides]).mean()

    def forward(self, conv, x, pads):
        train = self.training and torch.is_grad_enabled()
        if _can_pad_fast(conv, x, pads, self.depth):
            args = (x, conv.weight, conv.bias, self.weight, self.bias, self, _pair(conv.stride)[0])
            if not train:
                return _PaddedConv.apply(*args, False)
            out, loss = _PaddedConv.apply(*args, True)
            self.__dict__["last_loss"] = loss  # a plain attribute; nn.Module.__setattr__ costs more than it
            return out
        if train:
            self.last_loss = self.edge_loss(x)
        return F.conv2d(self.pad(x, pads), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


def padding_modules(model: nn.Module) -> list[tuple[str, PaddingModule]]:
    """Every Padding Module inside ``model`` (named by the conv it pads for)."""
    return [(name, m.scheme) for name, m in model.named_modules()
            if isinstance(m, PadConv2d) and isinstance(m.scheme, PaddingModule)]


def padding_module_loss(model: nn.Module) -> torch.Tensor | None:
    """Sum of the self-supervised losses the Padding Modules stored in the last training forward (then cleared).

    Add it to the main loss: its gradient reaches only the modules' predictors (their input is detached),
    and the main loss does not reach them (the padding uses detached predictor weights). None when the
    model has no Padding Module or no loss is pending (eval mode, no_grad).
    """
    total = None
    for _, module in padding_modules(model):
        if module.last_loss is not None:
            total = module.last_loss if total is None else total + module.last_loss
            module.last_loss = None
    return total


@torch.no_grad()
def edge_prediction_error(model: nn.Module, images, batch_size: int = 64, device="cpu",
                          progress: bool | str = False) -> "pd.DataFrame":
    """Held-out error of each Padding Module predicting its input's outermost rows, next to fixed rules.

    The task is the module's own: predict row 0 (each side) from the rows inside it. What the fixed
    schemes would "predict" for the same pixel: replicate (and symmetric) copy the neighbour row 1, reflect
    copies row 2, zero predicts 0. Returns one row per (layer, predictor) with the mean squared error and
    the error relative to the zero predictor (the mean square of the edge pixels).
    """
    import pandas as pd


    modules = padding_modules(model)
    if not modules:
        raise PadlibError("the model has no Padding Module: convert it with convert_padding(model, 'padding_module')")
    sums = {name: {"padding_module": 0.0, "replicate": 0.0, "reflect": 0.0, "zero": 0.0, "n": 0} for name, _ in modules}
    lookup = dict(modules)

    def record(name, conv, inputs, output):
        m, x = lookup[name], inputs[0]
        for side in range(4):
            n = x.shape[-2] if side < 2 else x.shape[-1]
            if n < max(m.depth + 1, 3):
                continue
            target = m._strip(x, side, 0, 1)
            s = sums[name]
            s["padding_module"] += (m.predict(m._strip(x, side, 1, m.depth), side) - target).pow(2).sum().item()
            s["replicate"] += (m._strip(x, side, 1, 1) - target).pow(2).sum().item()
            s["reflect"] += (m._strip(x, side, 2, 1) - target).pow(2).sum().item()
            s["zero"] += target.pow(2).sum().item()
            s["n"] += target.numel()

    with eval_mode(model):
        with forward_hooks(model, list(sums), record):
            for batch in iter_batches(images, batch_size, device, progress):
                model(batch)
    rows = []
    for name, s in sums.items():
        if not s["n"]:
            continue
        for predictor in ("padding_module", "replicate", "reflect", "zero"):
            rows.append({"layer": name, "predictor": predictor, "mse": s[predictor] / s["n"],
                         "relative_to_zero": s[predictor] / max(s["zero"], 1e-30)})
    return pd.DataFrame(rows)

