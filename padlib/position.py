"""Position information from padding (PPP): three measures, in our formulation (Lin et al., ICML 2023 released no code).

The PPP paper's own metrics are not public; the book uses these, each validated on a control where
padding cannot carry position (circular padding on spatially stationary inputs):

* :func:`position_pattern_strength`: on a probe made spatially stationary (every image circularly
  shifted by a random offset and randomly flipped), the spatial variance of the mean feature map over
  images divided by the mean spatial variance of individual feature maps, per layer. Zero under perfect
  translation equivariance; sampling noise alone gives about ``null_floor`` (reported), so the excess
  over it is the position pattern.
* :func:`position_readout`: PosENet-style, a linear (ridge) readout on frozen features, resized to a
  common grid and concatenated over layers, predicting each cell's normalised x and y coordinate;
  fitted on half of the stationary probe images, scored on the other half by R^2 and Spearman.
* :func:`border_test`: the F-Conv border test, a patch placed at the top-left or the bottom-right of a
  black canvas, a logistic regression on globally average-pooled features telling which; test patches
  appear in both placements, so chance is exactly 1/2.

:func:`ppp_measures` runs all three on one model and returns one tidy row per measure.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .activations import forward_hooks
from .errors import PadlibError, ProbeDataError, check_type
from .training import _t_interval  # one t-interval for chapter 5's paired verdicts


def _as_images(images) -> torch.Tensor:
    x = getattr(images, "images", images)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ProbeDataError("images must be a (N, C, H, W) tensor or an ImageSet")
    return x


def _default_layers(model: nn.Module, layers) -> list[str]:
    from .padding import padded_convs, require_padded_convs

    if layers is None:
        return [name for name, _ in require_padded_convs(model)]
    check_type("layers", layers, (list, tuple))
    if not layers:
        raise PadlibError("layers is empty: give layer names or None for every padded conv")
    return list(layers)


def stationary_images(images, seed: int = 0, flips: bool = True) -> torch.Tensor:
    """Each image circularly shifted by a random (dy, dx) and (with ``flips``) randomly flipped; seeded.

    Over many images every content appears equally often at every position, so the mean image is flat up
    to sampling noise: any pattern left in the mean feature map comes from the network, not the data.
    """
    x = _as_images(images)
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = x.shape
    dy, dx = torch.randint(0, h, (n,), generator=g), torch.randint(0, w, (n,), generator=g)
    fy, fx = torch.rand(n, generator=g) < 0.5, torch.rand(n, generator=g) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        im = torch.roll(x[i], (int(dy[i]), int(dx[i])), (1, 2))
        if flips and fy[i]:
            im = im.flip(1)
        if flips and fx[i]:
            im = im.flip(2)
        out[i] = im
    return out


def _layer_outputs(model, x, layers, batch_size, device, fn):
    """Call ``fn(layer, output)`` for each named layer on each batch (model in eval mode, no grad)."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), forward_hooks(model, layers, lambda name, m, i, o: fn(name, o)):
            for s in range(0, len(x), batch_size):
                model(x[s:s + batch_size].to(device))
    finally:
        model.train(was)


def position_pattern_strength(model: nn.Module, images, layers: list[str] | None = None, stationary: bool = True,
                              seed: int = 0, batch_size: int = 64, device="cpu") -> pd.DataFrame:
    """Per layer: spatial variance of the mean map / mean spatial variance of single maps (channels pooled).

    Columns: ``layer, strength, null_floor, excess`` (strength - null_floor), ``height, width, channels,
    n_images``. ``null_floor`` is the value sampling noise alone gives for this many images (the mean
    across-image variance per position divided by n, over the same denominator). Inputs are made
    stationary with :func:`stationary_images` unless ``stationary=False``.
    """
    check_type("model", model, nn.Module)
    layers = _default_layers(model, layers)
    x = stationary_images(images, seed) if stationary else _as_images(images)
    acc: dict[str, dict] = {}

    def record(name, out):
        y = out.detach().double()
        a = acc.setdefault(name, {"sum": [0.0, 0.0], "spatial_var": 0.0, "n": 0, "shape": y.shape[1:]})
        parity = (torch.arange(a["n"], a["n"] + y.shape[0]) % 2).to(y.device)
        for p in (0, 1):
            a["sum"][p] = a["sum"][p] + y[parity == p].sum(0)
        a["spatial_var"] = a["spatial_var"] + y.flatten(2).var(2, unbiased=False).sum(0)
        a["n"] += y.shape[0]

    _layer_outputs(model, x, layers, batch_size, device, record)
    rows = []
    for name in layers:
        a = acc[name]
        n = a["n"]
        n_even, n_odd = (n + 1) // 2, n // 2
        mean = (a["sum"][0] + a["sum"][1]) / n
        half_diff = (a["sum"][0] / n_even - a["sum"][1] / max(n_odd, 1)) / 2
        denom = float((a["spatial_var"] / n).sum())
        num = float(mean.flatten(1).var(1, unbiased=False).sum())
        floor = float(half_diff.flatten(1).var(1, unbiased=False).sum())
        c, h, w = a["shape"]
        strength = num / denom if denom > 0 else float("nan")
        floor_ratio = floor / denom if denom > 0 else float("nan")
        rows.append({"layer": name, "strength": strength, "null_floor": floor_ratio,
                     "excess": strength - floor_ratio, "height": h, "width": w, "channels": c, "n_images": n})
    return pd.DataFrame(rows)


def _grid_features(model, x, layers, grid, batch_size, device) -> dict[str, torch.Tensor]:
    feats: dict[str, list] = {name: [] for name in layers}

    def record(name, out):
        feats[name].append(F.adaptive_avg_pool2d(out.detach().float(), grid).cpu())

    _layer_outputs(model, x, layers, batch_size, device, record)
    return {name: torch.cat(v).permute(0, 2, 3, 1) for name, v in feats.items()}  # (N, G, G, C)


def _ridge_fit_predict(xtr, ytr, xte, ridge):
    mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-8)
    a, b = (xtr - mu) / sd, (xte - mu) / sd
    ym = ytr.mean(0)
    gram = a.T @ a + ridge * a.shape[0] * torch.eye(a.shape[1], dtype=a.dtype)
    coef = torch.linalg.solve(gram, a.T @ (ytr - ym))
    return b @ coef + ym


def position_readout(model: nn.Module, images, layers: list[str] | None = None, grid: int = 8,
                     stationary: bool = True, seed: int = 0, ridge: float = 1e-3, batch_size: int = 64,
                     device="cpu") -> pd.DataFrame:
    """PosENet-style linear readout of each grid cell's normalised (x, y) from frozen features.

    Each layer's output is average-pooled to ``grid`` x ``grid``; a ridge regression (features
    standardised, penalty ``ridge`` per sample) maps a cell's feature vector to its coordinates in [0, 1].
    It is fitted on the first half of the (stationary) images and scored on the second half. Rows: one per
    layer and one for all layers concatenated ("all"), per target (x, y): ``r2`` and ``spearman``.
    """
    from scipy.stats import spearmanr

    check_type("model", model, nn.Module)
    layers = _default_layers(model, layers)
    x = stationary_images(images, seed) if stationary else _as_images(images)
    if len(x) < 4:
        raise ProbeDataError("the position readout needs at least 4 images (half to fit, half to score)")
    feats = _grid_features(model, x, layers, grid, batch_size, device)
    n = len(x)
    half = n // 2
    coords = torch.linspace(0, 1, grid, dtype=torch.float64)
    target = torch.stack([coords[None, :].expand(grid, grid), coords[:, None].expand(grid, grid)], -1)  # x, y
    target = target.reshape(1, grid * grid, 2)
    sets = {name: f for name, f in feats.items()}
    sets["all"] = torch.cat([feats[name] for name in layers], -1)
    rows = []
    for name, f in sets.items():
        f = f.double().reshape(n, grid * grid, -1)
        ytr = target.expand(half, -1, -1).reshape(-1, 2)
        yte = target.expand(n - half, -1, -1).reshape(-1, 2)
        pred = _ridge_fit_predict(f[:half].reshape(-1, f.shape[-1]), ytr, f[half:].reshape(-1, f.shape[-1]), ridge)
        for j, axis in enumerate(("x", "y")):
            resid = ((pred[:, j] - yte[:, j]) ** 2).sum()
            total = ((yte[:, j] - yte[:, j].mean()) ** 2).sum()
            rho = spearmanr(pred[:, j].numpy(), yte[:, j].numpy()).statistic
            rows.append({"layer": name, "target": axis, "r2": float(1 - resid / total),
                         "spearman": float(0.0 if np.isnan(rho) else rho), "features": f.shape[-1]})
    return pd.DataFrame(rows)


def place_on_canvas(patches: torch.Tensor, canvas_size: int, corner: str) -> torch.Tensor:
    """``patches`` (N, C, p, p) on a black ``canvas_size`` canvas at the 'top-left' or 'bottom-right'."""
    n, c, p, q = patches.shape
    if p > canvas_size or q > canvas_size:
        raise ProbeDataError(f"patches of {p}x{q} do not fit a {canvas_size} px canvas")
    out = patches.new_zeros(n, c, canvas_size, canvas_size)
    if corner == "top-left":
        out[:, :, :p, :q] = patches
    elif corner == "bottom-right":
        out[:, :, canvas_size - p:, canvas_size - q:] = patches
    else:
        raise PadlibError(f"corner must be 'top-left' or 'bottom-right', got '{corner}'")
    return out


def digit_patches(n: int, size: int = 16, seed: int = 0, split: str = "all") -> torch.Tensor:
    """``n`` real handwritten digits (scikit-learn) upscaled to ``size`` px, (n, 1, size, size) in [0, 1]."""
    from .training import _upscaled_digits

    digits, _, _ = _upscaled_digits(size)
    ids = np.arange(len(digits))
    pool = {"train": ids[ids % 5 != 0], "test": ids[ids % 5 == 0], "all": ids}[split]
    pick = np.random.default_rng(seed).choice(pool, n, replace=n > len(pool))
    return digits[torch.as_tensor(pick)].clone()


def border_patches(data, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, int]:
    """(patches, canvas size) for :func:`border_test` on ``data``: held-out handwritten digits at half the
    canvas for the digit canvases, else centre crops of half the image size from ``data``'s images."""
    x = _as_images(data)
    size = x.shape[-1]
    if str(getattr(data, "name", "")).startswith("digits"):
        return digit_patches(n, size // 2, seed=seed, split="test"), size
    h = size // 2
    start = (size - h) // 2
    return x[:n, :, start:start + h, start:start + h].clone(), size


def border_test(model: nn.Module, patches: torch.Tensor, canvas_size: int, layers: list[str] | None = None,
                seed: int = 0, batch_size: int = 64, device="cpu") -> pd.DataFrame:
    """F-Conv border test: can globally pooled features tell a top-left from a bottom-right placement?

    Patches are split in half (fit / score); every patch appears in both placements. Features: each
    layer's output, global-average-pooled, standardised; classifier: logistic regression. Rows per layer
    and for all layers concatenated ("all"): ``accuracy`` on the held-out patches (chance 0.5).
    """
    from sklearn.linear_model import LogisticRegression

    check_type("model", model, nn.Module)
    if not isinstance(patches, torch.Tensor) or patches.dim() != 4 or len(patches) < 4:
        raise ProbeDataError("patches must be a (N, C, p, p) tensor with at least 4 patches")
    layers = _default_layers(model, layers)
    half = len(patches) // 2
    x = torch.cat([place_on_canvas(patches, canvas_size, "top-left"),
                   place_on_canvas(patches, canvas_size, "bottom-right")])
    y = np.r_[np.zeros(len(patches)), np.ones(len(patches))]
    is_train = np.r_[np.arange(len(patches)) < half, np.arange(len(patches)) < half]
    pooled: dict[str, list] = {name: [] for name in layers}
    _layer_outputs(model, x, layers, batch_size, device,
                   lambda name, out: pooled[name].append(out.detach().double().mean((2, 3)).cpu()))
    feats = {name: torch.cat(v).numpy() for name, v in pooled.items()}
    feats["all"] = np.concatenate([feats[name] for name in layers], 1)
    rows = []
    for name, f in feats.items():
        mu, sd = f[is_train].mean(0), f[is_train].std(0) + 1e-8
        f = (f - mu) / sd
        clf = LogisticRegression(C=1.0, max_iter=2000)
        clf.fit(f[is_train], y[is_train])
        acc = float((clf.predict(f[~is_train]) == y[~is_train]).mean())
        rows.append({"layer": name, "accuracy": acc, "n_test": int((~is_train).sum()), "chance": 0.5})
    return pd.DataFrame(rows)


def ppp_measures(model: nn.Module, probe, patches: torch.Tensor, canvas_size: int, layers=None, seed: int = 0,
                 device="cpu") -> pd.DataFrame:
    """The three PPP measures of one model as rows (measure, value, detail):

    ``pattern_strength``: mean over layers of the excess position-pattern strength; ``readout_r2`` and
    ``readout_spearman``: the all-layer readout averaged over x and y; ``border_accuracy``: the all-layer
    border-test accuracy.
    """
    pps = position_pattern_strength(model, probe, layers, seed=seed, device=device)
    ro = position_readout(model, probe, layers, seed=seed, device=device)
    bt = border_test(model, patches, canvas_size, layers, seed=seed, device=device)
    allr = ro[ro.layer == "all"]
    return pd.DataFrame([
        {"measure": "pattern_strength", "value": float(pps["excess"].mean())},
        {"measure": "readout_r2", "value": float(allr["r2"].mean())},
        {"measure": "readout_spearman", "value": float(allr["spearman"].mean())},
        {"measure": "border_accuracy", "value": float(bt.loc[bt.layer == "all", "accuracy"].iloc[0])},
    ])


def ppp_over_runs(runs, probe, patches: torch.Tensor, canvas_size: int, seed: int = 0, device="cpu",
                  progress: bool = True) -> pd.DataFrame:
    """:func:`ppp_measures` for every run's network at initialisation and after training (tidy rows)."""
    from tqdm.auto import tqdm

    frames = []
    for r in tqdm(runs, desc="PPP measures", disable=not progress):
        for state, model in (("init", r.init_model), ("trained", r.model)):
            df = ppp_measures(model.to(device), probe, patches, canvas_size, seed=seed, device=device)
            df.insert(0, "state", state)
            df.insert(0, "seed", r.seed)
            df.insert(0, "scheme", r.scheme)
            frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _direction(d) -> tuple[float, float, float, str]:
    """(mean, 95% t-interval low, high, 'up'/'down'/'flat'/'unknown') of per-seed paired differences ``d``.

    Identical differences in every seed (e.g. a border test at 1.0 before and after) give a zero-width
    interval: the sign of the mean decides, and 0 means no change.
    """
    d = np.asarray(d, dtype=float)
    lo, hi = _t_interval(d)
    m = float(d.mean()) if len(d) else float("nan")
    if not np.isfinite(lo):
        return m, lo, hi, "unknown"
    if lo > 0 or (lo == hi and m > 0):
        return m, lo, hi, "up"
    if hi < 0 or (lo == hi and m < 0):
        return m, lo, hi, "down"
    return m, lo, hi, "flat"


def ppp_learning_verdict(ppp: pd.DataFrame, control: str = "circular") -> pd.DataFrame:
    """Is each PPP measure a learning artefact? One row per (measure, scheme) from :func:`ppp_over_runs`.

    Both questions are paired across seeds (same seed = same initial weights and batches for every scheme),
    and decided by the 95% t-interval of the per-seed differences, so the threshold is the seed-to-seed
    spread rather than a fixed number:

    * ``training``: trained - init of the scheme, minus the same change of the ``control`` at that seed (the
      control cannot form position from padding, so its change is what training does to the measure
      anyway): "rises" / "falls" / "no resolved change"; for the control itself, its raw change;
    * ``at_init``: the scheme's initial value - the ``control``'s (circular: no border, so no position
      from padding) at the same seed: "above control" means the padding alone puts it there before any
      learning.

    A measure is a learning artefact for a scheme when it rises with training; it is a property of the
    padding when it is above the control at initialisation. ``unknown`` with a single seed.
    """
    wide = ppp.pivot_table(index=["measure", "scheme", "seed"], columns="state", values="value")
    missing = {"init", "trained"} - set(wide.columns)
    if missing:
        raise PadlibError(f"ppp_learning_verdict needs both states; missing {', '.join(sorted(missing))}")
    schemes = list(dict.fromkeys(ppp["scheme"]))
    rows = []
    words = {"up": "rises", "down": "falls", "flat": "no resolved change", "unknown": "unknown (one seed)"}
    init_words = {"up": "above control", "down": "below control", "flat": "at control level",
                  "unknown": "unknown (one seed)"}
    for measure in dict.fromkeys(ppp["measure"]):
        w = wide.loc[measure]
        ctrl = w.loc[control, "init"] if control in w.index.get_level_values(0) else None
        for scheme in schemes:
            if scheme not in w.index.get_level_values(0):
                continue
            g = w.loc[scheme]
            change = g["trained"] - g["init"]
            if ctrl is not None and scheme != control:  # beyond the control's drift at the same seed
                change = change - (w.loc[control, "trained"] - ctrl)
            m, lo, hi, dirn = _direction(change.dropna())
            row = {"measure": measure, "scheme": scheme, "init": g["init"].mean(), "trained": g["trained"].mean(),
                   "change": m, "change_ci_low": lo, "change_ci_high": hi, "training": words[dirn]}
            if ctrl is not None and scheme != control:
                im, ilo, ihi, idir = _direction((g["init"] - ctrl).dropna())
                row.update(init_minus_control=im, at_init=init_words[idir])
            else:
                row.update(init_minus_control=np.nan, at_init="(control)" if scheme == control else "no control")
            row["n_seeds"] = len(g)
            rows.append(row)
    return pd.DataFrame(rows)


def ppp_findings(verdict: pd.DataFrame, control: str = "circular") -> list[str]:
    """Printed lines: per measure, which schemes rise / fall / do not change with training and which are
    already above the control at initialisation, and whether the PPP paper's claim ("forms during training
    whatever the padding") holds in this run: it would need the measure to rise for every scheme with a border.
    """
    lines = []
    for measure, g in verdict.groupby("measure", sort=False):
        bordered = g[g.scheme != control]
        lines.append(f"{measure}:")
        for _, r in g.iterrows():
            init_part = "" if r.scheme == control else f"; at init {r.at_init} ({r.init_minus_control:+.3f})"
            what = "change" if r.scheme == control else f"change beyond {control}'s"
            lines.append(f"  {r.scheme:15s} init {r.init:+.3f} -> trained {r.trained:+.3f}, {what} {r.change:+.3f} "
                         f"(95% CI {r.change_ci_low:+.3f} .. {r.change_ci_high:+.3f}): {r.training}{init_part}")
        rises = bordered[bordered.training == "rises"].scheme.tolist()
        falls = bordered[bordered.training == "falls"].scheme.tolist()
        at_init = bordered[bordered.at_init == "above control"].scheme.tolist()
        if (bordered.training.str.startswith("unknown")).any():
            claim = "cannot be decided with one seed"
        elif len(bordered) and len(rises) == len(bordered):
            claim = "SUPPORTED: it rises with training for every scheme with a border"
        else:
            claim = (f"NOT supported: it rises for {', '.join(rises) or 'no scheme'} of {len(bordered)} bordered "
                     f"schemes" + (f", falls for {', '.join(falls)}" if falls else ""))
        saturated = bordered[(bordered.init >= 1 - 1e-9) & (bordered.trained >= 1 - 1e-9)].scheme.tolist()
        risen = bordered[bordered.training == "rises"]
        if len(risen) and bordered.init_minus_control.notna().any():
            top, base = risen.loc[risen.change.idxmax()], bordered.loc[bordered.init_minus_control.idxmax()]
            lines.append(f"  -> size: the largest rise beyond the control is {top.change:+.3f} ({top.scheme}); the largest "
                         f"initial excess over the control, from the padding alone, is {base.init_minus_control:+.3f} "
                         f"({base.scheme})")
        lines.append(f"  -> above the {control} control already at initialisation: {', '.join(at_init) or 'none'}; "
                     f"'forms during training whatever the padding': {claim}")
        if saturated:
            lines.append(f"  -> at its maximum (1.0) before and after training for {', '.join(saturated)}: the measure "
                         "saturates there and cannot show a rise")
    return lines
