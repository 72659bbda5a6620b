"""More padding schemes: symmetric, partial-convolution padding and the learned Padding Module.

They plug into :func:`padlib.padding.convert_padding` through ``register_scheme`` (importing padlib
registers them), so ``convert_padding(model, "partial")`` works on any torchvision, timm or padlib model.

- ``symmetric``: mirror including the edge pixel (NumPy's ``symmetric``; Mind the Pad's mitigation).
- ``partial``: partial-convolution-based padding (Liu et al. 2018): zero padding, then each output is
  rescaled by (window size / number of real input pixels in the window); the bias is not rescaled.
- ``padding_module``: our reading of the Padding Module (Alrasheedi et al. 2023; see shared/papers.md):
  per side, a linear predictor mixing channels (within the conv's groups) maps the ``depth`` rows just
  inside the border to the outermost row. It is trained by its own loss (mean squared error of that
  prediction, computed on a detached copy of its input) and pads by applying the same predictor to the
  outermost ``depth`` rows, one ring at a time; corners average the two adjacent sides' extrapolations.
  The padding uses detached predictor weights, so the main loss never updates the module, and the module
  loss never reaches the rest of the network. Collect it with :func:`padding_module_loss`.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import PadlibError, check_type
from .padding import PADDING_SCHEMES, PadConv2d, PaddingScheme, copy_pad, register_scheme

MODULE_SIDES = ("top", "bottom", "left", "right")


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


# ---------------------------------------------------------------------------------------------------------
# symmetric


def symmetric_index(n: int, before: int, after: int, device=None) -> torch.Tensor:
    """Source index of each padded position for mirror-with-edge padding (any amount: the mirror repeats)."""
    idx = torch.arange(-before, n + after, device=device) % (2 * n)
    return torch.where(idx < n, idx, 2 * n - 1 - idx)


class SymmetricPadding(PaddingScheme):
    """Mirror including the edge pixel: ``[c b a | a b c d | d c b]`` (reflect would give ``c b | a b c d | c b``)."""

    name = "symmetric"

    def pad(self, x, pads):
        l, r, t, b = pads
        h, w = x.shape[-2:]
        if x.dim() == 4 and max(l, r) <= w and max(t, b) <= h:
            return copy_pad(x, pads, mirror=True)
        if l or r:
            x = x.index_select(-1, symmetric_index(w, l, r, x.device))
        if t or b:
            x = x.index_select(-2, symmetric_index(h, t, b, x.device))
        return x


# ---------------------------------------------------------------------------------------------------------
# partial convolution


class PartialConvPadding(PaddingScheme):
    """Partial-convolution-based padding: zero-pad, convolve, rescale by window size / real pixels in window.

    The ratio depends only on the map size, padding and conv geometry, so it is cached per shape.
    """

    name = "partial"

    def __init__(self):
        super().__init__()
        self._ratio_cache: dict = {}

    def window_ratio(self, conv: nn.Conv2d, hw, pads, device, dtype) -> torch.Tensor:
        """(1, 1, H_out, W_out): kernel area / number of non-padding pixels under each output's window."""
        key = (tuple(hw), tuple(pads), tuple(_pair(conv.kernel_size)), tuple(_pair(conv.stride)),
               tuple(_pair(conv.dilation)), str(device), dtype)
        if key not in self._ratio_cache:
            kh, kw = _pair(conv.kernel_size)
            mask = F.pad(torch.ones(1, 1, *hw, device=device, dtype=dtype), pads)
            ones = torch.ones(1, 1, kh, kw, device=device, dtype=dtype)
            count = F.conv2d(mask, ones, None, conv.stride, 0, conv.dilation)
            self._ratio_cache[key] = (kh * kw) / count.clamp_min(1)
        return self._ratio_cache[key]

    def forward(self, conv, x, pads):
        out = F.conv2d(self.pad(x, pads), conv.weight, None, conv.stride, 0, conv.dilation, conv.groups)
        out = out * self.window_ratio(conv, x.shape[-2:], pads, x.device, x.dtype)
        if conv.bias is not None:
            out = out + conv.bias.view(1, -1, 1, 1)
        return out


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


# ---- the common case, done fast: one ring of padding, a square map, a 3x3 conv (stride 1 or 2).
# All edge data is laid out (pixels, channels), which is contiguous memory for channels-last maps:
# strips (4, N, L, depth + 1, C) hold the depth + 1 outermost rows of the sides top, bottom, left, right
# (columns laid out as rows) in map order, so top/left strips start with the border row and bottom/right
# strips end with it.


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


@functools.lru_cache(maxsize=8)
def _far_sides(device: str) -> torch.Tensor:
    """Which sides' strips run inward-to-outward (bottom, right), shaped to flip (4, g, depth + 1, ., .)."""
    return torch.tensor([False, True, False, True], device=device).view(4, 1, 1, 1, 1)


# The eight corner predictions, each extending one end of a new ring: (ring, end, predictor side). The first
# four extend the top/bottom rings sideways, the last four the left/right rings up/down; both fours come out in
# the order tl, bl, tr, br, which is (end, ring) order on the top/bottom rings' ends.
_CORNER_RINGS = (0, 1, 0, 1, 2, 2, 3, 3)
_CORNER_ENDS = (0, 0, 1, 1, 0, 1, 0, 1)
_CORNER_SIDES = (2, 2, 3, 3, 0, 1, 0, 1)


@functools.lru_cache(maxsize=64)
def _corner_sources(length: int, k: int, device: str):
    """Index tensors (ring (8, k), position (8, k)) of the k ring entries each corner prediction reads,
    nearest the corner first, and the predictor side of each."""
    d = torch.arange(k)
    pos = torch.stack([d if e == 0 else length - 1 - d for e in _CORNER_ENDS])
    rings = torch.tensor(_CORNER_RINGS)[:, None].expand(8, k)
    return rings.to(device), pos.to(device), torch.tensor(_CORNER_SIDES, device=device)


def _edge_strips(x: torch.Tensor, k: int) -> torch.Tensor:
    """(4, N, L, k + 1, C) map-order strips of a square map (see above)."""
    h, w = x.shape[-2:]
    e = k + 1
    xp = x.permute(0, 2, 3, 1)
    return torch.stack([xp[:, :e].transpose(1, 2), xp[:, h - e:].transpose(1, 2), xp[:, :, :e], xp[:, :, w - e:]])


def _border_lines(t: torch.Tensor) -> tuple:
    """Views (N, L, C) of a map's top row, bottom row, left column and right column."""
    tp = t.permute(0, 2, 3, 1)
    return tp[:, 0], tp[:, -1], tp[:, :, 0], tp[:, :, -1]


def _can_pad_fast(conv: nn.Conv2d, x: torch.Tensor, pads, depth: int) -> bool:
    h, w = x.shape[-2:]
    return (tuple(pads) == (1, 1, 1, 1) and h == w and h > depth and _pair(conv.kernel_size) == (3, 3)
            and _pair(conv.dilation) == (1, 1) and _pair(conv.stride)[0] == _pair(conv.stride)[1] <= 2)


def _conv_rows(weight: torch.Tensor, sides, far: int, g: int) -> torch.Tensor:
    """(S * g, 3 * C/g, C_out/g): the kernel row (top/bottom) or column (left/right) reading each side's padding."""
    co, cg = weight.shape[:2]
    rows = (weight[:, :, 0, :], weight[:, :, far, :], weight[:, :, :, 0], weight[:, :, :, far])
    w = torch.stack([rows[s] for s in sides])  # (S, C_out, C/g, 3)
    return w.view(len(sides), g, co // g, cg, 3).permute(0, 1, 4, 3, 2).reshape(len(sides) * g, 3 * cg, co // g)


class _EdgeLoss(torch.autograd.Function):
    """The module loss from residuals computed without autograd; its gradient (to the predictor only) by hand,
    computed here in the forward pass while the strips are still in cache (backward only scales it)."""

    @staticmethod
    def forward(ctx, weight, bias, strips, residual, module):
        c, g, k = module.channels, module.groups, module.depth
        cg = c // g
        ctx.gw = ctx.gb = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            gw = torch.bmm(strips.transpose(1, 2), residual).view(4, g, k + 1, cg, cg)  # strips (4g, M, (k+1) C/g)
            gw = torch.where(_far_sides(str(gw.device)), gw.flip(2), gw)[:, :, 1:]  # (4, g, k, C/g in, C/g out)
            ctx.gw = gw.permute(0, 1, 4, 3, 2).reshape(4, c, cg, k, 1)
            ctx.gb = _from_groups(residual.sum(1, keepdim=True), 4, g).view(4, c)
        ctx.scale = 2.0 / residual.numel()
        r = residual.view(-1)
        return torch.dot(r, r) / r.numel()

    @staticmethod
    def backward(ctx, grad):
        scale = grad * ctx.scale
        return ctx.gw * scale, ctx.gb * scale, None, None, None


class _PaddedConv(torch.autograd.Function):
    """conv(Padding Module padding of x) as the zero-padded conv plus a correction of its border outputs.

    The padding ring only reaches the conv's border outputs, through one kernel row or column per side, so
    the ring's contribution is a thin product added to the native zero-padded convolution (no padded canvas
    is built). Backward: the native convolution backward plus the same thin products transposed; the
    ring's gradient goes back through the (linear) predictors into the edge rows of x. Predictor weights are
    constants here: the main loss never trains the module.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, flat, blocks, module, stride):
        n, c, h, _ = x.shape
        k, g = module.depth, module.groups
        cg = c // g
        m = n * (h + 2)
        with torch.no_grad():
            ring = flat[:, :m].view(4, n, h + 2, c)
            rings = ring[:, :, 1:h + 1]
            src_ring, src_pos, src_side = _corner_sources(h, k, str(x.device))
            ends = rings[src_ring, :, src_pos].transpose(1, 2)  # (8, N, k, C), nearest the corner first
            wn = module._weights_by_depth().reshape(4, g, k * cg, cg)
            w_corner = wn.index_select(0, src_side).view(8 * g, k * cg, cg)
            pred = _from_groups(torch.bmm(_to_groups(ends, g), w_corner), 8, g).view(2, 4, n, c)
            corners = (pred.sum(0) + module.bias.detach().index_select(0, src_side).view(2, 4, 1, c).sum(0)).mul_(0.5)
            out = F.conv2d(x, weight, bias, stride, 1, 1, g)
            ho = out.shape[-1]
            far = h + 1 - stride * (ho - 1)  # the kernel row/column that reads the bottom/right padding
            sides = (0, 1, 2, 3) if far <= 2 else (0, 2)  # stride 2 on an even map never reads bottom/right
            # the padding ring of each side with its two ends: corners on top/bottom (tl tr, bl br), zeros on
            # left/right (their corners are the top/bottom rings' ends)
            ring[:2, :, 0::h + 1] = corners.view(2, 2, n, c).permute(1, 2, 0, 3)  # tl bl tr br -> (ring, N, end, C)
            ring[2:, :, 0::h + 1] = 0
            taps = stride == 1 and g == 1
            if taps:  # three products with shifted views of all N rings at once (outputs past each ring dropped)
                w_rows = torch.stack([weight[:, :, 0, :], weight[:, :, 2, :], weight[:, :, :, 0], weight[:, :, :, 2]])
                w_rows = w_rows.permute(3, 0, 2, 1).contiguous()  # (tap, side, C, C_out)
                corr = torch.bmm(flat[:, :m], w_rows[0])
                corr.baddbmm_(flat[:, 1:m + 1], w_rows[1])
                corr.baddbmm_(flat[:, 2:m + 2], w_rows[2])
                corr = corr.view(4, n, h + 2, -1)[:, :, :ho]
                windows = flat
            else:
                ring = ring if len(sides) == 4 else ring[0::2]
                w_rows = _conv_rows(weight, sides, min(far, 2), g)
                windows = _to_groups(ring.unfold(2, 3, stride).transpose(-1, -2), g)  # (S g, N L_out, 3 C/g)
                corr = _from_groups(torch.bmm(windows, w_rows), len(sides), g).view(len(sides), n, ho, -1)
            lines = _border_lines(out)
            for j, s in enumerate(sides):
                lines[s].add_(corr[j])
        ctx.module, ctx.stride, ctx.sides, ctx.far, ctx.has_bias = module, stride, sides, far, bias is not None
        ctx.taps = taps
        ctx.save_for_backward(x, weight, w_rows, windows, blocks, w_corner)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, w_rows, windows, blocks, w_corner = ctx.saved_tensors
        module, stride, sides, far = ctx.module, ctx.stride, ctx.sides, ctx.far
        n, c, h, w = x.shape
        k, g = module.depth, module.groups
        cg = c // g
        co, ho = grad.shape[1], grad.shape[-1]
        ns = len(sides)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, [co] if ctx.has_bias else None, [stride] * 2, [1, 1], [1, 1], False, [0, 0], g,
            [need_x, need_w, need_b and ctx.has_bias])
        lines = _border_lines(grad)
        m = n * (h + 2)
        if ctx.taps:  # the border outputs' gradients laid out like the rings (zero past each ring's outputs),
            gs = grad.new_empty(4, m + 2, co)  # after two zero rows, so that row p of the windows below holds
            gs[:, :2] = 0  # the gradients of the outputs that ring position p feeds through taps 2, 1, 0
            rows = gs[:, 2:].view(4, n, h + 2, co)
            rows[:, :, ho:] = 0
            for s in range(4):
                rows[s, :, :ho] = lines[s]
            gs = gs.as_strided((4, m, 3 * co), (gs.stride(0), co, 1)).contiguous()
        else:
            gs = torch.stack([lines[s] for s in sides])
            gs = _to_groups(gs[..., None, :], g)  # (S g, N L_out, C_out/g)
        if need_w:
            if ctx.taps:
                g_rows = torch.bmm(windows[:, :m].transpose(1, 2), gs).view(4, c, 3, co)  # taps 2, 1, 0
                g_rows = g_rows.flip(2).permute(0, 3, 1, 2)  # (side, C_out, C, tap)
            else:
                g_rows = torch.bmm(windows.transpose(1, 2), gs)
                g_rows = g_rows.view(ns, g, 3, cg, co // g).permute(0, 1, 4, 3, 2).reshape(ns, co, cg, 3)
            for j, s in enumerate(sides):
                i = (0, far, 0, far)[s]
                (gw[:, :, i, :] if s < 2 else gw[:, :, :, i]).add_(g_rows[j])
        if need_x:
            if ctx.taps:
                w_back = w_rows.flip(0).permute(1, 0, 3, 2).reshape(4, 3 * co, c)  # taps 2, 1, 0 stacked
                g_ring = torch.bmm(gs, w_back).view(4, n, h + 2, c)
            else:
                g_windows = _from_groups(torch.bmm(gs, w_rows.transpose(1, 2)), ns, g, 3).view(ns, n, ho, 3, c)
                g_ring = grad.new_zeros(4, n, h + 2, c)
                g_side = g_ring if ns == 4 else g_ring[0::2]
                span = stride * (ho - 1) + 1
                for d in range(3):
                    g_side[:, :, d:d + span:stride] += g_windows[:, :, :, d]
            g_corners = g_ring[:2, :, 0::h + 1].permute(2, 0, 1, 3).reshape(4, n, c).mul_(0.5)  # tl bl tr br
            g_ends = torch.bmm(_to_groups(g_corners[:, :, None].repeat(2, 1, 1, 1), g), w_corner.transpose(1, 2))
            src_ring, src_pos, _ = _corner_sources(h, k, str(x.device))
            g_rings = g_ring[:, :, 1:h + 1]
            every = torch.arange(n, device=x.device)[None, None]
            g_rings.index_put_((src_ring[..., None], every, src_pos[..., None]),
                               _from_groups(g_ends, 8, g, k).view(8, n, k, c).transpose(1, 2), accumulate=True)
            # back through the predictors, ring ends included (their rows are dropped): (4, N, L + 2, k + 1, C)
            g_in = torch.bmm(_to_groups(g_ring[..., None, :], g), blocks[..., :cg].transpose(1, 2))
            g_in = _from_groups(g_in, 4, g, k + 1).view(4, n, h + 2, k + 1, c)[:, :, 1:h + 1]  # map order
            gxp = gx.permute(0, 2, 3, 1)
            gxp[:, :k] += g_in[0, :, :, :k].transpose(1, 2)
            gxp[:, h - k:] += g_in[1, :, :, 1:].transpose(1, 2)
            gxp[:, :, :k] += g_in[2, :, :, :k]
            gxp[:, :, w - k:] += g_in[3, :, :, 1:]
        return gx, gw, gb if ctx.has_bias else None, None, None, None, None


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
    correction, fastest on channels-last maps (what :func:`padlib.training.train` uses).
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

    # ---- the common case: strips, padding rows and the module loss from one batched product
    def _weights_by_depth(self) -> torch.Tensor:
        """(4, g, depth, C/g in, C/g out), detached: the predictors as matrices applied to (pixels, channels) rows,
        one per row depth, nearest the border first (the layout of the fast path's products)."""
        cg = self.channels // self.groups
        return self.weight.detach().view(4, self.groups, cg, cg, self.depth).permute(0, 1, 4, 3, 2)

    def _block_weights(self) -> torch.Tensor:
        """(4 g, (depth+1) C/g, 2 C/g), detached: a map-order strip times it gives the new padding row (first
        C/g columns) and the module loss residual less the bias (the border row's prediction from the rows
        inside it, minus the border row)."""
        c, g, k = self.channels, self.groups, self.depth
        cg = c // g
        w = self._weights_by_depth()
        blk = w.new_zeros(4, g, k + 1, cg, 2 * cg)
        blk[:, :, :k, :, :cg] = w
        blk[:, :, 1:, :, cg:] = w
        blk[:, :, 0, :, cg:] = -torch.eye(cg, dtype=w.dtype, device=w.device)
        blk = torch.where(_far_sides(str(w.device)), blk.flip(2), blk)  # bottom/right strips run outward
        return blk.reshape(4 * g, (k + 1) * cg, 2 * cg)

    def _rings_and_loss(self, strips: torch.Tensor, with_loss: bool):
        """New padding rows (4, N (L + 2) + 2, C: the N rings with their ends left for the corners, then two
        spare rows), the block weights, and the module loss (or None) from the strips."""
        g, c = self.groups, self.channels
        cg = c // g
        _, n, length = strips.shape[:3]
        with torch.no_grad():
            xs = _to_groups(strips, g)
            blocks = self._block_weights()
            both = torch.bmm(xs, blocks)
            b = self.bias.detach().view(4 * g, 1, cg)
            flat = both.new_empty(4, n * (length + 2) + 2, c)  # the padding rows, room for their two ends,
            flat[:, -2:] = 0  # and two spare rows so that shifted views of all N rings stay in bounds
            ring = flat[:, :n * (length + 2)].view(4, n, length + 2, c)
            if g == 1:
                torch.add(both[..., :cg].view(4, n, length, c), b.view(4, 1, 1, c), out=ring[:, :, 1:length + 1])
            else:
                ring[:, :, 1:length + 1] = _from_groups(both[..., :cg] + b, 4, g).view(4, n, length, c)
            residual = torch.add(both[..., cg:], b) if with_loss else None  # contiguous: cheap to reduce
        loss = _EdgeLoss.apply(self.weight, self.bias, xs, residual, self) if with_loss else None
        return flat, blocks, loss

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
            return self._rings_and_loss(_edge_strips(x, k), True)[2]
        sides = [s for s in range(4) if (h if s < 2 else w) >= k + 1]
        if not sides:
            return None
        return torch.stack([F.mse_loss(self.predict(self._strip(x, s, 1, k), s, detach=False),
                                       self._strip(x, s, 0, 1)) for s in sides]).mean()

    def forward(self, conv, x, pads):
        train = self.training and torch.is_grad_enabled()
        if _can_pad_fast(conv, x, pads, self.depth):
            flat, blocks, loss = self._rings_and_loss(_edge_strips(x.detach(), self.depth), train)
            if train:
                self.last_loss = loss
            return _PaddedConv.apply(x, conv.weight, conv.bias, flat, blocks, self, _pair(conv.stride)[0])
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


register_scheme("symmetric", lambda conv: SymmetricPadding())
register_scheme("partial", lambda conv: PartialConvPadding())
register_scheme("padding_module", lambda conv: PaddingModule(conv.in_channels, conv.groups,
                                                             device=conv.weight.device, dtype=conv.weight.dtype))

ALL_SCHEMES = ("zero", "reflect", "replicate", "circular", "symmetric", "partial", "padding_module")


def make_scheme(scheme: str | PaddingScheme, channels: int = 1) -> PaddingScheme:
    """A scheme instance by name (Padding Module: an untrained one for ``channels``), or the instance given."""
    if isinstance(scheme, PaddingScheme):
        return scheme
    check_type("scheme", scheme, str)
    if scheme not in PADDING_SCHEMES:
        raise PadlibError(f"unknown padding scheme '{scheme}'; available: {', '.join(PADDING_SCHEMES)}")
    return PADDING_SCHEMES[scheme](nn.Conv2d(channels, channels, 3, padding=1))


@torch.no_grad()
def pad_with(x: torch.Tensor, scheme: str | PaddingScheme, pad: int) -> torch.Tensor:
    """``x`` (C, H, W) or (N, C, H, W) padded by ``pad`` on every side the way ``scheme`` pads a conv input.

    For ``partial`` this is zero padding: its effect is the rescaling of the border outputs, not the values.
    """
    squeeze = x.dim() == 3
    x4 = x[None] if squeeze else x
    out = make_scheme(scheme, x4.shape[1]).pad(x4, (pad, pad, pad, pad))
    return out[0] if squeeze else out


def padding_examples(x: torch.Tensor, pad: int, schemes=ALL_SCHEMES, module: PaddingModule | None = None) -> dict:
    """{scheme: ``x`` padded by ``pad``} for each scheme; the Padding Module uses ``module`` (e.g. a trained one)."""
    out = {}
    for s in schemes:
        out[s] = pad_with(x, module if (s == "padding_module" and module is not None) else s, pad)
    return out


@torch.no_grad()
def edge_prediction_error(model: nn.Module, images, batch_size: int = 64, device="cpu",
                          progress: bool | str = False) -> "pandas.DataFrame":
    """Held-out error of each Padding Module predicting its input's outermost rows, next to fixed rules.

    The task is the module's own: predict row 0 (each side) from the rows inside it. What the fixed
    schemes would "predict" for the same pixel: replicate (and symmetric) copy the neighbour row 1, reflect
    copies row 2, zero predicts 0. Returns one row per (layer, predictor) with the mean squared error and
    the error relative to the zero predictor (the mean square of the edge pixels).
    """
    import pandas as pd

    from .activations import forward_hooks, iter_batches

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

    was_training = model.training
    model.eval()
    try:
        with forward_hooks(model, list(sums), record):
            for batch in iter_batches(images, batch_size, device, progress):
                model(batch)
    finally:
        model.train(was_training)
    rows = []
    for name, s in sums.items():
        if not s["n"]:
            continue
        for predictor in ("padding_module", "replicate", "reflect", "zero"):
            rows.append({"layer": name, "predictor": predictor, "mse": s[predictor] / s["n"],
                         "relative_to_zero": s[predictor] / max(s["zero"], 1e-30)})
    return pd.DataFrame(rows)


def edge_prediction_findings(errors: "pandas.DataFrame") -> tuple["pandas.DataFrame", list[str]]:
    """(layer x predictor table of the error relative to zero, mean over seeds; printed lines) for errors of
    :func:`edge_prediction_error` from one or more runs (a ``seed`` column). A layer counts as won by the
    module when its error is below both replicate's and reflect's in every seed, not just on average."""
    table = errors.pivot_table(index="layer", columns="predictor", values="relative_to_zero", sort=False)
    by = ["seed", "layer"] if "seed" in errors.columns else ["layer"]
    wide = errors.pivot_table(index=by, columns="predictor", values="relative_to_zero")
    wins = (wide["padding_module"] < wide[["replicate", "reflect"]].min(axis=1)).groupby(level="layer").all()
    mean_wins = int((table["padding_module"] < table[["replicate", "reflect"]].min(axis=1)).sum())
    n_seeds = errors["seed"].nunique() if "seed" in errors.columns else 1
    ratio = (table["padding_module"] / table["replicate"])
    lines = [f"the trained module's edge error is below both replicate's and reflect's on {int(wins.sum())} of "
             f"{len(table)} layers in every one of {n_seeds} seed(s) ({mean_wins} of {len(table)} on the mean)",
             f"module / replicate error per layer: {', '.join(f'{k} {v:.2f}' for k, v in ratio.items())}"]
    return table, lines


def most_varied_channel(fmap: torch.Tensor) -> int:
    """The channel of a (C, H, W) map with the largest spatial std: the one whose padding is easiest to see."""
    return int(fmap.flatten(1).std(1).argmax())


def example_pad(fmap: torch.Tensor, max_pad: int = 4) -> int:
    """Padding width for showing a map: ``max_pad``, but at most a quarter of its side (and at least 1), so
    that on small deep maps the pad does not swamp the map."""
    return max(1, min(max_pad, fmap.shape[-1] // 4))


def padding_views(model: nn.Module, image: torch.Tensor, schemes=ALL_SCHEMES, max_pad: int = 4) -> list[dict]:
    """For every padded conv of ``model``: its input map for ``image`` padded by every scheme (the Padding Module
    from the model when it has one at that layer). Dicts: layer, channel (most varied), pad, examples."""
    from .padding import padded_convs

    have = dict(padding_modules(model))
    views = []
    for i, (name, _) in enumerate(padded_convs(model)):
        _, fmap = conv_input(model, image, i)
        pad = example_pad(fmap, max_pad)
        views.append({"layer": name, "channel": most_varied_channel(fmap), "pad": pad,
                      "examples": padding_examples(fmap, pad, schemes, have.get(name))})
    return views


# ---------------------------------------------------------------------------------------------------------
# benchmark


def bench_scheme_step_overhead(schemes=ALL_SCHEMES[1:], batch_size: int = 64, repeats: int = 12,
                               threads: int | None = 1, contiguous_format: tuple = ("padding_module",)) -> dict:
    """Training-step time (forward, backward, Adam step) with each scheme / with zero padding; same model, batch.

    The model is the chapter's small ResNet-style network (width 16, two stages) on a batch of digits on a
    32 px canvas, on ``threads`` CPU threads (the chapter's default, 1), in channels-last memory like
    :func:`padlib.training.train`. Steps of all schemes are interleaved and the best of ``repeats`` is kept,
    so load from other processes affects every scheme alike. The schemes in ``contiguous_format`` are also
    timed with (N, C, H, W)-contiguous maps against zero padding in that format (``..._nchw`` lines).
    """
    import time

    from .padding import convert_padding
    from .training import digits_on_canvas, resnet_small, training_step

    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        data = digits_on_canvas(batch_size, canvas_size=32, digit_size=16, seed=0)
        x, y = data.images, data.labels
        base = resnet_small(in_channels=1, num_classes=10, width=16, depth=2, mean=data.mean, std=data.std)
        runs = [(s, True) for s in ("zero", *schemes)]
        if contiguous_format:
            runs += [(s, False) for s in ("zero", *contiguous_format)]
        models = {r: convert_padding(base, r[0]) for r in runs}
        opts = {r: torch.optim.Adam(m.parameters(), lr=1e-3) for r, m in models.items()}
        best = {r: float("inf") for r in models}
        for rep in range(repeats + 1):
            for r, m in models.items():
                t0 = time.perf_counter()
                training_step(m, opts[r], x, y, channels_last=r[1])
                if rep:  # the first round warms caches
                    best[r] = min(best[r], time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old_threads)
    out = {f"{s}_step_overhead": round(best[s, True] / best["zero", True], 3) for s in schemes}
    out.update({f"{s}_step_overhead_nchw": round(best[s, False] / best["zero", False], 3) for s in contiguous_format})
    return out


@torch.no_grad()
def conv_input(model: nn.Module, image: torch.Tensor, index: int = 1) -> tuple[str, torch.Tensor]:
    """(name, input map (C, H, W)) of the ``index``-th padded conv of ``model`` for one image: what it pads."""
    from .activations import forward_hooks
    from .padding import require_padded_convs

    convs = require_padded_convs(model)
    if not -len(convs) <= index < len(convs):
        raise PadlibError(f"the model has {len(convs)} padded convolutions; index {index} is out of range")
    name = convs[index][0]
    seen = {}
    was = model.training
    model.eval()
    try:
        with forward_hooks(model, [name], lambda n, m, inputs, out: seen.update(x=inputs[0])):  # returns None
            model(image[None] if image.dim() == 3 else image[:1])
    finally:
        model.train(was)
    return name, seen["x"][0]


def module_for(model: nn.Module, layer: str) -> PaddingModule:
    """The Padding Module that pads for conv ``layer`` of ``model``."""
    found = dict(padding_modules(model))
    if layer not in found:
        raise PadlibError(f"no Padding Module at '{layer}'; layers with one: {', '.join(found) or 'none'}")
    return found[layer]
