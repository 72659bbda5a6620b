"""Position information from padding (PPP): measures in our formulation (Lin et al., ICML 2023 released no code).

The PPP paper's own metrics are not public; the book uses these, each validated on a planted case (a hand-set
network whose features encode the distance to the border) and on a control where padding cannot carry
position (circular padding on spatially stationary inputs):

* :func:`position_pattern_strength`: on a probe made spatially stationary (every image circularly
  shifted by a random offset and randomly flipped), the spatial variance of the mean feature map over
  images divided by the mean spatial variance of individual feature maps, per layer. Zero under perfect
  translation equivariance; sampling noise alone gives about ``null_floor`` (reported), so the excess
  over it is the position pattern.
* :func:`position_readout`: PosENet-style, a linear (ridge) readout on frozen features, resized to a
  common grid and concatenated over layers, predicting each cell's normalised x and y coordinate;
  fitted on half of the stationary probe images, scored on the other half by R^2 and Spearman.
* :func:`readout_by_distance`: the same readout on a fine grid (``cell`` pixels), scored per band of
  distance to the border: the share of cells whose predicted coordinate lies on the correct side of the
  centre (chance exactly 1/2, whatever the readout's offset). It shows whether position information lives
  at the border or spreads inward; on a canvas several receptive fields wide the far interior is a
  built-in control. Summaries: ``border_side_accuracy`` (the outermost band) and ``position_depth_px``
  (cell x the summed excess over chance of all bands: how many pixels of border carry position).
* :func:`border_test`: the F-Conv border test, a patch placed at the top-left or the bottom-right of a
  black canvas, a logistic regression on globally average-pooled features telling which. It saturates (1.0
  for any network with a border, trained or not), so chapter 5 no longer uses it.

:func:`ppp_profile` computes the pattern strength and the distance-resolved readout in one pass;
:func:`ppp_measures` returns its tidy summary rows and :func:`ppp_over_runs` runs it on trained networks
at initialisation and after training.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ._compat import moved_names
from ._hooks import eval_mode, forward_hooks, iter_batches, keeps_model, model_device, model_dtype
from .errors import PadlibError, ProbeDataError, check_type
from .padding import require_padded_convs
from .stats import spearman


def _as_images(images) -> torch.Tensor:
    x = getattr(images, "images", images)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise ProbeDataError("images must be a (N, C, H, W) tensor or an ImageSet")
    return x


def _default_layers(model: nn.Module, layers) -> list[str]:

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
    with eval_mode(model):
        with torch.no_grad(), forward_hooks(model, layers, lambda name, m, i, o: fn(name, o)):
            for s in range(0, len(x), batch_size):
                model(x[s:s + batch_size].to(device))


class _PatternSums:
    """Streaming sums for :func:`position_pattern_strength`: per layer the sum of maps (even and odd images
    apart, for the sampling-noise floor) and the summed spatial variance of single maps."""

    def __init__(self):
        self.acc: dict[str, dict] = {}

    def record(self, name, out):
        y = out.detach().double()
        a = self.acc.setdefault(name, {"sum": [0.0, 0.0], "spatial_var": 0.0, "n": 0, "shape": y.shape[1:]})
        parity = (torch.arange(a["n"], a["n"] + y.shape[0]) % 2).to(y.device)
        for p in (0, 1):
            a["sum"][p] = a["sum"][p] + y[parity == p].sum(0)
        a["spatial_var"] = a["spatial_var"] + y.flatten(2).var(2, unbiased=False).sum(0)
        a["n"] += y.shape[0]

    def table(self, layers) -> pd.DataFrame:
        rows = []
        for name in layers:
            a = self.acc[name]
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


@keeps_model
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
    sums = _PatternSums()
    _layer_outputs(model, x, layers, batch_size, device, sums.record)
    return sums.table(layers)


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


@keeps_model
def position_readout(model: nn.Module, images, layers: list[str] | None = None, grid: int = 8,
                     stationary: bool = True, seed: int = 0, ridge: float = 1e-3, batch_size: int = 64,
                     device="cpu") -> pd.DataFrame:
    """PosENet-style linear readout of each grid cell's normalised (x, y) from frozen features.

    Each layer's output is average-pooled to ``grid`` x ``grid``; a ridge regression (features
    standardised, penalty ``ridge`` per sample) maps a cell's feature vector to its coordinates in [0, 1].
    It is fitted on the first half of the (stationary) images and scored on the second half. Rows: one per
    layer and one for all layers concatenated ("all"), per target (x, y): ``r2`` and ``spearman``.
    """
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
            rho = spearman(pred[:, j].numpy(), yte[:, j].numpy())
            rows.append({"layer": name, "target": axis, "r2": float(1 - resid / total),
                         "spearman": float(0.0 if np.isnan(rho) else rho), "features": f.shape[-1]})
    return pd.DataFrame(rows)


def _grid_collector(layers, grid):
    """(record function, features dict) collecting each layer's output average-pooled to ``grid`` x ``grid``."""
    feats: dict[str, list] = {name: [] for name in layers}

    def record(name, out):
        feats[name].append(F.adaptive_avg_pool2d(out.detach().float(), grid).cpu())

    return record, feats


def _check_distance_probe(x: torch.Tensor, cell: int) -> int:
    check_type("cell", cell, int)
    n, _, h, w = x.shape
    if h != w:
        raise ProbeDataError(f"the distance-resolved readout needs square images, got {h}x{w}")
    if cell < 1 or h % cell or h // cell < 4:
        raise ProbeDataError(f"cell must divide the image side into at least 4 cells, got cell {cell} on {h} px")
    if n < 4:
        raise ProbeDataError("the position readout needs at least 4 images (half to fit, half to score)")
    return h // cell


def _distance_readout(feats: torch.Tensor, cell: int, ridge: float) -> tuple[float, pd.DataFrame]:
    """Fit the (x, y) ridge readout on the first half of ``feats`` (N, G, G, C) and score the second half:
    (overall R^2 over both axes, one row per band of distance to the border)."""
    n, g = feats.shape[0], feats.shape[1]
    half = n // 2
    k = torch.arange(g, dtype=torch.float64) / (g - 1)
    target = torch.stack([k[None, :].expand(g, g), k[:, None].expand(g, g)], -1)  # (G, G, 2): x, y
    f = feats.double()
    pred = _ridge_fit_predict(f[:half].reshape(-1, f.shape[-1]), target.expand(half, -1, -1, -1).reshape(-1, 2),
                              f[half:].reshape(-1, f.shape[-1]), ridge).reshape(n - half, g, g, 2)
    truth = target.expand(n - half, -1, -1, -1)
    r2 = [float(1 - ((pred[..., j] - truth[..., j]) ** 2).sum() / ((truth[..., j] - 0.5) ** 2).sum())
          for j in (0, 1)]
    said, true = torch.sign(pred - 0.5), torch.sign(truth - 0.5)
    side_ok = torch.where(said == 0, 0.5, (said == true).double())  # (N, G, G, 2); a tie counts half
    idx = torch.arange(g)
    band = torch.minimum(idx, g - 1 - idx)
    rows = []
    for b in range(g // 2):
        cols = band == b
        ok = torch.cat([side_ok[:, :, cols, 0].flatten(), side_ok[:, cols, :, 1].flatten()])
        rows.append({"band": b, "distance_px": b * cell, "side_accuracy": float(ok.mean()),
                     "n_cells": int(ok.numel())})
    return float(np.mean(r2)), pd.DataFrame(rows)


@keeps_model
def readout_by_distance(model: nn.Module, images, layers: list[str] | None = None, cell: int = 4,
                        stationary: bool = True, seed: int = 0, ridge: float = 1e-3, batch_size: int = 32,
                        device="cpu") -> pd.DataFrame:
    """Where does position information live? A linear readout of position, scored by distance to the border.

    Every layer's output is average-pooled to cells of ``cell`` pixels and the layers are concatenated; a
    ridge regression (features standardised) maps a cell's features to its normalised (x, y), fitted on the
    first half of the (stationary) images and scored on the second half. A cell's band is its distance to
    the nearer of the two borders along an axis, in cells; per band, ``side_accuracy`` is the share of
    (cell, axis) pairs whose predicted coordinate lies on the correct side of the centre: 1/2 exactly for a
    readout that knows nothing (any constant prediction), 1 when every cell at that distance knows which
    border it is near. One row per band: ``band, distance_px`` (the band's distance to the border in pixels),
    ``side_accuracy, n_cells``; ``attrs``: ``r2`` (the same readout's R^2 over all cells, both axes), ``cell``,
    ``size``.
    """
    check_type("model", model, nn.Module)
    layers = _default_layers(model, layers)
    x = stationary_images(images, seed) if stationary else _as_images(images)
    g = _check_distance_probe(x, cell)
    record, feats = _grid_collector(layers, g)
    _layer_outputs(model, x, layers, batch_size, device, record)
    r2, bands = _distance_readout(torch.cat([torch.cat(feats[name]) for name in layers], 1).permute(0, 2, 3, 1),
                                  cell, ridge)
    bands.attrs.update(r2=r2, cell=cell, size=x.shape[-1])
    return bands


@keeps_model
def receptive_field_px(model: nn.Module, size: int = 64, layer: str | None = None, channels: int = 1) -> int:
    """Width in pixels of the input region that can change the centre of ``layer``'s output (default: the last
    padded conv), measured by autograd on a ``size`` px input (model in eval mode): a feature further than about
    half of it from the border cannot see the border at all."""
    layer = layer or _default_layers(model, None)[-1]
    x = torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0), requires_grad=True)
    seen = {}
    with eval_mode(model):
        with forward_hooks(model, [layer], lambda name, m, i, o: seen.update(out=o)):
            model(x)
        out = seen["out"]
        # the gradient of the input only: backward() would also fill the model's own .grad
        grad, = torch.autograd.grad(out[0, :, out.shape[-2] // 2, out.shape[-1] // 2].sum(), x)
    cols = torch.nonzero(grad[0].abs().sum((0, 1)) > 0).flatten()
    return int(cols.max() - cols.min() + 1) if len(cols) else 0


def position_depth_px(bands: pd.DataFrame) -> float:
    """How many pixels of border carry position: cell x the summed excess of ``side_accuracy`` over chance,
    2 * (accuracy - 1/2), over the bands of :func:`readout_by_distance` (0 without position information; half
    the canvas side if every cell knew its side)."""
    cell = bands.attrs.get("cell", int(bands["distance_px"].diff().dropna().iloc[0]) if len(bands) > 1 else 1)
    return float(cell * (2 * bands["side_accuracy"] - 1).sum())


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


@keeps_model
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


PPP_MEASURES = ("pattern_strength", "readout_r2", "border_side_accuracy", "position_depth_px")
PPP_CHANCE = {"pattern_strength": 0.0, "readout_r2": 0.0, "border_side_accuracy": 0.5, "position_depth_px": 0.0}
PPP_UNITS = {"pattern_strength": "excess variance ratio", "readout_r2": "R^2",
             "border_side_accuracy": "share of cells", "position_depth_px": "pixels"}


@keeps_model
def ppp_profile(model: nn.Module, probe, layers=None, cell: int = 4, seed: int = 0, ridge: float = 1e-3,
                batch_size: int = 32, device="cpu") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The PPP measures of one model from one pass over the stationary ``probe``: (measures, bands).

    ``measures``, one row each (``measure, value``): ``pattern_strength`` (mean over layers of the excess of
    :func:`position_pattern_strength`), ``readout_r2`` (the distance readout's R^2 over all cells, x and y
    averaged: PosENet-style), ``border_side_accuracy`` (its outermost band) and ``position_depth_px``
    (:func:`position_depth_px`). ``bands``: the rows of :func:`readout_by_distance`.
    """
    check_type("model", model, nn.Module)
    layers = _default_layers(model, layers)
    x = stationary_images(probe, seed)
    g = _check_distance_probe(x, cell)
    sums = _PatternSums()
    record, feats = _grid_collector(layers, g)

    def both(name, out):
        sums.record(name, out)
        record(name, out)

    _layer_outputs(model, x, layers, batch_size, device, both)
    pattern = sums.table(layers)
    r2, bands = _distance_readout(torch.cat([torch.cat(feats[name]) for name in layers], 1).permute(0, 2, 3, 1),
                                  cell, ridge)
    bands.attrs.update(r2=r2, cell=cell, size=x.shape[-1])
    measures = pd.DataFrame([
        {"measure": "pattern_strength", "value": float(pattern["excess"].mean())},
        {"measure": "readout_r2", "value": r2},
        {"measure": "border_side_accuracy", "value": float(bands["side_accuracy"].iloc[0])},
        {"measure": "position_depth_px", "value": position_depth_px(bands)},
    ])
    return measures, bands


@keeps_model
def ppp_measures(model: nn.Module, probe, layers=None, cell: int = 4, seed: int = 0, device="cpu") -> pd.DataFrame:
    """The PPP measures of one model as rows (``measure, value``): see :func:`ppp_profile`."""
    return ppp_profile(model, probe, layers, cell, seed, device=device)[0]



# Names that lived here before padlib 0.2 keep working for one release (each old path warns once).


# ---------------------------------------------------------------------------------------------------------
# Distance to the nearest border, decoded from chosen channels (chapter 3: do PANs carry it?)


def border_distance(hw: tuple[int, int]) -> torch.Tensor:
    """(H, W) distance of each position of a map to its nearest border, in positions (0 on the outermost ring),
    divided by the largest distance on the map (1 at the centre)."""
    h, w = int(hw[0]), int(hw[1])
    i = torch.arange(h, dtype=torch.float64).view(-1, 1)
    j = torch.arange(w, dtype=torch.float64).view(1, -1)
    d = torch.minimum(torch.minimum(i, h - 1 - i), torch.minimum(j, w - 1 - j))
    return d / d.max().clamp_min(1.0)


def _group_folds(groups: np.ndarray, folds: int) -> list[np.ndarray]:
    """Each image's fold: whole groups (photographs) assigned round-robin, largest first (deterministic)."""
    names, counts = np.unique(groups, return_counts=True)
    order = names[np.lexsort((names, -counts))]
    fold_of = {g: k % folds for k, g in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


@keeps_model
@torch.no_grad()
def border_distance_readout(model: nn.Module, images, sets: dict, groups=None, positions: int = 128,
                            folds: int = 5, ridge: float = 1e-2, batch_size: int = 8, seed: int = 0,
                            device=None) -> pd.DataFrame:
    """How well chosen channels tell how close each position of their feature map is to the nearest border.

    ``sets``: ``{name: channels}`` (``{layer: [channels]}`` or anything :func:`padlib.interventions.channel_selection`
    accepts is normalised by the caller; here a dict ``{layer: [channel, ...]}``). Per layer, the layer's output
    (for a ``find_pans`` layer: the conv output, an affine map away from the pre-activation, which the
    standardised readout does not see) is read at up to ``positions`` fixed positions of its map (all when fewer;
    otherwise a seeded uniform sample, the same for every image), and a ridge regression (features standardised,
    penalty ``ridge`` per sample) maps a position's responses in the set's channels of that layer to its
    distance to the nearest border (:func:`border_distance`, 0 at the border, 1 at the centre). Cross-validated
    with ``folds`` folds that keep each group of images (``groups``: e.g. the source photograph of each crop;
    default: each image its own group) on one side, so no photograph is both fitted and scored. Returns one row
    per set, layer and image: the held-out squared error ``sse`` and the squared deviation of the target from the
    training folds' mean ``sst`` (R^2 = 1 - sum(sse) / sum(sst) over any rows), with ``group`` and ``channels``.
    """
    check_type("sets", sets, dict)
    layers = sorted({layer for sel in sets.values() for layer in sel})
    if not layers:
        raise PadlibError("border_distance_readout needs at least one channel in one set")
    union = {layer: sorted({int(c) for sel in sets.values() for c in sel.get(layer, [])}) for layer in layers}
    device = device if device is not None else model_device(model)
    rng = np.random.default_rng(seed)
    picks, feats = {}, {layer: [] for layer in layers}

    def record(name, module, inputs, output):
        h, w = output.shape[-2:]
        if name not in picks:
            flat = np.arange(h * w) if h * w <= positions else np.sort(rng.choice(h * w, positions, replace=False))
            picks[name] = (torch.as_tensor(flat), (h, w))
        flat, _ = picks[name]
        chosen = output[:, union[name]].flatten(2)[..., flat.to(output.device)]
        feats[name].append(chosen.float().cpu())  # (N, channels, positions)

    with eval_mode(model), forward_hooks(model, layers, record):
        for batch in iter_batches(images, batch_size, device, False, model_dtype(model)):
            model(batch)
    n = sum(len(f) for f in feats[layers[0]])
    groups = np.arange(n) if groups is None else np.asarray(groups)
    if len(groups) != n:
        raise PadlibError(f"{len(groups)} groups for {n} images")
    n_folds = min(int(folds), len(np.unique(groups)))
    if n_folds < 2:
        raise PadlibError("border_distance_readout needs images from at least two groups (photographs)")
    fold = _group_folds(groups, n_folds)
    frames = []
    for layer in layers:
        x_all = torch.cat(feats[layer]).permute(0, 2, 1)  # (N, P, U)
        flat, hw = picks[layer]
        target = border_distance(hw).flatten()[flat].float()  # (P,)
        members = {name: [union[layer].index(int(c)) for c in sel.get(layer, [])] for name, sel in sets.items()}
        members = {name: idx for name, idx in members.items() if idx}
        for k in range(n_folds):
            test, train = fold == k, fold != k
            xtr = x_all[torch.as_tensor(train)].reshape(-1, x_all.shape[-1])
            ytr = target.repeat(int(train.sum()))
            # every set's readout from one standardised Gram matrix of the layer's channels (its sub-block)
            mu, sd = xtr.mean(0), xtr.std(0).clamp_min(1e-8)
            a = (xtr - mu) / sd
            b = (x_all[torch.as_tensor(test)] - mu) / sd  # (n_test, P, U)
            ym = ytr.mean()
            gram, rhs = (a.T @ a).double(), (a.T @ (ytr - ym)).double()
            sst = float((target - ym).square().sum())
            images = np.flatnonzero(test)
            for name, idx in members.items():
                ix = torch.as_tensor(idx)
                g = gram[ix][:, ix] + ridge * a.shape[0] * torch.eye(len(idx), dtype=gram.dtype)
                pred = b[..., ix].double() @ torch.linalg.solve(g, rhs[ix]) + ym  # (n_test, P)
                sse = (pred - target.double()).square().sum(1).numpy()
                frames.append(pd.DataFrame({"set": name, "layer": layer, "image": images, "group": groups[images],
                                            "channels": len(idx), "sse": sse, "sst": sst}))
    return pd.concat(frames, ignore_index=True)


__getattr__ = moved_names(__name__)
