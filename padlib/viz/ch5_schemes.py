"""Chapter 5's figures: schemes' padding, accuracy and effects, PPP, cost against benefit, learning curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..position import PPP_CHANCE, PPP_UNITS
from ..viz.common import _finish_panel_grid, _panel_grid, _plain_log_ticks
from ..viz.style import _scheme_order, scheme_colour

# Line style and marker per scheme: circular (orange) and the Padding Module (vermilion) are close in colour,
# so every figure that draws schemes also tells them apart by line and marker.
SCHEME_LINES = {"zero": "-", "reflect": (0, (5, 1)), "replicate": "--", "circular": ":", "symmetric": (0, (1, 1)),
                "partial": "-.", "padding_module": "-"}
SCHEME_MARKERS = {"zero": "o", "reflect": "P", "replicate": "v", "circular": "s", "symmetric": "X", "partial": "D",
                  "padding_module": "^"}


def scheme_line(name: str) -> dict:
    """Matplotlib keywords for a scheme's line: its colour, line style and marker (:data:`SCHEME_LINES`,
    :data:`SCHEME_MARKERS`)."""
    return {"color": scheme_colour(name), "ls": SCHEME_LINES.get(name, "-"), "marker": SCHEME_MARKERS.get(name, "o")}


def padding_examples_figure(examples: dict, pad: int, title: str = "", channel: int = 0, size: float = 1.9):
    """One panel per scheme: the padded map (one channel), the original extent outlined in red.

    All panels share one colour scale (the unpadded map's range), so extrapolated values beyond it saturate.
    """
    from matplotlib.patches import Rectangle

    names = list(examples)
    fig, axes = plt.subplots(1, len(names), figsize=(size * len(names), size + 0.4), squeeze=False)
    first = next(iter(examples.values()))
    inner = first[channel][pad:-pad, pad:-pad] if pad else first[channel]
    lo, hi = float(inner.min()), float(inner.max())
    for ax, name in zip(axes[0], names):
        m = examples[name][channel].detach().cpu()
        ax.imshow(m.numpy(), cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
        h, w = m.shape
        ax.add_patch(Rectangle((pad - 0.5, pad - 0.5), w - 2 * pad, h - 2 * pad, fill=False, ec="red", lw=1))
        ax.set_title(name, fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


_EFFECT_LABELS = {"final": "final test accuracy", "auc": "area under the learning curve", "accuracy": "test accuracy"}


def scheme_effects_figure(per_seed: dict, paired: dict, baseline: str = "zero", claimed: dict | None = None):
    """One panel per measure (``per_seed`` and ``paired``: dicts measure -> table of
    :func:`padlib.experiments.training.accuracy_by_seed` layout / :func:`padlib.experiments.training.paired_comparison`,
    one table or several concatenated): every scheme's per-seed difference to the baseline (small faint dots in the
    scheme's colour) and the mean with its 95% interval (the scheme's colour and marker; a star when the
    Holm-adjusted p < 0.05 within its family). ``claimed``: measure -> {scheme: the paper's gain}, drawn as a
    short horizontal bar in the scheme's colour to the right of its interval."""
    claimed = dict(claimed or {})
    measures = list(paired)
    fig, axes = _panel_grid(len(measures), width=8.0, row_height=3.2)
    col = f"mean_diff_vs_{baseline}"
    for ax, m in zip(axes, measures):
        ps = per_seed[m]
        value = [c for c in ps.columns if c not in ("scheme", "seed")][0]
        wide = ps.pivot_table(index="seed", columns="scheme", values=value)
        table = paired[m].set_index("scheme")
        order = [s for s in _scheme_order(table.index)]
        ax.axhline(0, color="0.3", lw=0.8, zorder=1)
        for i, s in enumerate(order):
            d = (wide[s] - wide[baseline]).dropna()
            ax.scatter(i + np.linspace(-0.15, 0.15, len(d)), d, s=8, color=scheme_colour(s, i), alpha=0.35, lw=0,
                       zorder=2)
            r = table.loc[s]
            ax.errorbar([i], [r[col]], yerr=[[r[col] - r["ci_low"]], [r["ci_high"] - r[col]]]
                        if np.isfinite(r["ci_low"]) else None, fmt=SCHEME_MARKERS.get(s, "o"), ms=6,
                        color=scheme_colour(s, i), capsize=4, zorder=3)
            if "p_holm" in r and np.isfinite(r["p_holm"]) and r["p_holm"] < 0.05:
                ax.annotate("*", (i, r["ci_high"]), ha="center", va="bottom", fontsize=12)
            if s in claimed.get(m, {}):
                ax.scatter([i + 0.3], [claimed[m][s]], marker="_", s=140, linewidths=2.2, color=scheme_colour(s, i),
                           zorder=3)
        ax.set_xticks(range(len(order)), order, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(f"difference to {baseline} (same seed)")
        ax.set_title(_EFFECT_LABELS.get(m, m), fontsize=9)
    # the legend's keys in dark grey: every mark takes its scheme's colour (the axis names the scheme)
    from matplotlib.lines import Line2D

    keys = [Line2D([], [], ls="", marker="o", ms=3, color="0.3", alpha=0.5, label="one seed"),
            Line2D([], [], ls="-", marker="o", ms=5, color="0.3", label="mean, 95% interval")]
    if any(claimed.values()):
        keys.append(Line2D([], [], ls="", marker="_", ms=11, mew=2.2, color="0.3", label="the paper's gain"))
    for ax in axes[len(measures):]:
        ax.set_visible(False)
    fig.legend(handles=keys, loc="upper center", ncol=len(keys), frameon=False, fontsize=8.5)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig


def border_accuracy_figure(summary, group: str = "border_distance"):
    """Mean accuracy over seeds per scheme against the digit's distance to the border (binned; negative:
    cut by the border); error bars: std over seeds (schemes slightly offset so the bars do not overlap)."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    keys = sorted(dict.fromkeys(summary[group]), key=lambda g: getattr(g, "left", g))
    groups = [str(g) for g in keys]
    order = _scheme_order(summary["scheme"])
    for k, s in enumerate(order):
        d = summary[summary.scheme == s].copy()
        d["_x"] = [groups.index(str(g)) for g in d[group]]
        d = d.sort_values("_x")
        x = d["_x"].to_numpy() + (k - (len(order) - 1) / 2) * 0.06
        err = d["std"].to_numpy() if "std" in d and np.isfinite(d["std"]).any() else None
        ax.errorbar(x, d["mean"], yerr=err, ms=4, capsize=2, label=s, **scheme_line(s),
                    lw=2.2 if s in ("zero", "padding_module") else 1.2)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_xlabel("ink distance to the nearest border (pixels; negative: cut by the border)")
    ax.set_ylabel("test accuracy (mean ± std over seeds)")
    ax.legend(fontsize=8, ncol=len(order), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def ppp_figure(ppp):
    """One panel per PPP measure (two columns): value per scheme and seed at initialisation (open) and after
    training (filled), the measure's chance level dashed."""

    measures = list(dict.fromkeys(ppp["measure"]))
    order = _scheme_order(ppp["scheme"])
    fig, axes = _panel_grid(len(measures), width=8.0, row_height=2.8)
    for ax, meas in zip(axes, measures):
        d = ppp[ppp.measure == meas]
        for j, state in enumerate(("init", "trained")):
            for i, s in enumerate(order):
                v = d[(d.scheme == s) & (d.state == state)]["value"]
                x = i + (j - 0.5) * 0.3
                colour = scheme_colour(s, i)
                ax.scatter([x] * len(v), v, s=16, marker=SCHEME_MARKERS.get(s, "o"),
                           facecolors="none" if state == "init" else colour,
                           edgecolors=colour, label=("at initialisation" if state == "init" else "trained")
                           if i == 0 else None)
        ax.axhline(PPP_CHANCE.get(meas, 0.0), color="0.5", lw=0.8, ls="--",
                   label="chance / no position" if meas == measures[0] else None)
        ax.set_xticks(range(len(order)), order, rotation=25, ha="right", fontsize=8)
        ax.set_title(meas, fontsize=9)
        ax.set_ylabel(PPP_UNITS.get(meas, "value"))
    return _finish_panel_grid(fig, axes, len(measures), ncol=3)


def ppp_distance_figure(band_summary, chance: float = 0.5):
    """Side accuracy of the position readout against distance to the border (from
    :func:`padlib.experiments.ch5_schemes.ppp_band_summary`), one panel per state (initialisation, trained), a line per scheme
    (mean over seeds, shaded: ± std); 0.5 = no position information at that distance."""
    states = [s for s in ("init", "trained") if s in set(band_summary["state"])]
    fig, axes = _panel_grid(len(states), width=8.0, row_height=3.0)
    order = _scheme_order(band_summary["scheme"])
    for ax, state in zip(axes, states):
        for k, s in enumerate(order):
            d = band_summary[(band_summary.scheme == s) & (band_summary.state == state)].sort_values("distance_px")
            c = scheme_colour(s, k)
            ax.plot(d["distance_px"], d["mean"], lw=1.8, ms=3, label=s, **scheme_line(s))
            sd = d["std"].fillna(0)
            ax.fill_between(d["distance_px"], d["mean"] - sd, d["mean"] + sd, color=c, alpha=0.15, lw=0)
        ax.axhline(chance, color="0.4", ls="--", lw=0.8, label="chance (no position)")
        ax.set_ylim(0.4, 1.02)
        ax.set_xlabel("distance of the cell to the border (pixels)")
        ax.set_ylabel("cells on the correct side")
        ax.set_title("at initialisation" if state == "init" else "after training", fontsize=9)
    return _finish_panel_grid(fig, axes, len(states), ncol=4)


def cost_benefit_figure(table, baseline: str = "zero"):
    """What a scheme costs and what it buys (:func:`padlib.chapters.ch5_schemes.cost_benefit`): training-step time relative
    to the baseline (x) against the paired accuracy effect with its 95% interval (y)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    ax.axhline(0, color="0.3", lw=0.8)
    ax.axvline(1, color="0.6", lw=0.8, ls=":")
    for k, r in enumerate(table.itertuples()):
        ax.errorbar([r.step_ratio], [r.accuracy_effect], yerr=[[r.accuracy_effect - r.ci_low], [r.ci_high - r.accuracy_effect]],
                    fmt=SCHEME_MARKERS.get(r.scheme, "o"), ms=6, capsize=4, color=scheme_colour(r.scheme, k),
                    label=f"{r.scheme} ({r.n_seeds} seeds)" if hasattr(r, "n_seeds") else r.scheme)
    ax.set_xlabel(f"training-step time / {baseline} padding's")
    ax.set_ylabel(f"accuracy - {baseline} (95% interval)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def learning_curves_figure(curves, chance: float | None = None, ylabel: str = "held-out accuracy", ylim=None,
                           zoom_fraction: float | None = None):
    """Accuracy against training epochs, mean over seeds per scheme (thin lines: single seeds). With
    ``zoom_fraction``, a second panel shows the last ``zoom_fraction`` of training on its own scale, where a
    curve that still rises would show."""
    n = 2 if zoom_fraction else 1
    fig, axes = _panel_grid(n, ncols=n, width=8.0, row_height=3.2)
    last = curves["epoch"].max()
    for j, ax in enumerate(axes[:n]):
        d_all = curves if j == 0 else curves[curves.epoch >= (1 - zoom_fraction) * last]
        for k, s in enumerate(_scheme_order(curves["scheme"])):
            d = d_all[d_all.scheme == s]
            for _, g in d.groupby("seed"):
                ax.plot(g["epoch"], g["accuracy"], color=scheme_colour(s, k), lw=0.4, alpha=0.3)
            m = d.groupby("epoch")["accuracy"].mean()
            style = scheme_line(s)
            if not j:
                style.pop("marker")
            ax.plot(m.index, m.values, lw=2, label=s, ms=3, **style)
        if chance is not None and j == 0:
            ax.axhline(chance, color="0.4", ls="--", lw=0.8, label="chance")
        if ylim is not None and j == 0:
            ax.set_ylim(*ylim)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title("whole run" if j == 0 else f"last {zoom_fraction:.0%} of training", fontsize=9)
        if not zoom_fraction:
            ax.set_title("")
    return _finish_panel_grid(fig, axes, n, ncol=4)


def edge_error_figure(err):
    """Held-out error predicting each layer's outermost rows, relative to predicting 0, per predictor (the
    schemes' colours; log scale, 1 = no better than predicting 0)."""
    piv = err.pivot_table(index="layer", columns="predictor", values="relative_to_zero", sort=False)
    cols = [c for c in ("padding_module", "replicate", "reflect") if c in piv.columns]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(cols)
    for j, c in enumerate(cols):
        ax.bar(np.arange(len(piv)) + j * width, piv[c], width, label=c, color=scheme_colour(c, j))
    ax.axhline(1.0, color="0.4", ls="--", lw=0.8, label="zero (predicts 0)")
    ax.set_xticks(np.arange(len(piv)) + 0.4 - width / 2, piv.index, fontsize=8)
    ax.set_yscale("log")
    _plain_log_ticks(ax)
    ax.set_ylabel("edge-pixel MSE / mean square (log)")
    ax.set_xlabel("padded conv (index in the network; its input is padded)")
    ax.legend(fontsize=8, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return fig

