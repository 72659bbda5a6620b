"""Chapter 4's figures: the zoo audit, mean maps, compensation, kernel energy, accuracy maps, paired effects."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..audit import padding_audit
from ..spatial_bias import constant_inputs, depth_layers, mean_feature_maps
from ..viz.common import _finish_panel_grid, _panel_grid, message_figure
from ..viz.style import PRETRAINED, RANDOM_INIT, colour_name, model_colour, scheme_colour

# This chapter's bar styles: the role colours (pretrained near-black, random init mid grey, as on every page), the
# even input size hatched; the zoo's counts in dark grey (no role, model or scheme: none of their colours).
LEAN_BARS = (("pre", "train", "pretrained, training size", PRETRAINED, ""),
             ("pre", "even", "pretrained, even size", PRETRAINED, "////"),
             ("init", "train", "random init, training size", RANDOM_INIT, ""),
             ("init", "even", "random init, even size", RANDOM_INIT, "////"))
ZOO_COLOUR = "#555555"
COLOUR_WORDS = {ZOO_COLOUR: "dark grey"}


def colour_word(colour: str) -> str:
    """The word the prose uses for a colour of this chapter's figures (the book's :func:`colour_name`)."""
    return COLOUR_WORDS.get(colour) or colour_name(colour)

# ---------------------------------------------------------------------------------------------------------
# Chapter 4 (spatial-bias blind spots): plots for padlib.audit and padlib.spatial_bias


def zoo_family_plot(by_family, top: int = 30):
    """Per family (most models first): share with uneven padding at the default size (solid dark grey), and share
    that is even at the default or the nearest size found (hatched); the labels give the number of models."""
    df = by_family.head(top).iloc[::-1]
    y = np.arange(len(df))
    fig, ax = plt.subplots(figsize=(7.5, 0.24 * len(df) + 1.2))
    ax.barh(y + 0.2, df["uneven_at_default"], 0.4, color=ZOO_COLOUR, label="uneven padding at default size")
    ax.barh(y - 0.2, df["even_at_nearest"], 0.4, color="white", edgecolor=ZOO_COLOUR, hatch="////", lw=0.6,
            label="even at the default or a nearby size")
    ax.set_yticks(y, [f"{f} ({n})" for f, n in zip(df["family"], df["models"])], fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the family's architectures")
    ax.legend(fontsize=7, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def zoo_family_caption() -> str:
    """The prose under :func:`zoo_family_plot`, its colour words taken from the figure's colours."""
    return (f"Each pair of bars is one family (number of architectures in brackets): the solid "
            f"{colour_word(ZOO_COLOUR)} bar is the share whose padding is uneven at the default input size, the "
            "hatched bar the share that pads evenly at the default size or at a size within `max_distance` pixels "
            "of it (architectures without uneven padding count as even, whatever their input shape). Families "
            "without padded stride-2 layers (most plain vision transformers, whose patch embedding has no padding) "
            "have no solid bar. Where the solid bar is long and the hatched one as long, the unevenness is the "
            "224-vs-225 kind that a one-pixel change of input size removes; a shorter hatched bar marks "
            "architectures with no even size nearby (fixed input sizes, explicit asymmetric pads, or resizing "
            "inside the model).")


def zoo_sides_plot(zoo):
    """Left: which sides read the extra padding in uneven models (PyTorch-style top/left vs TF-SAME
    bottom/right); right: how far the nearest even-padding size is from the default size."""
    ok = zoo[(zoo["status"] == "ok") & (zoo["n_uneven"] > 0)]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 2.8))
    sides = ok["extra_sides"].replace("", "none").value_counts()
    a.bar(range(len(sides)), sides.values, color=ZOO_COLOUR)
    a.set_xticks(range(len(sides)), sides.index, rotation=30, ha="right", fontsize=7)
    a.set_ylabel("uneven architectures")
    a.set_ylim(bottom=0)
    a.set_title("sides reading more padding", fontsize=9)
    dist = ok["even_distance"].dropna()
    b.hist(dist, bins=range(0, int(dist.max() if len(dist) else 1) + 2), color=ZOO_COLOUR, align="left")
    b.set_xlabel("|nearest even size - default size| (px)")
    b.set_ylabel("uneven architectures")
    b.set_ylim(bottom=0)
    b.set_title(f"nearest even size ({len(dist)} found, {len(ok) - len(dist)} none)", fontsize=9)
    fig.tight_layout()
    return fig


def mean_map_grid(maps_by_row: dict, layers=None, ncols: int = 7, size: float = 1.45, colorbar: bool = True,
                  transpose: bool = False):
    """Rows of mean feature maps (one row per entry of ``maps_by_row``: label -> FeatureMaps or {layer: map}),
    ``ncols`` layers evenly spaced through depth, each map on its own colour scale (viridis) with its own colour
    bar (its minimum and maximum marked) when ``colorbar``. ``transpose``: one column per entry and one row per
    depth instead (fewer, larger panels across the page)."""
    rows = list(maps_by_row.items())
    all_layers = list(rows[0][1].maps if hasattr(rows[0][1], "maps") else rows[0][1])
    idx = np.unique(np.linspace(0, len(all_layers) - 1, min(ncols, len(all_layers))).round().astype(int))
    width = size * (1.3 if colorbar else 1.0)
    shape = (len(idx), len(rows)) if transpose else (len(rows), len(idx))
    fig, axes = plt.subplots(*shape, figsize=(width * shape[1], size * shape[0] + 0.4), squeeze=False)
    for r, (label, fm) in enumerate(rows):
        maps = fm.maps if hasattr(fm, "maps") else fm
        names = list(maps)
        for c, i in enumerate(idx):
            ax = axes[c, r] if transpose else axes[r, c]
            name = (layers or names)[i] if i < len(layers or names) else names[-1]
            m = np.asarray(maps[name], dtype=float)
            im = ax.imshow(m, cmap="viridis", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            shape_text = f"{m.shape[0]}x{m.shape[1]}"
            if transpose:
                ax.set_title(f"{label}\n{shape_text}" if c == 0 else shape_text, fontsize=8)
                if r == 0:
                    ax.set_ylabel(name, fontsize=8)
            else:
                ax.set_title(f"{name}\n{shape_text}" if r == 0 else shape_text, fontsize=7)
                if c == 0:
                    ax.set_ylabel(label, fontsize=8)
            if colorbar:
                lo, hi = float(np.nanmin(m)), float(np.nanmax(m))
                cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
                cb.set_ticks([lo, hi] if hi > lo else [lo])
                cb.set_ticklabels([f"{v:.3g}" for v in ([lo, hi] if hi > lo else [lo])])
                cb.ax.tick_params(labelsize=7 if transpose else 6, length=2)
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
    rows = audit[(audit["layer"] == layer) | audit["layer"].str.startswith(layer + ".")] if len(audit) else audit
    if not len(rows):
        return f"<p style='font-size:11px'>no layer inside <code>{layer}</code> pads</p>"
    return audit_rows_table(rows).to_html(index=False, border=0).replace("<table", "<table style='font-size:10px'")


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


def lean_figure(leans):
    """Per model (panel): each axis's lean toward the side that reads more padding at the training size (mean
    spatial-bias index over depths, signed; :func:`padlib.experiments.ch4_blind_spots.lean_tests`), for the pretrained
    model and its random-init copies at the training and the even size, with 95% intervals over image splits
    (pretrained) or seeds (random init)."""
    models = list(dict.fromkeys(leans["model"]))
    fig, axes = _panel_grid(len(models), row_height=2.9)
    for ax, m in zip(axes, models):
        d = leans[leans.model == m].reset_index(drop=True)
        x = np.arange(len(d))
        for k, (who, which, label, colour, hatch) in enumerate(LEAN_BARS):
            v = d[f"{who}_{which}"].to_numpy(dtype=float)
            lo, hi = d[f"{who}_{which}_low"].to_numpy(dtype=float), d[f"{who}_{which}_high"].to_numpy(dtype=float)
            yerr = np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
            ax.bar(x + (k - 1.5) * 0.2, v, 0.2, color="white" if hatch else colour, edgecolor=colour, hatch=hatch,
                   lw=0.8, label=label, yerr=yerr, error_kw=dict(ecolor="0.35", lw=0.8, capsize=2))
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(x, [f"{r.axis}\n(reads more: {r.toward})" for r in d.itertuples()], fontsize=8)
        ax.set_ylabel("lean toward the side\nreading more padding", fontsize=8)
        ax.set_title(m, fontsize=10)
    return _finish_panel_grid(fig, axes, len(models), ncol=2, top=0.6)


def lean_caption(leans) -> str:
    """The prose under :func:`lean_figure`, its colour words from the figure's colours and its sizes from the table."""
    ts, es = leans.attrs.get("trained_sizes", {}), leans.attrs.get("even_sizes", {})
    sizes = ", ".join(f"{m} {ts.get(m, '?')} and {es.get(m, '?')} px" for m in dict.fromkeys(leans["model"]))
    return (f"Bars: each axis's lean toward the side that reads more padding at the training size (the mean over "
            f"depths of the spatial-bias index, signed), {colour_word(PRETRAINED)} for the pretrained model and "
            f"{colour_word(RANDOM_INIT)} for its random-init copies; solid at the training size, hatched at the even "
            f"size ({sizes}). Whiskers: 95% intervals over {leans.attrs.get('unit', 'image splits')} (pretrained) or "
            "seeds (random init). Above 0: "
            "the maps lean toward the side reading more padding; below 0: away from it.")


def row_energy_figure(energy):
    """Per model (panel): the top-minus-bottom (circles) and left-minus-right (squares) energy share of each
    stride-2 layer's kernels (:func:`padlib.kernels.row_energy`), pretrained with its bootstrap interval,
    random-init copies as dots, in the book's role colours."""
    models = list(dict.fromkeys(energy["model"]))
    fig, axes = _panel_grid(len(models), row_height=2.7)
    for ax, m in zip(axes, models):
        d = energy[energy.model == m]
        pre = d[d.init == "pretrained"].reset_index(drop=True)
        for j, (col, marker, dx) in enumerate((("energy_tb", "o", -0.12), ("energy_lr", "s", 0.12))):
            x = np.arange(len(pre)) + dx
            yerr = None
            if f"{col}_lo" in pre:
                yerr = np.clip([pre[col] - pre[f"{col}_lo"], pre[f"{col}_hi"] - pre[col]], 0, None)
            ax.errorbar(x, pre[col], yerr=yerr, fmt=marker, ms=4, capsize=2, color=PRETRAINED,
                        mfc=PRETRAINED if j == 0 else "white",
                        label={"energy_tb": "top - bottom row (pretrained)",
                               "energy_lr": "left - right column (pretrained)"}[col])
            init = d[d.init == "random init"]
            for k, (_, g) in enumerate(init.groupby("seed")):
                ax.plot(x, g[col].to_numpy(), marker, color=RANDOM_INIT, ms=3, mfc=RANDOM_INIT if j == 0 else "white",
                        label=("random init, " + ("top - bottom" if j == 0 else "left - right") + " (each seed)")
                        if k == 0 else None)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(range(len(pre)), [f"{i + 1}\n{r}" for i, r in enumerate(pre["in_size"])], fontsize=8)
        ax.set_xlabel(f"stride-2 layer (input size); reads more: {pre['reads'].iloc[0] if len(pre) else ''}",
                      fontsize=8)
        ax.set_ylabel("energy share difference", fontsize=8)
        ax.set_title(m, fontsize=10)
    return _finish_panel_grid(fig, axes, len(models), ncol=2, top=0.7)


def row_energy_caption() -> str:
    """The prose under :func:`row_energy_figure`, its colour words from the figure's colours."""
    return (f"The weights, read directly (`padlib.kernels.row_energy`): for each stride-2 layer, the share of its "
            f"kernels' squared weights on the top row minus the bottom row (filled circles) and on the left column "
            f"minus the right column (open squares), {colour_word(PRETRAINED)} for the pretrained model with "
            f"bootstrap intervals over kernels, {colour_word(RANDOM_INIT)} for its random-init copies (one mark per "
            "seed). A kernel that leans away from the padding it reads puts less energy on the row or column facing "
            "it: below 0 where the top/left padding is read more, above 0 where the bottom/right one is.")


def accuracy_map_grid(maps: dict, size: float = 2.0, label: str = "accuracy (mean over seeds)", what: str = "digit"):
    """Seed-averaged maps (:func:`padlib.experiments.ch4_blind_spots.mean_maps`): rows are input sizes, columns
    padding schemes, one shared colour scale; each pixel is the top-left offset of the ``what`` (the object's box)."""
    sizes = list(dict.fromkeys(k[0] for k in maps))
    schemes = list(dict.fromkeys(k[1] for k in maps))
    values = np.concatenate([m.to_numpy().ravel() for m in maps.values()])
    vmin, vmax = float(np.nanmin(values)), float(np.nanmax(values))
    fig, axes = plt.subplots(len(sizes), len(schemes), figsize=(size * len(schemes) + 1.2, size * len(sizes) + 0.5),
                             squeeze=False)
    for i, s in enumerate(sizes):
        for j, sc in enumerate(schemes):
            ax = axes[i, j]
            if (s, sc) not in maps:  # a cell not trained (the positive control runs at the uneven size only)
                ax.axis("off")
                continue
            m = maps[(s, sc)]
            im = ax.imshow(m.to_numpy(), cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest",
                           extent=(m.columns[0], m.columns[-1], m.index[-1], m.index[0]))
            ax.set_title(f"{sc}, {s} px", fontsize=9)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(f"{what} top (px)", fontsize=8)
            if i == len(sizes) - 1:
                ax.set_xlabel(f"{what} left (px)", fontsize=8)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.8, label=label)
    return fig


def _interval_rows(ax, e, labels, colours, primary=None):
    primary = set(primary or [])
    ax.axvline(0, color="0.3", lw=0.6)
    for i, r in e.iterrows():
        excludes = r.ci_low > 0 or r.ci_high < 0
        ax.errorbar(r["mean"], i, xerr=[[r["mean"] - r.ci_low], [r.ci_high - r["mean"]]], fmt="o", ms=5, capsize=2,
                    color=colours[i], mfc=colours[i] if excludes else "white")
    ax.set_yticks(range(len(e)), labels, fontsize=7.5)
    for i, t in enumerate(ax.get_yticklabels()):
        if i in primary:
            t.set_fontweight("bold")
    ax.invert_yaxis()


_FAMILY_SCHEME = {"zone": "zero", "side": "zero", "even size": "zero", "symmetric": "symmetric",
                  "positive control": "noisy top"}


def detection_tests_figure(tests, primary_rows=None, scale: float = 100.0):
    """The trained detectors' tests (:func:`padlib.experiments.ch4_detection.detection_tests`): each difference in
    recall points with its 95% interval over seeds, one row per test, coloured by the padding it is about (black
    zero padding against circular, green symmetric, wine the noisy-top positive control); filled markers: the
    interval excludes 0 (unadjusted); bold labels: the claims' primary tests."""
    keep = [i for i, f in enumerate(tests["family"]) if "logits" not in f]  # recall rows only
    primary_rows = [keep.index(i) for i in (primary_rows or []) if i in keep]
    e = tests.iloc[keep].reset_index(drop=True).copy()
    e[["mean", "ci_low", "ci_high"]] = e[["mean", "ci_low", "ci_high"]] * scale
    labels = [f"{r.family}: {r.comparison}, {r.metric.replace('_', ' ')}" for r in e.itertuples()]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(e) + 1.1))
    _interval_rows(ax, e, labels, [scheme_colour(_FAMILY_SCHEME.get(f, "zero")) for f in e["family"]], primary_rows)
    ax.set_xlabel("difference in recall, points (mean over seeds, 95% interval)")
    fig.tight_layout()
    return fig


def _legend_of_all(axes, **kw):
    """One legend, on the last panel, naming every label of every panel once (a scheme drawn only in some panels,
    such as the control trained at one size, is named too)."""
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    axes[-1].legend(handles.values(), handles.keys(), **kw)


def side_deficits_figure(summary, scale: float = 100.0, level: float = 0.95):
    """Per input size (panel), side and padding scheme: the band of positions along that side minus the interior,
    in recall points, mean over seeds with a 95% t-interval, coloured by scheme (circular shows the position effects
    that padding does not explain; the noisy-top control must dip on the top)."""
    from ..stats import t_test

    sizes = sorted(summary["size"].unique())
    schemes = list(dict.fromkeys(summary["scheme"]))
    sides = ("top", "bottom", "left", "right")
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 2.9), sharey=True, squeeze=False)
    width = 0.8 / max(len(schemes), 1)
    for ax, size in zip(axes[0], sizes):
        for k, sc in enumerate(schemes):
            g = summary[(summary["size"] == size) & (summary["scheme"] == sc)]
            if not len(g):
                continue
            for j, side in enumerate(sides):
                r = t_test(scale * g[f"{side}_deficit"].to_numpy(dtype=float), level)
                x = j - 0.4 + width * (k + 0.5)
                ax.errorbar(x, r.mean, yerr=[[r.mean - r.low], [r.high - r.mean]], fmt="o", ms=4, capsize=2,
                            color=scheme_colour(sc), label=sc if j == 0 else None)
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(range(len(sides)), [f"{s} band" for s in sides])
        ax.set_title(f"{size} px", fontsize=9)
    axes[0, 0].set_ylabel("band minus interior, recall points")
    _legend_of_all(axes[0], fontsize=7, loc="lower right", frameon=True)
    fig.tight_layout()
    return fig


def detection_examples_figure(images, placement, k: int = 4):
    """A few test canvases of the trained design: one ring (the target; marked by a white box) among open rings and
    squares on a texture, at positions from the border inwards."""
    import matplotlib.patches as mpatches

    idx = np.linspace(0, len(images) - 1, k).astype(int)
    fig, axes = plt.subplots(1, k, figsize=(1.9 * k, 2.1))
    for ax, i in zip(np.atleast_1d(axes), idx):
        ax.imshow(images[i, 0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        r = placement.iloc[i]
        side = 2 * (r["cy"] - r["top"]) + 1
        ax.add_patch(mpatches.Rectangle((r["left"] - 1.5, r["top"] - 1.5), side + 2, side + 2, fill=False,
                                        ec="white", lw=1.2))  # white: a mark, no meaning
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"ring at ({int(r['top'])}, {int(r['left'])})", fontsize=8)
    fig.tight_layout()
    return fig


def loss_curves_figure(curves):
    """Training loss (a running mean over 25 steps) per padding scheme, one panel per input size: thick lines are
    means over seeds, thin lines single seeds."""
    sizes = sorted(curves["size"].unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 2.6), sharey=True, squeeze=False)
    for ax, size in zip(axes[0], sizes):
        c = curves[curves["size"] == size]
        for sc, g in c.groupby("scheme", sort=False):
            for _, s in g.groupby("seed"):
                ax.plot(s["step"], s["loss"], color=scheme_colour(sc), lw=0.5, alpha=0.4)
            m = g.groupby("step")["loss"].mean()
            ax.plot(m.index, m.to_numpy(), color=scheme_colour(sc), lw=1.8, label=sc)
        ax.set_title(f"{size} px", fontsize=9)
        ax.set_xlabel("training step")
        ax.set_yscale("log")
    axes[0, 0].set_ylabel("training loss")
    _legend_of_all(axes[0], fontsize=7)
    fig.tight_layout()
    return fig


def energy_effects_figure(energy_fx, primary_rows=None):
    """The matched networks' kernel test (:func:`padlib.experiments.ch4_blind_spots.energy_effects`): per scheme and
    axis, the stride-2 kernels' energy share difference at the uneven minus the even size, 95% interval over seeds;
    filled markers: the interval excludes 0; bold labels: the primary tests."""
    e = energy_fx.reset_index(drop=True)
    names = {"energy_tb": "top - bottom row", "energy_lr": "left - right column"}
    labels = [f"{r.scheme}: {names.get(r.metric, r.metric)}" for r in e.itertuples()]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(e) + 1.0))
    _interval_rows(ax, e, labels, [scheme_colour(s) for s in e["scheme"]], primary_rows)
    ax.set_xlabel(f"energy share difference, {energy_fx.attrs.get('uneven', '?')} - "
                  f"{energy_fx.attrs.get('even', '?')} px (mean over seeds, 95% interval)")
    fig.tight_layout()
    return fig


def _reach_order(schemes) -> list:
    """The schemes in the chapter's order, the positive control last."""
    present = list(dict.fromkeys(schemes))
    return [s for s in present if s != "noisy top"] + [s for s in present if s == "noisy top"]


def detection_reach_figure(study, width: float = 7.0, height: float = 2.9):
    """The trained detectors' border reach (``study.reach``): per tile size (panel), the tiled heat map's error
    against its distance from the nearest inner tile edge (mean |tile - whole| over the output cells at that
    distance, divided by the spread of the whole-image heat map), one line per padding scheme in the book's colours
    (mean over seeds, the seeds' range as a band; the noisy-top control dashed), the tolerance as a grey line. The
    y axis is linear below a tenth of the tolerance, so an error of exactly 0 shows."""
    reach = study.reach
    if reach is None or not len(reach):
        return message_figure("no border reach was measured (it needs networks whose size is a multiple of 32 px)")
    tol = float(study.reach_summary["tolerance"].iloc[0])
    tiles = sorted(reach["tile"].unique())
    sizes = set(study.reach_summary["size"])
    fig, axes = plt.subplots(1, len(tiles), figsize=(width, height), sharey=True, squeeze=False)
    for ax, tile in zip(axes[0], tiles):
        t = reach[reach["tile"] == tile]
        for sc in _reach_order(t["scheme"]):
            g = t[t["scheme"] == sc].groupby("distance")["error"].agg(["mean", "min", "max"])
            colour = scheme_colour(sc)
            ax.fill_between(g.index, g["min"], g["max"], color=colour, alpha=0.15, lw=0)
            ax.plot(g.index, g["mean"], "--" if sc == "noisy top" else "-", color=colour, lw=1.6, marker="o", ms=3,
                    label=sc if sc != "noisy top" else "noisy top (control)")
        ax.axhline(tol, color="0.55", lw=0.9, zorder=0)
        ax.set_yscale("symlog", linthresh=tol / 10, linscale=0.5)
        ax.set_ylim(bottom=0, top=max(1.5, float(reach["error"].max()) * 1.3))
        d = sorted(t["distance"].unique())
        ax.set_xticks(d if len(d) <= 7 else d[::2])
        ax.set_xlim(d[0] - 1, d[-1] + 1)
        ax.set_xlabel("px in from the nearest inner tile edge")
        trained = " (training size)" if sizes == {tile} else ""
        ax.set_title(f"tiles of {int(tile)} px{trained}", fontsize=9)
        ax.grid(axis="y", alpha=0.25, lw=0.5)
    first = axes[0, 0]
    first.set_ylabel("error / spread of the\nwhole-image heat map")
    first.text(first.get_xlim()[0] + 0.5, tol * 1.15, f"tolerance {100 * tol:g}%", ha="left", va="bottom",
               fontsize=7.5, color="0.4")  # at the edge, where every error is far above it
    _legend_of_all(axes[0], fontsize=7.5, frameon=False, loc="upper right")
    fig.tight_layout()
    return fig


def detection_reach_caption(study) -> str:
    """The prose under :func:`detection_reach_figure`, its colour words taken from the figure's colours."""
    schemes = _reach_order(study.reach["scheme"]) if study.reach is not None and len(study.reach) else []
    if not schemes:
        return "No border reach was measured (it needs networks whose size is a multiple of 32 px)."
    tol = f"{100 * float(study.reach_summary['tolerance'].iloc[0]):g}%"
    words = [f"{colour_word(scheme_colour(s))} {s} padding" if s != "noisy top" else
             f"dashed {colour_word(scheme_colour(s))} the noisy-top control" for s in schemes]
    named = ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else "".join(words)
    return ("How far in from a tile's inner edge the tiled heat map differs from the heat map of the whole canvas, "
            "per tile size: the error at each distance is the mean difference over the heat-map cells at that "
            "distance, as a share of the whole-image heat map's spread; lines are means over seeds, bands the seeds' "
            f"range ({named}); the grey line is the {tol} tolerance. Where a line stays above it up to the tile's "
            "centre, no overlap makes tiles of that size agree with the whole image.")


# ---------------------------------------------------------------------------------------------------------
# Objects at every position: the pretrained models at their own size

# Lower confidence blue, higher red (as chapter 1's silenced / firing border units); the sides that read more padding
# marked in black, the colour of zero padding on every page.
POSITION_CMAP = "RdBu_r"
READS_MARK = scheme_colour("zero")
POSITION_SIDES = ("top", "bottom", "left", "right")


def position_map_figure(study, variant: str = "model"):
    """Per model (panel): the mean change in the object's log-probability with the object at each grid position
    against the same object centred (mean over backgrounds of the mean over the objects recognised on each;
    :func:`padlib.experiments.ch4_blind_spots.pretrained_position_study`), on a diverging colour scale centred at 0
    and shared by the panels; black bars outside the map mark the sides that read more padding."""
    maps = study.maps[study.maps["variant"] == variant]
    models = list(dict.fromkeys(maps["model"]))
    if not models:
        return message_figure("no object was recognised centred: nothing to map")
    lim = float(np.nanmax(np.abs(maps["change"].to_numpy(dtype=float)))) or 1.0
    n = int(study.settings["n_positions"])
    fig, axes = plt.subplots(1, len(models), figsize=(3.3 * len(models) + 1.0, 3.4), squeeze=False)
    for ax, m in zip(axes[0], models):
        grid = (maps[maps.model == m].pivot(index="row", columns="col", values="change")
                .reindex(index=range(n), columns=range(n)).to_numpy(dtype=float))
        im = ax.imshow(grid, cmap=POSITION_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
        pad = 0.85
        for side in (study.reads.get(m, {}).get("tb"), study.reads.get(m, {}).get("lr")):
            if not side:
                continue
            lo, hi = -0.5, n - 0.5
            xy = {"top": ([lo, hi], [-pad, -pad]), "bottom": ([lo, hi], [n - 1 + pad] * 2),
                  "left": ([-pad, -pad], [lo, hi]), "right": ([n - 1 + pad] * 2, [lo, hi])}[side]
            ax.plot(*xy, color=READS_MARK, lw=4, solid_capstyle="butt", clip_on=False)
        ax.set_xlim(-1.1, n - 0.1)
        ax.set_ylim(n - 0.1, -1.1)
        ticks = [0, n // 2, n - 1]
        ax.set_xticks(ticks, ["left", "centre", "right"], fontsize=7.5)
        ax.set_yticks(ticks, ["top", "middle", "bottom"], fontsize=7.5)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(m, fontsize=10, color=model_colour(m))
    fig.colorbar(im, ax=list(axes[0]), shrink=0.85, label="change in log-probability (nats)")
    return fig


def position_map_caption(study) -> str:
    """The prose under :func:`position_map_figure`, its colour words from the figure's colours."""
    s = study.settings
    return (f"Each cell is one position of the object's box on the {s['size']}-px canvas ({s['n_positions']} x "
            f"{s['n_positions']} positions from touching the top-left to touching the bottom-right corner): the "
            f"change in the log-probability of the object's class against the same object centred on the same "
            "background, averaged over the objects recognised on a background, then over backgrounds. Blue: the "
            "model is less confident there than with the object centred; red: more; white: no change (one colour "
            f"scale for both panels). The {colour_word(READS_MARK)} bars outside a map mark the sides whose padding "
            "that model's stride-2 layers read more at this size.")


def position_bands_figure(study, sesoi: float | None = None):
    """Per model (panel): each side band minus the interior with its 95% interval over backgrounds
    (:func:`padlib.position_summary` of the object-averaged table), for the model (filled, in its colour) and its
    positive control (open), ``-sesoi`` dashed."""
    summ = study.summary[study.summary["side"].isin(POSITION_SIDES)]
    models = list(dict.fromkeys(summ["model"]))
    if not models:
        return message_figure("no object was recognised centred: no side bands")
    fig, axes = _panel_grid(len(models), row_height=2.6)
    for ax, m in zip(axes, models):
        colour = model_colour(m)
        for k, (variant, label, dx) in enumerate((("model", "pretrained model", -0.12),
                                                  ("control", "positive control (a band attenuated)", 0.12))):
            d = summ[(summ.model == m) & (summ.variant == variant)].set_index("side").reindex(POSITION_SIDES)
            x = np.arange(len(POSITION_SIDES)) + dx
            v = d["estimate"].to_numpy(dtype=float)
            yerr = np.vstack([np.clip(v - d["ci_low"].to_numpy(dtype=float), 0, None),
                              np.clip(d["ci_high"].to_numpy(dtype=float) - v, 0, None)])
            ax.errorbar(x, v, yerr=yerr, fmt="o" if k == 0 else "s", ms=5, capsize=2, color=colour,
                        mfc=colour if k == 0 else "white", label=label)
        ax.axhline(0, color="0.3", lw=0.6)
        if sesoi:
            ax.axhline(-sesoi, color="0.3", lw=0.8, ls="--", label=f"smallest drop of interest (-{sesoi:g})")
        reads = {x for x in study.reads.get(m, {}).values() if x}
        ax.set_xticks(range(len(POSITION_SIDES)),
                      [f"{sd}\n(reads more)" if sd in reads else sd for sd in POSITION_SIDES], fontsize=8)
        ax.set_ylabel("side band minus interior\n(nats)", fontsize=8)
        ax.set_title(m, fontsize=10, color=colour)
    return _finish_panel_grid(fig, axes, len(models), ncol=3, top=0.55)


def position_bands_caption(study, sesoi: float | None = None) -> str:
    """The prose under :func:`position_bands_figure`, its colour words from the figure's colours."""
    models = list(dict.fromkeys(study.summary["model"]))
    colours = ", ".join(f"{colour_word(model_colour(m, k))} for {m}" for k, m in enumerate(models))
    planted = ", ".join(f"{m}: {c['side']}" for m, c in study.controls.items())
    return (f"Each side's band of positions (the outer row or column, corners left out) minus the interior, in the "
            f"object's log-probability, with 95% intervals over backgrounds ({colours}). Filled circles: the "
            f"pretrained model as it is; open squares: its positive control, the same model with the input band of "
            f"one object height on the side that reads more padding multiplied by "
            f"{next(iter(study.controls.values()))['factor'] if study.controls else '?'} (planted side, {planted}), "
            "which the pipeline must find and no other"
            + (f"; dashed: the smallest drop of interest, -{sesoi:g} nats" if sesoi else "") + ".")


# ---------------------------------------------------------------------------------------------------------
# Tables that fit the page: fewer, shorter columns


def overview_table(overview):
    """:func:`padlib.audit_overview` in five short columns: model, size (and which size it is), uneven layers of
    the padding layers, padding never read, the side reading more."""
    import pandas as pd

    which = {"default": "default", "fixed": "fixed", "nearest even to default": "nearest even"}
    return pd.DataFrame({"model": overview["model"],
                         "size": [f"{r.size} ({which.get(r.which, r.which)})" for r in overview.itertuples()],
                         "uneven layers": [f"{r.n_uneven} of {r.n_padding_layers}" for r in overview.itertuples()],
                         "never read": overview["unread_sides"].replace("", "none"),
                         "reads more": overview["extra_sides"].replace("", "none")})


def audit_rows_table(rows):
    """Rows of a :func:`padlib.padding_audit` in seven short columns, each side's padding as top/bottom/left/right
    in one column: added, and read by the sliding windows."""
    import pandas as pd

    def sides(prefix):
        return ["/".join(str(int(getattr(r, f"{prefix}_{s}"))) for s in ("top", "bottom", "left", "right"))
                for r in rows.itertuples()]

    return pd.DataFrame({"layer": rows["layer"].to_numpy(),
                         "op": rows["op"].str.replace("depthwise_", "dw ").to_numpy(),
                         "input": rows["in_h"].to_numpy(),
                         "kernel/stride": [f"{k}/{s.split('x')[0]}" for k, s in zip(rows["kernel"], rows["stride"])],
                         "pad t/b/l/r": sides("pad"), "read t/b/l/r": sides("read"),
                         "reads more": rows["extra_sides"].replace("", "none").to_numpy()})


def uneven_layers_table(audit):
    """The uneven rows of a :func:`padlib.padding_audit` (:func:`audit_rows_table`)."""
    return audit_rows_table(audit[audit["uneven"]])
