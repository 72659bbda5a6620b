"""Chapter 3's figures: ablation against controls, KL against perturbation, interventions, movers."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..errors import PadlibError
from ..viz.common import _errorbar, _finish_panel_grid, _panel_grid, _plain_log_ticks
from ..viz.style import CONTROL, PAN_COLOUR, PRETRAINED, model_colour, scheme_colour

_CONDITIONS = ("mean/all", "mean/border", "zero/all", "zero/border")


def ablation_vs_controls_plot(ablation, metric: str = "agreement"):
    """PAN ablation (pink, PAN_COLOUR) next to each random control of equal size per layer (light grey, CONTROL),
    per mode/region and model, with bootstrap intervals over images; two panels per row. Takes ``report_tables(...)['ablation']``."""
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
            _errorbar(ax, [i - 0.18], pan, color=PAN_COLOUR, label="PANs ablated" if i == 0 else None)
            xs = i + 0.05 + 0.3 * (np.arange(len(ctrl)) / max(len(ctrl) - 1, 1))
            _errorbar(ax, xs, ctrl, color=CONTROL, label="random channels ablated (one per control)" if i == 0 else None)
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
    ablated channels, interior-std units), one panel per model, one marker shape per mode/region; pink: the
    PANs, light grey: the random controls. A PAN point above the grey cloud at the same size means more disruption
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
            for kind, colour in (("random", CONTROL), ("PANs", PAN_COLOUR)):
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
    ax.set_xlabel(_METRIC_LABELS.get(metric, metric.replace("_", " ")))
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
    colours = {"intact": PRETRAINED, "PANs ablated": PAN_COLOUR, "random ablated": CONTROL}
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


def _family_colour(family: str) -> str:
    """PAN ablations in PAN_COLOUR, random controls in CONTROL, padding swaps in their scheme's colour, input
    sizes in PRETRAINED (the pretrained model, only its input changed)."""
    if family.startswith("PANs"):
        return PAN_COLOUR
    if family.startswith("random"):
        return CONTROL
    if family.endswith(" padding"):
        return scheme_colour(family.split()[0])
    return PRETRAINED


def mover_consistency_plot(consistency):
    """Cross-model correlation of per-class probability shifts, per intervention family: one dot per model
    pair (random controls pooled), the bar is the mean; PAN ablations pink, random controls light grey, padding
    swaps in their scheme's colour, input sizes near-black. Takes ``movers_across_models(...)[1]``."""
    fams = list(dict.fromkeys(consistency["family"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.38 * len(fams) + 1.2))
    for i, fam in enumerate(fams):
        v = consistency.loc[consistency["family"] == fam, "correlation"].dropna().to_numpy()
        colour = _family_colour(fam)
        ax.barh(i, v.mean() if len(v) else np.nan, color=colour, alpha=0.5, edgecolor=colour)
        jitter = (np.arange(len(v)) / max(len(v) - 1, 1) - 0.5) * 0.5
        ax.scatter(v, i + jitter, s=9, color=colour)
    ax.set_yticks(range(len(fams)), fams, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.6)
    ax.set_xlabel("correlation between two models' per-class probability shifts")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig



def excess_plot(comparison, primary=("mean", "border"), primary_metric: str = "kl_per_perturbation",
                sesoi: float | None = None):
    """PANs against their random controls, per ablation (rows) and model (colours): the ratio PAN / mean of the
    controls with its paired 95% bootstrap interval, for raw KL (left) and KL per unit of perturbation (right), on a
    log axis (1: as disruptive as random). The primary test's ablation is labelled, its markers filled; the others
    are hollow (secondary). ``sesoi``: the declared smallest relative excess of interest, drawn as a dashed line on
    the primary panel. Takes ``report_tables(...)['comparison']``."""
    if "excess" not in comparison:
        raise PadlibError("the comparison table has no PAN-vs-random excess (run ablation_report)")
    t = comparison[comparison["metric"].isin(["kl", primary_metric]) & comparison["excess"].notna()]
    if t.empty:
        raise PadlibError("the comparison table has no PAN-vs-random excess (run ablation_report)")
    models = list(dict.fromkeys(t["model"]))
    conds = [c for c in _CONDITIONS if c in set(t["mode"] + "/" + t["region"])]
    key = "/".join(primary)
    conds = [c for c in conds if c == key] + [c for c in conds if c != key]
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 0.32 * len(conds) * max(len(models), 1) + 1.6), sharey=True)
    for ax, metric, title in zip(axes, ("kl", primary_metric),
                                 ("raw KL (secondary)", "KL per unit of perturbation (primary row)")):
        tm = t[t["metric"] == metric]
        for j, model in enumerate(models):
            colour = model_colour(model, j)
            for i, cond in enumerate(conds):
                mode, region = cond.split("/")
                r = tm[(tm["model"] == model) & (tm["mode"] == mode) & (tm["region"] == region)]
                if r.empty:
                    continue
                v, lo, hi = (1 + float(r[c].iloc[0]) for c in ("excess", "excess_ci_low", "excess_ci_high"))
                y = i + (j - (len(models) - 1) / 2) * 0.8 / max(len(models), 1)
                filled = cond == key and metric == primary_metric
                ax.errorbar([v], [y], xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt="o", capsize=2, markersize=5,
                            color=colour, markerfacecolor=colour if filled else "white",
                            label=model if (i == 0 and metric == primary_metric) else None)
        ax.axvline(1, color="k", lw=0.7)
        if sesoi is not None and metric == primary_metric:
            ax.axvline(1 + sesoi, color="k", lw=0.7, ls="--", label=f"smallest effect of interest ({1 + sesoi:g}x)")
        ax.set_xscale("log")
        _plain_log_ticks(ax)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PANs / random controls (x)", fontsize=9.5)
        ax.tick_params(labelsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(conds)), [c.replace("/", "/\n") + ("\n(primary)" if c == key else "") for c in conds],
                       fontsize=9.5)
    axes[0].invert_yaxis()
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.65 / fig.get_figheight()))
    return fig

