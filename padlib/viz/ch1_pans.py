"""Chapter 1's figures: PAN counts, thresholds, the null, sides, depth, single channels, explorers."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..pan_tables import channel_view, explorer_channels
from ..viz.common import _fig_png, _finish_panel_grid, _panel_grid, _plain_log_ticks
from ..viz.style import CONTROL, PAN_COLOUR, PRETRAINED, RANDOM_INIT, _SIGN_COLORS, model_colour

# Chapter 1's roles in the book's colours: trained near-black, random init mid grey, the circular null light grey,
# PANs pink; tau (a threshold, not a network) in blue and the reading of the paper's count as a yellow band.
NETWORK_STYLE = {"trained": dict(color=PRETRAINED, lw=1.4), "random init": dict(color=RANDOM_INIT, lw=1.4),
                 "circular null": dict(color=CONTROL, lw=1.0)}
TAU_COLOUR = "#0072B2"
CLAIM_BAND = dict(color="#F0E442", alpha=0.35, lw=0)


def _label_overflow(ax, edge: float, counts: dict, y=None):
    """Label a histogram's last bin, into which values above ``edge`` were clipped: how many of each series."""
    over = [f"{n} {lab}" for lab, n in counts.items() if n]
    if not over:
        return
    ax.annotate(f"last bin also holds the values\nbeyond {edge:.3g}: " + ", ".join(over), xy=(1.0, 1.0),
                xycoords="axes fraction", ha="right", va="top", fontsize=7, color="0.25")


def pan_counts_figure(summary, claim_range: tuple[int, int], claim_share: float):
    """PANs per model as counts (with our reading of the paper's 'dozens to hundreds', ``claim_range``, as a
    band: padlib.chapters.claims.CLAIM_COUNT_RANGE) and as shares of filters (the unverified 'about 2%' as a line)."""


    claim_low, claim_high = claim_range
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    x = np.arange(len(summary))
    a.axhspan(claim_low, claim_high, label=f"paper: dozens to hundreds (our reading: {claim_low}-{claim_high})",
              **CLAIM_BAND)
    a.bar(x - 0.2, summary["fire"], 0.4, color=_SIGN_COLORS[1], label="fire at the border")
    a.bar(x + 0.2, summary["silenced"], 0.4, color=_SIGN_COLORS[-1], label="silenced at the border")
    a.plot(x, summary["pans"], "o", color=PAN_COLOUR, mec=PRETRAINED, mew=0.6, label="all PANs")
    a.set_yscale("log")
    _plain_log_ticks(a)
    a.set_ylabel("PANs (log)")
    b.bar(x, summary["share_pct"], 0.6, color=PAN_COLOUR, label="all PANs")
    b.axhline(claim_share, color="k", ls="--", lw=1, label=f"unverified summary: about {claim_share:g}%")
    b.set_ylabel("PANs, % of padded filters")
    b.set_ylim(bottom=0)
    for ax in (a, b):
        ax.set_xticks(x, [m.replace("tf_efficientnet_", "") for m in summary["model"]], fontsize=8)
        ax.legend(fontsize=7.5, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def learned_pan_figure(control):
    """Per model, the share of padded filters flagged by the circular null alone (padding-caused) and the share
    that are learned PANs (also beyond random init), trained (bars) vs random-init copies (mean, range)."""

    models = list(dict.fromkeys(control["model"]))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    x = np.arange(len(models))
    for ax, col, title in zip(axes, ("padding_caused_pct", "learned_pct"),
                              ("padding-caused (circular null only)", "learned PANs (also beyond random init)")):
        tr = [float(control[(control.model == m) & (control.init == "trained")][col].iloc[0]) for m in models]
        ri = [control[(control.model == m) & (control.init == "random init")][col] for m in models]
        mean = np.array([r.mean() for r in ri])
        err = np.array([[m_ - r.min() for m_, r in zip(mean, ri)], [r.max() - m_ for m_, r in zip(mean, ri)]])
        ax.bar(x - 0.2, tr, 0.4, color=PRETRAINED, label="trained")
        ax.bar(x + 0.2, mean, 0.4, color=RANDOM_INIT, yerr=err, capsize=3, label="random init (mean, range)")
        ax.set_xticks(x, [m.replace("tf_efficientnet_", "effnet-") for m in models], fontsize=8)
        ax.set_ylabel("% of padded filters")
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


def learned_score_figure(scores, bins: int = 50):
    """Per model, the distributions of the padding-caused side score for the trained network, its random-init
    copies and its circular-padding null, with tau (the null's threshold) and the spread of the per-layer
    random-init thresholds (10-90% of layers, median dashed); the random-init copies' own tau, dotted.""" 

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
                ax.hist(v, edges, weights=w, color=NETWORK_STYLE[network]["color"], label=network)
            else:
                ax.hist(v, edges, weights=w, histtype="step", label=network, **NETWORK_STYLE[network])
        thr = d[d.network == "trained"].groupby("layer").init_side_threshold.first().dropna()
        if len(thr):
            ax.axvspan(thr.quantile(0.1), thr.quantile(0.9), color=RANDOM_INIT, alpha=0.18, lw=0,
                       label="random-init thresholds (10-90% of layers)")
            ax.axvline(thr.median(), color=RANDOM_INIT, ls="--", lw=1)
        ax.axvline(d[d.network == "trained"].tau.iloc[0], color=TAU_COLOUR, lw=1.4, label="tau (trained, its null)")
        if (d.network == "random init").any():
            ax.axvline(d[d.network == "random init"].tau.mean(), color=RANDOM_INIT, ls=":", lw=1.6,
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
            st = NETWORK_STYLE[network]
            ax.plot(d.rel_depth, d.learned_pct, "-", color=st["color"], lw=1.3, label=f"{network}: learned PANs")
            ax.plot(d.rel_depth, d.padding_caused_pct, "--", color=st["color"], lw=0.9,
                    label=f"{network}: padding-caused")
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("relative depth (0 = stem)", fontsize=9)
        ax.set_ylabel("% of the layer's filters", fontsize=9)
        ax.set_ylim(bottom=0)
    return _finish_panel_grid(fig, axes, len(models), ncol=2, top=0.6)


def pan_threshold_curve_figure(curves, claim_range: tuple[int, int]):
    """PANs found as the threshold grows (observed), next to the null's exceedances, per model; the shaded
    band is our reading of 'dozens to hundreds' (``claim_range``: padlib.chapters.claims.CLAIM_COUNT_RANGE)."""

    models = list(dict.fromkeys(curves["model"]))
    fig, axes = _panel_grid(len(models))
    for ax, m in zip(axes, models):
        d = curves[curves.model == m]
        ax.plot(d["tau"], d["pans"], color=PAN_COLOUR, lw=1.6, label="PANs (observed)")
        ax.plot(d["tau"], d["null_exceed"], color=CONTROL, ls="--", lw=2.0,
                label="circular-null channels above tau")
        ax.axvline(d["calibrated_tau"].iloc[0], color=TAU_COLOUR, lw=1, label="calibrated tau")
        ax.axhspan(*claim_range, zorder=0, label="our reading of 'dozens to hundreds'", **CLAIM_BAND)
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=0)  # counts: no negative ticks
        ax.set_title(m, fontsize=10)
        ax.set_xlabel("threshold tau (interior std)")
        ax.set_ylabel("channels")
    return _finish_panel_grid(fig, axes, len(models), ncol=3, top=0.45)


def pan_null_figure(scans, bins: int = 60):
    """Observed vs circular-null distributions of the side score max_s |z_s|, with the calibrated tau."""

    scans = list(scans)
    fig, axes = _panel_grid(len(scans))
    for ax, sc in zip(axes, scans):
        obs, null = sc.table["score"].to_numpy(), sc.null["score"].to_numpy()
        hi = max(np.quantile(obs, 0.999), sc.tau * 2)
        edges = np.linspace(0, hi, bins)
        ax.hist(np.clip(null, 0, hi), edges, color=CONTROL, label="null (circular padding)")
        ax.hist(np.clip(obs, 0, hi), edges, histtype="step", color=PRETRAINED, lw=1.2, label="observed (own padding)")
        ax.axvline(sc.tau, color=TAU_COLOUR, lw=1.2, label=f"tau = {sc.tau:.2f}")
        _label_overflow(ax, edges[-1], {"observed": int((obs > edges[-1]).sum()), "null": int((null > edges[-1]).sum())})
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
        ax.scatter(z[ok & ~pan], other[ok & ~pan], s=2, color=PRETRAINED, alpha=0.15, label="other sides")
        ax.scatter(z[ok & pan], other[ok & pan], s=2, color=PAN_COLOUR, alpha=0.5, label="sides of PANs")
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
    # each row gets room for its two-line titles, so that no title overprints the maps above it
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, (size + 0.5) * nrows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for i, r in rows.iterrows():
        m = scan.maps[r.layer][int(r.channel)].numpy()
        dev = abs(m - r.interior_mean).max() or 1.0
        ax = axes.flat[i]
        ax.axis("on")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.imshow(m, cmap="RdBu_r", vmin=r.interior_mean - dev, vmax=r.interior_mean + dev)
        h, w = m.shape
        pad = max(0.08 * max(h, w), 0.6)  # a white margin: the frame must not hide the border rows it is about
        ax.set_xlim(-0.5 - pad, w - 0.5 + pad)
        ax.set_ylim(h - 0.5 + pad, -0.5 - pad)
        label = ("PAN " + r.sides + (" +" if r.sign > 0 else " -")) if r.is_pan else "ordinary"
        for spine in ax.spines.values():  # PANs framed in the book's PAN colour, ordinary channels in light grey
            spine.set_visible(True)
            spine.set_color(PAN_COLOUR if r.is_pan else CONTROL)
            spine.set_linewidth(2.5 if r.is_pan else 1.0)
        ax.set_title(f"d{r.depth} c{int(r.channel)} s{r.stride}\n{label}", fontsize=7,
                     color=PRETRAINED, pad=3)
    fig.suptitle(scan.model_name if title is None else title, fontsize=10)
    return fig


def pan_channel_figure(view, tau: float | None = None, title: str = ""):
    """One channel: mean map, border profile, kernel on the mean input and its scores (2 x 2 panels)."""

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
            axes[3].axhline(v, color=TAU_COLOUR, lw=0.8, ls="--", label=lab)
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



READING_LABELS = {"padding_caused": "padding-caused", "learned": "learned", "specialist": "specialist"}


def readings_figure(readings, title="Three readings of the same scan"):
    """Per model, the three readings' shares of padded filters, split by sign (dark red: fires at the border,
    dark blue: silenced there), the total above each bar; one y scale for every panel."""
    models = list(dict.fromkeys(readings.model))
    order = [r for r in ("padding_caused", "learned", "specialist") if r in set(readings.reading)]
    ncol = min(len(models), 3)  # at most three panels a row: readable at the page's width
    nrow = -(-len(models) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol + 0.6, 2.7 * nrow + 0.4), sharey=True, squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    top = 1.0
    for ax, m in zip(axes.flat, models):
        g = readings[readings.model == m]
        bottom = np.zeros(len(order))
        for sign, word in ((1, "fires"), (-1, "silenced")):
            vals = np.array([g[(g.reading == r) & (g.sign == word)].pct.sum() for r in order])
            ax.bar(range(len(order)), vals, bottom=bottom, color=_SIGN_COLORS[sign], width=0.7,
                   label=f"{'fires at' if sign > 0 else 'silenced at'} the border")
            bottom += vals
        for i, v in enumerate(bottom):
            ax.text(i, v, f"{v:.1f}%", ha="center", va="bottom", fontsize=7.5)
        ax.set_xticks(range(len(order)), [READING_LABELS[r] for r in order], rotation=30, ha="right", fontsize=8)
        ax.set_title(m.replace("tf_efficientnet_", ""), fontsize=9)
        top = max(top, float(bottom.max()))
    axes[0][0].set_ylim(0, top * 1.15)  # shared: set once, from the tallest bar of every panel
    for row in axes:
        row[0].set_ylabel("% of padded filters")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7.5, frameon=False, loc="upper right", ncol=2)
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (2.7 * nrow + 0.4)))
    return fig


def convergence_figure(convergence):
    """The three readings' counts (lines: padding-caused dashed, learned dotted, specialist solid) against the
    number of probe images, one colour per model."""
    fig, ax = plt.subplots(figsize=(6.2, 3.2))
    styles = {"padding_caused": "--", "learned": ":", "specialist": "-"}
    for k, (m, g) in enumerate(convergence.groupby("model", sort=False)):
        for r, ls in styles.items():
            if r in g:
                ax.plot(g.n_images, g[r], ls, marker="o", ms=3, color=model_colour(m, k),
                        label=f"{m.replace('tf_efficientnet_', '')}, {READING_LABELS[r]}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(set(convergence.n_images)), [str(v) for v in sorted(set(convergence.n_images))])
    ax.set_xlabel("probe images")
    ax.set_ylabel("channels")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    return fig
