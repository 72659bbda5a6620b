"""Chapter 3's figures: ablation against controls, KL against perturbation, interventions, movers."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..errors import PadlibError
from ..viz.common import _errorbar, _finish_panel_grid, _panel_grid, _plain_log_ticks, message_figure
from ..viz.style import CONTROL, PAN_COLOUR, PRETRAINED, RANDOM_INIT, model_colour, scheme_colour

_CONDITIONS = ("mean/all", "mean/border", "zero/all", "zero/border")


def ablation_vs_controls_plot(ablation, metric: str = "agreement"):
    """PAN ablation (pink, PAN_COLOUR) next to each control matched on ablation size (light grey, CONTROL),
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
            pan, ctrl = tc[tc["channels"] == "PANs"], tc[tc["channels"] != "PANs"].sort_values("control")
            _errorbar(ax, [i - 0.18], pan, color=PAN_COLOUR, label="PANs ablated" if i == 0 else None)
            xs = i + 0.05 + 0.3 * (np.arange(len(ctrl)) / max(len(ctrl) - 1, 1))
            _errorbar(ax, xs, ctrl, color=CONTROL, label="size-matched channels ablated (one per control)" if i == 0 else None)
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
    PANs, light grey: the size-matched controls. A PAN point above the grey cloud at the same size means more disruption
    per unit of intervention. KL below ``floor`` is drawn at the floor (log axes). Takes
    ``report_tables(...)['ablation']``."""
    if table.empty or "metric" not in table:  # no PAN (and so no control) was ablated in any model
        return message_figure("No ablation to plot: no model had PANs to ablate.")
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
            for kind, colour in (("matched", CONTROL), ("PANs", PAN_COLOUR)):
                tk = tc[(tc["channels"] == "PANs") == (kind == "PANs")]
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


def intervention_plot(table, metric: str = "agreement", interventions=None, title: str = "", styles=None):
    """One metric per intervention (rows) and model (colours), with bootstrap intervals.
    Takes ``report_tables(...)['interventions']``. ``styles``: per value of the ``model`` column, the (colour,
    marker) to draw it with instead of the model's colour (rows that are not models, such as a map's regions)."""
    t = table[table["metric"] == metric]
    order = list(interventions) if interventions is not None else list(dict.fromkeys(t["intervention"]))
    t = t[t["intervention"].isin(order)]
    models = list(dict.fromkeys(t["model"]))
    fig, ax = plt.subplots(figsize=(6.5, 0.42 * len(order) + 1.2))
    for j, model in enumerate(models):
        tm = t[t["model"] == model].set_index("intervention").reindex(order).dropna(subset=["value"])
        y = np.array([order.index(i) for i in tm.index]) + (j - (len(models) - 1) / 2) * 0.16
        v, lo, hi = (tm[c].to_numpy(dtype=float) for c in ("value", "ci_low", "ci_high"))
        colour, marker = (styles or {}).get(model, (model_colour(model, j), "o"))
        ax.errorbar(v, y, xerr=np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)]), fmt=marker,
                    capsize=2, markersize=4, label=model, color=colour,
                    markerfacecolor="white" if marker == "s" else colour)
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
    size-matched channels ablated; one panel per model and shift, two per row. Takes ``report_tables(...)['border']``."""
    t = border[border["metric"] == metric]
    models = list(dict.fromkeys(t["model"]))
    shifts = sorted(t["shift"].unique())
    sides = ["top", "bottom", "left", "right"]
    groups = list(dict.fromkeys(t["channels"]))
    colours = {"intact": PRETRAINED, "PANs ablated": PAN_COLOUR, "matched ablated": CONTROL, "random ablated": CONTROL}
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
    """PAN ablations in PAN_COLOUR, controls in CONTROL, padding swaps in their scheme's colour, input
    sizes in PRETRAINED (the pretrained model, only its input changed)."""
    if family.startswith("PANs"):
        return PAN_COLOUR
    if family.startswith(("matched", "random")):
        return CONTROL
    if family.endswith(" padding"):
        return scheme_colour(family.split()[0])
    return PRETRAINED


def mover_consistency_plot(consistency):
    """Cross-model correlation of per-class probability shifts, per intervention family: one dot per model
    pair (controls pooled), the bar is the mean; PAN ablations pink, size-matched controls light grey, padding
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



def excess_plot(comparison, primary=("mean", "border"), primary_metric: str = "kl",
                secondary_metric: str = "kl_per_perturbation", sesoi: float | None = None):
    """PANs against their size-matched controls, per ablation (rows) and model (colours): the ratio PAN / mean of the
    controls with its paired 95% bootstrap interval, for KL (left: every ablation's box line reads it, markers
    filled) and KL per unit of perturbation (right: secondary, hollow), on a log axis (1: as disruptive as the
    controls). The primary ablation is the top row, labelled. ``sesoi``: the declared smallest relative excess of
    interest, a dashed line on the left panel. Takes ``report_tables(...)['comparison']``."""
    if len(comparison) and not {"metric", "excess"} <= set(comparison.columns):
        raise PadlibError("the comparison table has no PAN-vs-control excess (run ablation_report)")
    t = (comparison[comparison["metric"].isin([primary_metric, secondary_metric]) & comparison["excess"].notna()]
         if len(comparison) else comparison)
    if t.empty:  # no PAN had a size-matched control in any model (e.g. none was found): say so where the figure goes
        return message_figure("No PAN ablation to compare: no model had PANs with size-matched controls.")
    models = list(dict.fromkeys(t["model"]))
    conds = [c for c in _CONDITIONS if c in set(t["mode"] + "/" + t["region"])]
    key = "/".join(primary)
    conds = [c for c in conds if c == key] + [c for c in conds if c != key]
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 0.32 * len(conds) * max(len(models), 1) + 1.6), sharey=True)
    for ax, metric, title in zip(axes, (primary_metric, secondary_metric),
                                 ("KL (each row: a box line)", "KL per unit of perturbation (secondary)")):
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
                filled = metric == primary_metric
                ax.errorbar([v], [y], xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt="o", capsize=2, markersize=5,
                            color=colour, markerfacecolor=colour if filled else "white",
                            label=model if (i == 0 and metric == primary_metric) else None)
        ax.axvline(1, color="k", lw=0.7)
        if sesoi is not None and metric == primary_metric:
            ax.axvline(1 + sesoi, color="k", lw=0.7, ls="--", label=f"smallest effect of interest ({1 + sesoi:g}x)")
        ax.set_xscale("log")
        _plain_log_ticks(ax)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("PANs / size-matched controls (x)", fontsize=9.5)
        ax.tick_params(labelsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(conds)), [c.replace("/", "/\n") + ("\n(primary)" if c == key else "") for c in conds],
                       fontsize=9.5)
    axes[0].invert_yaxis()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.65 / fig.get_figheight()))
    return fig


def dose_plot(dose):
    """The top-k dose-response: KL from the intact model against k (the k PANs with the largest border score
    ablated, mean/border), the PANs in pink (PAN_COLOUR) with their 95% bootstrap interval over images, the mean of
    their nearest-size controls in light grey (CONTROL) with the controls' range; one panel per model, log axes.
    Takes ``report_tables(...)['dose']``."""
    t = dose[dose["metric"] == "kl"] if len(dose) else dose
    if t.empty:
        raise PadlibError("the dose table is empty (run ablation_report with PANs)")
    models = list(dict.fromkeys(t["model"]))
    fig, axes = _panel_grid(len(models), row_height=2.5)
    for n, (ax, model) in enumerate(zip(axes, models)):
        tm = t[t["model"] == model].sort_values("k")
        k = tm["pans_ablated"].to_numpy(dtype=float)
        ax.fill_between(k, np.maximum(tm["controls_min"], 1e-5), np.maximum(tm["controls_max"], 1e-5), color=CONTROL,
                        alpha=0.5, lw=0)
        ax.plot(k, np.maximum(tm["controls_mean"], 1e-5), "o-", color=CONTROL, markersize=4,
                label="size-matched controls (mean, range)" if n == 0 else None)
        # the PANs' interval from the paired difference's: PAN value, interval of PAN - mean of controls shifted back
        lo = np.maximum(tm["controls_mean"] + tm["diff_ci_low"], 1e-5)
        hi = np.maximum(tm["controls_mean"] + tm["diff_ci_high"], 1e-5)
        v = np.maximum(tm["pans"], 1e-5)
        ax.errorbar(k, v, yerr=[np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)], fmt="o-", color=PAN_COLOUR,
                    capsize=2, markersize=4, label="top-k PANs (95% interval)" if n == 0 else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_ticks(ax)
        ax.set_title(model, fontsize=9.5)
        ax.grid(alpha=0.3)
        if n >= len(models) - 2:
            ax.set_xlabel("PANs ablated (top k by border score)", fontsize=8.5)
        if n % 2 == 0:
            ax.set_ylabel("KL from intact model (nats)", fontsize=9)
    return _finish_panel_grid(fig, axes, len(models), ncol=2, top=0.45)


def readout_plot(table):
    """The border-distance readout per model: held-out R^2 of the PANs (pink, PAN_COLOUR), of the layer-and-count-
    matched channel sets (light grey, CONTROL; bar: their mean) and of the PANs' channels at random initialisation
    (mid grey, RANDOM_INIT). Takes :func:`padlib.chapters.ch3_ablation.readout_table`'s table."""
    if table is None or table.empty:
        raise PadlibError("the readout table is empty")
    models = list(table["model"])
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(models) + 1.3))
    bars = [("r2_pans", "PANs", PAN_COLOUR), ("r2_matched", "matched non-PAN channels", CONTROL),
            ("r2_init", "PAN channels at random init", RANDOM_INIT)]
    bars = [b for b in bars if b[0] in table]
    h = 0.8 / len(bars)
    for j, (col, label, colour) in enumerate(bars):
        y = np.arange(len(models)) + (j - (len(bars) - 1) / 2) * h
        ax.barh(y, table[col], height=h, color=colour, label=label, edgecolor="k", lw=0.3)
    ax.set_yticks(range(len(models)), models, fontsize=8.5)
    ax.invert_yaxis()
    ax.set_xlabel("held-out R² of the distance to the nearest border", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
