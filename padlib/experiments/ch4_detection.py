"""Chapter 4's trained design that can see a blind spot: small objects, a per-location output, five stride-2 stages.

Mind the Pad's case is a detector that misses a small object near the border. This design trains that case in
miniature, matched on everything but the padding and the input size: a small detector (five stride-2 3x3 convs, as
in ImageNet networks, and a top-down path to a heat map at stride 8) finds small rings (4 to 8 px) among filled
squares and crosses of the same size on textured canvases of 96 px (every stride-2 conv then reads its top/left
padding and never its bottom/right one: uneven) or 97 px (even at every stage). Each (size, scheme, seed) network is
trained from the same initial weights and batches as the other schemes of its seed, then tested with one ring at
every position of a fine grid: recall (the heat map at the ring's cell, or a neighbour, above 1/2) and confidence
(the largest logit there) by position.

Position effects that padding does not explain (the stride-8 sampling grid, the cells at the canvas edge) are
shared by every scheme at a size; circular padding, which has no border, shows them alone. The positive control,
:class:`NoisySidePadding`, pads one side with fresh noise at every conv: a padding that carries nothing and cannot
be learned away, so it must leave a blind band on that side, and the same pipeline must find it.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .._distributed import all_reduce_sum, synced_batchnorm, world
from .._hooks import eval_mode
from ..errors import PadlibError, check_type
from ..kernels import row_energy
from ..layers.base import PadConv2d, PaddingScheme, convert_padding
from ..layers.padding_module import padding_module_loss
from ..stats import holm_adjust, t_test
from ..tiling import border_reach
from .ch4_blind_spots import map_summary
from ..small_nets import SmallDetector  # noqa: F401 - re-exported: the chapter's network
from .training import default_workers, process_map

SIZES = (96, 97)
SCHEMES = ("zero", "symmetric", "circular")
CONTROL = "noisy top"  # the positive control's scheme name
STRIDE = 8             # the heat map's stride
SHAPES = ("ring", "open ring", "square")  # the target first, then the distractors
GAPS = ("top", "bottom", "left", "right")
# Border reach (tile overlap) of the trained networks: tiles of ``tiles`` x the training size, cut from held-out
# canvases twice the tile's side (seed ``seed``: the training canvases use the study's seeds at the training size,
# the position test 1000, the false-alarm canvases 2000), ``images`` of them with ``tiles_per_image`` tiles each
# (at most 4 fit a canvas twice the tile on the stride-32 lattice), ``n_boot`` bootstrap resamples over images.
REACH = dict(tiles=(1, 2), images=4, tiles_per_image=8, n_boot=200, tolerance=0.01, seed=3000)
REACH_STRIDE = 32  # the detector's largest stride (five stride-2 convs): tiles must be multiples of it


# ---------------------------------------------------------------------------------------------------------
# the network


def heat_map_size(size: int, depth: int = 5) -> int:
    """Cells per side of the stride-8 heat map: three stride-2 convs of kernel 3 and padding 1."""
    for _ in range(3):
        size = (size + 2 - 3) // 2 + 1
    return size


class NoisySidePadding(PaddingScheme):
    """Zero padding, except that one side is filled with fresh Gaussian noise (``std``) at every call: padding
    that carries no information and cannot be subtracted, so the outputs that read it are corrupted. The book's
    positive control for a blind side; ``generator`` makes it reproducible."""

    name = "noisy"

    def __init__(self, side: str = "top", std: float = 3.0, generator: torch.Generator | None = None):
        super().__init__()
        if side not in ("top", "bottom", "left", "right"):
            raise PadlibError(f"side must be top, bottom, left or right, got {side!r}")
        self.side, self.std, self.generator = side, float(std), generator

    def pad(self, x, pads):
        out = F.pad(x, pads)
        l, r, t, b = pads
        h, w = out.shape[-2:]
        region = {"top": (slice(0, t), slice(None)), "bottom": (slice(h - b, h), slice(None)),
                  "left": (slice(None), slice(0, l)), "right": (slice(None), slice(w - r, w))}[self.side]
        n = {"top": t, "bottom": b, "left": l, "right": r}[self.side]
        if n:
            patch = out[..., region[0], region[1]]
            noise = torch.randn(patch.shape, generator=self.generator, dtype=x.dtype) * self.std
            out = out.clone()
            out[..., region[0], region[1]] = noise.to(x.device)
        return out


def with_noisy_side(model: nn.Module, side: str = "top", std: float = 3.0, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose padded convs pad zeros except ``side``, filled with noise (one generator)."""
    out = convert_padding(model, "circular")  # every padded conv becomes a PadConv2d, whose scheme is swapped
    gen = torch.Generator().manual_seed(seed)
    for m in out.modules():
        if isinstance(m, PadConv2d):
            m.scheme = NoisySidePadding(side, std, gen)
    return out


def _reseed_noise(model: nn.Module, seed: int) -> None:
    for m in model.modules():
        if isinstance(m, PadConv2d) and isinstance(m.scheme, NoisySidePadding) and m.scheme.generator is not None:
            m.scheme.generator.manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------
# the canvases


def shape_patch(shape: str, side: int, gap: str = "right") -> torch.Tensor:
    """A ``side`` x ``side`` binary patch: a ring (one-pixel outline), an open ring (the ring with the middle of
    one side, ``gap``, left out: the distractor that needs a close look), or a filled square."""
    p = torch.zeros(side, side)
    if shape in ("ring", "open ring"):
        p[0], p[-1], p[:, 0], p[:, -1] = 1, 1, 1, 1
        if shape == "open ring":
            mid = slice(1, side - 1) if side <= 4 else slice(side // 2 - 1, side // 2 + 1)
            {"top": lambda: p[0, mid].zero_(), "bottom": lambda: p[-1, mid].zero_(),
             "left": lambda: p[mid, 0].zero_(), "right": lambda: p[mid, -1].zero_()}[gap]()
    elif shape == "square":
        p[:] = 1
    else:
        raise PadlibError(f"unknown shape {shape!r}; one of {', '.join(SHAPES)}")
    return p


def _textures(n: int, size: int, gen: torch.Generator, low: float, high: float) -> torch.Tensor:
    """Smooth random textures in [low, high]: noise at 1/8 resolution, upsampled bilinearly, plus fine noise."""
    coarse = torch.rand(n, 1, size // 8 + 2, size // 8 + 2, generator=gen)
    t = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    t = 0.75 * t + 0.25 * torch.rand(n, 1, size, size, generator=gen)
    return low + (high - low) * t


def _paste(canvas: torch.Tensor, patch: torch.Tensor, top: int, left: int, ink: float) -> None:
    s = patch.shape[-1]
    region = canvas[0, top:top + s, left:left + s]
    canvas[0, top:top + s, left:left + s] = torch.where(patch > 0, torch.full_like(region, ink), region)


def _free(boxes, top, left, s, gap) -> bool:
    return all(top + s + gap <= t or t + u + gap <= top or left + s + gap <= l or l + u + gap <= left
               for t, l, u in boxes)


def detection_canvases(n: int, size: int, seed: int = 0, object_sizes=(4, 8), targets=(0, 2), distractors=(1, 3),
                       texture=(0.0, 0.35), ink=(0.35, 0.7), noise: float = 0.15) -> tuple[torch.Tensor, list]:
    """``n`` training canvases (N, 1, size, size) in [0, 1] with a random number of rings (``targets``, inclusive)
    and of distractors (open rings and filled squares), each of a random side in ``object_sizes`` (inclusive) and
    ink in ``ink``, placed uniformly anywhere on the canvas (touching the border too), never overlapping, then
    pixel noise of standard deviation ``noise``; returns the images and, per image, the rings' centres
    (y, x) in pixels."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    images = _textures(n, size, gen, *texture)
    centres = []
    for i in range(n):
        boxes, mine = [], []
        kinds = ["ring"] * int(rng.integers(targets[0], targets[1] + 1)) + \
                [SHAPES[1 + int(rng.integers(2))] for _ in range(int(rng.integers(distractors[0], distractors[1] + 1)))]
        for kind in kinds:
            s = int(rng.integers(object_sizes[0], object_sizes[1] + 1))
            for _ in range(20):
                top, left = int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))
                if _free(boxes, top, left, s, 2):
                    break
            else:
                continue
            boxes.append((top, left, s))
            _paste(images[i], shape_patch(kind, s, GAPS[int(rng.integers(4))]), top, left, float(rng.uniform(*ink)))
            if kind == "ring":
                mine.append(((top + (s - 1) / 2), (left + (s - 1) / 2)))
        centres.append(mine)
    images += noise * torch.randn(images.shape, generator=gen)
    return images.clamp_(0, 1), centres


def _cell(c: float, cells: int) -> int:
    """The heat-map cell whose receptive field is centred nearest to pixel ``c`` (cell i is centred on 8 i)."""
    return int(min(max(round(c / STRIDE), 0), cells - 1))


def heat_targets(centres: list, size: int) -> torch.Tensor:
    """(N, cells, cells) targets: 1 at the cell of each ring's centre, else 0."""
    k = heat_map_size(size)
    y = torch.zeros(len(centres), k, k)
    for i, cs in enumerate(centres):
        for cy, cx in cs:
            y[i, _cell(cy, k), _cell(cx, k)] = 1.0
    return y


def position_test_set(size: int, object_size: int = 6, step: int = 2, n_backgrounds: int = 2, seed: int = 1000,
                      texture=(0.0, 0.35), ink: float = 0.5, distractors: int = 2,
                      noise: float = 0.15) -> tuple[torch.Tensor, pd.DataFrame]:
    """The test canvases: one ring of ``object_size`` px with its top-left corner at every ``step`` px from one
    border to the other (the last position touches the far border), on ``n_backgrounds`` held-out textures per
    position, each with ``distractors`` distractors away from the ring; returns the images and a table (top, left,
    background, cy, cx) per image."""
    check_type("object_size", object_size, int)
    if not 2 <= object_size <= size // 4:
        raise PadlibError(f"object_size must be 2 to {size // 4} px on a {size}-px canvas, got {object_size}")
    last = size - object_size
    grid = sorted(set(list(range(0, last + 1, step)) + [last]))
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    backgrounds = _textures(n_backgrounds, size, gen, *texture)
    ring = shape_patch("ring", object_size)
    images, rows = [], []
    for top in grid:
        for left in grid:
            for b in range(n_backgrounds):
                img = backgrounds[b].clone()
                boxes = [(top, left, object_size)]
                for _ in range(distractors):
                    s = object_size
                    for _ in range(50):
                        t, l = int(rng.integers(0, size - s + 1)), int(rng.integers(0, size - s + 1))
                        if _free(boxes, t, l, s, 2 * STRIDE):
                            boxes.append((t, l, s))
                            _paste(img, shape_patch(SHAPES[1 + len(boxes) % 2], s, GAPS[int(rng.integers(4))]),
                                   t, l, ink)
                            break
                _paste(img, ring, top, left, ink)
                img += noise * torch.randn(img.shape, generator=gen)
                images.append(img.clamp_(0, 1))
                rows.append({"top": top, "left": left, "background": b, "cy": top + (object_size - 1) / 2,
                             "cx": left + (object_size - 1) / 2})
    return torch.stack(images), pd.DataFrame(rows)


@torch.no_grad()
def detection_by_position(model: nn.Module, images: torch.Tensor, placement: pd.DataFrame, size: int,
                          batch_size: int = 512, threshold: float = 0.0) -> pd.DataFrame:
    """Per test image: the logit at the ring's cell, the one it was trained to fire at (``confidence``), and
    whether it passes ``threshold`` (logit 0 = probability 1/2: ``hit``); aggregated per position (top, left): ``recall``
    and mean ``confidence`` over backgrounds. Runs in eval mode and restores every module's own mode."""
    k = heat_map_size(size)
    with eval_mode(model):
        logits = torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    iy = torch.tensor([_cell(c, k) for c in placement["cy"]])
    ix = torch.tensor([_cell(c, k) for c in placement["cx"]])
    conf = logits[torch.arange(len(images)), iy, ix]
    df = placement.assign(confidence=conf.numpy(), hit=(conf > threshold).numpy().astype(float))
    return (df.groupby(["top", "left"], sort=True)
            .agg(recall=("hit", "mean"), confidence=("confidence", "mean")).reset_index())


@torch.no_grad()
def false_alarms(model: nn.Module, size: int, n: int = 64, seed: int = 2000, batch_size: int = 256) -> float:
    """The share of heat-map cells above 1/2 on canvases with distractors only: what a recall is bought with."""
    images, _ = detection_canvases(n, size, seed=seed, targets=(0, 0), distractors=(2, 4))
    with eval_mode(model):
        logits = torch.cat([model(images[i:i + batch_size]) for i in range(0, n, batch_size)])
    return float((logits > 0).float().mean())


# ---------------------------------------------------------------------------------------------------------
# training


def train_detector(model: nn.Module, size: int, seed: int, steps: int = 400, batch_size: int = 32, lr: float = 3e-3,
                   pos_weight: float = 5.0, n_train: int = 2048, object_sizes=(4, 8), device="cpu",
                   progress: bool | str = False) -> list[float]:
    """Adam with a one-cycle schedule on weighted binary cross-entropy over the heat map (rings are rare cells);
    batches drawn from ``n_train`` canvases made from ``seed``, so every scheme of a seed sees the same batches.

    In a process group (``torchrun``) ``batch_size`` is the global batch, each process takes every N-th canvas of it,
    the model runs under DistributedDataParallel and its BatchNorms normalise by the whole batch: the one-process
    run up to rounding (the noisy-top control's noise is drawn per process, so its noise differs)."""
    from tqdm.auto import tqdm

    rank, size_w = world()
    if batch_size % size_w:
        raise PadlibError(f"batch_size {batch_size} is the global batch and must split evenly over the {size_w} "
                          f"processes; use a multiple of {size_w}")
    images, centres = detection_canvases(n_train, size, seed=seed, object_sizes=object_sizes)
    targets = heat_targets(centres, size)
    model.to(device)
    net = model
    if size_w > 1:
        from torch.nn.parallel import DistributedDataParallel

        dev = torch.device(device)
        net = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.2)
    gen = torch.Generator().manual_seed(seed)
    pw = torch.tensor(pos_weight, device=device)
    losses = []
    model.train()
    with synced_batchnorm(model):
        for _ in tqdm(range(steps), desc=progress if isinstance(progress, str) else "train", leave=False,
                      disable=not progress or rank > 0):
            i = torch.randint(0, n_train, (batch_size,), generator=gen)[rank::size_w]
            loss = F.binary_cross_entropy_with_logits(net(images[i].to(device)), targets[i].to(device), pos_weight=pw)
            module_loss = padding_module_loss(model)  # a Padding Module's own loss; None for the other schemes
            opt.zero_grad(set_to_none=True)
            (loss if module_loss is None else loss + module_loss).backward()
            opt.step()
            sched.step()
            losses.append(loss.item() if size_w == 1 else float(all_reduce_sum(loss.detach())) / size_w)
    return losses


def detector_network(scheme: str, seed: int, width: int = 8, noise_std: float = 3.0) -> nn.Module:
    """The study's untrained network for (``scheme``, ``seed``): the seeded :class:`SmallDetector` (the same weights
    for every scheme of a seed) with its padding converted, or with the noisy top side of the positive control."""
    torch.manual_seed(seed)
    base = SmallDetector(width, mean=0.3, std=0.25)
    return with_noisy_side(base, "top", noise_std, seed) if scheme == CONTROL else convert_padding(base, scheme)


def _as_map(y: torch.Tensor) -> torch.Tensor:
    """The heat map (N, H, W) as the dense map (N, 1, H, W) that :func:`padlib.border_reach` reads."""
    return y[:, None]


def reach_canvases(size: int, tile: int, n: int, seed: int = REACH["seed"]) -> torch.Tensor:
    """``n`` held-out canvases of twice ``tile`` px for the border reach, with rings and distractors in proportion
    to their area (a training canvas of ``size`` px has 0 to 2 rings and 1 to 3 distractors), so that the heat map
    varies and its spread is not that of an empty canvas."""
    side = 2 * tile
    k = max(1, (side // size) ** 2)
    images, _ = detection_canvases(n, side, seed=seed, targets=(k, 2 * k), distractors=(k, 3 * k))
    return images


def detector_reach(net: nn.Module, size: int, settings: dict | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The border reach (:func:`padlib.border_reach`) of a detector trained at ``size`` px, in eval mode: for tiles
    of each multiple ``settings["tiles"]`` of ``size``, the error by distance from the nearest inner tile edge
    (``tile``, ``distance``, ``error``, ``n``) and one row per tile size with the margins per side, the overlaps
    between tile rows and columns and the larger one, with their bootstrap intervals over images (NaN: none;
    infinite: beyond the tile). ``size`` must be a multiple of :data:`REACH_STRIDE`."""
    r_set = dict(REACH, **(settings or {}))
    if size % REACH_STRIDE:
        raise PadlibError(f"border reach needs a size that is a multiple of the detector's stride {REACH_STRIDE}, "
                          f"got {size}")
    tables, rows = [], []
    with eval_mode(net):
        for m in r_set["tiles"]:
            tile = int(m * size)
            images = reach_canvases(size, tile, r_set["images"], r_set["seed"])
            r = border_reach(net, images, tile, tolerance=r_set["tolerance"], tiles_per_image=r_set["tiles_per_image"],
                             output=_as_map, n_boot=r_set["n_boot"], seed=0)
            tables.append(r.table[["distance", "error", "n"]].assign(tile=tile))
            sc = r.schemes.iloc[0]
            row = {"tile": tile, "tolerance": r.tolerance, "align": r.align, "max_distance": r.max_distance,
                   "n_images": r.n_images, "n_tiles": r.n_tiles, "max_error": float(sc["max_error"])}
            row.update({k: float(sc[k]) for k in ("margin", "margin_low", "margin_high")})
            row.update({f"margin_{side}": float(sc[f"margin_{side}"]) for side in GAPS})
            for name in ("overlap_rows", "overlap_cols", "overlap"):
                row.update({k: float(sc[k]) for k in (name, f"{name}_low", f"{name}_high")})
            rows.append(row)
    return pd.concat(tables, ignore_index=True), pd.DataFrame(rows)


def _job(job: dict) -> dict:
    """One (size, scheme, seed) network: built, trained and tested; a top-level function for worker processes.
    At a size on the stride-32 lattice (``job["reach"]`` set), its border reach too, after everything else (it
    draws from no generator the other measures use; the control's noise is reseeded for it)."""
    torch.set_num_threads(1)
    t0 = time.process_time()
    size, scheme, seed = job["size"], job["scheme"], job["seed"]
    if job.get("trained") is None:
        net = detector_network(scheme, seed, job["width"], job["noise_std"])
        losses = train_detector(net, size, seed, job["steps"], job["batch_size"], job["lr"], n_train=job["n_train"],
                                object_sizes=job["object_sizes"])
        train_cpu = 0.0
    else:  # trained elsewhere (padlib train-detector): read from its run folder
        net, losses, train_cpu = job["trained"]
    _reseed_noise(net, 10_000 + seed)
    images, placement = position_test_set(size, job["object_size"], job["step"], job["n_backgrounds"])
    pos = detection_by_position(net, images, placement, size)
    energy = row_energy(net, size, n_boot=0) if scheme != CONTROL else pd.DataFrame()
    out = dict(size=size, scheme=scheme, seed=seed, positions=pos, losses=losses,
               false_alarms=false_alarms(net, size), energy=energy, cpu_seconds=time.process_time() - t0 + train_cpu,
               reach=None, reach_summary=None, reach_seconds=0.0)
    if job.get("reach") is not None and size % REACH_STRIDE == 0:
        t1 = time.process_time()
        _reseed_noise(net, 20_000 + seed)
        out["reach"], out["reach_summary"] = detector_reach(net, size, job["reach"])
        out["reach_seconds"] = time.process_time() - t1
    return out


# ---------------------------------------------------------------------------------------------------------
# the study


def band_steps(step: int) -> int:
    """Grid steps in a border band: one heat-map cell (8 px) of positions, so every band spans one full period
    of the stride-8 sampling grid (a band narrower than that would mix padding with where objects fall on it)."""
    return max(1, math.ceil(STRIDE / step))


def side_deficits(amap: pd.DataFrame, edge: int, value: str = "recall") -> dict:
    """Per side: the mean of ``value`` over the band of positions within ``edge`` grid steps of that side minus the
    mean over the interior (positions outside every band); < 0: that side is blinder than the interior."""
    g = amap.pivot(index="y", columns="x", values=value).to_numpy()
    inner = np.ones_like(g, dtype=bool)
    inner[:edge], inner[-edge:], inner[:, :edge], inner[:, -edge:] = False, False, False, False
    interior = g[inner].mean()
    return {f"{side}_deficit": float(band.mean() - interior)
            for side, band in (("top", g[:edge]), ("bottom", g[-edge:]), ("left", g[:, :edge]),
                               ("right", g[:, -edge:]))}


@dataclass
class DetectionStudy:
    """Everything :func:`detection_study` produced (one row per network in ``summary``)."""

    maps: pd.DataFrame     # size, scheme, seed, y, x (the ring's top-left corner), recall, confidence
    summary: pd.DataFrame  # size, scheme, seed, the map metrics on recall, side deficits, false_alarms, cpu_seconds
    curves: pd.DataFrame   # size, scheme, seed, step, loss (smoothed training loss)
    energy: pd.DataFrame   # size, scheme, seed, one row per stride-2 layer (padlib.kernels.row_energy)
    settings: dict
    seconds: dict
    # the border reach of the networks whose size is on the stride-32 lattice (:func:`detector_reach`):
    reach: pd.DataFrame = field(default_factory=pd.DataFrame)          # size, scheme, seed, tile, distance, error, n
    reach_summary: pd.DataFrame = field(default_factory=pd.DataFrame)  # size, scheme, seed, tile, margins, overlaps


def detection_study(sizes=SIZES, schemes=SCHEMES, seeds=(0, 1, 2, 3), control_seeds=None, width: int = 8,
                    steps: int = 300, batch_size: int = 32, lr: float = 3e-3, n_train: int = 2048, object_sizes=(4, 8),
                    object_size: int = 6, step: int = 2, n_backgrounds: int = 2, noise_std: float = 3.0,
                    workers: int | None = None, progress: bool = True, reach: bool | dict = True,
                    trained=None) -> DetectionStudy:
    """Train and test one :class:`SmallDetector` per (size, scheme, seed), plus the positive control (top side
    padded with noise, :data:`CONTROL`) at the uneven size for ``control_seeds`` (default: ``seeds``). For a seed,
    every scheme starts from the same weights and sees the same batches; the networks do not depend on
    ``workers`` (processes of one torch thread each; default one per core, at most 4). ``reach``: also measure the
    border reach (:func:`detector_reach`) of the networks whose size is a multiple of :data:`REACH_STRIDE` (96 px,
    not 97), after their training and tests (a dict overrides :data:`REACH`; False: skip it).

    ``trained``: the networks trained elsewhere, a :class:`padlib.experiments.runs.DetectorGrid` (``padlib
    train-detector`` runs, read with ``read_grid(folder, task="detection")``): they are tested instead of trained
    here, every (size, scheme, seed) of the design must be among them, and their training settings replace
    ``width``, ``steps``, ``batch_size``, ``lr``, ``n_train``, ``object_sizes`` and ``noise_std``."""
    check_type("sizes", sizes, (list, tuple))
    check_type("seeds", seeds, (list, tuple, range))
    if len(seeds) < 2:
        raise PadlibError("the detection study needs at least 2 seeds (its intervals are over seeds)")
    control_seeds = list(seeds if control_seeds is None else control_seeds)
    uneven = next((s for s in sizes if s % 2 == 0), None)
    common = dict(width=width, steps=steps, batch_size=batch_size, lr=lr, n_train=n_train,
                  object_sizes=tuple(object_sizes),
                  object_size=object_size, step=step, n_backgrounds=n_backgrounds, noise_std=noise_std)
    if trained is not None:  # the runs decide how the networks were trained
        common.update({k: trained.settings[k] for k in ("width", "steps", "batch_size", "lr", "n_train", "noise_std")},
                      object_sizes=tuple(trained.settings["object_sizes"]))
    reach_set = None if reach is False else dict(REACH, **(reach if isinstance(reach, dict) else {}))
    jobs = [dict(common, size=size, scheme=scheme, seed=seed) for size in sizes for scheme in schemes for seed in seeds]
    if uneven is not None:
        jobs += [dict(common, size=uneven, scheme=CONTROL, seed=seed) for seed in control_seeds]
    networks = trained.select([(j["size"], j["scheme"], j["seed"]) for j in jobs]) if trained is not None else {}
    for j in jobs:
        j["reach"] = reach_set
        j["trained"] = networks.get((j["size"], j["scheme"], j["seed"]))
    workers = workers if workers is not None else default_workers("cpu", threads=1)
    t0 = time.perf_counter()
    results = process_map(_job, jobs, workers, progress, "detectors: sizes x schemes x seeds")
    seconds = {"train and test": time.perf_counter() - t0}
    edge = band_steps(step)
    maps, rows, curves, energy, reach_rows, reach_summary = [], [], [], [], [], []
    for r in results:
        key = dict(size=r["size"], scheme=r["scheme"], seed=r["seed"])
        amap = r["positions"].rename(columns={"top": "y", "left": "x"}).assign(**key)
        maps.append(amap)
        rows.append({**key, **map_summary(amap, edge, value="recall"), **side_deficits(amap, edge),
                     "confidence": float(amap["confidence"].mean()),
                     "confidence_border_deficit": map_summary(amap, edge, value="confidence")["border_deficit"],
                     "false_alarms": r["false_alarms"],
                     "cpu_seconds": r["cpu_seconds"]})
        loss = pd.Series(r["losses"]).rolling(25, min_periods=1).mean()
        curves.append(pd.DataFrame({"step": np.arange(1, len(loss) + 1), "loss": loss.to_numpy(), **key}))
        if len(r["energy"]):
            energy.append(r["energy"].assign(**key))
        if r.get("reach") is not None:
            reach_rows.append(r["reach"].assign(**key))
            reach_summary.append(r["reach_summary"].assign(**key, cpu_seconds=r["reach_seconds"]))
    settings = dict(sizes=list(sizes), schemes=list(schemes), seeds=list(seeds), control_seeds=control_seeds,
                    control=CONTROL, uneven=uneven, band_px=edge * step, **common, depth=5, stride=STRIDE,
                    object_share=object_size / min(sizes), task="detection")
    settings["reach"] = reach_set
    settings["trained_by"] = "here" if trained is None else "padlib train-detector (read from a runs folder)"
    seconds["border reach (cpu, all networks)"] = float(sum(r.get("reach_seconds", 0.0) for r in results))
    first = ["size", "scheme", "seed", "tile"]
    reach_df = pd.concat(reach_rows, ignore_index=True) if reach_rows else pd.DataFrame()
    reach_sum = pd.concat(reach_summary, ignore_index=True) if reach_summary else pd.DataFrame()
    if len(reach_df):
        reach_df = reach_df[first + [c for c in reach_df.columns if c not in first]]
        reach_sum = reach_sum[first + [c for c in reach_sum.columns if c not in first]]
    return DetectionStudy(pd.concat(maps, ignore_index=True), pd.DataFrame(rows),
                          pd.concat(curves, ignore_index=True),
                          pd.concat(energy, ignore_index=True) if energy else pd.DataFrame(), settings, seconds,
                          reach_df, reach_sum)


SIDES = ("top", "bottom", "left", "right")


def detection_tests(summary: pd.DataFrame, control: str = "circular", level: float = 0.95) -> pd.DataFrame:
    """The differences the chapter judges, each paired by seed with a t-interval over seeds and its unadjusted p
    (the readings pick each claim's family and adjust within it). In recall (0 to 1):

    - ``zone``: per size, zero padding's border deficit minus ``control``'s (circular: the same network and grid
      with no border, so what is left is what the zero padding adds); ``zone, logits``: the same on the ring
      cell's logit instead of recall (in logits, not recall: free of the threshold, which matters when the
      schemes' recall levels differ);
    - ``side``: per axis (top minus bottom, left minus right), the uneven minus the even size for zero padding
      minus the same for ``control`` (the stride-8 grid differs between the sizes; the control takes it out);
    - ``even size``: the same difference of differences on the border deficit;
    - ``symmetric``: per size, symmetric minus zero padding on the border deficit;
    - ``positive control``: per side, the noisy-top networks minus zero padding at the uneven size on that side's
      band deficit (:func:`side_deficits`).
    ``a_mean``/``b_mean``: the two terms' means, for the page."""
    piv = summary.set_index(["size", "scheme", "seed"]).sort_index()
    sizes = sorted(summary["size"].unique())
    uneven = next((s for s in sizes if s % 2 == 0), sizes[0])
    even = next((s for s in sizes if s != uneven), sizes[-1])
    schemes = set(summary["scheme"])

    def col(size, scheme, metric):
        return piv.loc[(size, scheme)][metric] if (size, scheme) in piv.index.droplevel(2) else pd.Series(dtype=float)

    rows = []

    def add(family, comparison, metric, a, b, size=None):
        d = (a - b).dropna().to_numpy(dtype=float)
        r = t_test(d, level)
        rows.append({"family": family, "comparison": comparison, "size": size, "metric": metric, "mean": r.mean,
                     "ci_low": r.low, "ci_high": r.high, "p": r.p, "n": r.n,
                     "a_mean": float(a.mean()) if len(a) else float("nan"),
                     "b_mean": float(b.mean()) if len(b) else float("nan")})

    if {"zero", control} <= schemes:
        for size in sizes:
            add("zone", f"zero - {control} at {size} px", "border_deficit", col(size, "zero", "border_deficit"),
                col(size, control, "border_deficit"), size)
        for metric in ("top_minus_bottom", "left_minus_right", "border_deficit"):
            z = col(uneven, "zero", metric) - col(even, "zero", metric)
            c = col(uneven, control, metric) - col(even, control, metric)
            add("side" if metric != "border_deficit" else "even size",
                f"({uneven} - {even} px) zero - {control}", metric, z, c)
        if "confidence_border_deficit" in summary:
            for size in sizes:
                add("zone, logits", f"zero - {control} at {size} px", "confidence_border_deficit",
                    col(size, "zero", "confidence_border_deficit"), col(size, control, "confidence_border_deficit"),
                    size)
    if {"zero", "symmetric"} <= schemes:
        for size in sizes:
            add("symmetric", f"symmetric - zero at {size} px", "border_deficit",
                col(size, "symmetric", "border_deficit"), col(size, "zero", "border_deficit"), size)
    if CONTROL in schemes and "zero" in schemes:
        for side in SIDES:
            add("positive control", f"{CONTROL} - zero at {uneven} px", f"{side}_deficit",
                col(uneven, CONTROL, f"{side}_deficit"), col(uneven, "zero", f"{side}_deficit"), uneven)
    out = pd.DataFrame(rows)
    out.attrs.update(uneven=uneven, even=even, level=level, control=control, seeds=int(summary["seed"].nunique()),
                     recall={(int(k[0]), k[1]): float(v) for k, v in
                             summary.groupby(["size", "scheme"], sort=False)["mean"].mean().items()})
    return out


def reach_total(reach_summary: pd.DataFrame) -> pd.Series:
    """Per network and tile: the border reach as one number, the four per-side margins' total in px (top + bottom +
    left + right: the overlap between tile rows plus that between tile columns, before rounding to the stride);
    infinite where a side's error stays above the tolerance up to the tile's centre, NaN where a side was never an
    inner edge."""
    return sum(reach_summary[f"margin_{side}"].astype(float) for side in GAPS)


def reach_tests(reach_summary: pd.DataFrame, schemes=None, level: float = 0.95) -> pd.DataFrame:
    """Which padding's border reach is longer: per tile size and pair of schemes (``schemes``: default every scheme
    but the positive control, in the table's order), :func:`reach_total` of the first minus the second, paired by
    seed (same initial weights and batches), with a t-interval over seeds, its unadjusted p and ``p_adj``, Holm over
    every row tested (one family). A pair with a reach beyond the tile in some seed is not tested (``beyond_a``,
    ``beyond_b``: those seeds; mean and p NaN)."""
    cols = ["tile", "a", "b", "mean", "ci_low", "ci_high", "p", "n", "a_mean", "b_mean", "beyond_a", "beyond_b",
            "seeds", "p_adj"]
    if not len(reach_summary):
        return pd.DataFrame(columns=cols)
    df = reach_summary.assign(reach=reach_total(reach_summary))
    if schemes is None:
        schemes = [s for s in dict.fromkeys(df["scheme"]) if s != CONTROL]
    rows = []
    for tile in sorted(df["tile"].unique()):
        piv = df[df["tile"] == tile].pivot_table(index="seed", columns="scheme", values="reach", dropna=False)
        for i, a in enumerate(schemes):
            for b in schemes[i + 1:]:
                if a not in piv or b not in piv:
                    continue
                pair = piv[[a, b]].dropna()
                va, vb = pair[a].to_numpy(dtype=float), pair[b].to_numpy(dtype=float)
                beyond_a, beyond_b = int(np.isinf(va).sum()), int(np.isinf(vb).sum())
                if beyond_a or beyond_b or len(pair) < 2:
                    r = (float("nan"),) * 4
                    n = len(pair)
                else:
                    t = t_test(va - vb, level)
                    r, n = (t.mean, t.low, t.high, t.p), t.n
                rows.append({"tile": int(tile), "a": a, "b": b, "mean": r[0], "ci_low": r[1], "ci_high": r[2],
                             "p": r[3], "n": n, "a_mean": float(va.mean()) if len(va) else float("nan"),
                             "b_mean": float(vb.mean()) if len(vb) else float("nan"), "beyond_a": beyond_a,
                             "beyond_b": beyond_b, "seeds": len(pair)})
    out = pd.DataFrame(rows, columns=cols[:-1])
    tested = out["p"].notna().to_numpy()
    out["p_adj"] = np.nan
    if tested.any():
        out.loc[tested, "p_adj"] = holm_adjust(out.loc[tested, "p"].to_numpy(dtype=float))
    out.attrs.update(level=level, family=int(tested.sum()))
    return out
