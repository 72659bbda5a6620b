"""Chapter 4's design: the zoo's units, the lean and kernel tests of pretrained models against their random-init
copies, the pretrained models' objects at every position, and the map summaries and kernel tests shared with the
trained detectors (:mod:`padlib.experiments.ch4_detection`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import PadlibError, check_type
from ..spatial_bias import spatial_bias_index
from ..stats import TTest, t_test, wilson_interval


def welch_test(a, b, level: float = 0.95) -> TTest:
    """Mean of ``a`` minus mean of ``b`` with Welch's ``level`` t-interval and two-sided p
    (``scipy.stats.ttest_ind(equal_var=False)``); NaNs dropped. ``n`` is Welch's degrees of freedom plus one (the
    sample size whose t quantiles the interval uses, for :func:`padlib.stats.detectable_effect`). Both samples
    without spread: the difference is known exactly (:mod:`padlib.stats`' zero-variance rule). Fewer than two
    values in either: NaN interval and p."""
    from scipy import stats as _scipy

    a, b = (np.asarray(v, dtype=float).ravel() for v in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n = min(len(a), len(b))
    if len(a) < 2 or len(b) < 2:
        d = float(a.mean() - b.mean()) if len(a) and len(b) else float("nan")
        return TTest(d, float("nan"), float("nan"), float("nan"), n)
    d = float(a.mean() - b.mean())
    if np.ptp(a) <= 1e-12 and np.ptp(b) <= 1e-12:
        return TTest(d, d, d, 1.0 if abs(d) <= 1e-12 else 0.0, n)
    res = _scipy.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(level)
    return TTest(d, float(ci.low), float(ci.high), float(res.pvalue), int(round(float(res.df))) + 1)


def beyond_reference(value: float, reference, level: float = 0.95) -> TTest:
    """One value (a pretrained network's) against the spread of a reference sample (its random-init copies, one
    value per seed): ``value - mean(reference)`` with the t-interval of a new draw from the reference,
    half-width t(n - 1) x sd x sqrt(1 + 1/n), and the p of that t statistic (n - 1 degrees of freedom). A small
    p says the value is unlike a random-init draw. Fewer than two reference values: NaN interval and p."""
    from scipy import stats as _scipy

    r = np.asarray(reference, dtype=float).ravel()
    r = r[np.isfinite(r)]
    n = len(r)
    if n < 2 or not np.isfinite(value):
        return TTest(float(value - r.mean()) if n else float("nan"), float("nan"), float("nan"), float("nan"), n)
    d = float(value - r.mean())
    se = float(r.std(ddof=1) * np.sqrt(1 + 1 / n))
    if se <= 1e-15:
        return TTest(d, d, d, 1.0 if abs(d) <= 1e-12 else 0.0, n)
    half = float(_scipy.t.ppf(0.5 + level / 2, n - 1)) * se
    p = float(2 * _scipy.t.sf(abs(d) / se, n - 1))
    return TTest(d, d - half, d + half, p, n)


_AXES = {"tb": ("top/bottom", "top_bottom", "top", "bottom"), "lr": ("left/right", "left_right", "left", "right")}


def split_leans(maps, axis: str, toward: str) -> np.ndarray:
    """Per split of a :class:`padlib.spatial_bias.FeatureMaps` (an image split of a pretrained model, a split of
    whole photographs with ``mean_feature_maps(groups=...)``, or one random-init seed): the mean over depths of its
    :func:`padlib.spatial_bias_index` on ``axis`` ("tb" or "lr"), signed so that > 0 leans toward side ``toward``
    (our formulation of the lean of a network's mean maps)."""
    if axis not in _AXES or toward not in _AXES[axis][2:]:
        raise PadlibError(f"axis must be 'tb' or 'lr' and toward one of its sides, got {axis!r}, {toward!r}")
    col, sign = _AXES[axis][1], (1.0 if toward == _AXES[axis][2] else -1.0)
    split = maps.split_maps
    layers = [l for l in maps.layers if l in split]
    if not layers:
        raise PadlibError("split_leans needs maps with splits (mean_feature_maps(splits=...) or random_init_maps)")
    out = []
    for k in range(split[layers[0]].shape[0]):
        index = spatial_bias_index({l: split[l][k] for l in layers})
        out.append(sign * float(np.nanmean(index[col].to_numpy(dtype=float))))
    return np.array(out)


def lean_tests(maps: dict, predicted: dict, trained_sizes: dict, even_sizes: dict, level: float = 0.95):
    """The lean test of section 3, one row per model axis whose training size reads more padding on one side.

    ``maps[(model, size, kind)]``: FeatureMaps with splits, ``kind`` "natural" (the pretrained model, image
    splits) or "random init" (one split per seed); ``predicted[model] = {"tb": side, "lr": side}``: the side that
    reads more padding at the training size. Per axis, the lean toward that side (:func:`split_leans`) of the
    pretrained model and of its random-init copies, at the training size and at the even size (t-intervals over
    splits or seeds), and the primary difference: pretrained minus random init at the training size (Welch).

    ``attrs["unit"]`` names the pretrained model's unit of the interval: "splits of whole photographs" when its
    maps were split by photograph (``mean_feature_maps(groups="source")``, FeatureMaps with ``split_groups``),
    else "image splits"; ``attrs["groups"]`` gives, per model, how many groups (photographs) its training-size
    splits hold (0 without groups)."""
    rows = []
    natural = [maps[key] for key in dict.fromkeys((m, s, "natural") for m in predicted
                                                  for s in (trained_sizes[m], even_sizes[m])) if key in maps]
    kinds = {getattr(fm, "group_kind", "") or "groups" for fm in natural if getattr(fm, "split_groups", None)}
    grouped = bool(natural) and all(getattr(fm, "split_groups", None) for fm in natural) and len(kinds) == 1
    unit = f"splits of whole {kinds.pop()}" if grouped else "image splits"
    groups = {}
    for model in predicted:
        fm = maps.get((model, trained_sizes[model], "natural"))
        groups[model] = int(getattr(fm, "n_groups", 0)) if fm is not None else 0
    for model, pred in predicted.items():
        for axis in ("tb", "lr"):
            side = pred.get(axis, "")
            if not side:
                continue
            row = {"model": model, "axis": _AXES[axis][0], "toward": side}
            vals = {}
            for which, size in (("train", trained_sizes[model]), ("even", even_sizes[model])):
                for kind, key in (("natural", "pre"), ("random init", "init")):
                    fm = maps.get((model, size, kind))
                    v = split_leans(fm, axis, side) if fm is not None else np.array([])
                    vals[(key, which)] = v
                    r = t_test(v, level)
                    row.update({f"{key}_{which}": r.mean, f"{key}_{which}_low": r.low,
                                f"{key}_{which}_high": r.high, f"{key}_{which}_n": r.n})
            d = welch_test(vals[("pre", "train")], vals[("init", "train")], level)
            row.update({"mean": d.mean, "ci_low": d.low, "ci_high": d.high, "p": d.p, "n": d.n})
            rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(level=level, trained_sizes=dict(trained_sizes), even_sizes=dict(even_sizes), unit=unit,
                     groups=groups)
    return out


def kernel_energy_tests(energy: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The pretrained kernel test of section 3, one row per model and axis, from
    :func:`padlib.kernels.row_energy_with_control`: over the stride-2 layers that read uneven padding, the mean
    energy share on the row (column) facing the side that reads more padding minus the one opposite (each layer
    signed by its own reads: > 0 = more energy toward the padding read more), for the pretrained model against its
    random-init copies (:func:`beyond_reference`, one value per seed)."""
    rows = []
    for model, g in energy.groupby("model", sort=False):
        g = g[g["reads"] != "even"]
        if g.empty:
            continue
        sign = np.where(g["reads"] == "top/left", 1.0, -1.0)
        for col, axis in (("energy_tb", "top/bottom"), ("energy_lr", "left/right")):
            s = g.assign(toward=sign * g[col].to_numpy(dtype=float))
            pre = float(s.loc[s.init == "pretrained", "toward"].mean())
            init = s[s.init == "random init"].groupby("seed")["toward"].mean().to_numpy()
            r = beyond_reference(pre, init, level)
            rows.append({"model": model, "axis": axis, "reads": g["reads"].mode().iloc[0],
                         "layers": int((g.init == "pretrained").sum()), "pretrained": pre,
                         "init_mean": float(init.mean()) if len(init) else float("nan"),
                         "init_min": float(init.min()) if len(init) else float("nan"),
                         "init_max": float(init.max()) if len(init) else float("nan"), "seeds": len(init),
                         "mean": r.mean, "ci_low": r.low, "ci_high": r.high, "p": r.p})
    out = pd.DataFrame(rows)
    out.attrs["level"] = level
    return out


def zoo_units(zoo: pd.DataFrame, level: float = 0.95) -> dict:
    """The zoo's uneven padding counted two ways: architectures (audited, uneven at the default size, Wilson
    interval) and families (timm modules; a family counts as uneven when most of its audited architectures are;
    Wilson interval over families, the independent unit: architectures of one family share their stem)."""
    ok = zoo[zoo["status"] == "ok"]
    uneven = ok["n_uneven"] > 0
    per_family = uneven.groupby(ok["family"]).mean()
    k_arch, n_arch = int(uneven.sum()), int(len(ok))
    k_fam, n_fam = int((per_family > 0.5).sum()), int(len(per_family))
    a_lo, a_hi = wilson_interval(k_arch, n_arch, level)
    f_lo, f_hi = wilson_interval(k_fam, n_fam, level)
    return {"architectures": n_arch, "uneven_architectures": k_arch, "arch_share": k_arch / max(n_arch, 1),
            "arch_low": a_lo, "arch_high": a_hi, "families": n_fam, "uneven_families": k_fam,
            "family_share": k_fam / max(n_fam, 1), "family_low": f_lo, "family_high": f_hi,
            "families_any_uneven": int((per_family > 0).sum()), "level": level,
            "max_distance": zoo.attrs.get("max_distance")}


EDGE = 1  # positions within this many grid steps of a border count as "at the border"


def _block_means(grid: np.ndarray, k: int = 3) -> np.ndarray:
    h, w = grid.shape
    return np.array([[grid[i:i + k, j:j + k].mean() for j in range(w - k + 1)] for i in range(h - k + 1)])


def _where(i: float, j: float, h: float, w: float) -> str:
    """A position in a grid of h x w block positions, named: top/middle/bottom and left/centre/right."""
    row = "top" if i < h / 3 else "bottom" if i >= 2 * h / 3 else "middle"
    col = "left" if j < w / 3 else "right" if j >= 2 * w / 3 else "centre"
    return "centre" if (row, col) == ("middle", "centre") else f"{row}-{col}".replace("middle-", "")


def map_summary(amap: pd.DataFrame, edge: int = EDGE, value: str = "accuracy") -> dict:
    """One map's summary (our formulation), accuracies in [0, 1]:

    ``mean``; ``border_deficit`` = mean accuracy at positions within ``edge`` grid steps of any border minus the
    interior mean (< 0: the frame is a blind zone); ``top_minus_bottom`` and ``left_minus_right``: the mean over
    the outermost ``edge`` rows (columns) of positions at one border minus the opposite one; ``worst_region``:
    where the 3x3 block of positions with the lowest mean lies, and ``worst_drop`` = mean - that block's mean.
    ``value``: the map's column (accuracy, or recall for a detector)."""
    g = amap.pivot(index="y", columns="x", values=value).to_numpy()
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


def energy_effects(energy: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The kernel test on matched networks: per scheme, the mean top-minus-bottom (left-minus-right) energy
    share of the stride-2 kernels (:func:`padlib.kernels.row_energy`) at the uneven size minus the even size,
    paired by seed, with a t-interval and its unadjusted p (the chapter's readings pick the primary tests and
    adjust them within their family). ``reads``: the side whose padding the stride-2 layers read more at the
    uneven size (PyTorch zero padding: top/left), so a kernel that moves energy away from it gives < 0 there."""
    sizes = sorted(energy["size"].unique())
    uneven = next((s for s in sizes if s % 2 == 0), sizes[0])
    even = next((s for s in sizes if s != uneven), sizes[-1])
    per = energy.groupby(["size", "scheme", "seed"])[["energy_tb", "energy_lr"]].mean().sort_index()
    at_uneven = energy.loc[(energy["size"] == uneven) & (energy["reads"] != "even"), "reads"] \
        if "reads" in energy else pd.Series([], dtype=object)
    reads = at_uneven.mode().iloc[0] if len(at_uneven) else ""
    rows = []
    for scheme in energy["scheme"].unique():
        for col in ("energy_tb", "energy_lr"):
            d = (per.loc[(uneven, scheme)][col] - per.loc[(even, scheme)][col]).dropna().to_numpy()
            mean, lo, hi, p, _ = t_test(d, level)
            rows.append({"scheme": scheme, "metric": col, "comparison": f"{uneven} - {even} px", "mean": mean,
                         "ci_low": lo, "ci_high": hi, "half_width": (hi - lo) / 2, "p": p,
                         "uneven_mean": float(per.loc[(uneven, scheme)][col].mean()),
                         "even_mean": float(per.loc[(even, scheme)][col].mean())})
    out = pd.DataFrame(rows)
    out.attrs.update(uneven=uneven, even=even, level=level, reads=reads, seeds=int(per.groupby(level=2).ngroups))
    return out


def cell_table(summary: pd.DataFrame, metrics=METRICS, level: float = 0.95) -> pd.DataFrame:
    """Per (size, scheme) and metric: the mean over seeds with its t-interval (is a border deficit there at all?)."""
    rows = []
    for (size, scheme), g in summary.groupby(["size", "scheme"], sort=False):
        for metric in metrics:
            mean, lo, hi, p, _ = t_test(g[metric].to_numpy(dtype=float), level)
            rows.append({"size": size, "scheme": scheme, "metric": metric, "mean": mean, "ci_low": lo, "ci_high": hi,
                         "p": p, "seeds": len(g)})
    return pd.DataFrame(rows)


def worst_regions(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (size, scheme): where the worst block of positions lies, counted over seeds."""
    return (summary.groupby(["size", "scheme"], sort=False)["worst_region"]
            .agg(lambda r: ", ".join(f"{k} {v}" for k, v in r.value_counts().items())).reset_index())


def mean_maps(maps: pd.DataFrame, value: str = "accuracy") -> dict:
    """Per (size, scheme): the map of ``value`` averaged over seeds, as a (y, x) DataFrame for plotting."""
    return {k: g.groupby(["y", "x"])[value].mean().unstack("x") for k, g in maps.groupby(["size", "scheme"],
                                                                                      sort=False)}



# ---------------------------------------------------------------------------------------------------------
# Objects at every position: the pretrained models at their own size, no intervention

# Candidate objects: one square crop (left, top, right, bottom) per photograph, each something an ImageNet classifier
# names when it fills the canvas. A model keeps only the objects it still recognises centred at the object size.
OBJECT_CROPS = {"cat": ("chelsea", (100, 0, 400, 300)), "espresso": ("coffee", (100, 0, 500, 400)),
                "dahlia": ("flower", (200, 30, 480, 310)), "helmet": ("astronaut", (300, 300, 512, 512)),
                "uniform": ("grace_hopper", (100, 0, 500, 400)), "palace": ("china", (0, 50, 320, 370)),
                "rocket": ("rocket", (270, 50, 470, 250))}
BAND_SIDES = ("top", "bottom", "left", "right")
_OPPOSITE = {"top": "bottom", "bottom": "top", "left": "right", "right": "left"}


def position_objects(n_objects: int, object_size: int, size: int, crops: dict | None = None) -> dict:
    """The first ``n_objects`` of ``crops`` (default :data:`OBJECT_CROPS`; a value is (photo, box) or a (3, h, w)
    image in [0, 1]): name -> (photo, the crop at ``object_size`` px, the crop filling the ``size``-px canvas), all
    (3, h, w) in [0, 1]."""
    from torchvision.transforms import functional as F

    from ..data import load_photo

    crops = OBJECT_CROPS if crops is None else crops
    if not 1 <= n_objects <= len(crops):
        raise PadlibError(f"n_objects must be 1 to {len(crops)} (the candidate crops), got {n_objects}")
    out = {}
    for name, spec in list(crops.items())[:n_objects]:
        if isinstance(spec, torch.Tensor):
            x = spec.detach().float().cpu()[None]
            resize = lambda s: torch.nn.functional.interpolate(  # noqa: E731
                x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
            out[name] = (name, resize(object_size), resize(size))
            continue
        photo, box = spec
        img = load_photo(photo).crop(box)
        out[name] = (photo, F.to_tensor(img.resize((object_size, object_size))), F.to_tensor(img.resize((size, size))))
    return out


def position_backgrounds(exclude, size: int, seed: int = 0, fraction: float = 0.5) -> dict:
    """One background per offline photograph not in ``exclude`` (the objects' photographs): a square crop of
    ``fraction`` of its shorter side at a seeded random place, resized to ``size``; in a seeded order. One crop per
    photograph, so that backgrounds are independent units."""
    from torchvision.transforms import functional as F

    from ..data import load_photo, offline_photo_names

    rng = np.random.default_rng([seed, 4224])
    names = [p for p in offline_photo_names() if p not in set(exclude)]
    out = {}
    for i in rng.permutation(len(names)):
        img = load_photo(names[i])
        w, h = img.size
        s = max(8, int(min(w, h) * fraction))
        left, top = int(rng.integers(0, w - s + 1)), int(rng.integers(0, h - s + 1))
        out[names[i]] = F.to_tensor(img.crop((left, top, left + s, top + s)).resize((size, size)))
    return out


@torch.no_grad()
def _probs(model, canvases01: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    from ..models import preprocessing

    prep = preprocessing(model)
    return torch.cat([model(prep.normalize(canvases01[s:s + batch_size]).to(device)).float().softmax(-1).cpu()
                      for s in range(0, len(canvases01), batch_size)])


def object_recognition(model: nn.Module, objects: dict, backgrounds: dict, size: int, min_prob: float = 0.1,
                       object_size: int | None = None, top_k: int = 1, batch_size: int = 32,
                       device="cpu") -> pd.DataFrame:
    """Which objects ``model`` recognises centred on which backgrounds. An object's target is the class the model
    gives the object filling the canvas (its class, to this model); on a background the object is recognised when,
    pasted at the centre, that class is among the model's ``top_k`` most probable classes (``rank`` 0 is the top-1)
    with probability at least ``min_prob``: the model sees the object there, not only the background.
    ``object_size`` (default: the objects' own size) resizes the objects first (a recognition check at another
    size)."""
    from .._hooks import eval_mode
    from ..blind_spot_maps import paste_centre
    from ..models import imagenet_classes

    names = list(objects)
    full = torch.stack([objects[o][2] for o in names])
    pasted = {}
    for o in names:
        x = objects[o][1]
        if object_size is not None and x.shape[-1] != object_size:  # from the full-canvas crop, antialiased
            x = torch.nn.functional.interpolate(objects[o][2][None], size=(object_size, object_size),
                                                mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)
        pasted[o] = x
    jobs = [(o, b) for o in names for b in backgrounds]
    with eval_mode(model):  # the model's own mode afterwards, as padlib's methods leave it
        targets = _probs(model, full, batch_size, device).argmax(1).tolist()
        p = _probs(model, torch.stack([paste_centre(pasted[o], backgrounds[b], size) for o, b in jobs]),
                   batch_size, device)
    classes = imagenet_classes() if p.shape[1] == 1000 else [str(i) for i in range(p.shape[1])]
    rows = []
    for (o, b), q in zip(jobs, p):
        t = targets[names.index(o)]
        top1, rank = int(q.argmax()), int((q > q[t]).sum())
        rows.append({"object": o, "photo": objects[o][0], "background": b, "object_size": int(pasted[o].shape[-1]),
                     "target": t, "target_name": classes[t], "centre_prob": float(q[t]), "rank": rank,
                     "top1": top1, "top1_name": classes[top1],
                     "recognised": rank < top_k and float(q[t]) >= min_prob})
    return pd.DataFrame(rows)


def background_maps(table: pd.DataFrame) -> pd.DataFrame:
    """Objects as a fixed factor inside each background: per (background, row, col), the mean ``change`` over the
    objects recognised on that background (``n_objects``: how many)."""
    return (table.groupby(["background", "row", "col"], sort=False)
            .agg(change=("change", "mean"), n_objects=("object", "nunique")).reset_index())


def position_bands(table: pd.DataFrame, n_positions: int, band: int = 1) -> pd.DataFrame:
    """Per background: the mean change (objects averaged first, :func:`background_maps`) in each side's band and in
    the interior (:func:`padlib.position_summary`'s bands: corners in no side)."""
    from ..position_sensitivity import band_masks

    m = background_maps(table)
    masks = band_masks(m["row"].to_numpy(), m["col"].to_numpy(), n_positions, band)
    rows = []
    for bg, idx in m.groupby("background", sort=False).groups.items():
        row = {"background": bg, "n_objects": int(m.loc[idx, "n_objects"].max())}
        for k, mask in masks.items():
            sel = m.loc[idx][mask[idx]]
            row[k] = float(sel["change"].mean()) if len(sel) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def position_tests(bands: pd.DataFrame, reads: dict, level: float = 0.95) -> pd.DataFrame:
    """The two tests of one model's bands (:func:`position_bands`), t-tests over backgrounds (unadjusted p; the
    chapter's readings adjust within each claim's family):

    - ``border``: per background, the mean of the four side bands minus the interior (< 0: the object is
      recognised less near the border);
    - ``padding side``: per background, the band on the side that reads more padding minus the opposite band,
      averaged over the axes on which one side reads more (``reads``: {"tb": "top"/"bottom"/"", "lr": ...});
      < 0: less on that side. NaN when no axis reads more on one side."""
    border = bands[list(BAND_SIDES)].mean(axis=1) - bands["interior"]
    sides = [s for s in (reads.get("tb"), reads.get("lr")) if s]
    padding = (sum(bands[s] - bands[_OPPOSITE[s]] for s in sides) / len(sides)) if sides else \
        pd.Series(np.nan, index=bands.index)
    rows = []
    for test, v in (("border", border), ("padding side", padding)):
        r = t_test(v.to_numpy(dtype=float), level)
        rows.append({"test": test, "sides": "four sides" if test == "border" else "/".join(sides),
                     "mean": r.mean, "ci_low": r.low, "ci_high": r.high, "p": r.p, "n": r.n})
    return pd.DataFrame(rows)


def _object_averaged(table: pd.DataFrame, n_positions: int, size: int) -> pd.DataFrame:
    """The table with objects averaged inside each background, as :func:`padlib.position_summary` reads it."""
    m = background_maps(table).assign(object="mean over objects")
    m.attrs.update(n_positions=n_positions, size=size, response="logprob")
    return m


@dataclass
class PositionStudy:
    """What :func:`pretrained_position_study` produced (tidy tables; ``variant`` is 'model' or 'control')."""

    recognition: pd.DataFrame  # model, object, photo, background, object_size, target(_name), centre_prob, recognised
    table: pd.DataFrame        # model, variant + padlib.position_sensitivity's rows (recognised pairs only)
    bands: pd.DataFrame        # model, variant, background, top, bottom, left, right, interior, n_objects
    summary: pd.DataFrame      # model, variant + padlib.position_summary of the object-averaged table
    tests: pd.DataFrame        # model, variant, test ('border', 'padding side'), sides, mean, ci_low, ci_high, p, n
    maps: pd.DataFrame         # model, variant, row, col, change (mean over backgrounds), n
    controls: dict             # model -> {"side": planted side, "width": px, "factor": ...}
    reads: dict                # model -> {"tb": side, "lr": side}: the sides that read more padding (audit)
    settings: dict
    seconds: dict


def pretrained_position_study(models: dict, n_objects: int = 4, n_backgrounds: int = 8, object_size: int = 64,
                              size: int = 224, n_positions: int = 7, seed: int = 0, min_prob: float = 0.05,
                              top_k: int = 5,
                              band: int = 1, background_fraction: float = 0.5, control_factor: float = 0.3,
                              check_sizes=(), batch_size: int = 32, crops: dict | None = None,
                              backgrounds: dict | None = None, device="cpu", progress: bool = True) -> PositionStudy:
    """Mind the Pad's blind spots tested on pretrained classifiers as they are used (no intervention): objects
    pasted at every position of an ``n_positions`` x ``n_positions`` grid (:func:`padlib.position_sensitivity`,
    log-probability of the object's class against the same object centred on the same background).

    **Objects**: the first ``n_objects`` crops of :data:`OBJECT_CROPS` (square crops of the offline photographs),
    resized to ``object_size`` px (64 px is 29% of a 224-px canvas side, 8% of its area). **Backgrounds**: one crop
    per other photograph (:func:`position_backgrounds`; ``backgrounds``: your own, name -> (3, size, size)).
    **Recognition** (:func:`object_recognition`): an (object, background) pair enters when the model, with the
    object centred on that background, ranks the object's own class (the class it gives the object filling the
    canvas) among its ``top_k`` classes with probability >= ``min_prob``; that class is the target. (Top-1 alone
    keeps almost no pair for EfficientNet-Lite0 on these photographs; top-5 is ImageNet's other recognition
    criterion, and 0.05 is 50 times chance.) Per model the first
    ``n_backgrounds`` backgrounds (in their seeded order) on which at least one object is recognised are kept.

    **Units**: backgrounds are the independent units: the positions of one background share its pixels, and the
    few objects (a handful of chosen crops, not a sample of objects) are a fixed factor, averaged inside each
    background over the objects recognised on it (:func:`background_maps`). So every interval is a t-interval over
    backgrounds, and a conclusion reaches other backgrounds for these objects, not other objects.

    **Positive control**: the same model with the input band of one object height along the side that reads more
    padding on the vertical axis (:func:`padlib.spatial_bias.predicted_lean` of its padding audit at ``size``:
    top for PyTorch padding, bottom for TF 'SAME') multiplied by ``control_factor``
    (:func:`padlib.experiments.planted.attenuated_band`), on the same pairs and targets; the pipeline must find
    that side weak and no other (the readings apply :func:`padlib.blind_sides`).

    ``check_sizes``: other object sizes at which recognition alone is measured (for example the chapter's small-
    object size), in ``recognition``."""
    import time

    from ..audit import padding_audit
    from ..position_sensitivity import position_sensitivity, position_summary
    from ..spatial_bias import predicted_lean
    from .planted import attenuated_band

    check_type("models", models, dict)
    if n_backgrounds < 2:
        raise PadlibError("n_backgrounds must be at least 2 (the intervals are over backgrounds)")
    objects = position_objects(n_objects, object_size, size, crops)
    bgs = backgrounds if backgrounds is not None else position_backgrounds(
        {photo for photo, _, _ in objects.values()}, size, seed, background_fraction)
    rec, tables, bands, summaries, tests, controls, reads, seconds = [], [], [], [], [], {}, {}, {}
    for name, model in models.items():
        t0 = time.perf_counter()
        r = object_recognition(model, objects, bgs, size, min_prob, None, top_k, batch_size, device)
        for s in check_sizes:
            r = pd.concat([r, object_recognition(model, objects, bgs, size, min_prob, int(s), top_k, batch_size,
                                                 device)], ignore_index=True)
        rec.append(r.assign(model=name))
        ok = r[r["recognised"] & (r["object_size"] == object_size)]
        kept = list(dict.fromkeys(ok["background"]))[:n_backgrounds]
        ok = ok[ok["background"].isin(kept)]
        lean = predicted_lean(padding_audit(model, size))
        reads[name] = {"tb": lean["lean_tb"], "lr": lean["lean_lr"]}
        side = reads[name]["tb"] or reads[name]["lr"] or "top"
        controls[name] = {"side": side, "width": object_size, "factor": control_factor}
        variants = {"model": model, "control": attenuated_band(model, side, object_size, control_factor)}
        for variant, m in variants.items():
            parts = []
            for obj, g in ok.groupby("object", sort=False):
                t = position_sensitivity(m, {obj: objects[obj][1]}, {b: bgs[b] for b in g["background"]},
                                         target=int(g["target"].iloc[0]), size=size, n_positions=n_positions,
                                         batch_size=batch_size, device=device,
                                         progress=f"{name} {variant} {obj}" if progress else False)
                parts.append(t)
            if not parts:
                continue
            table = pd.concat(parts, ignore_index=True)
            tables.append(table.assign(model=name, variant=variant))
            b = position_bands(table, n_positions, band)
            bands.append(b.assign(model=name, variant=variant))
            s = position_summary(_object_averaged(table, n_positions, size), band=band)
            summaries.append(s.assign(model=name, variant=variant))
            tests.append(position_tests(b, reads[name]).assign(model=name, variant=variant,
                                                               n_objects=int(ok["object"].nunique()),
                                                               n_pairs=len(ok)))
        seconds[name] = time.perf_counter() - t0
    first = ["model", "variant"]

    def cat(parts, columns=()):
        if not parts:
            return pd.DataFrame(columns=first + list(columns))
        d = pd.concat(parts, ignore_index=True)
        return d[first + [c for c in d.columns if c not in first]]

    table = cat(tables, ["background", "row", "col", "change"])
    maps = (table.groupby(first + ["background", "row", "col"], sort=False)["change"].mean().reset_index()
            .groupby(first + ["row", "col"], sort=False)["change"].agg(["mean", "size"]).reset_index()
            .rename(columns={"mean": "change", "size": "n"})) if len(table) else \
        pd.DataFrame(columns=first + ["row", "col", "change", "n"])
    recognition = pd.concat(rec, ignore_index=True) if rec else pd.DataFrame()
    if len(recognition):
        recognition = recognition[["model"] + [c for c in recognition.columns if c != "model"]]
    settings = dict(n_objects=n_objects, objects=list(objects), n_backgrounds=n_backgrounds,
                    background_candidates=list(bgs), object_size=object_size, size=size,
                    side_share=object_size / size, area_share=(object_size / size) ** 2, n_positions=n_positions,
                    seed=seed, min_prob=min_prob, top_k=top_k, band=band, control_factor=control_factor,
                    check_sizes=[int(s) for s in check_sizes], models=list(models))
    return PositionStudy(recognition, table, cat(bands, ["background"]), cat(summaries, ["side"]),
                         cat(tests, ["test", "mean", "ci_low", "ci_high", "p", "n"]), maps, controls, reads,
                         settings, seconds)
