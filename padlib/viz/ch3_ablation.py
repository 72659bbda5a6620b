"""Chapter 3's figures: ablation against controls, KL against perturbation, interventions, movers."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..errors import PadlibError
from ..viz.common import _errorbar, _finish_panel_grid, _panel_grid, _plain_log_ticks
from ..viz.style import model_colour

_CONDITIONS = ("mean/all", "mean/border", "zero/all", "zero/border")


def ablation_vs_controls_plot(ablation, metric: str = "agreement"):
    """PAN ablation (red) next to each random control of equal size per layer (grey), per mode/region and
    model, with bootstrap intervals over images; two panels per row. Takes ``report_tables(...)['ablation']``."""
    t = ablation[ablation["metric"] == metric]
    models = list(dict.fromkeys(t["model"]))
    conds = [c for c in _CONDITIONS if c in set(t["mode"] + "/" + t["region"])]
    fig, axes = _panel_grid(len(models), row_height=2.6)
    for k, (ax, model) in enumerate(zip(axes, models)):
        tm = t[t["model"] == model]
        for i, cond in enumerate(conds):
            mode, region = cond.split("/")
            tc = tm[(tm["mode"] == mode) & (tm["region"] == region)]
            pan, ctrl = tc[tc["channels"] == "PANs"], tc[tc["channels"] == "random"].sort_values("control")
            _errorbar(ax, [i - 0.18], pan, color="tab:red", label="PANs ablated" if i == 0 else None)
            xs = i + 0.05 + 0.3 * (np.arange(len(ctrl)) / max(len(ctrl) - 1, 1))
            _errorbar(ax, xs, ctrl, color="0.55", label="random channels ablated (one per control)" if i == 0 else None)
        ax.set_xticks(range(len(conds)), conds if k >= len(models) - 2 else [], fontsize=8.5)
        ax.set_title(model, fontsize=9.5)
        ax.grid(axis="y", alpha=0.3)
        if k % 2 == 0:
            ax.set_ylabel(_METRIC_LABELS.get(metric, metric.replace("_", " ")), fontsize=9)
    return _finish_panel_grid(fig, axes, len(models), ncol=2, top=0.45)


_METRIC_LABELS = {"agreement": "agreement with intact model", "kl": "KL from intact model (nats)",
                  "perturbation": "ablation size (mean sq. change)", "top1_accuracy": "top-1 accuracy"}


def kl_vs_perturbation_plot(table, floor: float = 1e-4):
    """KL from the intact model against the size of the ablation where it acts (mean squared change of the
    ablated channels, interior-std units), one panel per model, one marker shape per mode/region; red: the
    PANs, grey: the random controls. A PAN point above the grey cloud at the same size means more disruption
    per unit of intervention. KL below ``floor`` is drawn at the floor (log axes). Takes
    ``report_tables(...)['ablation']``."""
    t = table.pivot_table(index=["model", "channels", "control", "mode", "region"], columns="metric",
                          values="value").reset_index()
    if "perturbation" not in t:

        raise PadlibError("the ablation table has no 'perturbation' metric (run ablation_report)")
    models = list(dict.fromkeys(t["model"]))
    markers = dict(zip(_CONDITIONS, "osD^"))
    fig, axes = _panel_grid(len(models), row_height=2.6)
    for k, (ax, model) in enumerate(zip(axes, models)):
        tm = t[t["model"] == model]
        for cond, marker in markers.items():
            mode, region = cond.split("/")
            tc = tm[(tm["mode"] == mode) & (tm["region"] == region)]
            for kind, colour in (("random", "0.55"), ("PANs", "tab:red")):
                tk = tc[tc["channels"] == kind]
                ax.scatter(tk["perturbation"], np.maximum(tk["kl"], floor), marker=marker, color=colour, s=24,
                           label=f"{kind} {cond}" if k == 0 else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        if k >= len(models) - 2:
            ax.set_xlabel("ablation size (mean squared change, std units)", fontsize=8.5)
        ax.set_title(model, fontsize=9.5)
        ax.grid(alpha=0.3)
        if k % 2 == 0:
            ax.set_ylabel("KL from intact model (nats)", fontsize=9)
    return _finish_panel_grid(fig, axes, len(models), ncol=4, top=0.6)


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
        v, lo, hi = (tm[c].to_numpy(dtype=float) for c in ("value", "ci_low", "ci_high"))
        ax.errorbar(v, y, xerr=np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)]), fmt="o",
                    capsize=2, markersize=4, label=model, color=model_colour(model, j))
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
    random channels ablated; one panel per model and shift, two per row. Takes ``report_tables(...)['border']``."""
    t = border[border["metric"] == metric]
    models = list(dict.fromkeys(t["model"]))
    shifts = sorted(t["shift"].unique())
    sides = ["top", "bottom", "left", "right"]
    groups = list(dict.fromkeys(t["channels"]))
    colours = {"intact": "tab:blue", "PANs ablated": "tab:red", "random ablated": "0.55"}
    panels = [(shift, model) for shift in shifts for model in models]
    fig, axes = _panel_grid(len(panels), row_height=2.5)
    for k, (ax, (shift, model)) in enumerate(zip(axes, panels)):
        tm = t[(t["model"] == model) & (t["shift"] == shift)]
        for j, g in enumerate(groups):
            rows = tm[tm["channels"] == g].set_index("side").reindex(sides).reset_index()
            _errorbar(ax, np.arange(4) + (j - (len(groups) - 1) / 2) * 0.2, rows, color=colours.get(g),
                      label=g if k == 0 else None)
        ax.set_xticks(range(4), [f"toward {s}" for s in sides] if k >= len(panels) - 2 else [], fontsize=8.5)
        ax.set_title(f"{model}, content moved {shift} px", fontsize=9.5)
        ax.grid(axis="y", alpha=0.3)
        if k % 2 == 0:
            ax.set_ylabel(_METRIC_LABELS.get(metric, metric.replace("_", " ")), fontsize=9)
    return _finish_panel_grid(fig, axes, len(panels), ncol=3, top=0.45)


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

