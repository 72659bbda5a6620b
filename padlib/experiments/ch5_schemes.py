"""Chapter 5's design: the scheme comparison's derived tables (border split, position task, PPP over runs)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._hooks import conv_input
from ..errors import PadlibError
from ..experiments.training import accuracy_by_seed, accuracy_summary
from ..layers.padding_module import padding_modules
from ..layers.schemes import ALL_SCHEMES, padding_examples
from ..padding import padded_convs
from ..position import ppp_profile
from ..stats import interval_sign, t_interval


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

    have = dict(padding_modules(model))
    views = []
    for i, (name, _) in enumerate(padded_convs(model)):
        _, fmap = conv_input(model, image, i)
        pad = example_pad(fmap, max_pad)
        views.append({"layer": name, "channel": most_varied_channel(fmap), "pad": pad,
                      "examples": padding_examples(fmap, pad, schemes, have.get(name))})
    return views


def seed_plan(schemes, seeds, primary=(), baseline: str = "zero", n_other: int | None = None, epochs: float = 20,
              longer_seeds: int = 0, longer_factor: float = 2.0) -> list[tuple]:
    """The chapter's training plan, (scheme, seed, epochs) per run: the ``baseline`` and the ``primary`` schemes at
    every one of ``seeds`` (the primary tests' paired seeds), the other schemes at the first ``n_other`` of them
    (all when None), then every scheme at the first ``longer_seeds`` seeds trained ``longer_factor`` times as
    many epochs (the convergence check). Seeds are shared, so every scheme's seed s starts from the same weights."""
    seeds = list(seeds)
    if not seeds:
        raise PadlibError("seed_plan needs at least one seed")
    paired = {baseline, *primary}
    plan = [(s, seed, epochs) for seed in seeds for s in schemes
            if s in paired or n_other is None or seed in seeds[:n_other]]
    plan += [(s, seed, epochs * longer_factor) for seed in seeds[:longer_seeds] for s in schemes]
    return plan


def ppp_over_runs(runs, probe, cell: int = 4, seed: int = 0, device="cpu", progress: bool = True
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`ppp_profile` for every run's network at initialisation and after training: (measures, bands),
    tidy, with ``scheme, seed, state`` columns. The networks are fully convolutional, so ``probe`` may be
    larger than the canvases they were trained on (the far interior then cannot see any border)."""
    from tqdm.auto import tqdm

    measures, bands = [], []
    for r in tqdm(runs, desc="PPP measures", disable=not progress):
        for state, model in (("init", r.init_model), ("trained", r.model)):
            m, b = ppp_profile(model.to(device), probe, cell=cell, seed=seed, device=device)
            for df in (m, b):
                df.insert(0, "state", state)
                df.insert(0, "seed", r.seed)
                df.insert(0, "scheme", r.scheme)
            measures.append(m)
            bands.append(b)
    return pd.concat(measures, ignore_index=True), pd.concat(bands, ignore_index=True)


def ppp_at_ceiling(verdict: pd.DataFrame, control: str = "circular", ceilings: dict | None = None,
                   tol: float = 0.02) -> list[str]:
    """Measures at their ceiling (within ``tol``) before and after training for every scheme with a border:
    such a measure cannot show a rise and cannot tell schemes apart. ``ceilings``: measure -> maximum
    (default: 1 for ``border_side_accuracy``; a measure without a known maximum is never at its ceiling)."""
    ceilings = {"border_side_accuracy": 1.0, **dict(ceilings or {})}
    out = []
    for measure, g in verdict.groupby("measure", sort=False):
        top = ceilings.get(measure)
        bordered = g[g.scheme != control]
        if top is not None and len(bordered) and ((bordered.init >= top - tol) & (bordered.trained >= top - tol)).all():
            out.append(measure)
    return out


def ppp_band_summary(bands: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of ``side_accuracy`` per (scheme, state, distance_px), from :func:`ppp_over_runs`."""
    return (bands.groupby(["scheme", "state", "distance_px"], sort=False)["side_accuracy"]
            .agg(mean="mean", std="std", n_seeds="count").reset_index())


def border_split(predictions: pd.DataFrame, bins, by: str = "border_distance"):
    """Accuracy per seed in distance-to-border bins, its summary over seeds, and the per-seed accuracy of the
    first bin (the digits touching the border when ``bins`` starts [0, 1)): (by_bin, summary, touching)."""
    by_bin = accuracy_by_seed(predictions, by, bins=bins)
    by_bin = by_bin.sort_values(by, kind="stable").reset_index(drop=True)  # bins in order, schemes as given
    summary = accuracy_summary(by_bin, by)
    first = by_bin[by].cat.categories[0]
    return by_bin, summary, by_bin[by_bin[by] == first].drop(columns=by).reset_index(drop=True)


def border_table(summary: pd.DataFrame, group: str = "border_distance", schemes=None) -> pd.DataFrame:
    """Scheme x bin table of "mean ± std over seeds" (and the number of test digits is in the bin counts)."""
    s = summary.copy()
    s["cell"] = [f"{m:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{m:.3f}" for m, sd in zip(s["mean"], s["std"])]
    t = s.pivot_table(index="scheme", columns=group, values="cell", aggfunc="first", observed=True, sort=False)
    order = [x for x in (schemes or list(dict.fromkeys(s["scheme"]))) if x in t.index]
    return t.reindex(index=order, columns=pd.Index(t.columns).sort_values())


def border_concentration(predictions: pd.DataFrame, baseline: str = "zero", by: str = "border_distance",
                         near_max: float = 0, exclude=()) -> pd.DataFrame:
    """Is a scheme's gain over the baseline concentrated on digits at the border?

    Per seed: gain on the digits at the border (``by`` <= ``near_max``: touching it, or cut by it when the
    distance is negative) minus gain on the others, both paired with the baseline at that seed. Columns:
    overall, touching (at the border) and rest gains (means over seeds), ``touching_minus_rest`` with
    its 95% t-interval across seeds, and ``verdict`` (concentrated at the border only if the interval is
    above 0). Padding acts only at the border, so a padding effect should show there first. Schemes in
    ``exclude`` (a noise twin) are left out.
    """
    df = predictions.assign(touching=predictions[by] <= near_max)
    acc = df.groupby(["scheme", "seed", "touching"], sort=False)["correct"].mean().unstack("touching")
    overall = df.groupby(["scheme", "seed"], sort=False)["correct"].mean()
    if baseline not in acc.index.get_level_values("scheme"):
        raise PadlibError(f"baseline scheme '{baseline}' is not among the predictions")
    if True not in acc.columns or False not in acc.columns:
        raise PadlibError("border_concentration needs test digits both at the border and away from it")
    rows = []
    base, base_all = acc.xs(baseline, level="scheme"), overall.xs(baseline, level="scheme")
    for scheme in [s for s in dict.fromkeys(df["scheme"]) if s != baseline and s not in exclude]:
        a = acc.xs(scheme, level="scheme")
        g_touch, g_rest = (a[True] - base[True]).dropna(), (a[False] - base[False]).dropna()
        g_all = (overall.xs(scheme, level="scheme") - base_all).dropna()
        d = (g_touch - g_rest).dropna()
        lo, hi = t_interval(d)
        rows.append({"scheme": scheme, "gain_overall": g_all.mean(), "gain_touching": g_touch.mean(),
                     "gain_rest": g_rest.mean(), "touching_minus_rest": d.mean(), "ci_low": lo, "ci_high": hi,
                     "n_seeds": len(d),
                     "verdict": {1: "concentrated at the border", -1: "larger away from the border",
                                 0: "not concentrated at the border (border - rest straddles 0)"}[
                         int(interval_sign(lo, hi, d.mean()))]})
    return pd.DataFrame(rows)


