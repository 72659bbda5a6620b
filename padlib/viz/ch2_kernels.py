"""Chapter 2's figures: stem kernels, detector agreement, kernel gallery, type shares, asymmetry."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..viz.common import _finish_panel_grid, _panel_grid, figure_png
from ..viz.style import _SIDE_NAMES, PRETRAINED, RANDOM_INIT, colour_name

# One colour per PAN type in this chapter (Okabe-Ito; no grey, which the book keeps for random init and controls)
TYPE_COLOURS = {"side": "#0072B2", "corner": "#E69F00", "opposite": "#56B4E9", "frame": "#009E73",
                "edge": "#D55E00", "silenced": "#F0E442"}
# Stride-2 layers shaded by the padding they read (evenly padded ones hatched, not filled)
READS_COLOURS = {"top/left": "#E69F00", "bottom/right": "#009E73", "even": "#56B4E9"}


def model_label(name: str) -> str:
    """A model's name as the chapter's figures print it beside a row (EfficientNet-Lite shortened to effnet-)."""
    return str(name).replace("tf_efficientnet_", "effnet-")


def layer_label(name: str, max_chars: int = 20) -> str:
    """A layer's name short enough for a panel title, cut only between whole dot-separated components: the
    last components are kept (they say which conv of the block), the dropped leading ones become an ellipsis."""
    name = str(name)
    if len(name) <= max_chars:
        return name
    parts = name.split(".")
    while len(parts) > 1 and len("\u2026" + ".".join(parts)) > max_chars:
        parts = parts[1:]
    kept = ".".join(parts)
    return name if kept == name else "\u2026" + kept


def reads_caption() -> str:
    """The words for the stride-2 shading of :func:`asymmetry_plot`, from the colours it uses."""
    return (f"shaded: stride 2, {colour_name(READS_COLOURS['top/left'])} reads top/left padding, "
            f"{colour_name(READS_COLOURS['bottom/right'])} bottom/right, hatched {colour_name(READS_COLOURS['even'])}"
            " pads evenly")


def stem_kernels_figure(models: dict, k: int = 8):
    """The first ``k`` stem kernels of each model, one row per model (named on the left), each kernel rescaled
    to [0, 1] as a colour patch large enough to see its 3x3 taps at the site's width."""
    from torch import nn

    fig, axes = plt.subplots(len(models), k, figsize=(8.0, 1.0 * len(models) + 0.2), squeeze=False)
    for row, (name, model) in zip(axes, models.items()):
        stem = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        if stem is None:
            raise ValueError(f"{name} has no Conv2d layer")
        w = stem.weight.detach().cpu()[:k]
        lo, hi = w.amin(dim=(1, 2, 3), keepdim=True), w.amax(dim=(1, 2, 3), keepdim=True)
        w = (w - lo) / (hi - lo).clamp_min(1e-12)
        for j, ax in enumerate(row):
            if j < len(w):
                img = w[j].permute(1, 2, 0).numpy() if w.shape[1] == 3 else w[j].mean(0).numpy()
                ax.imshow(img, cmap=None if w.shape[1] == 3 else "gray", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(model_label(name), fontsize=8.5, rotation=0, ha="right",
                          va="center")
    fig.tight_layout(w_pad=0.3, h_pad=0.3)
    return fig


def detector_scatter(merged, x_prefix: str = "zp_", y_prefix: str = "effect_", tau=None, max_points: int = 4000,
                     seed: int = 0):
    """Predicted vs measured border shift per side (columns), one row per model, coloured by relative depth.

    ``merged``: :func:`padlib.kernel_types.merge_detectors` tables concatenated with a ``model`` column. Only
    sides the layer reads are drawn; the diagonal is perfect agreement, dotted lines mark +-tau.
    """

    models = list(dict.fromkeys(merged["model"])) if "model" in merged else [""]
    fig, axes = plt.subplots(len(models), 4, figsize=(8, 1.9 * len(models) + 0.6), squeeze=False,
                             layout="constrained")
    rng = np.random.default_rng(seed)
    for i, name in enumerate(models):
        g = merged[merged["model"] == name] if name else merged
        t = tau if tau is not None else g.attrs.get("tau", g["tau"].iloc[0] if "tau" in g else None)
        for j, side in enumerate(_SIDE_NAMES):
            ax = axes[i, j]
            s = g[g[f"reads_{side}"].astype(bool)] if f"reads_{side}" in g else g
            if len(s) > max_points:
                s = s.iloc[np.sort(rng.choice(len(s), max_points, replace=False))]
            x, y = s[f"{x_prefix}{side}"].to_numpy(float), s[f"{y_prefix}{side}"].to_numpy(float)
            sc = ax.scatter(x, y, c=s["rel_depth"], cmap="viridis", s=4, alpha=0.6, vmin=0, vmax=1)
            if len(s):
                lim = np.nanpercentile(np.abs(np.r_[x, y]), 99.5) * 1.1 + 1e-9
                ax.plot([-lim, lim], [-lim, lim], color="k", lw=0.6)
                ax.set_xlim(-lim, lim)
                ax.set_ylim(-lim, lim)
            if t is not None:
                for v in (-t, t):
                    ax.axhline(v, color="k", ls=":", lw=0.5)
                    ax.axvline(v, color="k", ls=":", lw=0.5)
            if i == 0:
                ax.set_title(f"{side} side", fontsize=9)
            ax.tick_params(labelsize=8)
            ax.xaxis.set_major_locator(plt.MaxNLocator(3, integer=True))
            ax.yaxis.set_major_locator(plt.MaxNLocator(3, integer=True))
            if j == 0:
                ax.set_ylabel((f"{model_label(name)}\n" if name else "") + f"measured ({y_prefix.rstrip('_')})",
                              fontsize=8.5)
            if i == len(models) - 1:
                ax.set_xlabel(f"predicted ({x_prefix.rstrip('_')})", fontsize=8.5)
    fig.colorbar(sc, ax=axes, shrink=0.6, label="relative depth")
    return fig


def disagreement_plot(layers):
    """Per model, the three gaps of :func:`padlib.kernel_types.disagreement_by_layer` and the recall, by depth; two
    panels per row, the legend above them."""
    models = list(dict.fromkeys(layers["model"])) if "model" in layers else [""]
    fig, axes = _panel_grid(len(models), row_height=2.6)
    gaps = (("gap_estimate", "-o", "#0072b2"), ("gap_position", "-s", "#e69f00"), ("gap_inherited", "-^", "#009e73"))
    for k, (ax, name) in enumerate(zip(axes, models)):
        g = layers[layers["model"] == name] if name else layers
        for col, style, colour in gaps:
            ax.plot(g["depth"], g[col], style, ms=3, lw=1, color=colour, label=f"{col[4:]} gap")
        ax2 = ax.twinx()
        ax2.plot(g["depth"], g["recall"], "k:", lw=1.2)
        ax.plot([], [], "k:", lw=1.2, label="recall of the data-free detector (right axis)")
        ax2.set_ylim(0, 1.05)
        ax2.tick_params(labelsize=8)
        for d in g.loc[g["stride"].astype(str) != "1", "depth"]:
            ax.axvspan(d - 0.4, d + 0.4, color="0.9", zorder=0)
        ax.set_title(name, fontsize=9.5)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        if k >= len(models) - 2:
            ax.set_xlabel("padded layer, in order of depth (shaded: stride 2)", fontsize=8.5)
        if k % 2 == 0:
            ax.set_ylabel("mean |gap| (interior std)", fontsize=9)
        else:
            ax2.set_ylabel("recall", fontsize=9)
    return _finish_panel_grid(fig, axes, len(models), ncol=2, top=0.7)


def kernel_gallery(entries, title: str = ""):
    """One row per (PAN, non-PAN control) pair of the same layer: spatial kernel, mean pre-activation map and
    border profile of each, the layer named once above the row (whole, not cut).

    ``entries``: :func:`padlib.kernel_types.gallery_entries` (PAN entries each followed by its control). The
    kernel is the spatial kernel summed over input channels times the sign of the following BatchNorm's
    gamma (red positive, blue negative, symmetric colour scale; "BN-flipped" in the title when that sign
    is negative), so it reads as the mean map does; the border profile is the entry's ``border_profile``
    (chapter 1's units: row mean minus the interior mean, over the interior std). Sized for the site's width
    (7.5 inches, text at least 8 points).
    """

    pairs, i = [], 0
    while i < len(entries):
        pan = entries[i]
        ctrl = entries[i + 1] if i + 1 < len(entries) and not entries[i + 1]["is_pan"] else None
        pairs.append((pan, ctrl))
        i += 2 if ctrl is not None else 1
    if not pairs:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no PAN of this type", ha="center", va="center")
        return fig
    fig = plt.figure(figsize=(7.5, 2.05 * len(pairs) + (0.35 if title else 0)), layout="constrained")
    subfigs = np.atleast_1d(fig.subfigures(len(pairs), 1))
    legend_done = False
    for sub, (pan, ctrl) in zip(subfigs, pairs):
        axes = sub.subplots(1, 6, width_ratios=[1, 1, 1.35, 1, 1, 1.35])
        head = f"{pan['layer']}: {pan['type']} PAN #{pan['channel']} ({pan['sign_pattern']})"
        sub.suptitle(head + (f", control #{ctrl['channel']}" if ctrl is not None else ""), fontsize=9)
        for c0, e in zip((0, 3), (pan, ctrl)):
            if e is None:
                for k in range(3):
                    axes[c0 + k].axis("off")
                continue
            k = np.asarray(e["kernel"], float)
            v = np.abs(k).max() or 1.0
            ax = axes[c0]
            ax.imshow(k, cmap="RdBu_r", vmin=-v, vmax=v)
            ax.set_xticks([])
            ax.set_yticks([])
            flipped = "\n(BN-flipped)" if e.get("bn_sign", 1.0) < 0 else ""
            ax.set_title(("PAN" if e["is_pan"] else "control") + f" kernel{flipped}", fontsize=8)
            ax = axes[c0 + 1]
            if e["map"] is not None:
                ax.imshow(np.asarray(e["map"], float), cmap="viridis")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"mean map\nscore {e['score']:.1f}", fontsize=8)
            prof = e.get("border_profile")
            if prof is not None and len(prof):
                ax2 = axes[c0 + 2]
                for side, g in prof.groupby("side", sort=False):
                    ax2.plot(g["distance"], g["z"], "-o", ms=2, lw=1, label=side)
                ax2.axhline(0, color="k", lw=0.5)
                ax2.tick_params(labelsize=8)
                ax2.set_xlabel("distance", fontsize=8)
                ax2.set_title("z by side", fontsize=8)
                if not legend_done:
                    ax2.legend(fontsize=7, loc="best", handlelength=1)
                    legend_done = True
            else:
                axes[c0 + 2].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def type_share_figure(shares):
    """Per model, the share of each PAN type in each set (learned PANs, padding-caused, padding-caused at random
    init), as stacked horizontal bars with the set's size; one colour per type as in the rest of chapter 2."""

    models = list(dict.fromkeys(shares["model"]))
    sets = list(dict.fromkeys(shares["set"]))
    types = list(dict.fromkeys(shares["type"]))
    fig, axes = plt.subplots(len(models), 1, figsize=(8, 0.55 * len(sets) * len(models) + 0.9), sharex=True,
                             squeeze=False)
    for ax, m in zip(axes[:, 0], models):
        d = shares[shares.model == m]
        left = np.zeros(len(sets))
        for t in types:
            v = np.array([float(d[(d.set == s_) & (d.type == t)].share_pct.sum()) for s_ in sets])
            ax.barh(range(len(sets)), v, left=left, color=TYPE_COLOURS.get(t, "0.5"), label=t, height=0.7)
            left += v
        n = [int(d[d.set == s_]["count"].sum()) for s_ in sets]
        ax.set_yticks(range(len(sets)), [f"{s_} (n={k})" for s_, k in zip(sets, n)], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(m, fontsize=9, loc="left")
        ax.set_xlim(0, 100)
    axes[-1, 0].set_xlabel("share of the set's PANs (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(types), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig


def type_centroids(summary, clustered, ncols: int = 3):
    """k-means centroids (normalised 3x3 profiles) with the rule types that fall in each cluster, ``ncols``
    panels per row at the site's width."""
    import pandas as pd

    cents = summary["centroids"]
    k = len(cents)
    table = pd.crosstab(clustered["cluster"], clustered["type"])
    rows = -(-k // ncols)
    fig, axes = plt.subplots(rows, ncols, figsize=(6.6, 2.75 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        if i >= k:
            ax.set_visible(False)
            continue
        v = np.abs(cents[i]).max() or 1.0
        ax.imshow(cents[i], cmap="RdBu_r", vmin=-v, vmax=v)
        ax.set_xticks([])
        ax.set_yticks([])
        counts = table.loc[i] if i in table.index else pd.Series(dtype=int)
        top = counts.sort_values(ascending=False).head(3)
        ax.set_title(f"cluster {i} (n={int(counts.sum())})\n" + ", ".join(f"{t} {n}" for t, n in top.items()),
                     fontsize=8.5)
    fig.suptitle(f"k-means on kernel profiles: adjusted Rand index with rule types {summary['ari']:.2f} "
                 f"(null 95%: {summary['null_q95']:.3f})", fontsize=9.5)
    fig.tight_layout()
    return fig


def asymmetry_plot(asym, value: str = "asym"):
    """Per model (rows): left-right and top-bottom lean of the mean kernel per padded layer, pretrained
    (:data:`PRETRAINED`) against random init (:data:`RANDOM_INIT`), with bootstrap intervals; stride-2 layers
    shaded by the padding they read (:data:`READS_COLOURS`, words in :func:`reads_caption`)."""
    models = list(dict.fromkeys(asym["model"]))
    fig, axes = plt.subplots(len(models), 2, figsize=(7.5, 1.9 * len(models) + 0.5), squeeze=False, sharex="row")
    for i, name in enumerate(models):
        g = asym[asym["model"] == name]
        for j, (col, label) in enumerate((("lr", "left-right lean (> 0: right)"),
                                          ("tb", "top-bottom lean (> 0: down)"))):
            ax = axes[i, j]
            for init, colour in (("pretrained", PRETRAINED), ("random init", RANDOM_INIT)):
                s = g[g["init"] == init]
                if s.empty:
                    continue
                y, lo, hi = s[f"{value}_{col}"], s.get(f"{value}_{col}_lo"), s.get(f"{value}_{col}_hi")
                if lo is not None:
                    ax.errorbar(s["depth"], y, yerr=[y - lo, hi - y], fmt="-o", ms=3, lw=1, capsize=2,
                                color=colour, label=init)
                else:
                    ax.plot(s["depth"], y, "-o", ms=3, color=colour, label=init)
            base = g[g["init"] == g["init"].iloc[0]]
            for _, r in base[base["stride"] > 1].iterrows():
                colour = READS_COLOURS.get(r["reads"], READS_COLOURS["even"])
                if r["reads"] in ("top/left", "bottom/right"):
                    ax.axvspan(r["depth"] - 0.4, r["depth"] + 0.4, color=colour, alpha=0.3, lw=0, zorder=0)
                else:
                    ax.axvspan(r["depth"] - 0.4, r["depth"] + 0.4, facecolor="none", edgecolor=colour,
                               hatch="////", lw=0, zorder=0)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{name}: {label}", fontsize=8.5)
            ax.tick_params(labelsize=8)
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
            if i == len(models) - 1:
                ax.set_xlabel("padded layer (depth)", fontsize=8.5)
        axes[i, 0].legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    fig.text(0.5, 0.08 / fig.get_figheight(), reads_caption(), ha="center", va="bottom", fontsize=8.5)
    return fig


def mean_kernel_grid(asym, init: str = "pretrained"):
    """The mean normalised kernel of every stride-2 layer, one row per model (named on the left), the kernels
    behind the leans.

    Each panel has its own colour scale (brighter: a larger share of the normalised weight); the title gives
    the layer (:func:`layer_label`: whole components, never cut mid-word), the padding it reads and its two
    leans from the table (x: > 0 right, y: > 0 down)."""

    models = list(dict.fromkeys(asym["model"]))
    rows = [asym[(asym["model"] == m) & (asym["init"] == init) & (asym["stride"] > 1)] for m in models]
    ncols = max(max(len(r) for r in rows), 1)
    fig, axes = plt.subplots(len(models), ncols, figsize=(1.45 * ncols + 0.9, 2.1 * len(models)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (m, r) in enumerate(zip(models, rows)):
        for j, (_, row) in enumerate(r.iterrows()):
            k = np.asarray(row["mean_kernel"], float)
            ax = axes[i, j]
            ax.imshow(k, cmap="magma", vmin=0 if k.min() >= 0 else None)
            ax.set_title(f"{layer_label(row['layer'])}\n{row['reads']}\n"
                         f"x {row['asym_lr']:+.3f}, y {row['asym_tb']:+.3f}", fontsize=9)
        axes[i, 0].text(-0.15, 0.5, model_label(m), transform=axes[i, 0].transAxes,
                        ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def kernel_browser(galleries: dict, description: str = "view"):
    """A static-site-safe browser: a Dropdown jslinked to a Stack of precomputed PNG galleries.

    ``galleries``: {label: entries for :func:`kernel_gallery`}. Every page is rendered now, so the widget
    stays fully interactive in the static book (no kernel needed). Pages are 80 dpi (600 pixels for the
    gallery's 7.5 inches: narrower than the site's column).
    """
    import ipywidgets as widgets

    labels = list(galleries)
    images = [widgets.Image(value=figure_png(kernel_gallery(galleries[k], title=k), dpi=80), format="png",
                            layout=widgets.Layout(max_width="100%")) for k in labels]
    stack = widgets.Stack(images, selected_index=0)
    dropdown = widgets.Dropdown(options=[(k, i) for i, k in enumerate(labels)], value=0, description=description,
                                layout=widgets.Layout(width="420px"))
    widgets.jslink((dropdown, "index"), (stack, "selected_index"))
    return widgets.VBox([dropdown, stack])

