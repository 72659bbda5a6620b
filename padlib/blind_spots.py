"""Blind spots measured where they can be: networks trained at the size and with the padding they are tested with.

Mind the Pad (Alsallakh et al., ICLR 2021) reports that uneven padding leaves blind spots, places where a small
object is missed, and that an input size that pads evenly, or mirror/circular padding, mitigates them. Judging that
on pretrained weights swapped at inference confounds the mitigation with an input size or padding the weights never
saw. The matched design here (our formulation) trains small networks from scratch for every (input size, padding)
cell and tests each at its own training size:

- data: a handwritten digit of ``digit_size`` pixels (scikit-learn's digits, upscaled) in white ink on a grey
  texture cut from the offline photographs (:func:`padlib.training.digits_on_canvas`), uniformly placed;
- network: :func:`padlib.training.strided_small`, ``depth`` stride-2 3x3 convs with padding 1, which pad
  unevenly at an even input size and evenly at 1 (mod 2**depth) (48 vs 49 for three stages);
- the accuracy map: held-out digits on held-out textures pasted at every position of a grid with a few pixels'
  step (:func:`accuracy_maps`), one map per network;
- per map (:func:`map_summary`): the border deficit (accuracy with the digit at the frame's outer positions minus
  the interior), the top-minus-bottom and left-minus-right edge differences, and where the worst 3x3 block of
  positions lies;
- per effect (:func:`paired_effects`): the difference between two cells paired by seed (same initial weights up
  to the padding conversion, same batches), a t-interval over seeds, and Holm's correction across every effect
  reported, with the smallest effect the design resolves (the interval's half-width).

A planted case validates the measure: :func:`template_classifier` is a translation-invariant digit classifier
(class-mean templates, max over positions) and :func:`masked_band` gives it a blind band along one border; the map
summary finds the band where it was planted and nothing in the unmasked control (tests).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .errors import PadlibError, check_type
from .kernels import holm_adjust

SCHEMES = ("zero", "symmetric", "circular")
SIZES = (48, 49)
EDGE = 1  # positions within this many grid steps of a border count as "at the border"
EFFECT_FLOOR = 0.02  # ours: a paired difference under 2 accuracy points is no effect, whatever its p-value


def position_grid(size: int, digit_size: int, step: int) -> list[int]:
    """Top-left offsets of the digit box along one axis: 0, step, ... and always the last offset (box touching the
    far border), so both borders are in the map at every canvas size."""
    check_type("step", step, int)
    if step < 1:
        raise PadlibError(f"step must be a positive number of pixels, got {step}")
    last = size - digit_size
    if last < 0:
        raise PadlibError(f"a {digit_size}-pixel digit does not fit a {size}-pixel canvas")
    grid = list(range(0, last + 1, step))
    return grid if grid[-1] == last else grid + [last]


def map_images(size: int, digit_size: int = 12, step: int = 3, n_digits: int = 24, seed: int = 0,
               texture_range=(0.0, 0.35)) -> tuple[torch.Tensor, torch.Tensor, pd.DataFrame]:
    """The accuracy map's test images: the same ``n_digits`` held-out digits, each on its own held-out texture,
    pasted with the digit box at every grid position. Returns (images (P*n, 1, S, S), labels, one row per image
    with its ``y``/``x`` grid offsets)."""
    from .training import _upscaled_digits, texture_backgrounds

    digits, targets, _ = _upscaled_digits(digit_size)
    ids = np.arange(len(targets))
    pool = ids[ids % 5 == 0]  # digits_on_canvas's test digits
    rng = np.random.default_rng([seed, 11])
    chosen = rng.choice(pool, n_digits, replace=n_digits > len(pool))
    textures, _ = texture_backgrounds(n_digits, size, seed + 1000, "test", *texture_range)
    grid = position_grid(size, digit_size, step)
    ink = digits[chosen, 0]  # (n, d, d)
    images, rows = [], []
    for y in grid:
        for x in grid:
            canvas = textures.clone()
            region = canvas[:, 0, y:y + digit_size, x:x + digit_size]
            canvas[:, 0, y:y + digit_size, x:x + digit_size] = region * (1 - ink) + ink
            images.append(canvas)
            rows += [{"y": y, "x": x, "digit": int(j)} for j in chosen]
    labels = torch.as_tensor(targets[chosen]).repeat(len(grid) ** 2)
    return torch.cat(images), labels, pd.DataFrame(rows)


@torch.no_grad()
def accuracy_map(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, placement: pd.DataFrame,
                 batch_size: int = 512, device="cpu") -> pd.DataFrame:
    """Accuracy of ``model`` at each grid position (tidy: ``y``, ``x``, ``accuracy``, ``n``)."""
    model.eval()
    preds = []
    for s in range(0, len(images), batch_size):
        preds.append(model(images[s:s + batch_size].to(device)).argmax(1).cpu())
    correct = (torch.cat(preds) == labels).float().numpy()
    return (placement.assign(correct=correct).groupby(["y", "x"], as_index=False)
            .agg(accuracy=("correct", "mean"), n=("correct", "size")))


def _block_means(grid: np.ndarray, k: int = 3) -> np.ndarray:
    h, w = grid.shape
    return np.array([[grid[i:i + k, j:j + k].mean() for j in range(w - k + 1)] for i in range(h - k + 1)])


def _where(i: float, j: float, h: float, w: float) -> str:
    """A position in a grid of h x w block positions, named: top/middle/bottom and left/centre/right."""
    row = "top" if i < h / 3 else "bottom" if i >= 2 * h / 3 else "middle"
    col = "left" if j < w / 3 else "right" if j >= 2 * w / 3 else "centre"
    return "centre" if (row, col) == ("middle", "centre") else f"{row}-{col}".replace("middle-", "")


def map_summary(amap: pd.DataFrame, edge: int = EDGE) -> dict:
    """One map's summary (our formulation), accuracies in [0, 1]:

    ``mean``; ``border_deficit`` = mean accuracy at positions within ``edge`` grid steps of any border minus the
    interior mean (< 0: the frame is a blind zone); ``top_minus_bottom`` and ``left_minus_right``: the mean over
    the outermost ``edge`` rows (columns) of positions at one border minus the opposite one; ``worst_region``:
    where the 3x3 block of positions with the lowest mean lies, and ``worst_drop`` = mean - that block's mean."""
    g = amap.pivot(index="y", columns="x", values="accuracy").to_numpy()
    h, w = g.shape
    if h < 2 * edge + 1 or w < 2 * edge + 1:
        raise PadlibError(f"a {h}x{w} grid of positions has no interior beyond {edge} step(s) from the border; "
                          "use a smaller step")
    frame = np.zeros_like(g, dtype=bool)
    frame[:edge], frame[-edge:], frame[:, :edge], frame[:, -edge:] = True, True, True, True
    blocks = _block_means(g, min(3, h, w))
    i, j = np.unravel_index(int(np.argmin(blocks)), blocks.shape)
    return {"mean": float(g.mean()), "border_deficit": float(g[frame].mean() - g[~frame].mean()),
            "top_minus_bottom": float(g[:edge].mean() - g[-edge:].mean()),
            "left_minus_right": float(g[:, :edge].mean() - g[:, -edge:].mean()),
            "worst_drop": float(g.mean() - blocks[i, j]), "worst_region": _where(i, j, *blocks.shape)}


METRICS = ("mean", "border_deficit", "top_minus_bottom", "left_minus_right", "worst_drop")


@dataclass
class MatchedStudy:
    """Everything :func:`matched_study` produced: per-network accuracy maps and summaries, learning curves."""

    maps: pd.DataFrame  # size, scheme, seed, y, x, accuracy, n
    summary: pd.DataFrame  # one row per network: size, scheme, seed, METRICS, worst_region
    curves: pd.DataFrame  # size, scheme, seed, epoch, accuracy (held-out, uniform positions)
    energy: pd.DataFrame  # size, scheme, seed, one row per stride-2 layer (padlib.kernels.row_energy)
    settings: dict
    seconds: dict


def matched_study(sizes=SIZES, schemes=SCHEMES, seeds=(0, 1, 2, 3, 4), n_train: int = 4000, n_eval: int = 500,
                  epochs: float = 8, width: int = 16, depth: int = 3, digit_size: int = 12, step: int = 3,
                  n_digits: int = 24, texture_range=(0.0, 0.35), batch_size: int = 64, lr: float = 3e-3,
                  workers: int | None = None, device="cpu", progress: bool = True) -> MatchedStudy:
    """Train one :func:`padlib.training.strided_small` network per (size, scheme, seed) on uniformly placed digits
    at that size and map each one's accuracy over digit positions at the same size (see the module docstring).

    For a seed, every scheme of a size starts from the same weights (converted with ``convert_padding``) and sees
    the same batches; the two sizes share seeds and the source digits but not the pixels, so size effects are
    paired by seed only. ``workers`` training processes (default: one per core on CPU) run one torch thread each
    (these small networks gain little from a second thread, and more threads than cores stall every process);
    the networks do not depend on ``workers``."""
    import time

    from .kernels import row_energy
    from .training import default_workers, digits_train_test, learning_curves, train_schemes

    check_type("sizes", sizes, (list, tuple))
    check_type("seeds", seeds, (list, tuple, range))
    if len(seeds) < 2:
        raise PadlibError("the matched study needs at least 2 seeds (its intervals are over seeds)")
    maps, curves, energy, seconds = [], [], [], {}
    workers = workers if workers is not None else default_workers(device, threads=1)
    threads = torch.get_num_threads()
    for size in sizes:
        t0 = time.perf_counter()
        train_set, eval_set = digits_train_test(n_train, n_eval, canvas_size=size, digit_size=digit_size, seed=0,
                                                border_fraction=0.0, background="texture",
                                                texture_range=texture_range)
        if workers > 1:
            torch.set_num_threads(1)  # the workers take this process's thread count
        try:
            runs = train_schemes(list(schemes), list(seeds), train_set, model="strided",
                                 model_kwargs={"width": width, "depth": depth}, epochs=epochs, batch_size=batch_size,
                                 lr=lr, device=device, progress=progress, eval_data=eval_set, workers=workers)
        finally:
            torch.set_num_threads(threads)
        seconds[f"train {size}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        images, labels, placement = map_images(size, digit_size, step, n_digits, seed=0, texture_range=texture_range)
        for run in runs:
            m = accuracy_map(run.model, images, labels, placement, device=device)
            maps.append(m.assign(size=size, scheme=run.scheme, seed=run.seed))
            energy.append(row_energy(run.model, size, n_boot=0).assign(size=size, scheme=run.scheme, seed=run.seed))
        c = learning_curves(runs)
        curves.append(c.assign(size=size))
        seconds[f"maps {size}"] = time.perf_counter() - t0
    maps = pd.concat(maps, ignore_index=True)
    rows = [{"size": k[0], "scheme": k[1], "seed": k[2], **map_summary(g)}
            for k, g in maps.groupby(["size", "scheme", "seed"], sort=False)]
    settings = dict(sizes=list(sizes), schemes=list(schemes), seeds=list(seeds), n_train=n_train, epochs=epochs,
                    width=width, depth=depth, digit_size=digit_size, step=step, n_digits=n_digits,
                    texture_range=tuple(texture_range))
    return MatchedStudy(maps, pd.DataFrame(rows), pd.concat(curves, ignore_index=True),
                        pd.concat(energy, ignore_index=True), settings, seconds)


def energy_effects(energy: pd.DataFrame, level: float = 0.95, floor: float = 0.02) -> pd.DataFrame:
    """The compensation test on matched networks: per scheme, the mean top-minus-bottom (left-minus-right) energy
    share of the stride-2 kernels (:func:`padlib.kernels.row_energy`) at the uneven size minus the even size,
    paired by seed, with a t-interval and Holm's correction across the tests; ``resolved`` needs the floor too.
    Uneven PyTorch padding reads the top/left padding, so a kernel that moves energy away from it gives < 0."""
    sizes = sorted(energy["size"].unique())
    uneven = next((s for s in sizes if s % 2 == 0), sizes[0])
    even = next((s for s in sizes if s != uneven), sizes[-1])
    per = energy.groupby(["size", "scheme", "seed"])[["energy_tb", "energy_lr"]].mean().sort_index()
    rows = []
    for scheme in energy["scheme"].unique():
        for col in ("energy_tb", "energy_lr"):
            d = (per.loc[(uneven, scheme)][col] - per.loc[(even, scheme)][col]).dropna().to_numpy()
            mean, lo, hi, p = _t_interval(d, level)
            rows.append({"scheme": scheme, "metric": col, "comparison": f"{uneven} - {even} px", "mean": mean,
                         "ci_low": lo, "ci_high": hi, "half_width": (hi - lo) / 2, "p": p,
                         "uneven_mean": float(per.loc[(uneven, scheme)][col].mean()),
                         "even_mean": float(per.loc[(even, scheme)][col].mean())})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm_adjust(out["p"].to_numpy())
    out["resolved"] = (out["p_holm"] < 1 - level) & (out["mean"].abs() >= floor)
    out.attrs.update(uneven=uneven, even=even, floor=floor)
    return out


def _t_interval(d: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, interval low/high (:func:`padlib.training._t_interval`) and two-sided p of a one-sample t-test of
    ``d`` against 0."""
    from scipy import stats

    from .training import _t_interval as t_interval

    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), float("nan")
    lo, hi = t_interval(d, level)
    se = float(d.std(ddof=1) / math.sqrt(n))
    p = float(2 * stats.t.sf(abs(mean) / se, n - 1)) if se > 0 else (0.0 if mean != 0 else 1.0)
    return mean, lo, hi, p


def paired_effects(summary: pd.DataFrame, even: int | None = None, uneven: int | None = None,
                   baseline: str = "zero", level: float = 0.95, floor: float = EFFECT_FLOOR) -> pd.DataFrame:
    """The effects the chapter tests, each a difference paired by seed with a t-interval, Holm-adjusted together:

    - size: (uneven size) - (even size), per scheme, on ``top_minus_bottom``, ``left_minus_right`` (the lean the
      uneven padding should leave) and ``border_deficit``;
    - padding: (scheme) - (``baseline``), per size, on ``border_deficit`` and ``worst_drop`` (what a mitigation
      should change).
    ``half_width`` is the interval's half-width: the smallest difference this design resolves. An effect is
    ``resolved`` when its Holm-adjusted p is below 1 - ``level`` and its size is at least ``floor``."""
    sizes = sorted(summary["size"].unique())
    uneven = uneven if uneven is not None else next((s for s in sizes if s % 2 == 0), sizes[0])
    even = even if even is not None else next((s for s in sizes if s != uneven), sizes[-1])
    tests = []
    piv = summary.set_index(["size", "scheme", "seed"]).sort_index()
    for scheme in summary["scheme"].unique():
        for metric in ("top_minus_bottom", "left_minus_right", "border_deficit"):
            a, b = piv.loc[(uneven, scheme)][metric], piv.loc[(even, scheme)][metric]
            d = (a - b).dropna().to_numpy()
            tests.append({"effect": "size", "comparison": f"{uneven} - {even} px", "scheme": scheme, "size": None,
                          "metric": metric, "d": d})
    if baseline in set(summary["scheme"]):
        for size in sizes:
            for scheme in [s for s in summary["scheme"].unique() if s != baseline]:
                for metric in ("border_deficit", "worst_drop"):
                    a, b = piv.loc[(size, scheme)][metric], piv.loc[(size, baseline)][metric]
                    d = (a - b).dropna().to_numpy()
                    tests.append({"effect": "padding", "comparison": f"{scheme} - {baseline}", "scheme": scheme,
                                  "size": size, "metric": metric, "d": d})
    rows = []
    for t in tests:
        mean, lo, hi, p = _t_interval(t.pop("d"), level)
        rows.append({**t, "mean": mean, "ci_low": lo, "ci_high": hi, "half_width": (hi - lo) / 2, "p": p})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm_adjust(out["p"].to_numpy())
    out["resolved"] = (out["p_holm"] < 1 - level) & (out["mean"].abs() >= floor)
    out.attrs.update(even=even, uneven=uneven, level=level, n_tests=len(out), floor=floor)
    return out


def cell_table(summary: pd.DataFrame, metrics=METRICS, level: float = 0.95) -> pd.DataFrame:
    """Per (size, scheme) and metric: the mean over seeds with its t-interval (is a border deficit there at all?)."""
    rows = []
    for (size, scheme), g in summary.groupby(["size", "scheme"], sort=False):
        for metric in metrics:
            mean, lo, hi, p = _t_interval(g[metric].to_numpy(dtype=float), level)
            rows.append({"size": size, "scheme": scheme, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                         "p": p, "seeds": len(g)})
    return pd.DataFrame(rows)


def worst_regions(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (size, scheme): where the worst block of positions lies, counted over seeds."""
    return (summary.groupby(["size", "scheme"], sort=False)["worst_region"]
            .agg(lambda r: ", ".join(f"{k} {v}" for k, v in r.value_counts().items())).reset_index())


def effect_lines(effects: pd.DataFrame) -> list[str]:
    """Plain sentences: the resolved effects, and the smallest effect this design resolves."""
    lines = []
    n = effects.attrs.get("n_tests", len(effects))
    res = effects[effects["resolved"]]
    for r in res.itertuples():
        where = f"with {r.scheme} padding" if r.effect == "size" else f"at {int(r.size)} px"
        lines.append(f"{r.comparison} on {r.metric.replace('_', ' ')} {where}: {r.mean:+.3f} "
                     f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] (Holm p {r.p_holm:.3g} over {n} tests)")
    if res.empty:
        lines.append(f"No effect is resolved (Holm's correction over {n} tests, floor "
                     f"{effects.attrs.get('floor', EFFECT_FLOOR):.2f} accuracy).")
    hw = effects["half_width"]
    lines.append(f"Smallest effect resolved (interval half-width): {hw.min():.3f}-{hw.max():.3f} accuracy, "
                 f"median {hw.median():.3f}; floor {effects.attrs.get('floor', EFFECT_FLOOR):.2f} accuracy.")
    return lines


def mean_maps(maps: pd.DataFrame) -> dict:
    """Per (size, scheme): the accuracy map averaged over seeds, as a (y, x) DataFrame for plotting."""
    return {k: g.groupby(["y", "x"])["accuracy"].mean().unstack("x") for k, g in maps.groupby(["size", "scheme"],
                                                                                           sort=False)}


# ---------------------------------------------------------------------------------------------------------
# The planted case: a translation-invariant classifier, and the same with a blind band


class TemplateClassifier(nn.Module):
    """Class-mean templates correlated with the image at every position, best position per class: a classifier
    whose accuracy does not depend on where the digit is (no padding: 'valid' correlation)."""

    def __init__(self, templates: torch.Tensor):
        super().__init__()
        t = templates - templates.mean((1, 2, 3), keepdim=True)
        self.register_buffer("templates", t / t.flatten(1).norm(dim=1).view(-1, 1, 1, 1))

    def forward(self, x):
        x = x - x.mean((2, 3), keepdim=True)
        return F.conv2d(x, self.templates).amax((2, 3))


def template_classifier(digit_size: int = 12) -> TemplateClassifier:
    """:class:`TemplateClassifier` from the training digits' class means at ``digit_size`` pixels."""
    from .training import _upscaled_digits

    digits, targets, _ = _upscaled_digits(digit_size)
    ids = torch.arange(len(targets))
    train = ids % 5 != 0
    templates = torch.stack([digits[train & (targets == c)].mean(0) for c in range(10)])
    return TemplateClassifier(templates)


class MaskedBand(nn.Module):
    """``model`` that cannot see a band of ``width`` pixels along one border (filled with ``fill``): a planted
    blind spot."""

    def __init__(self, model: nn.Module, side: str, width: int, fill: float = 0.0):
        super().__init__()
        if side not in ("top", "bottom", "left", "right"):
            raise PadlibError(f"side must be top, bottom, left or right, got {side!r}")
        self.model, self.side, self.width, self.fill = model, side, int(width), float(fill)

    def forward(self, x):
        x = x.clone()
        w = self.width
        sl = {"top": (slice(None), slice(None), slice(0, w)), "bottom": (slice(None), slice(None), slice(-w, None)),
              "left": (Ellipsis, slice(0, w)), "right": (Ellipsis, slice(-w, None))}[self.side]
        x[sl] = self.fill
        return self.model(x)


def masked_band(model: nn.Module, side: str = "top", width: int = 8, fill: float = 0.0) -> MaskedBand:
    """A planted blind spot: ``model`` blind to a ``width``-pixel band along ``side``."""
    return MaskedBand(model, side, width, fill)


def chapter_findings_box(zoo_numbers: dict | None, compensation: pd.DataFrame, energy_summary: pd.DataFrame,
                         energy_fx: pd.DataFrame, cells: pd.DataFrame, effects: pd.DataFrame) -> list:
    """Chapter 4's findings, one :class:`padlib.findings.Finding` per claim of Mind the Pad, from its tables: uneven
    padding in the zoo; mean maps leaning toward the padding read (pretrained); learned compensation (maps at the
    even size, kernel energy: pretrained against random init, and matched networks at the uneven vs even size);
    blind spots at the border and on the side the padding leaves (matched networks); the mitigations."""
    from .findings import Finding, verdict_of

    out = []
    if zoo_numbers:
        out.append(Finding("holds" if zoo_numbers["uneven_at_default"] else "not here",
                           "Common architectures pad unevenly at their default input size",
                           f"{zoo_numbers['uneven_at_default']} of {zoo_numbers['audited']} timm architectures "
                           f"({zoo_numbers['share_uneven']:.0%}); a nearby size pads evenly for "
                           f"{zoo_numbers['uneven_fixed_by_nearest_size']} of them", "the-whole-timm-zoo"))
    floor = compensation.attrs.get("floor", 0.25)
    toward = compensation["pretrained_trained_size"] >= floor
    comp = compensation["verdict"] == "compensates"
    out.append(Finding(verdict_of(toward.mean()),
                       "Mean feature maps lean toward the side that reads more padding (pretrained, training size)",
                       f"{int(toward.sum())} of {len(compensation)} model axes lean that way by at least {floor:g} "
                       f"net (random-init copies: {int((compensation['init_trained_size'] >= floor).sum())} of "
                       f"{len(compensation)}); {int(comp.sum())} of {len(compensation)} compensate instead (next "
                       "line)", "following-or-compensating"))
    uneven = energy_fx[energy_fx["scheme"] == "zero"]
    moved = uneven[uneven["resolved"] & (uneven["mean"] < 0)]
    pre_moved = [f"{r.model} {c.split('_')[1]} {getattr(r, c):+.3f}" for r in energy_summary.itertuples()
                 for c in ("energy_tb", "energy_lr") if getattr(r, f"{c}_differs")]
    n_pre = 2 * len(energy_summary)
    lines = (f"pretrained stride-2 kernels beyond random init on {len(pre_moved)} of {n_pre} model axes "
             f"({'; '.join(pre_moved) or 'none'}); matched networks, zero padding, {energy_fx.attrs.get('uneven')} - "
             f"{energy_fx.attrs.get('even')} px: " + "; ".join(
                 f"{r.metric.split('_')[1]} {r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" for r in uneven.itertuples()))
    share = (len(pre_moved) / max(n_pre, 1) + len(moved) / max(len(uneven), 1)) / 2
    out.append(Finding(verdict_of(share),
                       "Uneven padding leaves learned, asymmetric kernels that move energy away from the padding read",
                       lines + (f"; pretrained maps lean the other way at the even size on {int(comp.sum())} of "
                                f"{len(compensation)} axes" if len(compensation) else ""), "following-or-compensating"))
    zero_cells = cells[(cells.metric == "border_deficit") & (cells.scheme == "zero")]
    deficit = zero_cells[zero_cells["ci_high"] < -EFFECT_FLOOR]
    out.append(Finding(verdict_of(len(deficit) / max(len(zero_cells), 1)),
                       "A small object is recognised less near the border (blind zone; matched networks, zero padding)",
                       "; ".join(f"{int(r.size)} px: {r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
                                 for r in zero_cells.itertuples()) + " accuracy, frame minus interior",
                       "blind-spots-in-networks-trained-at-the-size-they-are-tested-at"))
    side = effects[(effects.effect == "size") & (effects.scheme == "zero") &
                   effects.metric.isin(["top_minus_bottom", "left_minus_right"])]
    out.append(Finding(verdict_of(side["resolved"].mean()) if len(side) else "not here",
                       "Uneven padding makes one side blinder (uneven minus even size, zero padding)",
                       "; ".join(f"{r.metric.replace('_', ' ')} {r.mean:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
                                 for r in side.itertuples()) + f"; Holm over {effects.attrs.get('n_tests')} tests",
                       "blind-spots-in-networks-trained-at-the-size-they-are-tested-at"))
    mit = effects[((effects.effect == "padding") & (effects.metric == "border_deficit")) |
                  ((effects.effect == "size") & (effects.scheme == "zero") & (effects.metric == "border_deficit"))]
    helps = mit["resolved"] & np.where(mit.effect == "padding", mit["mean"] > 0, mit["mean"] < 0)
    out.append(Finding(verdict_of(helps.mean()) if len(mit) else "not here",
                       "Symmetric or circular padding, or the even size, shrinks the border deficit (trained that way)",
                       f"resolved in {int(helps.sum())} of {len(mit)} comparisons; smallest effect resolved "
                       f"{mit['half_width'].min():.3f}-{mit['half_width'].max():.3f} accuracy",
                       "blind-spots-in-networks-trained-at-the-size-they-are-tested-at"))
    return out
