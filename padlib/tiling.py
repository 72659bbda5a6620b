"""How much overlap do my tiles need? :func:`border_reach`, for dense models (segmenters, detectors, restoration).

A dense model run tile by tile sees padding at each tile's edge where the whole-image run saw the neighbouring
pixels, so near a tile's edge its prediction differs from the whole-image prediction. :func:`border_reach` cuts
tiles from larger images, predicts each, compares it with the same region of the whole-image prediction and
tabulates the error against the distance from the nearest inner tile edge (an edge inside the image: where a tile
meets the image's own border both runs see the same padding). The **margin** is the distance beyond which the
error stays under a tolerance. The margin is read per side too: neighbouring tiles meet bottom edge to top edge and
right edge to left edge, so the **overlap** between tile rows is the top margin plus the bottom margin, and between
tile columns the left plus the right (each rounded up to the lattice the tiles sit on): a one-sided reach (a
stride-2 conv reads padding on its top and left only) needs that side's margin once, not twice the larger margin.

The module is named ``tiling`` rather than ``border_reach`` so that ``padlib.border_reach`` (the function) does not
shadow its own module (``import padlib.border_reach as m`` would return the function).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._hooks import (check_device, check_images, forward_hooks, iter_batches, keeps_model, model_device,
                     model_dtype)
from .data import probe_images
from .errors import PaddingImpossibleError, PadlibError, check_type
from .layers import convert_padding
from .outputs import _select, is_channels_last, output_kind, to_nchw
from .padding import SIDES, require_padded_convs
from .stats import bootstrap_totals

SWAPS = ("reflect", "replicate", "circular")  # padding=True
SWAPPABLE = ("zero", "reflect", "replicate", "circular", "symmetric", "partial")
AS_GIVEN = "model"  # the padding column's label for the model's own padding
# the modules whose maps set the lattice tiles must sit on (attention maps and adaptive pools do not)
_STRIDED = (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d, nn.PixelUnshuffle)


@dataclass
class BorderReach:
    """What :func:`border_reach` measured. Distances are in input pixels from the nearest inner tile edge.

    * ``table``: per ``padding`` (``"model"``: the model as given; a scheme name: that padding swapped in at
      inference) and ``distance``: ``error`` (mean |tile - whole| over the output values at that distance, all
      channels, divided by ``scale``), ``n`` (output values averaged), ``n_tiles``.
    * ``sides``: the same per ``side`` (top, bottom, left, right) against the distance to that side, over the
      half of each tile nearer to it and the middle of the other axis (a third of the tile or more from the other
      inner edges, so a reach shorter than that does not leak in from them; on a map of few cells, its middle
      cells): where the reach is lopsided, and what the per-axis overlaps are read from.
    * ``tiles``: one row per tile and distance (``tile``, ``image``, ``y``, ``x`` of its top-left pixel,
      ``distance``, ``error``, ``n``). The bootstrap resamples whole images (all tiles of an image together): tiles
      of one image share its pixels, so they are not independent.
    * ``schemes``: per padding, ``margin`` (at the nearest inner edge), ``margin_<side>`` (top, bottom, left, right:
      from ``sides``, no interval), ``overlap_rows`` (between vertically neighbouring tiles: margin_top +
      margin_bottom) and ``overlap_cols`` (margin_left + margin_right), each rounded up to a multiple of ``align``,
      and ``overlap``, the larger of the two; ``*_low`` and ``*_high``: the percentile bootstrap interval over
      images. Infinite: beyond the tile (the error stays above the tolerance up to the tile's centre); NaN: not
      available (an interval from a single image; a side that was never an inner edge). Also ``max_error``,
      ``scale``, ``align``, ``n_images`` and ``n_tiles``.
    * ``margin``, ``margins`` (per side), ``overlap``, ``overlap_rows``, ``overlap_cols`` for the model as given
      (``None`` where the error never falls under the tolerance inside the tile) and their intervals
      (:meth:`interval`, ``margin_interval``, ``overlap_interval``: ``None`` with a single image, where no interval
      over images is possible).
    """

    table: pd.DataFrame
    sides: pd.DataFrame
    tiles: pd.DataFrame
    schemes: pd.DataFrame
    tile: int
    stride: float
    tolerance: float
    ci: float
    n_images: int
    n_tiles: int
    output: str
    max_distance: int
    align: int = 1  # tile positions (and so overlaps) step in multiples of it: the largest stride in the model
    skipped: dict = field(default_factory=dict)  # padding -> why that swap could not run (one line)

    def _row(self, padding: str | None = None) -> pd.Series:
        padding = AS_GIVEN if padding is None else padding
        rows = self.schemes[self.schemes["padding"] == padding]
        if not len(rows) and padding in self.skipped:
            raise PadlibError(f"padding='{padding}' could not be measured: {self.skipped[padding]}")
        if not len(rows):
            raise PadlibError(f"padding='{padding}' was not measured; measured: "
                              f"{', '.join(self.schemes['padding'])}")
        return rows.iloc[0]

    @staticmethod
    def _px(v) -> int | None:
        return None if v is None or not math.isfinite(v) else int(v)

    @property
    def margin(self) -> int | None:
        """Pixels to drop at each inner tile edge (the nearest edge, the model's own padding); ``None``: more than
        the tile allows."""
        return self._px(self._row()["margin"])

    @property
    def margins(self) -> dict[str, int | None]:
        """Per side (top, bottom, left, right): the pixels a tile drops at that inner edge; ``None``: more than the
        tile allows, or the side was never an inner edge (``schemes`` tells which: infinite or NaN)."""
        r = self._row()
        return {side: self._px(r[f"margin_{side}"]) for side in SIDES}

    @property
    def overlap(self) -> int | None:
        """Pixels by which neighbouring tiles must overlap: the larger of :attr:`overlap_rows` and
        :attr:`overlap_cols`, one number for a tiler that takes one."""
        return self._px(self._row()["overlap"])

    @property
    def overlap_rows(self) -> int | None:
        """Overlap between vertically neighbouring tiles: top margin + bottom margin, rounded up to ``align``."""
        return self._px(self._row()["overlap_rows"])

    @property
    def overlap_cols(self) -> int | None:
        """Overlap between horizontally neighbouring tiles: left margin + right margin, rounded up to ``align``."""
        return self._px(self._row()["overlap_cols"])

    def interval(self, name: str = "overlap", padding: str | None = None) -> tuple[int | None, int | None] | None:
        """The bootstrap interval over images of ``name`` (margin, overlap, overlap_rows, overlap_cols): (low, high)
        in px, ``None`` for a bound beyond the tile; ``None`` in place of the tuple where there is no interval
        (a single image: no interval over images is possible)."""
        if name not in ("margin", "overlap", "overlap_rows", "overlap_cols"):
            raise PadlibError(f"name='{name}' has no interval; pass margin, overlap, overlap_rows or overlap_cols")
        r = self._row(padding)
        low, high = r[f"{name}_low"], r[f"{name}_high"]
        if math.isnan(low) or math.isnan(high):
            return None
        return self._px(low), self._px(high)

    @property
    def margin_interval(self) -> tuple[int | None, int | None] | None:
        return self.interval("margin")

    @property
    def overlap_interval(self) -> tuple[int | None, int | None] | None:
        return self.interval("overlap")

    def summary(self, padding: str | None = None) -> str:
        """One line: the overlap tiles need at the tolerance, per axis with the per-side margins, and the interval
        over images of the larger (``padding``: a swapped scheme)."""
        r = self._row(padding)
        tol = f"{self.tolerance * 100:g}%"
        lead = "" if r["padding"] == AS_GIVEN else f"with {r['padding']} padding swapped in at inference, "
        if self.n_images < 2:
            interval = f"no interval: {self.n_images} image, and the interval resamples whole images"
        elif math.isnan(r["overlap_low"]) or math.isnan(r["overlap_high"]):
            interval = "no interval: a side was not an inner edge in every resample of the images"
        else:
            low, high = self._px(r["overlap_low"]), self._px(r["overlap_high"])
            span = "beyond the tile" if low is None else f"{low} px to beyond the tile" if high is None else \
                f"{low} to {high} px"
            interval = f"{self.ci * 100:g}% interval over {self.n_images} images: {span}"

        def px(v):
            return "?" if math.isnan(v) else "beyond the tile" if math.isinf(v) else str(int(v))

        m = {side: px(r[f"margin_{side}"]) for side in SIDES}
        axes = (f"{px(r['overlap_rows'])} between tile rows ({m['top']} top + {m['bottom']} bottom) and "
                f"{px(r['overlap_cols'])} between tile columns ({m['left']} left + {m['right']} right)")
        overlap = self._px(r["overlap"])
        if math.isnan(r["overlap"]):
            return (f"{lead}tiles of {self.tile} px: no overlap could be read, since no tile had inner edges on both "
                    "sides of an axis; pass images larger than the tile by more than the model's stride")
        if overlap is None:
            far = [side for side in SIDES if math.isinf(r[f"margin_{side}"])]
            names = f"{', '.join(far[:-1])} and {far[-1]} edges" if len(far) > 1 else f"{far[0]} edge" if far else ""
            at = f" at the {names}" if far else ""
            return (f"{lead}tiles of {self.tile} px are too small at {tol} tolerance: the error stays above it up to "
                    f"the tile's centre ({self.max_distance} px from the edges){at}; use larger tiles")
        if overlap >= self.tile:
            return (f"{lead}tiles of {self.tile} px are too small at {tol} tolerance: they would need {overlap} px of "
                    f"overlap, {axes}; use larger tiles ({interval})")
        if overlap == 0:
            return f"{lead}tiles of {self.tile} px need no overlap at {tol} tolerance ({interval})"
        stride = f", rounded up to the model's {self.align} px stride" if self.align > 1 else ""
        return (f"{lead}tiles of {self.tile} px need at least {overlap} px of overlap: {axes}, the px dropped at each "
                f"inner edge{stride}, at {tol} tolerance ({interval})")


@dataclass(frozen=True)
class _Geometry:
    """How a tile's output cells map to its pixels: ``cells`` output cells across a ``tile``-pixel tile."""

    tile: int
    cells: int
    channels_last: bool
    where: str
    align: int  # tile positions and image crops: multiples of the largest stride inside the model

    @property
    def unit(self) -> int:
        """Input pixels per distance step and the alignment of tile positions: the stride (1 when upsampling)."""
        return max(1, self.tile // self.cells)

    @property
    def stride(self) -> float:
        return self.tile / self.cells

    @property
    def bins(self) -> int:
        return (self.cells - 1) * self.tile // self.cells // self.unit + 1

    def out(self, px: int) -> int:
        """Output cells of ``px`` input pixels (``px`` a multiple of :attr:`unit`)."""
        return px * self.cells // self.tile


@lru_cache(maxsize=64)
def _distance_maps(tile: int, cells: int, unit: int, edges: tuple[bool, bool, bool, bool]):
    """For a tile whose sides ``edges`` (top, bottom, left, right) lie inside the image, flattened over its output
    cells: the distance bin to the nearest inner edge (-1 where no edge is inner) and, per inner side, the bin of
    the distance to that side and the mask of the cells read for it (the half of the tile nearer to that side and
    the middle of the other axis: at least a third of the tile from the other inner edges, so their reach does not
    leak in; on a map too coarse for that, its middle cells, where a longer reach leaks in and can only make the
    margin larger). Cell r spans input pixels [r*tile/cells, (r+1)*tile/cells): ``r * stride`` pixels from the near
    edge and ``(cells - 1 - r) * stride`` from the far one."""
    r = np.arange(cells)
    near, far = r * tile // cells, (cells - 1 - r) * tile // cells
    inf = np.iinfo(np.int64).max
    d = [np.broadcast_to(v, (cells, cells)) for v in (near[:, None], far[:, None], near[None, :], far[None, :])]
    d = [np.where(inner, v, inf) for v, inner in zip(d, edges)]
    nearest = np.minimum.reduce(d)
    bins = np.where(nearest == inf, -1, nearest // unit).ravel()
    across = [np.minimum(d[2], d[3]), np.minimum(d[2], d[3]), np.minimum(d[0], d[1]), np.minimum(d[0], d[1])]
    sides = []
    for k, inner in enumerate(edges):
        if not inner:
            sides.append(None)
            continue
        half = d[k] <= d[k ^ 1]
        mask = half & (across[k] >= min(tile // 3, across[k][half].max()))  # a coarse map: its middle cells
        sides.append(((d[k] // unit).ravel(), mask.ravel()))
    return bins, sides


def _dense(out, geom: _Geometry, output) -> torch.Tensor:
    return to_nchw(_select(out, output)[0], geom.channels_last)


def _whole_stride(tile: int, h: int) -> int:
    """A hint: the power of two nearest to tile / h, the stride a map of h cells suggests."""
    return 2 ** max(0, round(math.log2(tile / h)))


def _geometry(model, first: torch.Tensor, tile: int, output, channels_last) -> _Geometry:
    """One forward of one tile: the output used, that it is a dense map, its stride (tile / output size) and the
    largest stride inside the model (the maps of its convolutions and pools, :data:`_STRIDED`): a U-Net's output
    has stride 1 but its tiles must sit on its bottleneck's lattice for the whole-image cells to line up. A
    stride taken by a function (``F.max_pool2d`` in a forward) is not seen: the error is then large everywhere."""
    maps = {}
    names = [n for n, m in model.named_modules() if n and isinstance(m, _STRIDED)]

    def record(name, module, inputs, out):
        if isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[-1] == out.shape[-2] >= 2:
            maps.setdefault(name, int(out.shape[-1]))

    with forward_hooks(model, names, record):
        t, where = _select(model(first[None, :, :tile, :tile]), output)
    if t.dim() == 2 and output_kind(t) == "logits":
        raise PadlibError(f"border_reach needs a spatial output (N, C, H, W) and the model's output {where} is class "
                          f"logits of shape {tuple(t.shape)}; pass output= a key, an index or a function that picks a "
                          "dense map (e.g. output='out')")
    output_kind(t, channels_last)  # any other shape: one line naming it
    cl = is_channels_last(t, channels_last)
    h, w = to_nchw(t, cl).shape[-2:]
    if h != w:
        raise PadlibError(f"a square tile of {tile} px gives a {h}x{w} output {where}: border_reach needs the same "
                          "stride on both axes")
    align = 1
    for name, cells in [*((f"layer '{n}'", c) for n, c in maps.items()), (f"the output {where}", int(h))]:
        ratio = Fraction(cells, tile)
        if cells < tile and ratio.numerator != 1 or cells < 2:
            if 2 * cells > tile:
                raise PadlibError(f"border_reach needs maps that scale with the input (padded convs) and {name} "
                                  f"maps a {tile} px tile to {cells}x{cells}")
            s = _whole_stride(tile, max(cells, 1))
            raise PadlibError(f"tile={tile} gives a {cells}x{cells} map at {name}, not a whole stride of the tile; "
                              f"pass a tile that is a multiple of the model's stride ({s}), e.g. "
                              f"{max(s, tile // s * s)} or {(tile // s + 1) * s}")
        if cells > tile and ratio.denominator != 1 and name.startswith("the output"):
            raise PadlibError(f"tile={tile} gives a {cells}x{cells} map at {name}: border_reach needs whole "
                              "upsampling factors")
        if cells <= tile:
            align = math.lcm(align, ratio.denominator)
    return _Geometry(tile, int(h), cl, where, align)


class _ChannelStats:
    """Running per-channel mean and sum of squared deviations (Chan et al.'s pairwise update), float64."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x: torch.Tensor) -> None:
        v = x.detach().double().transpose(0, 1).flatten(1)  # (C, values)
        nb, mb = v.shape[1], v.mean(1)
        m2b = ((v - mb[:, None]) ** 2).sum(1)
        if self.mean is None:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        delta, n = mb - self.mean, self.n + nb
        self.mean = self.mean + delta * nb / n
        self.m2 = self.m2 + m2b + delta ** 2 * self.n * nb / n
        self.n = n

    def scale(self) -> float:
        """The pooled within-channel standard deviation: sqrt of the mean over channels of each one's variance."""
        return float((self.m2 / self.n).mean().sqrt())


def _positions(h: int, w: int, geom: _Geometry, k: int, seed: int, image: int) -> list[tuple[int, int]]:
    """Up to ``k`` tile positions (top-left pixels) on the stride's lattice, seeded per image; positions whose four
    edges are all inside the image are preferred (each of their edges is then measured)."""
    u, t = geom.align, geom.tile

    def lattice(size):
        inner = list(range(u, size - t - u + 1, u))
        return inner or list(range(0, size - t + 1, u))

    ys, xs = lattice(h), lattice(w)
    rng = np.random.default_rng([seed, image])
    pick = np.sort(rng.choice(len(ys) * len(xs), size=min(k, len(ys) * len(xs)), replace=False))
    return [(ys[i // len(xs)], xs[i % len(xs)]) for i in pick]


class _Tally:
    """Per tile: the summed |tile - whole| (all channels) and the count of values, per distance bin and per side."""

    def __init__(self, bins: int):
        self.bins, self.rows, self.err, self.cnt, self.side_err, self.side_cnt = bins, [], [], [], [], []

    def add(self, meta, diff: np.ndarray, channels: int, edges) -> None:
        bins, sides = _distance_maps(*edges)
        ok = bins >= 0
        self.rows.append(meta)
        self.err.append(np.bincount(bins[ok], diff[ok], self.bins))
        self.cnt.append(np.bincount(bins[ok], minlength=self.bins) * channels)
        se, sc = np.zeros((4, self.bins)), np.zeros((4, self.bins))
        for k, side in enumerate(sides):
            if side is not None:
                b, m = side
                se[k] = np.bincount(b[m], diff[m], self.bins)
                sc[k] = np.bincount(b[m], minlength=self.bins) * channels
        self.side_err.append(se)
        self.side_cnt.append(sc)


def _measure(model, images, geom, tile, output, channels_last, tiles_per_image, seed, batch_size, device, progress):
    """Whole-image and tile forwards of every image (one whole image and ``batch_size`` tiles at a time); returns
    (geometry, tally, scale, images seen)."""
    stats, tally, n_images = _ChannelStats(), None, 0
    for batch in iter_batches(images, batch_size, device, progress, model_dtype(model)):
        for x in batch:
            if x.shape[-2] < tile or x.shape[-1] < tile:
                raise PadlibError(f"tile={tile} is larger than image {n_images} ({x.shape[-2]} x {x.shape[-1]} px); "
                                  "pass a tile smaller than the images")
            if geom is None:
                geom = _geometry(model, x, tile, output, channels_last)
            tally = tally or _Tally(geom.bins)
            u = geom.align
            h, w = x.shape[-2] // u * u, x.shape[-1] // u * u  # whole strides only: the lattices line up
            if h == tile and w == tile:
                raise PadlibError(f"tile={tile} covers image {n_images} ({x.shape[-2]} x {x.shape[-1]} px) whole, so "
                                  "it has no inner edge; pass a tile smaller than the images")
            img = x[None, :, :h, :w]
            whole = _dense(model(img), geom, output)
            if tuple(whole.shape[-2:]) != (geom.out(h), geom.out(w)):
                raise PadlibError(f"the output of a {h} x {w} image is {whole.shape[-2]} x {whole.shape[-1]}, not "
                                  f"{geom.out(h)} x {geom.out(w)} (stride {geom.stride:g} as a {tile} px tile gives): "
                                  "border_reach needs outputs that scale with the input (padded, not 'valid', convs)")
            stats.add(whole)
            c, t = whole.shape[1], geom.cells
            places = _positions(h, w, geom, tiles_per_image, seed, n_images)
            for s in range(0, len(places), batch_size):
                chunk = places[s:s + batch_size]
                out = _dense(model(torch.cat([img[..., y:y + tile, x0:x0 + tile] for y, x0 in chunk])), geom, output)
                for (y, x0), o in zip(chunk, out):
                    ref = whole[0, :, geom.out(y):geom.out(y) + t, geom.out(x0):geom.out(x0) + t]
                    diff = (o.double() - ref.double()).abs().sum(0).cpu().numpy().ravel()
                    edges = (tile, t, geom.unit, (y > 0, y + tile < h, x0 > 0, x0 + tile < w))
                    tally.add((n_images, y, x0), diff, c, edges)
            del whole, img
            n_images += 1
    if tally is None:
        raise PadlibError("images gave no image to measure; pass at least one image larger than the tile")
    return geom, tally, stats.scale(), n_images


def _margin_index(err: np.ndarray, cnt: np.ndarray, scale: float, tol: float) -> np.ndarray:
    """Per row of summed errors and counts (..., bins): the first bin from which the normalised error stays at or
    under ``tol`` (bins without values do not count against it); ``bins`` when even the last is above."""
    with np.errstate(divide="ignore", invalid="ignore"):
        above = (err / cnt / scale) > tol
    last = np.where(above.any(-1), above.shape[-1] - 1 - np.argmax(above[..., ::-1], axis=-1), -1)
    return last + 1


def _tables(label, geom, tally, scale, tol, n_boot, seed, ci):
    """The rows of every table for one padding, and its margins and overlaps with bootstrap intervals that
    resample whole images (all tiles of an image together)."""
    err, cnt = np.array(tally.err), np.array(tally.cnt, dtype=float)
    serr, scnt = np.array(tally.side_err), np.array(tally.side_cnt)
    u, bins = geom.unit, geom.bins
    dist = np.arange(bins) * u
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = err.sum(0) / cnt.sum(0) / scale
        side_mean = serr.sum(0) / scnt.sum(0) / scale
        per_tile = err / cnt / scale
    table = pd.DataFrame({"padding": label, "distance": dist, "error": mean, "n": cnt.sum(0).astype(int),
                          "n_tiles": (cnt > 0).sum(0)})
    table = table[table["n"] > 0]
    sides = pd.DataFrame([{"padding": label, "side": side, "distance": int(d), "error": side_mean[k, i],
                           "n": int(scnt.sum(0)[k, i])} for k, side in enumerate(SIDES)
                          for i, d in enumerate(dist) if scnt.sum(0)[k, i] > 0],
                         columns=["padding", "side", "distance", "error", "n"])
    ti, bi = np.nonzero(cnt > 0)
    meta = np.array(tally.rows)
    tiles = pd.DataFrame({"padding": label, "tile": ti, "image": meta[ti, 0], "y": meta[ti, 1], "x": meta[ti, 2],
                          "distance": dist[bi], "error": per_tile[ti, bi], "n": cnt[ti, bi].astype(int)})

    last = int(np.nonzero(cnt.sum(0))[0].max())  # the tile's centre: no distance beyond it holds values
    side_last = [int(np.nonzero(c)[0].max()) if c.any() else -1 for c in scnt.sum(0)]

    def px(index, top):
        return np.where(index <= top, index * u, np.inf)

    def up(v):  # to the lattice tile positions sit on (infinite and NaN stay so)
        return np.ceil(v / geom.align) * geom.align

    def reading(tot):
        """Totals (B, 10, bins): error and count at the nearest edge, then per side 4 errors and 4 counts -> (B, 8):
        margin, margin per side, overlap between tile rows, between tile columns, and the larger of the two."""
        margin = px(_margin_index(tot[:, 0], tot[:, 1], scale, tol), last)
        side = [np.where(tot[:, 6 + k].sum(-1) > 0, px(_margin_index(tot[:, 2 + k], tot[:, 6 + k], scale, tol),
                                                        side_last[k]), np.nan) for k in range(4)]
        rows, cols = up(side[0] + side[1]), up(side[2] + side[3])
        return np.stack([margin, *side, rows, cols, np.fmax(rows, cols)], 1)

    per_tile_totals = np.concatenate([err[:, None], cnt[:, None], serr, scnt], 1)  # (tiles, 10, bins)
    point = reading(per_tile_totals.sum(0)[None])[0]
    low, high = bootstrap_totals(per_tile_totals, reading, n_boot, seed, ci, clusters=meta[:, 0])
    scheme = {"padding": label, "swap": label != AS_GIVEN, "margin": point[0], "margin_low": low[0],
              "margin_high": high[0]}
    scheme.update({f"margin_{side}": point[1 + k] for k, side in enumerate(SIDES)})  # no interval
    for i, name in ((5, "overlap_rows"), (6, "overlap_cols"), (7, "overlap")):
        scheme.update({name: point[i], f"{name}_low": low[i], f"{name}_high": high[i]})
    scheme.update({"max_error": float(np.nanmax(mean)), "scale": scale, "align": geom.align,
                   "n_images": len(np.unique(meta[:, 0])), "n_tiles": len(err), "max_distance": last * u})
    return table, sides, tiles, {k: float(v) if isinstance(v, np.floating) else v for k, v in scheme.items()}


def _check_padding(padding) -> list[str]:
    if padding is None or padding is False:
        return []
    if padding is True:
        return list(SWAPS)
    names = [padding] if isinstance(padding, str) else padding
    if not isinstance(names, (list, tuple)) or not all(isinstance(p, str) for p in names):
        raise PadlibError(f"padding= must be True, a scheme name or a list of them ({', '.join(SWAPPABLE)}), got "
                          f"{type(padding).__name__} ({padding!r})")
    bad = [p for p in names if p not in SWAPPABLE]
    if bad:
        raise PadlibError(f"padding='{bad[0]}' is not a scheme border_reach can swap in; pass some of "
                          f"{', '.join(SWAPPABLE)} (True: {', '.join(SWAPS)})")
    return list(dict.fromkeys(names))


def _image_sides(images) -> list[tuple[int, int]]:
    """The (H, W) of images known before any forward (a tensor, a list of tensors, a ProbeImages)."""
    if isinstance(images, torch.Tensor):
        return [tuple(images.shape[-2:])]
    if isinstance(images, (list, tuple)):
        return [tuple(b.shape[-2:]) for b in images]
    if hasattr(images, "batches") and isinstance(getattr(images, "size", None), int):
        return [(images.size, images.size)]
    return []


def _check_number(name, value, low, high=None, whole=True, open_low=False):
    types = int if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, types):
        raise PadlibError(f"{name}= must be {'a whole number' if whole else 'a number'}, got "
                          f"{type(value).__name__} ({value!r})")
    ok = math.isfinite(value) and (value > low if open_low else value >= low) and (high is None or value < high)
    if not ok:
        rule = f"{'>' if open_low else '>='} {low}" + (f" and < {high}" if high is not None else "")
        raise PadlibError(f"{name}= must be {rule}, got {value}")


@keeps_model
@torch.no_grad()
def border_reach(model: nn.Module, images=8, tile: int = 256, *, tolerance: float = 0.01, tiles_per_image: int = 8,
                 padding=None, output=None, channels_last: bool | None = None, size: int | None = None,
                 batch_size: int = 8, device=None, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                 progress: bool | str = False) -> BorderReach:
    """How much overlap tiles of ``tile`` px need so that a dense model's tiled prediction matches its
    whole-image prediction up to ``tolerance``.

    For each image, the whole-image output and up to ``tiles_per_image`` tiles (seeded positions) are predicted;
    each tile's output is compared with the same region of the whole-image output. **Output stride.** One forward
    of one tile gives the stride s = tile / (tile's output size): 8 for a map at 1/8 resolution, 1/2 for a 2x
    upsampling restoration model. Images are cropped (top-left) to a multiple of the largest stride inside the
    model (a U-Net's bottleneck: its output has stride 1, its deepest map 16 or 32), tile positions are multiples
    of it and the tile must be one, so that output cell r of a tile at (y, x) is exactly cell (y/s + r) of the
    whole-image output: the regions line up with no interpolation. A cell's distance to an edge is in input pixels,
    ``r * s``, so distances, the margin and the overlap are multiples of the output stride. Only inner tile edges
    count (where a tile meets the image border, both runs see the same padding).

    **Error.** At each distance, the mean |tile - whole| over all output values (channels and cells) at that
    distance, divided by the spread of the whole-image output (the pooled within-channel standard deviation over
    every image and position; of the model as given, also for the swaps, so that all errors share one unit). For outputs whose channels differ in scale by orders of magnitude (box offsets next
    to logits), pick the channels with ``output=`` (a function may also rescale them).

    **Recommendation.** The margin is the smallest distance from which the error stays at or under ``tolerance``
    (a fraction of that spread, 0.01 = 1%), read at the nearest inner edge and per side. Neighbouring tiles meet
    bottom edge to top edge and right edge to left edge, and each drops its margin at the shared edge, so the
    overlap between tile rows is margin_top + margin_bottom and between tile columns margin_left + margin_right,
    each rounded up to a multiple of the largest stride inside the model (tile positions step on that lattice);
    ``overlap`` is the larger of the two. The intervals are a percentile bootstrap over images (``n_boot``
    resamples, seeded: the same numbers on every run): all tiles of an image are resampled together, since they
    share its pixels. With a single image there is no interval over images: the intervals are NaN and
    ``summary()`` says so.

    ``padding``: also measure with the model's padding swapped in at inference (``True``: reflect, replicate and
    circular; or names, see :data:`SWAPPABLE`): how much of the reach the padding causes. An inference swap of a
    model trained with another padding, not a retrained model. The model itself is left untouched.

    ``images``: an (N, C, H, W) float tensor, a list of such batches (sizes may differ between batches), a
    :class:`~padlib.data.ProbeImages`, or a number of probe images (offline photos at ``size`` px, default twice
    the tile). ``output``: which part of the forward's result (:func:`padlib.outputs.select_output`);
    ``channels_last``: force the reading of a 4-D output (:func:`padlib.outputs.is_channels_last`).
    Memory: one whole image's output and ``batch_size`` tiles at a time, plus a few numbers per tile and distance.
    Returns a :class:`BorderReach`; ``summary()`` is one line.
    """
    check_type("model", model, nn.Module)
    images = check_images(images)
    _check_number("tile", tile, 2)
    _check_number("tolerance", tolerance, 0, 1, whole=False, open_low=True)
    _check_number("tiles_per_image", tiles_per_image, 1)
    _check_number("batch_size", batch_size, 1)
    _check_number("n_boot", n_boot, 1)
    _check_number("ci", ci, 0, 1, whole=False, open_low=True)
    _check_number("seed", seed, 0)
    if size is not None:
        _check_number("size", size, 8)
    if output is not None and not callable(output) and (isinstance(output, bool) or not isinstance(output, (int, str))):
        raise PadlibError(f"output= must be a key, an index or a function, got {type(output).__name__} ({output!r})")
    if channels_last is not None:
        check_type("channels_last", channels_last, bool)
    swaps = _check_padding(padding)
    if swaps:
        require_padded_convs(model)
        one_shot = not isinstance(images, (int, list, tuple, torch.Tensor)) and not hasattr(images, "batches")
        if one_shot and iter(images) is images:
            raise PadlibError("padding= measures the images once per padding: pass a tensor, a list of batches or "
                              "a ProbeImages, not a one-shot iterator")
    device = check_device(device) or model_device(model)
    if isinstance(images, int):
        side = size if size is not None else 2 * tile
        if side <= tile:
            raise PadlibError(f"size={side} must be larger than tile={tile}: tiles are cut from larger images")
        images = probe_images(images, size=side, seed=seed, model=model)
    for h, w in _image_sides(images):
        if tile > min(h, w):
            raise PadlibError(f"tile={tile} is larger than the images ({h} x {w} px); pass a tile smaller than the "
                              "images")
        if tile == h == w:
            raise PadlibError(f"tile={tile} covers the images ({h} x {w} px) whole, so it has no inner edge; pass a "
                              "tile smaller than the images")
    geom, parts, counts, skipped = None, [], [], {}
    for label in [AS_GIVEN] + swaps:
        net = model if label == AS_GIVEN else convert_padding(model, label).to(device)
        try:
            geom, tally, spread, n_images = _measure(net, images, geom, tile, output, channels_last,
                                                     tiles_per_image, seed, batch_size, device, progress)
        except (PaddingImpossibleError, RuntimeError) as e:  # a swap that cannot run here (reflect, tiny maps)
            if label == AS_GIVEN:
                raise
            skipped[label] = swap_failure(label, e)
            continue
        finally:
            del net
        if label == AS_GIVEN:  # every padding's error in the same unit: the model's own whole-image spread
            scale = spread
            if not scale > 0:
                raise PadlibError(f"the model's whole-image output {geom.where} is constant on these images (spread "
                                  "0), so no error can be read against it; pass images on which its output varies")
        parts.append(_tables(label, geom, tally, scale, tolerance, n_boot, seed, ci))
        counts.append(n_images)
    if len(set(counts)) > 1:
        raise PadlibError(f"images gave {counts[0]} images on the first pass and {counts[-1]} on a later one; pass "
                          "images that can be read more than once")
    table, sides, tiles = (pd.concat([p[i] for p in parts], ignore_index=True) for i in range(3))
    schemes = pd.DataFrame([p[3] for p in parts])
    stride = geom.stride
    return BorderReach(table=table, sides=sides, tiles=tiles, schemes=schemes, tile=tile,
                       stride=int(stride) if float(stride).is_integer() else stride, tolerance=float(tolerance),
                       ci=float(ci), n_images=counts[0], n_tiles=int(schemes["n_tiles"].iloc[0]), output=geom.where,
                       max_distance=int(schemes["max_distance"].iloc[0]), align=geom.align, skipped=skipped)


def swap_failure(mode: str, error: BaseException) -> str:
    """One line on why a padding swap could not run: torch refuses reflect padding as wide as the map it pads
    (a dilated conv deep in a segmenter at a small input), and circular padding that would wrap more than once."""
    text = " ".join(str(error).split())
    if isinstance(error, PaddingImpossibleError):
        return f"{text}: a layer's padding is as wide as or wider than the map it pads at this input size"
    if "Padding size should be less than" in text or "wrapping around more than once" in text or (
            "padding" in text.lower() and "dimension" in text.lower()):
        return (f"{mode} padding cannot be applied here: a layer's padding is as wide as or wider than the map it "
                f"pads (torch: {text[:160]})")
    return f"{mode} padding failed: {type(error).__name__}: {text[:160]}"
