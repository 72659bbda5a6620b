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


@functools.lru_cache(maxsize=8)
def _far_sides(device: str) -> torch.Tensor:
    """Which sides run deepest-first in map order (bottom, right), shaped to pick from (4, g, depth, ., .)."""
    return torch.tensor([False, True, False, True], device=device).view(4, 1, 1, 1, 1)


# The four corners (tl, tr, bl, br), each the mean of two extrapolations: a top/bottom ring extended by the
# left/right predictor, and a left/right ring extended by the top/bottom predictor. Per corner and extension:
# the ring, which end of it (0: first, 1: last), the predictor side. Every (ring, end) occurs once.
_CORNER_PAIRS = (((0, 0, 2), (2, 0, 0)), ((0, 1, 3), (3, 0, 0)), ((1, 0, 2), (2, 1, 1)), ((1, 1, 3), (3, 1, 1)))


@functools.lru_cache(maxsize=64)
def _strip_index(n: int, length: int, k: int, rows: bool, device: str) -> torch.Tensor:
    """Flat indices of the strips' pixels, border first: into the (N H W) pixel rows of a channels-last map
    (``rows``) or into the (H W) positions of one channel."""
    d, j = torch.arange(k + 1)[None], torch.arange(length)[:, None]
    far = length - 1 - d
    pos = torch.stack([d * length + j, far * length + j, j * length + d, j * length + far])  # (4, L, k + 1)
    if rows:
        pos = pos[:, None] + (torch.arange(n) * length * length)[:, None, None]
    return pos.reshape(-1).to(device)


@functools.lru_cache(maxsize=64)
def _corner_index(n: int, length: int, k: int, device: str) -> tuple:
    """Index tensors for the corners: (ring, image, ring position) of the k ring pixels each extension reads,
    in increasing position (ring coordinates: the first end sits at 0); (corner, extension) of each (ring,
    end); the (side, depth) weight row each read pixel takes (at a ring's last end, deepest first); and the
    (corner, side) matrix averaging the two predictors' biases."""
    rings = torch.tensor([[p[0] for p in c] for c in _CORNER_PAIRS])[:, None, :, None]  # (4, 1, 2, 1)
    ends = torch.tensor([[p[1] for p in c] for c in _CORNER_PAIRS])[:, None, :, None]
    sides = torch.tensor([[p[2] for p in c] for c in _CORNER_PAIRS])  # (4, 2)
    i = torch.arange(k)
    pos = torch.where(ends == 0, 1 + i, length + 1 - k + i)
    depth = torch.where(ends[:, 0] == 0, i, k - 1 - i)  # (4, 2, k)
    owner = torch.zeros(4, 2, 2, dtype=torch.long)  # (ring, end) -> (corner, extension)
    for c, pair in enumerate(_CORNER_PAIRS):
        for e, (ring, end, _) in enumerate(pair):
            owner[ring, end] = torch.tensor([c, e])
    mean_bias = torch.zeros(4, 4).scatter_(1, sides, 0.5)
    out = (rings, torch.arange(n)[None, :, None, None], pos, owner[..., 0], owner[..., 1],
           (sides[..., None] * k + depth).reshape(-1))
    return tuple(t.to(device) for t in out + (mean_bias,))


@functools.lru_cache(maxsize=16)
def _tap_index(far: int, device: str) -> torch.Tensor:
    """Positions in the flattened 3x3 kernel of the entries reading each side's padding, per tap: row 0 (top),
    row ``far`` (bottom), column 0 (left), column ``far`` (right); (4 * 3,)."""
    t = torch.arange(3)
    return torch.stack([t, far * 3 + t, t * 3, t * 3 + far]).reshape(-1).to(device)


def _edge_strips(x: torch.Tensor, k: int) -> torch.Tensor:
    """(4, N, L, k + 1, C) border-first strips of a square map (see above), by one gather."""
    n, c, h, _ = x.shape
    xr = x.permute(0, 2, 3, 1)
    if c > 1 and xr.is_contiguous():
        return xr.reshape(-1, c).index_select(0, _strip_index(n, h, k, True, str(x.device))).view(4, n, h, k + 1, c)
    s = x.reshape(n, c, h * h).index_select(2, _strip_index(0, h, k, False, str(x.device)))
    return s.view(n, c, 4, h, k + 1).permute(2, 0, 3, 4, 1).contiguous()


def _border_pairs(t: torch.Tensor, depth: int = 1) -> tuple:
    """Views of a map (N, C, H, W): its ``depth`` outermost rows at top and bottom (N, 2, depth, W, C), bottom
    ones in map order, and its ``depth`` outermost columns at left and right (N, H, 2, depth, C)."""
    n, c, h, w = t.shape
    sn, sc, sh, sw = t.stride()
    off = t.storage_offset()
    rows = t.as_strided((n, 2, depth, w, c), (sn, (h - depth) * sh, sh, sw, sc), off)
    cols = t.as_strided((n, h, 2, depth, c), (sn, sh, (w - depth) * sw, sw, sc), off)
    return rows, cols


def _can_pad_fast(conv: nn.Conv2d, x: torch.Tensor, pads, depth: int) -> bool:
    h, w = x.shape[-2:]
    return (tuple(pads) == (1, 1, 1, 1) and h == w and h > depth and _pair(conv.kernel_size) == (3, 3)
            and _pair(conv.dilation) == (1, 1) and _pair(conv.stride)[0] == _pair(conv.stride)[1] <= 2)


class _EdgeLoss(torch.autograd.Function):
    """The module loss from residuals computed without autograd; its gradient (to the predictor only) by hand,
    computed here in the forward pass while the strips are still in cache (backward only scales it)."""

    @staticmethod
    def forward(ctx, weight, bias, inner, residual, module):
        c, g, k = module.channels, module.groups, module.depth
        cg = c // g
        ctx.gw = ctx.gb = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            gw = torch.bmm(inner.transpose(1, 2), residual)  # (4 g, k C/g, C/g out), depth-major rows
            ctx.gw = gw.view(4, g, k, cg, cg).permute(0, 1, 4, 3, 2).reshape(4, c, cg, k, 1)
            ctx.gb = residual.sum(1).view(4, c)
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
    the ring's contribution is three thin products (one per kernel tap, over shifted views of all rings)
    added to the native zero-padded convolution: no padded canvas is built. Backward: the native convolution
    backward plus the same thin products transposed; the ring's gradient goes back through the (linear)
    predictors into the edge rows of x. Predictor weights are constants here: the main loss never trains
    the module.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, flat, module, stride):
        n = x.shape[0]
        g = module.groups
        out = F.conv2d(x, weight, bias, stride, 1, 1, g)
        co, cg, ho = weight.shape[0], weight.shape[1], out.shape[-1]
        far = x.shape[-1] + 1 - stride * (ho - 1)  # the kernel row/column that reads the bottom/right padding
        per = (flat.shape[1] - 2) // n // stride  # output rows per image in the ring buffer
        q = n * per
        # kernel rows/columns reading each side's padding, by tap: (3, 4 g, C/g, C_out/g)
        w_taps = weight.flatten(2).index_select(2, _tap_index(min(far, 2), str(x.device)))
        w_taps = w_taps.view(g, co // g, cg, 4, 3).permute(4, 3, 0, 2, 1).reshape(3, 4 * g, cg, co // g)
        rings = _to_groups(flat.unsqueeze(2), g)  # (4 g, N R + 2, C/g)
        corr = torch.bmm(rings[:, 0:q * stride:stride], w_taps[0])
        corr.baddbmm_(rings[:, 1:1 + q * stride:stride], w_taps[1])
        corr.baddbmm_(rings[:, 2:2 + q * stride:stride], w_taps[2])
        corr = _from_groups(corr, 4, g).view(4, n, per, co)[:, :, :ho]
        rows, cols = _border_pairs(out)
        if far <= 2:
            rows[:, :, 0].add_(corr[:2].transpose(0, 1))
            cols[:, :, :, 0].add_(corr[2:].permute(1, 2, 0, 3))
        else:  # stride 2 on an even map never reads the bottom/right padding
            rows[:, 0, 0].add_(corr[0])
            cols[:, :, 0, 0].add_(corr[2])
        ctx.module, ctx.stride, ctx.far, ctx.per, ctx.has_bias = module, stride, far, per, bias is not None
        ctx.save_for_backward(x, weight, w_taps, rings)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, w_taps, rings = ctx.saved_tensors
        stride, far, per, g = ctx.stride, ctx.far, ctx.per, ctx.module.groups
        n, c, h, _ = x.shape
        co, cg, ho = weight.shape[0], weight.shape[1], grad.shape[-1]
        q = n * per
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, gb = torch.ops.aten.convolution_backward(
            grad, x, weight, [co] if ctx.has_bias else None, [stride] * 2, [1, 1], [1, 1], False, [0, 0], g,
            [need_x, need_w, need_b and ctx.has_bias])
        # the border outputs' gradients laid out like the corrections, after two zero rows (stride 1: row r of
        # the 3-row windows below then holds the gradients that ring row r feeds through taps 2, 1, 0)
        lead = 2 if stride == 1 else 0
        gs = grad.new_zeros(4, lead + q, co)
        gsi = gs[:, lead:].view(4, n, per, co)[:, :, :ho]
        rows, cols = _border_pairs(grad)
        if far <= 2:
            gsi[:2] = rows[:, :, 0].transpose(0, 1)
            gsi[2:] = cols[:, :, :, 0].permute(2, 0, 1, 3)
        else:
            gsi[0], gsi[2] = rows[:, 0, 0], cols[:, :, 0, 0]
        gsg = _to_groups(gs.unsqueeze(2), g)  # (4 g, lead + N per, C_out/g)
        if stride == 1:
            win = gsg.as_strided((4 * g, q, 3 * (co // g)), (gsg.stride(0), co // g, 1)).contiguous()
        if need_w:
            if stride == 1:
                g_taps = torch.bmm(rings[:, :q].transpose(1, 2), win).view(4 * g, cg, 3, co // g).flip(2)
            else:
                g_taps = torch.stack([torch.bmm(rings[:, t:t + q * stride:stride].transpose(1, 2), gsg)
                                      for t in range(3)], 2)  # (4 g, C/g, 3, C_out/g)
            g_taps = g_taps.view(4, g, cg, 3, co // g).permute(1, 4, 2, 0, 3).reshape(co, cg, 12)
            taps = gw.new_zeros(co, cg, 9).index_add_(2, _tap_index(min(far, 2), str(x.device)), g_taps)
            gw += taps.view(co, cg, 3, 3)  # gw may be channels-last
        if need_x:
            if stride == 1:  # taps 2, 1, 0 stacked, as in the windows
                g_rings = torch.bmm(win, w_taps.flip(0).permute(1, 0, 3, 2).reshape(4 * g, -1, cg))
            else:
                each = torch.bmm(gsg, w_taps.permute(1, 3, 0, 2).reshape(4 * g, -1, 3 * cg))
                g_rings = gsg.new_zeros(4 * g, q * stride, cg)
                for t in range(3):
                    rows_t = g_rings[:, t:t + q * stride:stride]
                    rows_t.add_(each[:, :rows_t.shape[1], t * cg:(t + 1) * cg])
            g_ring = _from_groups(g_rings, 4, g).view(4, n, per * stride, c)
            gx = ctx.module._ring_grad_to_map(gx, g_ring, h)
        return gx, gw, gb if ctx.has_bias else None, None, None, None


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

    # ---- the common case: strips, padding rings and the module loss from one batched product
    def _weights_by_depth(self) -> torch.Tensor:
        """(4, g, depth, C/g in, C/g out), detached: the predictors as matrices applied to (pixels, channels) rows,
        one per row depth, nearest the border first (the layout of the fast path's products)."""
        cg = self.channels // self.groups
        return self.weight.detach().view(4, self.groups, cg, cg, self.depth).permute(0, 1, 4, 3, 2)

    def _corner_weights(self, rows: torch.Tensor) -> torch.Tensor:
        """(4 g, 2 depth C/g, C/g): per corner, the predictors of its two extensions stacked (weight rows
        ``rows`` from :func:`_corner_index`), halved: a corner is the mean of the two."""
        g, k = self.groups, self.depth
        cg = self.channels // g
        w = self._weights_by_depth().transpose(1, 2).reshape(4 * k, g, cg, cg).index_select(0, rows)
        return w.view(4, 2 * k, g, cg, cg).transpose(1, 2).reshape(4 * g, 2 * k * cg, cg) * 0.5

    def _backward_weights(self) -> torch.Tensor:
        """(4 g, C/g, depth C/g): the predictors transposed, taking a padding row's gradient back to the strip
        rows it was predicted from; deepest row first on bottom/right, which is map order there."""
        g, k = self.groups, self.depth
        cg = self.channels // g
        w = self._weights_by_depth()
        w = torch.where(_far_sides(str(w.device)), w.flip(2), w)
        return w.permute(0, 1, 4, 2, 3).reshape(4 * g, cg, k * cg)

    def _rings_and_loss(self, strips: torch.Tensor, stride: int = 1, with_rings: bool = True,
                        with_loss: bool = True):
        """The padding rings (the fast path's ring buffer (4, N R + 2, C), see above; or None) and the module
        loss (or None) from the border-first strips: padding row = predictor(rows 0..depth-1), loss residual
        = predictor(rows 1..depth) - row 0; both from one product when both are wanted."""
        g, c, k = self.groups, self.channels, self.depth
        cg = c // g
        _, n, length = strips.shape[:3]
        flat = loss = None
        with torch.no_grad():
            xs = _to_groups(strips, g)  # (4 g, N L, (depth + 1) C/g), depth-major columns
            wd = self._weights_by_depth().reshape(4 * g, k * cg, cg)
            b = self.bias.detach()
            if with_rings and with_loss:  # blocks [[W; 0], [-1; W]]: padding row | residual less the bias
                eye = torch.eye(cg, dtype=wd.dtype, device=wd.device).neg_().expand(4 * g, cg, cg)
                both = torch.bmm(xs, torch.cat([F.pad(wd, (0, 0, 0, cg)), torch.cat([eye, wd], 1)], 2))
                pads, residual = both[..., :cg], torch.add(both[..., cg:], b.view(4 * g, 1, cg))
            else:
                pads = torch.bmm(xs[..., :k * cg], wd) if with_rings else None
                residual = (torch.baddbmm(b.view(4 * g, 1, cg), xs[..., cg:], wd).sub_(xs[..., :cg])
                            if with_loss else None)
            if with_rings:
                pitch = -(-(length + 2) // stride) * stride
                flat = xs.new_zeros(4, n * pitch + 2, c)
                ring = flat[:, :n * pitch].view(4, n, pitch, c)
                if g == 1:
                    torch.add(pads.view(4, n, length, c), b.view(4, 1, 1, c), out=ring[:, :, 1:length + 1])
                else:
                    ring[:, :, 1:length + 1] = _from_groups(pads + b.view(4 * g, 1, cg), 4, g).view(4, n, length, c)
                rings, images, pos, _, _, rows, mean_bias = _corner_index(n, length, k, str(xs.device))
                ends = ring[rings, images, pos].view(4, n, 2 * k, c)
                bc = torch.mm(mean_bias.to(b.dtype), b).view(4 * g, 1, cg)
                corners = torch.baddbmm(bc, _to_groups(ends, g), self._corner_weights(rows))  # tl tr bl br
                ring[:2, :, 0:length + 2:length + 1] = _from_groups(corners, 4, g).view(2, 2, n, c).permute(0, 2, 1, 3)
        if with_loss:
            loss = _EdgeLoss.apply(self.weight, self.bias, xs[..., cg:], residual, self)
        return flat, loss

    def _ring_grad_to_map(self, gx: torch.Tensor, g_ring: torch.Tensor, h: int) -> torch.Tensor:
        """Add to ``gx`` (N, C, H, H) what reaches the map through the padding rings' gradient ``g_ring``
        (4, N, R, C, ring coordinates): corners back into the rings' ends, then the rings back through the
        predictors into the map's edge rows."""
        n, c = gx.shape[:2]
        g, k = self.groups, self.depth
        rings, images, pos, owner_c, owner_e, rows, _ = _corner_index(n, h, k, str(gx.device))
        g_corners = g_ring[:2, :, 0:h + 2:h + 1].permute(0, 2, 1, 3).reshape(4, n, 1, c)  # tl tr bl br
        g_ends = torch.bmm(_to_groups(g_corners, g), self._corner_weights(rows).transpose(1, 2))
        g_ends = _from_groups(g_ends, 4, g, 2 * k).view(4, n, 2, k, c)[owner_c, :, owner_e]  # (ring, end, N, k, C)
        g_ring[:, :, 1:k + 1] += g_ends[:, 0]
        g_ring[:, :, h + 1 - k:h + 1] += g_ends[:, 1]
        # back through the predictors, over whole rings (ends and spare rows dropped after): (4, N, L, k, C)
        g_in = torch.bmm(_to_groups(g_ring.reshape(4, -1, 1, c), g), self._backward_weights())
        g_in = _from_groups(g_in, 4, g, k).view(4, n, -1, k, c)[:, :, 1:h + 1]
        if h >= 2 * k:
            rows_x, cols_x = _border_pairs(gx, k)
            rows_x += g_in[:2].permute(1, 0, 3, 2, 4)
            cols_x += g_in[2:].permute(1, 2, 0, 3, 4)
        else:  # the top and bottom bands overlap: one side at a time
            gxp = gx.permute(0, 2, 3, 1)
            gxp[:, :k] += g_in[0].transpose(1, 2)
            gxp[:, h - k:] += g_in[1].transpose(1, 2)
            gxp[:, :, :k] += g_in[2]
            gxp[:, :, h - k:] += g_in[3]
        return gx

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
            return self._rings_and_loss(_edge_strips(x, k), with_rings=False)[1]
        sides = [s for s in range(4) if (h if s < 2 else w) >= k + 1]
        if not sides:
            return None
        return torch.stack([F.mse_loss(self.predict(self._strip(x, s, 1, k), s, detach=False),
                                       self._strip(x, s, 0, 1)) for s in sides]).mean()

    def forward(self, conv, x, pads):
        train = self.training and torch.is_grad_enabled()
        if _can_pad_fast(conv, x, pads, self.depth):
            stride = _pair(conv.stride)[0]
            flat, loss = self._rings_and_loss(_edge_strips(x.detach(), self.depth), stride, with_loss=train)
            if train:
                self.last_loss = loss
            return _PaddedConv.apply(x, conv.weight, conv.bias, flat, self, stride)
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
