"""Plotting: figures for the chapters, kept apart from the computations that produce the DataFrames."""
from __future__ import annotations

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch

# The book's figure style, shared by every chapter. Okabe-Ito colours (distinguishable with the common forms
# of colour blindness); one colour per model and one per padding scheme, the same on every page.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MODEL_COLOURS = {"mobilenet_v2": "#0072B2", "tf_efficientnet_lite0": "#E69F00", "tf_efficientnet_lite1": "#009E73",
                 "tf_efficientnet_lite2": "#D55E00"}  # the palette's order: figures that cycle colours agree
SCHEME_COLOURS = {"zero": "#000000", "reflect": "#0072B2", "replicate": "#56B4E9", "circular": "#E69F00",
                  "symmetric": "#009E73", "partial": "#CC79A7", "padding_module": "#D55E00"}
BOOK_STYLE = {"axes.prop_cycle": mpl.cycler(color=list(OKABE_ITO)), "axes.titlesize": 10, "axes.labelsize": 9,
              "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8, "legend.framealpha": 0.85,
              "axes.spines.top": False, "axes.spines.right": False, "axes.formatter.min_exponent": 3}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib (padlib.plots does this when imported)."""
    mpl.rcParams.update(BOOK_STYLE)


def model_colour(name: str, k: int = 0) -> str:
    """The book's colour for a model (:data:`MODEL_COLOURS`), else the k-th colour of the palette."""
    return MODEL_COLOURS.get(name, OKABE_ITO[k % len(OKABE_ITO)])


def scheme_colour(name: str, k: int = 0) -> str:
    """The book's colour for a padding scheme (:data:`SCHEME_COLOURS`), else the k-th colour of the palette."""
    return SCHEME_COLOURS.get(name, OKABE_ITO[k % len(OKABE_ITO)])


use_book_style()


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
        row[0].set_ylabel(name.replace("tf_efficientnet_", "effnet-"), fontsize=8.5, rotation=0, ha="right",
                          va="center")
    fig.tight_layout(w_pad=0.3, h_pad=0.3)
    return fig


# ---------------------------------------------------------------------------------------------------------
# Chapter 2 (PAN kernel taxonomy): plots for padlib.kernels tables

_SIDE_NAMES = ("top", "bottom", "left", "right")
_TYPE_COLOURS = {"side": "tab:blue", "corner": "tab:orange", "opposite": "tab:purple", "frame": "tab:green",
                 "edge": "tab:red", "silenced": "tab:gray"}


def figure_png(fig, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards), e.g. for ``ipywidgets.Image``."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def detector_scatter(merged, x_prefix: str = "zp_", y_prefix: str = "effect_", tau=None, max_points: int = 4000,
                     seed: int = 0):
    """Predicted vs measured border shift per side (columns), one row per model, coloured by relative depth.

    ``merged``: :func:`padlib.kernels.merge_detectors` tables concatenated with a ``model`` column. Only
    sides the layer reads are drawn; the diagonal is perfect agreement, dotted lines mark +-tau.
    """
    import numpy as np

    models = list(dict.fromkeys(merged["model"])) if "model" in merged else [""]
    fig, axes = plt.subplots(len(models), 4, figsize=(11, 2.6 * len(models)), squeeze=False)
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
            ax.set_title(f"{name} {side}" if name else side, fontsize=8)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(f"measured ({y_prefix.rstrip('_')})", fontsize=8)
            if i == len(models) - 1:
                ax.set_xlabel(f"predicted ({x_prefix.rstrip('_')})", fontsize=8)
    fig.colorbar(sc, ax=axes, shrink=0.6, label="relative depth")
    return fig


def disagreement_plot(layers):
    """Per model, the three gaps of :func:`padlib.kernels.disagreement_by_layer` and the recall, by depth; two
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
    """Rows of (PAN, non-PAN control) pairs: spatial kernel, mean pre-activation map, border profile each.

    ``entries``: :func:`padlib.kernels.gallery_entries` (PAN entries each followed by its control). The
    kernel is the spatial kernel summed over input channels times the sign of the following BatchNorm's
    gamma (red positive, blue negative, symmetric colour scale; "BN-flipped" in the title when that sign
    is negative), so it reads as the mean map does; the border profile is the entry's ``border_profile``
    (chapter 1's units: row mean minus the interior mean, over the interior std).
    """
    import numpy as np

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
    fig, axes = plt.subplots(len(pairs), 6, figsize=(12, 1.9 * len(pairs) + 0.4), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1.3, 1, 1, 1.3]})
    for r, pair in enumerate(pairs):
        for c0, e in zip((0, 3), pair):
            if e is None:
                for k in range(3):
                    axes[r, c0 + k].axis("off")
                continue
            k = np.asarray(e["kernel"], float)
            v = np.abs(k).max() or 1.0
            ax = axes[r, c0]
            ax.imshow(k, cmap="RdBu_r", vmin=-v, vmax=v)
            ax.set_xticks([])
            ax.set_yticks([])
            label = f"{e['type']} {e['sign_pattern']}" if e["is_pan"] else "non-PAN control"
            flipped = " (BN-flipped)" if e.get("bn_sign", 1.0) < 0 else ""
            ax.set_title(f"{label}\n{e['layer']} #{e['channel']}{flipped}", fontsize=7)
            ax = axes[r, c0 + 1]
            if e["map"] is not None:
                ax.imshow(np.asarray(e["map"], float), cmap="viridis")
            prof = e.get("border_profile")
            if prof is not None and len(prof):
                ax2 = axes[r, c0 + 2]
                for side, g in prof.groupby("side", sort=False):
                    ax2.plot(g["distance"], g["z"], "-o", ms=2, lw=1, label=side)
                ax2.axhline(0, color="k", lw=0.5)
                ax2.tick_params(labelsize=6)
                ax2.set_xlabel("distance from border", fontsize=6)
                ax2.set_ylabel("z (interior std)", fontsize=6)
                if r == 0 and c0 == 0:
                    ax2.legend(fontsize=5, loc="best")
            else:
                axes[r, c0 + 2].axis("off")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"mean map, score {e['score']:.1f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / height if title else 1))  # keep the suptitle clear of row 1
    return fig


def type_share_figure(shares):
    """Per model, the share of each PAN type in each set (learned PANs, padding-caused, padding-caused at random
    init), as stacked horizontal bars with the set's size; one colour per type as in the rest of chapter 2."""
    import numpy as np

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
            ax.barh(range(len(sets)), v, left=left, color=_TYPE_COLOURS.get(t, "0.5"), label=t, height=0.7)
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
    import numpy as np
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
    """Per model (rows): left-right and top-bottom lean of the mean kernel per padded layer, pretrained vs
    random init (grey), with bootstrap intervals; stride-2 layers shaded and labelled by the padding they read."""
    models = list(dict.fromkeys(asym["model"]))
    fig, axes = plt.subplots(len(models), 2, figsize=(10, 2.2 * len(models)), squeeze=False, sharex="row")
    for i, name in enumerate(models):
        g = asym[asym["model"] == name]
        for j, (col, label) in enumerate((("lr", "left-right lean (> 0: right)"),
                                          ("tb", "top-bottom lean (> 0: down)"))):
            ax = axes[i, j]
            for init, colour in (("pretrained", "tab:blue"), ("random init", "0.55")):
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
                ax.axvspan(r["depth"] - 0.4, r["depth"] + 0.4, color="tab:orange" if r["reads"] == "top/left"
                           else "tab:green" if r["reads"] == "bottom/right" else "0.85", alpha=0.25, zorder=0)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{name}: {label}", fontsize=8)
            ax.tick_params(labelsize=7)
            if i == len(models) - 1:
                ax.set_xlabel("padded layer (depth); shaded: stride 2 (orange reads top/left, green bottom/right)",
                              fontsize=7)
        axes[i, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def mean_kernel_grid(asym, init: str = "pretrained"):
    """The mean normalised kernel of every stride-2 layer, one row per model (the kernels behind the leans).

    Each panel has its own colour scale (brighter: a larger share of the normalised weight); the title gives
    the layer, the padding it reads and its two leans from the table (x: > 0 right, y: > 0 down)."""
    import numpy as np

    models = list(dict.fromkeys(asym["model"]))
    rows = [asym[(asym["model"] == m) & (asym["init"] == init) & (asym["stride"] > 1)] for m in models]
    ncols = max(len(r) for r in rows) or 1
    fig, axes = plt.subplots(len(models), ncols, figsize=(1.5 * ncols, 1.95 * len(models)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (m, r) in enumerate(zip(models, rows)):
        for j, (_, row) in enumerate(r.iterrows()):
            k = np.asarray(row["mean_kernel"], float)
            ax = axes[i, j]
            ax.imshow(k, cmap="magma", vmin=0 if k.min() >= 0 else None)
            ax.set_title(f"{m[:22]}\n{row['layer'][-16:]} ({row['reads']})\n"
                         f"x {row['asym_lr']:+.3f}, y {row['asym_tb']:+.3f}", fontsize=6)
    fig.tight_layout()
    return fig


def kernel_browser(galleries: dict, description: str = "view"):
    """A static-site-safe browser: a Dropdown jslinked to a Stack of precomputed PNG galleries.

    ``galleries``: {label: entries for :func:`kernel_gallery`}. Every page is rendered now, so the widget
    stays fully interactive in the static book (no kernel needed).
    """
    import ipywidgets as widgets

    labels = list(galleries)
    images = [widgets.Image(value=figure_png(kernel_gallery(galleries[k], title=k)), format="png",
                            layout=widgets.Layout(max_width="100%")) for k in labels]
    stack = widgets.Stack(images, selected_index=0)
    dropdown = widgets.Dropdown(options=[(k, i) for i, k in enumerate(labels)], value=0, description=description,
                                layout=widgets.Layout(width="420px"))
    widgets.jslink((dropdown, "index"), (stack, "selected_index"))
    return widgets.VBox([dropdown, stack])


# ---------------------------------------------------------------------------------------------------------
# Chapter 3 (performance ablation): plots for padlib.ablation tables (value, ci_low, ci_high per row)

import numpy as np  # noqa: E402  (chapter 3 section)

_CONDITIONS = ("mean/all", "mean/border", "zero/all", "zero/border")


def _errorbar(ax, x, rows, **kw):
    v, lo, hi = (rows[c].to_numpy(dtype=float) for c in ("value", "ci_low", "ci_high"))
    yerr = np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
    return ax.errorbar(np.asarray(x, dtype=float), v, yerr=yerr, fmt="o", capsize=2, markersize=4, **kw)


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


def _plain_log_ticks(ax):
    """Log axes labelled 0.1, 0.2, 0.5, 1, 2, 5 ... in plain numbers (no '2x10^0'), minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(max(v, 1e-300) for v in lim)
        axis.set_major_locator(LogLocator(subs=(1.0,) if hi / lo > 10 ** 2.5 else (1.0, 2.0, 5.0), numticks=12))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


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
        from .errors import PadlibError

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


# ---------------------------------------------------------------------------------------------------------
# Chapter 4 (spatial-bias blind spots): plots for padlib.audit and padlib.spatial_bias

def _ch4_png(fig, dpi: int = 80) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def zoo_family_plot(by_family, top: int = 30):
    """Per family (most models first): share with uneven padding at the default size, and share that is even
    at the nearest size found; bar labels give the number of models."""
    import numpy as np

    df = by_family.head(top).iloc[::-1]
    y = np.arange(len(df))
    fig, ax = plt.subplots(figsize=(7.5, 0.24 * len(df) + 1.2))
    ax.barh(y + 0.2, df["uneven_at_default"], 0.4, color="tab:red", label="uneven padding at default size")
    ax.barh(y - 0.2, df["even_at_nearest"], 0.4, color="tab:green", label="even at the default or a nearby size")
    ax.set_yticks(y, [f"{f} ({n})" for f, n in zip(df["family"], df["models"])], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the family's architectures")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def zoo_sides_plot(zoo):
    """Left: which sides read the extra padding in uneven models (PyTorch-style top/left vs TF-SAME
    bottom/right); right: how far the nearest even-padding size is from the default size."""
    ok = zoo[(zoo["status"] == "ok") & (zoo["n_uneven"] > 0)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 2.8))
    sides = ok["extra_sides"].replace("", "none").value_counts()
    a.bar(range(len(sides)), sides.values, color="tab:purple")
    a.set_xticks(range(len(sides)), sides.index, rotation=30, ha="right", fontsize=7)
    a.set_ylabel("uneven architectures")
    a.set_title("sides reading more padding", fontsize=9)
    dist = ok["even_distance"].dropna()
    b.hist(dist, bins=range(0, int(dist.max() if len(dist) else 1) + 2), color="tab:green", align="left")
    b.set_xlabel("|nearest even size - default size| (px)")
    b.set_title(f"nearest even size ({len(dist)} found, {len(ok) - len(dist)} none)", fontsize=9)
    fig.tight_layout()
    return fig


def mean_map_grid(maps_by_row: dict, layers=None, ncols: int = 7, size: float = 1.25):
    """Rows of mean feature maps (one row per entry of ``maps_by_row``: label -> FeatureMaps or {layer: map}),
    ``ncols`` layers evenly spaced through depth, each map on its own colour scale (viridis)."""
    import numpy as np

    rows = list(maps_by_row.items())
    all_layers = list(rows[0][1].maps if hasattr(rows[0][1], "maps") else rows[0][1])
    idx = np.unique(np.linspace(0, len(all_layers) - 1, min(ncols, len(all_layers))).round().astype(int))
    fig, axes = plt.subplots(len(rows), len(idx), figsize=(size * len(idx), size * len(rows) + 0.4), squeeze=False)
    for r, (label, fm) in enumerate(rows):
        maps = fm.maps if hasattr(fm, "maps") else fm
        names = list(maps)
        for c, i in enumerate(idx):
            ax = axes[r, c]
            name = (layers or names)[i] if i < len(layers or names) else names[-1]
            m = maps[name]
            ax.imshow(m, cmap="viridis", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}\n{m.shape[0]}x{m.shape[1]}" if r == 0 else f"{m.shape[0]}x{m.shape[1]}", fontsize=7)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


def bias_index_plot(index_tables: dict, columns=("top_bottom", "left_right")):
    """The bias indices through depth, one line per table (label -> spatial_bias_index DataFrame), with
    +/- 2 standard errors over image splits where available; > 0 means the top (left) border deviates more."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4.6 * len(columns), 3), squeeze=False)
    for ax, col in zip(axes[0], columns):
        for label, t in index_tables.items():
            x = t["depth"] / max(t["depth"].max(), 1)
            style = dict(ls="--", color="0.5") if "circular" in label else {}
            ax.plot(x, t[col], marker="o", ms=3, label=label, **style)
            if f"{col}_se" in t:
                ax.fill_between(x, t[col] - 2 * t[f"{col}_se"], t[col] + 2 * t[f"{col}_se"], alpha=0.15,
                                color=ax.lines[-1].get_color())
        ax.axhline(0, color="k", lw=0.6)
        ax.set_xlabel("relative depth")
        ax.set_title({"top_bottom": "top_bottom (> 0: top deviates more)",
                      "left_right": "left_right (> 0: left deviates more)"}.get(col, col), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    return fig


def blind_spot_grid(maps: dict, ncols: int = 3, size: float = 2.3, shared_scale: bool = True):
    """Blind-spot maps (label -> DataFrame from blind_spot_map), the response at each stimulus position
    (top-left corner of the stimulus) drawn over the canvas; one colour scale per row when ``shared_scale``."""
    items = list(maps.items())
    nrows = math.ceil(len(items) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for r in range(nrows):
        row = items[r * ncols:(r + 1) * ncols]
        vmin = min(float(m.values.min()) for _, m in row) if shared_scale else None
        vmax = max(float(m.values.max()) for _, m in row) if shared_scale else None
        for c, (label, m) in enumerate(row):
            ax = axes[r, c]
            ax.axis("on")
            ys, xs = list(m.index), list(m.columns)
            im = ax.imshow(m.values, cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest",
                           extent=(xs[0] - 0.5, xs[-1] + 0.5, ys[-1] + 0.5, ys[0] - 0.5))
            ax.set_title(label, fontsize=7)
            ax.tick_params(labelsize=6)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03).ax.tick_params(labelsize=6)
    fig.tight_layout()
    return fig


def mitigation_plot(summary, metric: str = "worst_drop"):
    """One panel per model: ``metric`` of every stimulus x background map (dots) and their mean (bar) per
    padding variant, so the spread over controls is visible next to the effect."""
    import numpy as np

    models = list(dict.fromkeys(summary["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        d = summary[summary["model"] == model]
        variants = list(dict.fromkeys(d["variant"]))
        for i, v in enumerate(variants):
            vals = d.loc[d["variant"] == v, metric].to_numpy()
            ax.bar(i, vals.mean(), 0.6, color="0.85", edgecolor="0.4")
            jitter = np.linspace(-0.15, 0.15, len(vals)) if len(vals) > 1 else [0]
            ax.scatter(i + np.asarray(jitter), vals, s=14, zorder=3)
        ax.set_xticks(range(len(variants)), variants, fontsize=8)
        ax.set_title(model, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(metric.replace("_", " "))
    fig.tight_layout()
    return fig


def _ch4_map_png(m, width: int = 224) -> bytes:
    """A map as a viridis PNG (min to max of the map), upscaled with nearest neighbours; fast, no figure."""
    import io

    import numpy as np
    from PIL import Image

    m = np.asarray(m, dtype=np.float64)
    lo, hi = float(m.min()), float(m.max())
    rgb = (plt.get_cmap("viridis")((m - lo) / (hi - lo) if hi > lo else np.zeros_like(m))[..., :3] * 255)
    img = Image.fromarray(rgb.astype("uint8"))
    scale = max(1, width // max(m.shape))
    img = img.resize((m.shape[1] * scale, m.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _ch4_img_tag(m) -> str:
    import base64

    return (f"<img src='data:image/png;base64,{base64.b64encode(_ch4_map_png(m)).decode()}' "
            "style='width:224px;height:224px;image-rendering:pixelated'>")


def _ch4_map_caption(title: str, m) -> str:
    return (f"<p style='font-size:11px;margin:0'><b>{title}</b><br>{m.shape[0]}x{m.shape[1]}, colour from "
            f"{float(m.min()):.3g} (dark) to {float(m.max()):.3g} (yellow)</p>")


def _ch4_audit_html(audit, layer: str) -> str:
    cols = ["layer", "op", "in_h", "kernel", "stride", "pad_top", "pad_bottom", "read_top", "read_bottom",
            "pad_left", "pad_right", "read_left", "read_right", "uneven", "extra_sides"]
    rows = audit[(audit["layer"] == layer) | audit["layer"].str.startswith(layer + ".")] if len(audit) else audit
    if not len(rows):
        return f"<p style='font-size:11px'>no layer inside <code>{layer}</code> pads</p>"
    return rows[cols].to_html(index=False, border=0).replace("<table", "<table style='font-size:10px'")


def feature_map_explorer(maps: dict, audits: dict):
    """A widget that stays interactive in the static site: tabs for model, tabs for input size, a layer
    dropdown jslinked to a Stack of precomputed views (mean feature map + the audit rows of that block).

    ``maps[(model, size)]`` is a FeatureMaps (or {layer: map}); ``audits[(model, size)]`` a padding_audit.
    """
    import ipywidgets as widgets

    models = list(dict.fromkeys(k[0] for k in maps))
    model_tabs = []
    for model in models:
        sizes = [k[1] for k in maps if k[0] == model]
        size_tabs = []
        for size in sizes:
            fm = maps[(model, size)]
            layer_maps = fm.maps if hasattr(fm, "maps") else fm
            audit = audits[(model, size)]
            pages = []
            for layer, m in layer_maps.items():  # one HTML view per layer: a data-URI image works without a kernel
                pages.append(widgets.HTML(_ch4_img_tag(m) + _ch4_map_caption(f"{model} @{size}: {layer}", m)
                                          + _ch4_audit_html(audit, layer)))
            dropdown = widgets.Dropdown(options=list(layer_maps), description="layer")
            stack = widgets.Stack(pages, selected_index=0)
            widgets.jslink((dropdown, "index"), (stack, "selected_index"))
            size_tabs.append(widgets.VBox([dropdown, stack]))
        tabs = widgets.Tab(size_tabs)
        for i, s in enumerate(sizes):
            tabs.set_title(i, f"{s} px")
        model_tabs.append(tabs)
    outer = widgets.Tab(model_tabs)
    for i, m in enumerate(models):
        outer.set_title(i, m)
    return outer


def live_feature_map_explorer(models: dict, sizes=(224, 225), level: float = 0.5):
    """The Jupyter-only version (needs a kernel): any model, layer and input size, computed on demand on a
    constant grey input (where every spatial structure comes from padding), with the audit rows."""
    import ipywidgets as widgets
    from IPython.display import HTML, display

    from .audit import padding_audit
    from .spatial_bias import constant_inputs, depth_layers, mean_feature_maps

    layers = {name: depth_layers(m) for name, m in models.items()}
    model_dd = widgets.Dropdown(options=list(models), description="model")
    layer_dd = widgets.Dropdown(options=layers[model_dd.value], description="layer")
    size_sl = widgets.IntSlider(value=sizes[0], min=min(sizes) - 32, max=max(sizes) + 32, description="input size")
    model_dd.observe(lambda ch: setattr(layer_dd, "options", layers[ch["new"]]), names="value")

    def show(model, layer, size):
        m = models[model]
        fm = mean_feature_maps(m, constant_inputs(m, size, (level,)), [layer], progress=False)
        display(HTML(_ch4_img_tag(fm[layer]) + _ch4_map_caption(f"{model} @{size}: {layer}, grey input", fm[layer])))
        display(HTML(_ch4_audit_html(padding_audit(m, size), layer)))

    return widgets.interactive(show, model=model_dd, layer=layer_dd, size=size_sl)


# ---------------------------------------------------------------------------------------------------------
# chapter 5: learned padding comparison

SCHEME_ORDER = ("zero", "reflect", "replicate", "circular", "symmetric", "partial", "padding_module")


def _scheme_order(schemes):
    present = list(dict.fromkeys(schemes))
    return [s for s in SCHEME_ORDER if s in present] + [s for s in present if s not in SCHEME_ORDER]


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


def scheme_accuracy_figure(per_seed, paired, baseline: str = "zero", value: str = "accuracy"):
    """Left: accuracy per scheme (a dot per seed, mean with 95% interval). Right: paired difference to the
    baseline per seed (same initialisation and batches), mean with its 95% interval."""
    from .training import accuracy_summary

    order = _scheme_order(per_seed["scheme"])
    summary = accuracy_summary(per_seed.rename(columns={value: "accuracy"})).set_index("scheme")
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    for i, s in enumerate(order):
        v = per_seed.loc[per_seed.scheme == s, value]
        a.scatter([i] * len(v), v, s=14, color="0.5", zorder=2)
        m = summary.loc[s]
        a.errorbar([i], [m["mean"]], yerr=[[m["mean"] - m["ci_low"]], [m["ci_high"] - m["mean"]]]
                   if np.isfinite(m["ci_low"]) else None, fmt="o", color=scheme_colour(s, i), capsize=4, zorder=3)
    a.set_xticks(range(len(order)), order, rotation=30, fontsize=8)
    a.set_ylabel(f"test {value}")
    a.set_title("test accuracy per scheme (dots: seeds)", fontsize=9)
    col = f"mean_diff_vs_{baseline}"
    p = paired.set_index("scheme")
    others = [s for s in order if s in p.index]
    for i, s in enumerate(others):
        r = p.loc[s]
        b.errorbar([i], [r[col]], yerr=[[r[col] - r["ci_low"]], [r["ci_high"] - r[col]]]
                   if np.isfinite(r["ci_low"]) else None, fmt="o", color=scheme_colour(s, i), capsize=4)
    b.axhline(0, color="0.3", lw=0.8)
    b.set_xticks(range(len(others)), others, rotation=30, fontsize=8)
    b.set_ylabel(f"{value} - {baseline} (same seed)")
    b.set_title(f"paired difference to {baseline} padding, 95% interval", fontsize=9)
    fig.tight_layout()
    return fig


_EFFECT_LABELS = {"final": "final test accuracy", "auc": "area under the learning curve", "accuracy": "test accuracy"}


def scheme_effects_figure(per_seed: dict, paired: dict, floors: dict | None = None, baseline: str = "zero",
                          twin=None):
    """One panel per measure (``per_seed`` and ``paired``: dicts measure -> table of
    :func:`padlib.training.accuracy_by_seed` layout / :func:`padlib.training.paired_comparison`): every scheme's
    per-seed difference to the baseline (grey dots) and the mean with its 95% interval (the scheme's colour;
    a star when the Holm-adjusted p < 0.05); the grey band is the noise floor (``floors[measure]``), and
    ``twin`` = (a, b) adds the two noise-twin schemes' own difference, which should sit inside it."""
    floors = dict(floors or {})
    measures = list(paired)
    fig, axes = _panel_grid(len(measures), width=8.0, row_height=3.2)
    col = f"mean_diff_vs_{baseline}"
    for ax, m in zip(axes, measures):
        ps = per_seed[m]
        value = [c for c in ps.columns if c not in ("scheme", "seed")][0]
        wide = ps.pivot_table(index="seed", columns="scheme", values=value)
        table = paired[m].set_index("scheme")
        order = [s for s in _scheme_order(table.index)]
        labels = list(order)
        if twin and twin[0] in wide.columns and twin[1] in wide.columns:
            labels.append(f"{twin[0]} - {twin[1]}")
        floor = floors.get(m)
        if floor:
            ax.axhspan(-floor, floor, color="0.88", zorder=0, label="noise floor (identical twins)")
        ax.axhline(0, color="0.3", lw=0.8, zorder=1)
        for i, s in enumerate(order):
            d = (wide[s] - wide[baseline]).dropna()
            ax.scatter(i + np.linspace(-0.12, 0.12, len(d)), d, s=10, color="0.55", zorder=2,
                       label="one seed" if i == 0 else None)
            r = table.loc[s]
            ax.errorbar([i], [r[col]], yerr=[[r[col] - r["ci_low"]], [r["ci_high"] - r[col]]]
                        if np.isfinite(r["ci_low"]) else None, fmt="o", ms=6, color=scheme_colour(s, i), capsize=4,
                        zorder=3, label="mean, 95% interval" if i == 0 else None)
            if "p_holm" in r and np.isfinite(r["p_holm"]) and r["p_holm"] < 0.05:
                ax.annotate("*", (i, r["ci_high"]), ha="center", va="bottom", fontsize=12)
        if len(labels) > len(order):
            d = (wide[twin[0]] - wide[twin[1]]).dropna()
            k = len(order)
            ax.scatter(k + np.linspace(-0.12, 0.12, len(d)), d, s=10, color="0.55", zorder=2)
            ax.errorbar([k], [d.mean()], yerr=None, fmt="D", ms=5, color="0.35", zorder=3)
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(f"difference to {baseline} (same seed)")
        ax.set_title(_EFFECT_LABELS.get(m, m), fontsize=9)
    return _finish_panel_grid(fig, axes, len(measures), ncol=3)


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
        ax.errorbar(x, d["mean"], yerr=err, marker="o", ms=4, capsize=2, label=s, color=scheme_colour(s, k),
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
    from .position import PPP_CHANCE, PPP_UNITS

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
                ax.scatter([x] * len(v), v, s=16, facecolors="none" if state == "init" else colour,
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
    :func:`padlib.position.ppp_band_summary`), one panel per state (initialisation, trained), a line per scheme
    (mean over seeds, shaded: ± std); 0.5 = no position information at that distance."""
    states = [s for s in ("init", "trained") if s in set(band_summary["state"])]
    fig, axes = _panel_grid(len(states), width=8.0, row_height=3.0)
    order = _scheme_order(band_summary["scheme"])
    for ax, state in zip(axes, states):
        for k, s in enumerate(order):
            d = band_summary[(band_summary.scheme == s) & (band_summary.state == state)].sort_values("distance_px")
            c = scheme_colour(s, k)
            ax.plot(d["distance_px"], d["mean"], color=c, lw=1.8, marker="o", ms=3, label=s)
            sd = d["std"].fillna(0)
            ax.fill_between(d["distance_px"], d["mean"] - sd, d["mean"] + sd, color=c, alpha=0.15, lw=0)
        ax.axhline(chance, color="0.4", ls="--", lw=0.8, label="chance (no position)")
        ax.set_ylim(0.4, 1.02)
        ax.set_xlabel("distance of the cell to the border (pixels)")
        ax.set_ylabel("cells on the correct side")
        ax.set_title("at initialisation" if state == "init" else "after training", fontsize=9)
    return _finish_panel_grid(fig, axes, len(states), ncol=4)


def cost_benefit_figure(table, baseline: str = "zero", floor: float | None = None):
    """What a scheme costs and what it buys (:func:`padlib.training.cost_benefit`): training-step time relative
    to the baseline (x) against the paired accuracy effect with its 95% interval (y)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    if floor:
        ax.axhspan(-floor, floor, color="0.88", zorder=0, label="noise floor")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.axvline(1, color="0.6", lw=0.8, ls=":")
    for k, r in enumerate(table.itertuples()):
        ax.errorbar([r.step_ratio], [r.accuracy_effect], yerr=[[r.accuracy_effect - r.ci_low], [r.ci_high - r.accuracy_effect]],
                    fmt="o", ms=6, capsize=4, color=scheme_colour(r.scheme, k), label=r.scheme)
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
                ax.plot(g["epoch"], g["accuracy"], color=scheme_colour(s, k), lw=0.5, alpha=0.5)
            m = d.groupby("epoch")["accuracy"].mean()
            ax.plot(m.index, m.values, color=scheme_colour(s, k), lw=2, label=s, ls=("-", "--", ":")[k % 3],
                    marker="o" if j else None, ms=3)
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


# ---------------------------------------------------------------------------------------------------------
# Chapter 1: Padding Aware Neurons (tables from padlib.pans)

_SIGN_COLORS = {1: "#c0392b", -1: "#2471a3"}  # fires at the border / silenced there


def _fig_png(fig, dpi: int = 72) -> bytes:
    """A figure as PNG bytes (closed afterwards), for widgets.Image."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def pan_counts_figure(summary, claim_low: int | None = None, claim_high: int | None = None,
                      claim_share: float | None = None):
    """PANs per model as counts (with our reading of the paper's 'dozens to hundreds' as a band, by default
    padlib.pans.CLAIM_COUNT_RANGE) and as shares of filters (the unverified 'about 2%' as a line)."""
    import numpy as np

    from .pans import CLAIM_COUNT_RANGE, CLAIM_SHARE_PCT

    claim_low = CLAIM_COUNT_RANGE[0] if claim_low is None else claim_low
    claim_high = CLAIM_COUNT_RANGE[1] if claim_high is None else claim_high
    claim_share = CLAIM_SHARE_PCT if claim_share is None else claim_share
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    x = np.arange(len(summary))
    a.axhspan(claim_low, claim_high, color="0.85",
              label=f"paper: dozens to hundreds (our reading: {claim_low}-{claim_high})")
    a.bar(x - 0.2, summary["fire"], 0.4, color=_SIGN_COLORS[1], label="fire at the border")
    a.bar(x + 0.2, summary["silenced"], 0.4, color=_SIGN_COLORS[-1], label="silenced at the border")
    a.plot(x, summary["pans"], "ko", label="all PANs")
    a.set_yscale("log")
    _plain_log_ticks(a)
    a.set_ylabel("PANs (log)")
    b.bar(x, summary["share_pct"], 0.6, color="0.4")
    b.axhline(claim_share, color="k", ls="--", lw=1, label=f"unverified summary: about {claim_share:g}%")
    b.set_ylabel("PANs, % of padded filters")
    for ax in (a, b):
        ax.set_xticks(x, [m.replace("tf_efficientnet_", "") for m in summary["model"]], fontsize=8)
        ax.legend(fontsize=7.5, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def learned_pan_figure(control):
    """Per model, the share of padded filters flagged by the circular null alone (padding-caused) and the share
    that are learned PANs (also beyond random init), trained (bars) vs random-init copies (mean, range)."""
    import numpy as np

    models = list(dict.fromkeys(control["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    x = np.arange(len(models))
    for ax, col, title in zip(axes, ("padding_caused_pct", "learned_pct"),
                              ("padding-caused (circular null only)", "learned PANs (also beyond random init)")):
        tr = [float(control[(control.model == m) & (control.init == "trained")][col].iloc[0]) for m in models]
        ri = [control[(control.model == m) & (control.init == "random init")][col] for m in models]
        mean = np.array([r.mean() for r in ri])
        err = np.array([[m_ - r.min() for m_, r in zip(mean, ri)], [r.max() - m_ for m_, r in zip(mean, ri)]])
        ax.bar(x - 0.2, tr, 0.4, color="#444444", label="trained")
        ax.bar(x + 0.2, mean, 0.4, color="#bbbbbb", yerr=err, capsize=3, label="random init (mean, range)")
        ax.set_xticks(x, [m.replace("tf_efficientnet_", "effnet-") for m in models], fontsize=8)
        ax.set_ylabel("% of padded filters")
        ax.set_title(title, fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def _panel_grid(n: int, ncols: int = 2, width: float = 8.0, row_height: float = 2.7):
    """``n`` panels in rows of ``ncols`` at the site's width (flat list of axes, spares included)."""
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, row_height * nrows + 0.8), squeeze=False)
    return fig, list(axes.ravel())


def _finish_panel_grid(fig, axes, n: int, ncol: int = 3, top: float = 0.5, rename=None):
    """Hide a :func:`_panel_grid`'s spare panels and put the first panel's legend above the grid, ``top`` inches
    tall (``rename``: a function applied to each legend label)."""
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [rename(lab) for lab in labels] if rename else labels
    fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_figheight()))
    return fig


_NETWORK_STYLE = {"trained": dict(color="#222222", lw=1.4), "random init": dict(color="#e08214", lw=1.4),
                  "circular null": dict(color="0.65", lw=1.0)}


def learned_score_figure(scores, bins: int = 50):
    """Per model, the distributions of the padding-caused side score for the trained network, its random-init
    copies and its circular-padding null, with tau (the null's threshold) and the spread of the per-layer
    random-init thresholds (10-90% of layers, median dashed); the random-init copies' own tau, dotted.""" 
    import numpy as np

    models = list(dict.fromkeys(scores["model"]))
    fig, axes = _panel_grid(len(models))
    for ax, m in zip(axes, models):
        d = scores[scores.model == m]
        pos = d.side_score[d.side_score > 0]
        lo, hi = max(pos.quantile(0.001), 1e-2) if len(pos) else 0.1, max(d.side_score.max(), 1.0) * 1.05
        edges = np.geomspace(lo, hi, bins)
        for network in ("circular null", "random init", "trained"):
            v = d[d.network == network].side_score.to_numpy()
            v = v[v > 0]
            if not len(v):
                continue
            w = np.full(len(v), 100.0 / (d.network == network).sum())  # % of that network's channels
            if network == "circular null":
                ax.hist(v, edges, weights=w, color=_NETWORK_STYLE[network]["color"], alpha=0.6, label=network)
            else:
                ax.hist(v, edges, weights=w, histtype="step", label=network, **_NETWORK_STYLE[network])
        thr = d[d.network == "trained"].groupby("layer").init_side_threshold.first().dropna()
        if len(thr):
            ax.axvspan(thr.quantile(0.1), thr.quantile(0.9), color="#e08214", alpha=0.12, lw=0,
                       label="random-init thresholds (10-90% of layers)")
            ax.axvline(thr.median(), color="#e08214", ls="--", lw=1)
        ax.axvline(d[d.network == "trained"].tau.iloc[0], color="#0072b2", lw=1.4, label="tau (trained, its null)")
        if (d.network == "random init").any():
            ax.axvline(d[d.network == "random init"].tau.mean(), color="#e08214", ls=":", lw=1.4,
                       label="tau (random init, its own null)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("padding-caused side score (interior std)", fontsize=9)
        ax.set_ylabel("% of channels", fontsize=9)
    return _finish_panel_grid(fig, axes, len(models), ncol=3, top=0.75)


def learned_depth_figure(profile):
    """Per model, the share of each padded layer's filters that are learned PANs (solid) and padding-caused
    (dashed), trained vs random init (copies averaged), along relative depth."""
    models = list(dict.fromkeys(profile["model"]))
    fig, axes = _panel_grid(len(models))
    for ax, m in zip(axes, models):
        for network in ("trained", "random init"):
            d = profile[(profile.model == m) & (profile.network == network)].sort_values("rel_depth")
            st = _NETWORK_STYLE[network]
            ax.plot(d.rel_depth, d.learned_pct, "-", color=st["color"], lw=1.3, label=f"{network}: learned PANs")
            ax.plot(d.rel_depth, d.padding_caused_pct, "--", color=st["color"], lw=0.9,
                    label=f"{network}: padding-caused")
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("relative depth (0 = stem)", fontsize=9)
        ax.set_ylabel("% of the layer's filters", fontsize=9)
    return _finish_panel_grid(fig, axes, len(models), ncol=2, top=0.6)


def pan_threshold_curve_figure(curves, claim_range: tuple[int, int] | None = None):
    """PANs found as the threshold grows (observed), next to the null's exceedances, per model; the shaded
    band is our reading of 'dozens to hundreds' (padlib.pans.CLAIM_COUNT_RANGE unless given)."""
    from .pans import CLAIM_COUNT_RANGE

    claim_range = CLAIM_COUNT_RANGE if claim_range is None else claim_range
    models = list(dict.fromkeys(curves["model"]))
    fig, axes = _panel_grid(len(models))
    for ax, m in zip(axes, models):
        d = curves[curves.model == m]
        ax.plot(d["tau"], d["pans"], color="k", label="PANs (observed)")
        ax.plot(d["tau"], d["null_exceed"], color="0.6", ls="--", label="null channels above tau")
        ax.axvline(d["calibrated_tau"].iloc[0], color="C3", lw=1, label="calibrated tau")
        ax.axhspan(*claim_range, color="0.9", zorder=0)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("threshold tau (interior std)")
        ax.set_ylabel("channels")
    return _finish_panel_grid(fig, axes, len(models), ncol=3, top=0.45)


def pan_null_figure(scans, bins: int = 60):
    """Observed vs circular-null distributions of the side score max_s |z_s|, with the calibrated tau."""
    import numpy as np

    scans = list(scans)
    fig, axes = _panel_grid(len(scans))
    for ax, sc in zip(axes, scans):
        obs, null = sc.table["score"].to_numpy(), sc.null["score"].to_numpy()
        hi = max(np.quantile(obs, 0.999), sc.tau * 2)
        edges = np.linspace(0, hi, bins)
        ax.hist(np.clip(null, 0, hi), edges, color="0.6", alpha=0.8, label="null (circular padding)")
        ax.hist(np.clip(obs, 0, hi), edges, histtype="step", color="k", lw=1.2, label="observed (own padding)")
        ax.axvline(sc.tau, color="C3", lw=1.2, label=f"tau = {sc.tau:.2f}")
        ax.set_yscale("log")
        ax.set_title(f"{sc.model_name} (tau = {sc.tau:.2f})", fontsize=10)
        ax.set_xlabel("max over sides |z| (interior std)")
        ax.set_ylabel("channels")
    return _finish_panel_grid(fig, axes, len(scans), ncol=3, top=0.45,
                              rename=lambda lab: "calibrated tau" if lab.startswith("tau =") else lab)


def pan_depth_figure(by_depth):
    """Share of filters that are PANs, per padded layer along relative depth; marker size ~ #filters."""
    fig, ax = plt.subplots(figsize=(7, 3))
    for k, (m, d) in enumerate(by_depth.groupby("model", sort=False)):
        ax.plot(d["rel_depth"], d["share_pct"], "-", color=model_colour(m, k), lw=1, label=m)
        ax.scatter(d["rel_depth"], d["share_pct"], s=8 + d["filters"] / 20, color=model_colour(m, k),
                   marker="o", edgecolors=["k" if s == 2 else "none" for s in d["stride"]])
    ax.set_xlabel("relative depth of the padded conv (0 = stem); black edge: stride 2")
    ax.set_ylabel("PANs, % of the layer's filters")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def pan_side_figure(side_counts):
    """PANs per side and sign: one row per model, one column per stride (each panel with its own scale), the
    legend above the grid."""
    import numpy as np

    models = list(dict.fromkeys(side_counts["model"]))
    strides = sorted(side_counts["stride"].astype(str).unique())
    panels = [(m, st) for m in models for st in strides]
    fig, axes = _panel_grid(len(panels), ncols=len(strides), row_height=1.9)
    sides = ["top", "bottom", "left", "right"]
    for n, (ax, (m, st)) in enumerate(zip(axes, panels)):
        d = side_counts[(side_counts.model == m) & (side_counts.stride.astype(str) == st)]
        for k, sign in enumerate((1, -1)):
            col = "fire" if sign > 0 else "silenced"
            v = [int(d[d.side == s][col].sum()) for s in sides]
            ax.bar(np.arange(4) + (k - 0.5) * 0.4, v, 0.4, color=_SIGN_COLORS[sign],
                   label=f"{col} at the border")
        ax.set_xticks(np.arange(4), sides if n >= len(panels) - len(strides) else [], fontsize=8.5)
        ax.set_title(f"{m}, stride {st} layers", fontsize=9.5)
        if n % len(strides) == 0:
            ax.set_ylabel("PANs with this side", fontsize=8.5)
    return _finish_panel_grid(fig, axes, len(panels), ncol=2, top=0.45)


def pan_effect_figure(tables):
    """Validation: border contrast z vs causal padding effect (left) and vs the weight-based prediction from
    measured input means (``zpred``, right)."""
    import numpy as np
    import pandas as pd

    t = pd.concat(tables, ignore_index=True) if isinstance(tables, (list, tuple)) else tables
    z = np.concatenate([t[f"z_{s}"] for s in ("top", "bottom", "left", "right")])
    e = np.concatenate([t[f"effect_{s}"] for s in ("top", "bottom", "left", "right")])
    zp = np.concatenate([t[f"zpred_{s}"] for s in ("top", "bottom", "left", "right")])
    pan = np.concatenate([t["is_pan"].to_numpy()] * 4)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.4))
    lim = np.quantile(np.abs(z), 0.999)
    for ax, other, lab in ((a, e, "causal padding effect (own - replicate)"),
                           (b, zp, "weight-based prediction\nfrom measured input means")):
        ok = np.isfinite(other)
        ax.scatter(z[ok & ~pan], other[ok & ~pan], s=2, color="0.6", alpha=0.4, label="other sides")
        ax.scatter(z[ok & pan], other[ok & pan], s=2, color="C3", alpha=0.5, label="sides of PANs")
        ax.plot([-lim, lim], [-lim, lim], "k--", lw=0.8)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel("border contrast z (interior std)")
        ax.set_ylabel(lab, fontsize=8)
    a.legend(fontsize=7, markerscale=4)
    fig.tight_layout()
    return fig


def pan_map_gallery(scan, rows, ncols: int = 6, size: float = 1.7, title: str | None = None):
    """Mean pre-activation maps of the given (layer, channel) rows, symmetric colour scale around the
    interior mean, titled with layer depth, sides and sign."""
    rows = rows.reset_index(drop=True)
    n = len(rows)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, r in rows.iterrows():
        m = scan.maps[r.layer][int(r.channel)].numpy()
        dev = abs(m - r.interior_mean).max() or 1.0
        ax = axes.flat[i]
        ax.imshow(m, cmap="RdBu_r", vmin=r.interior_mean - dev, vmax=r.interior_mean + dev)
        label = (r.sides or "ordinary") + ("" if not r.is_pan else (" +" if r.sign > 0 else " -"))
        ax.set_title(f"d{r.depth} c{int(r.channel)} s{r.stride}\n{label}", fontsize=7)
    fig.suptitle(scan.model_name if title is None else title, fontsize=10)
    fig.tight_layout()
    return fig


def pan_channel_figure(view, tau: float | None = None, title: str = ""):
    """One channel: mean map, border profile, kernel on the mean input and its scores (2 x 2 panels)."""
    import numpy as np

    r = view["row"]
    fig, axes = plt.subplots(2, 2, figsize=(7.6, 5.6))
    axes = axes.ravel()
    m = view["map"].numpy()
    dev = abs(m - r.interior_mean).max() or 1.0
    axes[0].imshow(m, cmap="RdBu_r", vmin=r.interior_mean - dev, vmax=r.interior_mean + dev)
    axes[0].set_title("mean pre-activation map", fontsize=8)
    axes[0].axis("off")
    prof = view["profile"]
    for s, g in prof.groupby("side", sort=False):
        axes[1].plot(g["distance"], g["z"], marker=".", label=s)
    axes[1].axhline(0, color="0.5", lw=0.6)
    axes[1].set_xlabel("distance from the border", fontsize=8)
    axes[1].set_ylabel("(row mean - interior) / std", fontsize=7)
    axes[1].legend(fontsize=6)
    axes[1].set_title("border profile", fontsize=8)
    k = view["effective_kernel"].numpy()
    lim = abs(k).max() or 1.0
    axes[2].imshow(k, cmap="PuOr_r", vmin=-lim, vmax=lim)
    for (i, j), v in np.ndenumerate(k):
        axes[2].text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7,
                     color="w" if abs(v) > 0.6 * lim else "k")
    axes[2].set_title("kernel on the mean input (BN scale applied)", fontsize=8)
    axes[2].axis("off")
    locs = ["top", "bottom", "left", "right", "top_left", "top_right", "bottom_left", "bottom_right"]
    x = np.arange(len(locs))
    axes[3].bar(x - 0.2, [r[f"z_{l}"] for l in locs], 0.4, color="k", label="contrast z")
    axes[3].bar(x + 0.2, [r[f"effect_{l}"] for l in locs], 0.4, color="C1", label="padding effect")
    if tau is not None:
        for v, lab in ((tau, "tau (sides)"), (-tau, None)):
            axes[3].axhline(v, color="C3", lw=0.8, ls="--", label=lab)
    axes[3].set_xticks(x, [l.replace("_", "-").replace("bottom", "bot") for l in locs], rotation=45, fontsize=7)
    axes[3].legend(fontsize=6)
    axes[3].set_title(f"scores: {r.sides or 'not a PAN'}" + (f" (sign {r.sign:+d})" if r.is_pan else ""),
                      fontsize=8)
    kernel = f"{r.kernel}x{r.kernel}" if str(r.kernel).isdigit() else r.kernel
    fig.suptitle(title or f"{r.layer} channel {int(r.channel)} (depth {r.depth}, {kernel}, stride {r.stride}, "
                 f"padding {r.padding})", fontsize=9)
    fig.tight_layout()
    return fig


def pan_explorer(scans, models: dict | None = None, per_model: int = 10, dpi: int = 72):
    """Static explorer: one tab per model, a dropdown of channels (strongest PANs of each kind, then ordinary
    channels) jslinked to a Stack of pre-rendered channel figures, so it works in the static site too."""
    import ipywidgets as widgets

    from .pans import channel_view, explorer_channels

    tabs, titles = [], []
    for sc in scans:
        rows = explorer_channels(sc.table, per_model)
        labels, images = [], []
        for _, r in rows.iterrows():
            view = channel_view(sc, (models or {}).get(sc.model_name), r.layer, int(r.channel))
            labels.append(f"{'PAN ' + r.sides + (' +' if r.sign > 0 else ' -') if r.is_pan else 'ordinary'}"
                          f" | {r.layer} c{int(r.channel)}")
            images.append(widgets.Image(value=_fig_png(pan_channel_figure(view, sc.tau), dpi=dpi), format="png",
                                        layout=widgets.Layout(max_width="100%", height="auto")))
        pick = widgets.Dropdown(options=list(zip(labels, range(len(labels)))), value=0,
                                layout=widgets.Layout(width="95%"))
        stack = widgets.Stack(images, selected_index=0)
        widgets.jslink((pick, "index"), (stack, "selected_index"))
        note = widgets.HTML(f"<small>{len(labels)} of {len(sc.table)} channels pre-rendered (the strongest PAN of "
                            "each kind and sign, then ordinary ones); the live explorer reaches every channel "
                            "in a running kernel.</small>")
        tabs.append(widgets.VBox([note, pick, stack]))
        titles.append(sc.model_name.replace("tf_efficientnet_", "effnet-"))
    tab = widgets.Tab(children=tabs)
    for i, t in enumerate(titles):
        tab.set_title(i, t)
    return tab


def pan_explorer_live(scans, models: dict | None = None, dpi: int = 72):
    """Live explorer for Jupyter (needs a kernel): any model, layer and channel. The figure is an Image
    widget, so the static site shows the first view."""
    import ipywidgets as widgets

    from .pans import channel_view

    by_name = {sc.model_name: sc for sc in scans}
    first = next(iter(by_name.values()))
    model_dd = widgets.Dropdown(options=list(by_name), value=first.model_name, description="model")
    layer_dd = widgets.Dropdown(options=list(first.maps), value=next(iter(first.maps)), description="layer")
    channel = widgets.BoundedIntText(value=0, min=0, max=first.maps[layer_dd.value].shape[0] - 1,
                                     description="channel")
    image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", height="auto"))

    def layers(*_):
        sc = by_name[model_dd.value]
        layer_dd.options = list(sc.maps)
        layer_dd.value = next(iter(sc.maps))

    def channels(*_):
        sc = by_name[model_dd.value]
        if layer_dd.value in sc.maps:
            channel.max = sc.maps[layer_dd.value].shape[0] - 1

    def draw(*_):
        sc = by_name[model_dd.value]
        if layer_dd.value not in sc.maps:
            return
        view = channel_view(sc, (models or {}).get(sc.model_name), layer_dd.value, int(channel.value))
        image.value = _fig_png(pan_channel_figure(view, sc.tau), dpi=dpi)

    model_dd.observe(layers, "value")
    layer_dd.observe(channels, "value")
    for w in (model_dd, layer_dd, channel):
        w.observe(draw, "value")
    draw()
    return widgets.VBox([widgets.HBox([model_dd, layer_dd, channel]), image])


# ---------------------------------------------------------------------------------------------------------
# Chapter 4: the compensation test and the matched blind-spot experiment

_LEAN_BARS = (("pretrained", "trained size", "pretrained, training size", "#222222"),
              ("pretrained", "even size", "pretrained, even size", "#0072B2"),
              ("random init", "trained size", "random init, training size", "#E69F00"),
              ("random init", "even size", "random init, even size", "#F0E442"))


def compensation_figure(verdicts):
    """Per model (panel): the net lean toward the side that reads more padding (:func:`padlib.spatial_bias.
    lean_score`) on each axis, for the pretrained model and its random-init copies at the training size and the
    even size; the grey band is the floor below which a lean does not count."""
    models = list(dict.fromkeys(verdicts["model"]))
    fig, axes = _panel_grid(len(models), row_height=2.9)
    cols = {("pretrained", "trained size"): "pretrained_trained_size", ("pretrained", "even size"): "pretrained_even_size",
            ("random init", "trained size"): "init_trained_size", ("random init", "even size"): "init_even_size"}
    floor = verdicts.attrs.get("floor", 0.25)
    for ax, m in zip(axes, models):
        d = verdicts[verdicts.model == m].reset_index(drop=True)
        for k, (init, size, label, colour) in enumerate(_LEAN_BARS):
            ax.bar(np.arange(len(d)) + (k - 1.5) * 0.2, d[cols[(init, size)]], 0.2, color=colour, label=label,
                   edgecolor="0.3", lw=0.4)
        ax.axhspan(-floor, floor, color="0.88", zorder=0)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(range(len(d)), [f"{r.axis}\n(reads more: {r.reads_more})\n{r.verdict}" for r in d.itertuples()],
                      fontsize=8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("net lean toward the side\nreading more padding", fontsize=8)
        ax.set_title(m, fontsize=10)
    return _finish_panel_grid(fig, axes, len(models), ncol=2, top=0.6)


def row_energy_figure(energy):
    """Per model (panel): the top-minus-bottom and left-minus-right energy share of each stride-2 layer's kernels
    (:func:`padlib.kernels.row_energy`), pretrained with its bootstrap interval, random-init copies as grey dots."""
    models = list(dict.fromkeys(energy["model"]))
    fig, axes = _panel_grid(len(models), row_height=2.7)
    for ax, m in zip(axes, models):
        d = energy[energy.model == m]
        pre = d[d.init == "pretrained"].reset_index(drop=True)
        for j, (col, colour, dx) in enumerate((("energy_tb", "#0072B2", -0.12), ("energy_lr", "#D55E00", 0.12))):
            x = np.arange(len(pre)) + dx
            ax.errorbar(x, pre[col], yerr=[pre[col] - pre[f"{col}_lo"], pre[f"{col}_hi"] - pre[col]], fmt="o",
                        ms=4, capsize=2, color=colour, label={"energy_tb": "top - bottom row (pretrained)",
                                                              "energy_lr": "left - right column (pretrained)"}[col])
            init = d[d.init == "random init"]
            for _, g in init.groupby("seed"):
                ax.plot(x, g[col].to_numpy(), ".", color="0.6", ms=3,
                        label="random init (each seed)" if j == 0 and _ == init.seed.min() else None)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(range(len(pre)), [f"{i + 1}\n{r}" for i, r in enumerate(pre["in_size"])], fontsize=8)
        ax.set_xlabel(f"stride-2 layer (input size); reads more: {pre['reads'].iloc[0] if len(pre) else ''}",
                      fontsize=8)
        ax.set_ylabel("energy share difference", fontsize=8)
        ax.set_title(m, fontsize=10)
    return _finish_panel_grid(fig, axes, len(models), ncol=3, top=0.5)


def accuracy_map_grid(maps: dict, size: float = 2.0, label: str = "accuracy (mean over seeds)"):
    """Seed-averaged accuracy maps of the matched study (:func:`padlib.blind_spots.mean_maps`): rows are input
    sizes, columns padding schemes, one shared colour scale; each pixel is the digit box's top-left offset."""
    sizes = list(dict.fromkeys(k[0] for k in maps))
    schemes = list(dict.fromkeys(k[1] for k in maps))
    values = np.concatenate([m.to_numpy().ravel() for m in maps.values()])
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    fig, axes = plt.subplots(len(sizes), len(schemes), figsize=(size * len(schemes) + 1.2, size * len(sizes) + 0.5),
                             squeeze=False)
    for i, s in enumerate(sizes):
        for j, sc in enumerate(schemes):
            ax = axes[i, j]
            m = maps[(s, sc)]
            im = ax.imshow(m.to_numpy(), cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest",
                           extent=(m.columns[0], m.columns[-1], m.index[-1], m.index[0]))
            ax.set_title(f"{sc}, {s} px", fontsize=9)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel("digit top (px)", fontsize=8)
            if i == len(sizes) - 1:
                ax.set_xlabel("digit left (px)", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=label)
    return fig


def paired_effects_figure(effects):
    """The matched study's paired effects (:func:`padlib.blind_spots.paired_effects`): mean difference with its
    95% interval over seeds, one row per test, the floor as a grey band; filled markers are resolved after Holm."""
    e = effects.reset_index(drop=True)
    labels = [f"{r.comparison}, {r.scheme}: {r.metric.replace('_', ' ')}" if r.effect == "size" else
              f"{r.comparison} @{int(r.size)}: {r.metric.replace('_', ' ')}" for r in e.itertuples()]
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(e) + 1.0))
    floor = effects.attrs.get("floor", 0.02)
    ax.axvspan(-floor, floor, color="0.88", zorder=0)
    ax.axvline(0, color="0.3", lw=0.6)
    for i, r in e.iterrows():
        colour = scheme_colour(r.scheme)
        ax.errorbar(r["mean"], i, xerr=[[r["mean"] - r.ci_low], [r.ci_high - r["mean"]]], fmt="o", ms=5, capsize=2,
                    color=colour, mfc=colour if r.resolved else "white")
    ax.set_yticks(range(len(e)), labels, fontsize=7.5)
    ax.invert_yaxis()
    ax.set_xlabel("paired difference in accuracy (mean over seeds, 95% interval)")
    fig.tight_layout()
    return fig
