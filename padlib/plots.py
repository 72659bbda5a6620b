"""Plotting: figures for the chapters, kept apart from the computations that produce the DataFrames."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch


def image_grid(images, titles=None, ncols: int = 8, size: float = 1.6, cmap=None):
    """A grid of images: (3, H, W) tensors in [0, 1], (H, W) maps, or PIL images. Returns the figure."""
    images = list(images)
    n = len(images)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if titles else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, im in enumerate(images):
        ax = axes.flat[i]
        if isinstance(im, torch.Tensor):
            im = im.detach().cpu()
            im = im.permute(1, 2, 0).clamp(0, 1).numpy() if im.dim() == 3 else im.numpy()
        ax.imshow(im, cmap=cmap)
        if titles:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


def probe_grid(probe, k: int = 16, ncols: int = 8):
    """The first ``k`` probe images, titled with their source photo."""
    k = min(k, len(probe))
    titles = [probe.source_names[probe.crop_box(i)[0]][:14] for i in range(k)]
    return image_grid([probe.image01(i) for i in range(k)], titles, ncols=ncols)


def stem_kernel_grid(model, k: int = 16, title: str = ""):
    """The first ``k`` kernels of a model's first convolution, each rescaled to [0, 1] as a colour patch."""
    from torch import nn

    stem = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if stem is None:
        raise ValueError("the model has no Conv2d layer")
    w = stem.weight.detach().cpu()[:k]
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - lo) / (hi - lo).clamp_min(1e-12)
    if w.shape[1] != 3:
        w = w.mean(1)
    fig = image_grid(list(w), ncols=k, size=0.7)
    if title:
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
    return fig



# ---------------------------------------------------------------------------------------------------------
# Chapter 3 (performance ablation): plots for padlib.ablation tables (value, ci_low, ci_high per row)

import numpy as np  # noqa: E402  (chapter 3 section)

_CONDITIONS = ("mean/all", "mean/border", "zero/all", "zero/border")


def _errorbar(ax, x, rows, **kw):
    rows = rows.reset_index(drop=True)
    lo = (rows["value"] - rows["ci_low"]).clip(lower=0)
    hi = (rows["ci_high"] - rows["value"]).clip(lower=0)
    return ax.errorbar(x, rows["value"], yerr=[lo, hi], fmt="o", capsize=2, markersize=4, **kw)


def ablation_vs_controls_plot(ablation, metric: str = "agreement"):
    """PAN ablation (red) next to each random control of equal size per layer (grey), per mode/region and
    model, with bootstrap intervals over images. Takes ``report_tables(...)['ablation']``."""
    t = ablation[ablation["metric"] == metric]
    models = list(dict.fromkeys(t["model"]))
    conds = [c for c in _CONDITIONS if c in set(t["mode"] + "/" + t["region"])]
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.2), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        tm = t[t["model"] == model]
        for i, cond in enumerate(conds):
            mode, region = cond.split("/")
            tc = tm[(tm["mode"] == mode) & (tm["region"] == region)]
            pan, ctrl = tc[tc["channels"] == "PANs"], tc[tc["channels"] == "random"].sort_values("control")
            _errorbar(ax, [i - 0.18], pan, color="tab:red", label="PANs" if i == 0 else None)
            xs = i + 0.05 + 0.3 * (np.arange(len(ctrl)) / max(len(ctrl) - 1, 1))
            _errorbar(ax, xs, ctrl, color="0.55", label="random controls" if i == 0 else None)
        ax.set_xticks(range(len(conds)), conds, rotation=30, fontsize=8)
        ax.set_title(model, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(metric.replace("_", " "))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def intervention_plot(table, metric: str = "agreement", interventions=None, title: str = ""):
    """One metric per intervention (rows) and model (colours), with bootstrap intervals.
    Takes ``report_tables(...)['interventions']``."""
    t = table[table["metric"] == metric]
    order = list(interventions) if interventions is not None else list(dict.fromkeys(t["intervention"]))
    t = t[t["intervention"].isin(order)]
    models = list(dict.fromkeys(t["model"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(order) + 1.2))
    for j, model in enumerate(models):
        tm = t[t["model"] == model].set_index("intervention").reindex(order).dropna(subset=["value"])
        y = np.array([order.index(i) for i in tm.index]) + (j - (len(models) - 1) / 2) * 0.16
        lo = (tm["value"] - tm["ci_low"]).clip(lower=0)
        hi = (tm["ci_high"] - tm["value"]).clip(lower=0)
        ax.errorbar(tm["value"], y, xerr=[lo, hi], fmt="o", capsize=2, markersize=4, label=model)
    ax.set_yticks(range(len(order)), order, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(metric.replace("_", " "))
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def border_sensitivity_plot(border, metric: str = "agreement"):
    """Prediction stability per side when content moves toward that border: intact model, PANs ablated,
    random channels ablated; one panel per model (rows: shifts). Takes ``report_tables(...)['border']``."""
    t = border[border["metric"] == metric]
    models = list(dict.fromkeys(t["model"]))
    shifts = sorted(t["shift"].unique())
    sides = ["top", "bottom", "left", "right"]
    groups = list(dict.fromkeys(t["channels"]))
    colours = {"intact": "tab:blue", "PANs ablated": "tab:red", "random ablated": "0.55"}
    fig, axes = plt.subplots(len(shifts), len(models), figsize=(3.0 * len(models), 2.8 * len(shifts)),
                             squeeze=False, sharey=True)
    for r, shift in enumerate(shifts):
        for ax, model in zip(axes[r], models):
            tm = t[(t["model"] == model) & (t["shift"] == shift)]
            for j, g in enumerate(groups):
                rows = tm[tm["channels"] == g].set_index("side").reindex(sides).reset_index()
                _errorbar(ax, np.arange(4) + (j - (len(groups) - 1) / 2) * 0.2, rows, color=colours.get(g),
                          label=g if (r == 0 and ax is axes[0][0]) else None)
            ax.set_xticks(range(4), sides, fontsize=8)
            ax.set_title(f"{model}, shift {shift}px", fontsize=9)
            ax.grid(axis="y", alpha=0.3)
        axes[r][0].set_ylabel(metric.replace("_", " "))
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def mover_consistency_plot(consistency):
    """Cross-model correlation of per-class probability shifts, per intervention family: one dot per model
    pair (random controls pooled), the bar is the mean. Takes ``movers_across_models(...)[1]``."""
    fams = list(dict.fromkeys(consistency["family"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.38 * len(fams) + 1.2))
    for i, fam in enumerate(fams):
        v = consistency.loc[consistency["family"] == fam, "correlation"].dropna().to_numpy()
        colour = "0.6" if fam.startswith("random") else "tab:red" if fam.startswith("PANs") else "tab:blue"
        ax.barh(i, v.mean() if len(v) else np.nan, color=colour, alpha=0.35)
        jitter = (np.arange(len(v)) / max(len(v) - 1, 1) - 0.5) * 0.5
        ax.scatter(v, i + jitter, s=9, color=colour)
    ax.set_yticks(range(len(fams)), fams, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("correlation between two models' per-class probability shifts")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
