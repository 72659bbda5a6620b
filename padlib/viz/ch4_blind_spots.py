"""Chapter 4's figures: the zoo audit, mean maps, compensation, kernel energy, accuracy maps, paired effects."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..audit import padding_audit
from ..spatial_bias import constant_inputs, depth_layers, mean_feature_maps
from ..viz.common import _finish_panel_grid, _panel_grid
from ..viz.style import _LEAN_BARS, scheme_colour

# ---------------------------------------------------------------------------------------------------------
# Chapter 4 (spatial-bias blind spots): plots for padlib.audit and padlib.spatial_bias


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
    """Seed-averaged accuracy maps of the matched study (:func:`padlib.experiments.ch4_blind_spots.mean_maps`): rows are input
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
    """The matched study's paired effects (:func:`padlib.experiments.ch4_blind_spots.paired_effects`): mean difference with its
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

