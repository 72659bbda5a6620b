"""A one-model padding report: the book's questions answered for your model, on one self-contained HTML page.

:func:`report` computes (tidy tables, no plotting); :func:`report_html` renders them with figures inlined as PNG,
so the page opens from disk with no outside request. The methods are the book's own:

- padding audit (chapter 4): which layers pad unevenly at the input size, which side is never read, and the
  nearest input sizes at which every layer pads evenly;
- learned PANs (chapter 1): padding-caused channels beyond the same architecture at random initialisation, with
  one random-init copy scanned the same way as the control, by depth, with the strongest examples;
- mean feature maps and the spatial-bias index (chapter 4) on natural and constant inputs;
- what a padding swap or the even input size does to the predictions at inference (chapter 3), against the
  intact model, with an equally small resize to an uneven size as the control for the even size.

Recommendations are derived from those numbers by stated rules (:data:`RULES`); each names the figure or table it
rests on. They are ours, not the papers'.
"""
from __future__ import annotations

import base64
import html
import os
import time
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from .errors import PadlibError, check_new_output, check_type

# The rules behind the recommendations (ours). Agreement is the share of images whose top-1 class is unchanged.
RULES = {
    "swap_harmless_agreement": 0.99,  # a padding swap is harmless when the lower CI bound of agreement is above
    "learned_pan_factor": 3.0,  # learned PANs count when the trained share is >= 3x the random-init copy's
    "lean_share": 0.5,  # feature maps lean when at least half the depths lean beyond their standard errors
}
SWAP_MODES = ("reflect", "replicate", "circular")
MAP_DEPTHS = 6  # mean maps shown at this many depths, evenly spaced


@dataclass
class Recommendation:
    """One plain recommendation and the figure or table it rests on."""

    text: str
    evidence: str


@dataclass
class PaddingReport:
    """Everything :func:`report` measured for one model; :func:`report_html` renders it."""

    model: str
    input_size: int
    n_images: int
    images: str
    audit: pd.DataFrame
    audit_summary: dict
    even_sizes: list
    pan_control: pd.DataFrame
    pan_depth: pd.DataFrame
    strongest: pd.DataFrame
    bias_index: pd.DataFrame
    predictions: pd.DataFrame
    size_test: dict
    recommendations: list
    seconds: dict = field(default_factory=dict)
    scan: object = field(default=None, repr=False)  # the trained model's PanScan (maps for the examples)
    maps: dict = field(default_factory=dict, repr=False)  # label -> FeatureMaps

    def summary_lines(self) -> list[str]:
        """The report's answers in a few plain sentences (the top of the page and the command's output)."""
        s = self.audit_summary
        lines = []
        if s["n_uneven"]:
            even = f"; it pads evenly at {self.even_sizes[0]}" if self.even_sizes else "; no size within reach pads evenly"
            lines.append(f"Padding: {s['n_uneven']} of {s['n_padding_layers']} padding layers pad unevenly at "
                         f"{self.input_size} px (padding never read: {_and(s['unread_sides'])}; more padding read: "
                         f"{_and(s['extra_sides'])}){even}.")
        else:
            lines.append(f"Padding: all {s['n_padding_layers']} padding layers pad evenly at {self.input_size} px.")
        tr = self.pan_control[self.pan_control.init == "trained"].iloc[0]
        ri = self.pan_control[self.pan_control.init == "random init"]
        lines.append(f"PANs: {int(tr.learned)} learned PANs, {tr.learned_pct:.1f}% of {int(tr.filters)} padded filters "
                     f"(the same architecture at random initialisation: {ri.learned_pct.max():.1f}%); "
                     f"{int(tr.padding_caused)} padding-caused channels in all.")
        for inp in ("natural", "constant"):
            b = self.bias_index[(self.bias_index.input == inp) & (self.bias_index.network == "trained")]
            if len(b):
                lines.append(f"Spatial bias ({inp} inputs): feature maps lean {_lean_words(b)} "
                             f"at the {len(b)} depths measured.")
        for _, r in self.predictions[self.predictions.metric == "agreement"].iterrows():
            lines.append(f"{r.intervention}: top-1 unchanged on {100 * r.value:.1f}% of images "
                         f"[{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}].")
        return lines


def _and(items) -> str:
    """['bottom', 'right'] or 'bottom,right' -> 'bottom and right'."""
    items = [i for i in (items.split(",") if isinstance(items, str) else items) if i]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else (items[0] if items else "no")


def _lean_words(b: pd.DataFrame) -> str:
    parts = []
    for col, (a, z) in (("lean_tb", ("top", "bottom")), ("lean_lr", ("left", "right"))):
        counts = b[col].value_counts()
        parts.append(f"{a} {int(counts.get(a, 0))} / {z} {int(counts.get(z, 0))}")
    return ", ".join(parts)


def _stage(bar, label: str, seconds: dict, t0: float) -> float:
    t = time.perf_counter()
    if bar is not None:
        bar.set_postfix_str(label)
        bar.update(1)
    seconds[label] = round(t - t0, 2)
    return t


def _size_pair(size: int, even_sizes: list) -> tuple[int | None, int | None]:
    """The nearest even-padding size and a control size at the same distance that still pads unevenly."""
    if not even_sizes or even_sizes[0] == size:
        return None, None
    even = even_sizes[0]
    control = 2 * size - even
    if control in even_sizes or control < 8:
        control = None
    return even, control


def report(model, images: int = 128, *, image_dir=None, size: int | None = None, device="cpu", seed: int = 0,
           random_init_seed: int = 10, progress: bool = True, batch_size: int = 16, n_boot: int = 1000
           ) -> PaddingReport:
    """Answer the book's questions for one model (a loaded module or a name, ``NAME=PATH`` for your weights).

    ``images`` probe images (random crops of the offline photographs, or of ``image_dir``), at ``size`` (default:
    the model's own). Mean maps use the first half of them with their mirror images. Returns a
    :class:`PaddingReport`; :func:`save_report` writes its HTML page.
    """
    from tqdm.auto import tqdm

    from .ablation import intervention_table, padding_interventions, size_interventions, model_logits
    from .audit import audit_summary, even_padding_sizes, padding_audit
    from .data import probe_images
    from .models import load_model
    from .padding import require_padded_convs
    from .pans import learned_depth_profile, learned_pan_control, strongest_pans
    from .spatial_bias import (bias_agreement, constant_inputs, depth_layers, mean_feature_maps, random_init_maps,
                               spatial_bias_index)

    check_type("images", images, int, "the number of probe images, e.g. 64")
    if images < 8:
        raise PadlibError(f"images must be at least 8 (the PAN reference uses 8), got {images}")
    check_type("seed", seed, int)
    if isinstance(model, str):
        model = load_model(model, device=device)
    check_type("model", model, nn.Module, "a model name such as 'mobilenet_v2', 'resnet18=weights.pth' or a module")
    require_padded_convs(model)
    name = getattr(model, "padlib_name", type(model).__name__)
    seconds: dict = {}
    t_start = t = time.perf_counter()
    bar = tqdm(total=5, desc=f"padding report {name}", disable=not progress, leave=False)
    try:
        probe = probe_images(images, size=size, seed=seed, image_dir=image_dir, model=model)
        size = probe.size
        audit = padding_audit(model, size)
        summary = audit_summary(audit)
        even = even_padding_sizes(model, size, max_distance=16)
        x = probe.tensor(device=device)  # rendered once: the scan, the maps and the swaps all read these images
        t = _stage(bar, "audit", seconds, t)

        control, scans = learned_pan_control(model, x, seeds=(random_init_seed,), batch_size=batch_size,
                                             device=device, progress=False)
        depth = learned_depth_profile(scans)
        strongest = strongest_pans(scans["trained"].table, per_group=1).sort_values("strength", ascending=False).head(8)
        t = _stage(bar, "PANs", seconds, t)

        layers = depth_layers(model, size)
        n_maps = max(images // 2, 4)
        natural = mean_feature_maps(model, x[:n_maps], layers, splits=4, flips=True, device=device,
                                    progress=False)
        constant = mean_feature_maps(model, constant_inputs(model, size), layers, device=device, progress=False)
        arch = getattr(model, "padlib_name", None)
        maps = {"natural": natural, "constant": constant}
        tables = []
        for label, fm in maps.items():
            tables.append(bias_agreement(spatial_bias_index(fm), audit).assign(input=label, network="trained"))
        if arch is not None:  # the random-init control of the same architecture on constant inputs (4 seeds)
            init = random_init_maps(arch, lambda m: constant_inputs(m, size), layers=layers, device=device)
            maps["constant, random init"] = init
            tables.append(bias_agreement(spatial_bias_index(init), audit).assign(input="constant",
                                                                                 network="random init"))
        bias = pd.concat(tables, ignore_index=True)
        t = _stage(bar, "feature maps", seconds, t)

        reference = model_logits(model, x, batch_size)
        swaps = padding_interventions(model, x, SWAP_MODES, reference, batch_size=batch_size, n_boot=n_boot,
                                      seed=seed, progress=False)
        preds = intervention_table({f"{m} padding": ev for m, ev in swaps.items()})
        t = _stage(bar, "padding swaps", seconds, t)

        even_size, control_size = _size_pair(size, even)
        size_test = {"even": even_size, "control": control_size}
        if even_size is not None:
            sizes = [s for s in (even_size, control_size) if s is not None]
            res = size_interventions(model, probe, sizes, size, reference, batch_size, n_boot, seed, progress=False)
            preds = pd.concat([preds, intervention_table(
                {f"{s} px ({'even' if s == even_size else 'uneven control'})": res[s] for s in sizes})],
                ignore_index=True)
        t = _stage(bar, "sizes", seconds, t)
    finally:
        bar.close()
    seconds["total"] = round(time.perf_counter() - t_start, 2)
    rep = PaddingReport(name, int(size), len(probe), probe.describe(), audit, summary, even, control, depth,
                        strongest, bias, preds, size_test, [], seconds, scans["trained"], maps)
    rep.recommendations = recommendations(rep)
    return rep


def _metric(preds: pd.DataFrame, intervention: str, metric: str):
    r = preds[(preds.intervention == intervention) & (preds.metric == metric)]
    return r.iloc[0] if len(r) else None


def recommendations(rep: PaddingReport) -> list[Recommendation]:
    """Plain recommendations derived from the report's numbers by :data:`RULES` (ours), each with its evidence."""
    out = []
    s, size = rep.audit_summary, rep.input_size
    if s["n_uneven"] and rep.even_sizes:
        out.append(Recommendation(
            f"Train and evaluate at {rep.even_sizes[0]} px instead of {size} px: then every padding layer pads evenly "
            f"(at {size}, {s['n_uneven']} layers pad unevenly and their padding on the {_and(s['unread_sides'])} "
            f"is never read). Mind the Pad ties such uneven padding to asymmetric kernels and blind spots; the gain has "
            f"to be measured by training at that size, not by resizing at inference.", "Table 1 (padding audit)"))
    elif s["n_uneven"]:
        out.append(Recommendation(
            f"{s['n_uneven']} layers pad unevenly at {size} px and no size within 16 px pads evenly: the padding "
            f"arithmetic of this architecture (its strides and kernels) does not allow it near this size.",
            "Table 1 (padding audit)"))
    else:
        out.append(Recommendation(f"Padding is even at {size} px: the input size needs no change.",
                                  "Table 1 (padding audit)"))

    ev, ctrl = rep.size_test.get("even"), rep.size_test.get("control")
    if ev is not None and ctrl is not None:
        e = _metric(rep.predictions, f"{ev} px (even)", "agreement")
        c = _metric(rep.predictions, f"{ctrl} px (uneven control)", "agreement")
        if e is not None and c is not None:
            if e.ci_high < c.ci_low:
                verdict = (f"more than the equally small resize to {ctrl} px ({100 * c.value:.1f}% unchanged): the "
                           f"trained weights are tuned to the uneven padding, so switch sizes only with retraining")
            elif e.ci_low > c.ci_high:
                verdict = (f"less than the equally small resize to {ctrl} px ({100 * c.value:.1f}% unchanged): even "
                           f"padding suits these weights better than the control size does")
            else:
                verdict = (f"as much as the equally small resize to {ctrl} px ({100 * c.value:.1f}% unchanged; the "
                           f"intervals overlap): the change is the resize, not the padding")
            out.append(Recommendation(
                f"Evaluated at {ev} px without retraining, the model keeps its top-1 class on {100 * e.value:.1f}% "
                f"[{100 * e.ci_low:.1f}, {100 * e.ci_high:.1f}] of the images, {verdict}.",
                "Figure 4 (predictions under interventions)"))

    harmless, harmful = [], []
    for mode in SWAP_MODES:
        r = _metric(rep.predictions, f"{mode} padding", "agreement")
        if r is None:
            continue
        (harmless if r.ci_low >= RULES["swap_harmless_agreement"] else harmful).append((mode, r))
    if harmful:
        worst = min(harmful, key=lambda mr: mr[1].value)
        out.append(Recommendation(
            f"Do not swap the padding at inference: {_and([m for m, _ in harmful])} padding "
            f"{'changes' if len(harmful) == 1 else 'change'} the top-1 class (worst: {worst[0]}, unchanged on only {100 * worst[1].value:.1f}% [{100 * worst[1].ci_low:.1f}, "
            f"{100 * worst[1].ci_high:.1f}]). The weights depend on the padding they were trained with; compare "
            f"schemes by training with each.", "Figure 4 (predictions under interventions)"))
    if harmless:
        out.append(Recommendation(
            f"{_and([m for m, _ in harmless]).capitalize()} padding {'leaves' if len(harmless) == 1 else 'leave'} "
            f"the top-1 class unchanged on at least "
            f"{100 * RULES['swap_harmless_agreement']:.0f}% of the images (lower bound): predictions hardly depend on "
            f"the values the zero padding supplies.", "Figure 4 (predictions under interventions)"))

    tr = rep.pan_control[rep.pan_control.init == "trained"].iloc[0]
    ri_max = float(rep.pan_control[rep.pan_control.init == "random init"].learned_pct.max())
    floor = 100 * 0.01 / RULES["learned_pan_factor"]
    if tr.learned_pct >= RULES["learned_pan_factor"] * max(ri_max, floor):
        out.append(Recommendation(
            f"The model has learned to detect the border: {tr.learned_pct:.1f}% of its padded filters are learned "
            f"PANs against {ri_max:.1f}% at random initialisation. Where the image border is not a real edge (crops "
            f"of larger scenes, tiles), expect responses to depend on where an object sits relative to the frame; "
            f"test with shifted crops, and consider a padding that does not mark the border when you retrain.",
            "Figure 1 (learned PANs by depth) and Figure 2 (strongest PANs)"))
    else:
        out.append(Recommendation(
            f"Learned PANs are few ({tr.learned_pct:.1f}% of padded filters against {ri_max:.1f}% at random "
            f"initialisation): this model did not make the border a feature of its own.",
            "Figure 1 (learned PANs by depth)"))

    nat = rep.bias_index[(rep.bias_index.input == "natural") & (rep.bias_index.network == "trained")]
    for axis, col, pred_col in (("top/bottom", "lean_tb", "predicted_tb"), ("left/right", "lean_lr", "predicted_lr")):
        leaning = nat[nat[col] != ""]
        if len(nat) and len(leaning) >= RULES["lean_share"] * len(nat):
            side = leaning[col].value_counts().idxmax()
            predicted = nat[pred_col].iloc[0]
            why = (f", the side the padding audit predicts" if side == predicted else
                   f", not the side the padding audit predicts ({predicted})" if predicted else
                   ", with even padding on that axis (content or learned asymmetry, not padding arithmetic)")
            out.append(Recommendation(
                f"Feature maps on natural images lean to the {side} ({axis}) at {len(leaning)} of {len(nat)} depths"
                f"{why}: objects near that border are represented differently from the same objects elsewhere.",
                "Figure 3 (mean feature maps) and Table 2 (spatial-bias index)"))
    return out


# ---------------------------------------------------------------------------------------------------------
# The HTML page


_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#1b1b1b;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:.9em}.summary{background:#eef6ee;border-left:4px solid #2e7d32;padding:.6em 1em}
.recs{background:#fff7e6;border-left:4px solid #e69f00;padding:.6em 1em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}figure{margin:1em 0}figcaption{font-size:.9em;color:#333}img{max-width:100%}
details summary{cursor:pointer;color:#0b5394}
"""


def _png(fig, dpi: int = 90) -> str:
    from .plots import figure_png

    return "data:image/png;base64," + base64.b64encode(figure_png(fig, dpi)).decode("ascii")


def _figure(fig, number: int, caption: str) -> str:
    return (f'<figure><img alt="Figure {number}" src="{_png(fig)}"><figcaption><b>Figure {number}.</b> '
            f"{html.escape(caption)}</figcaption></figure>")


def _table(df: pd.DataFrame, number: int | None = None, caption: str = "", float_format="{:.3g}".format) -> str:
    head = f"<p><b>Table {number}.</b> {html.escape(caption)}</p>" if number else ""
    return head + df.to_html(index=False, border=0, float_format=float_format, na_rep="", escape=True)


def audit_rows(audit: pd.DataFrame) -> pd.DataFrame:
    """The audit's columns a reader needs, the four sides folded into one cell each (t, b, l, r)."""
    def sides(r, what):
        return " ".join(str(int(r[f"{what}_{s}"])) for s in ("top", "bottom", "left", "right"))

    return pd.DataFrame({
        "layer": audit["layer"], "op": audit["op"], "input": [f"{h}x{w}" for h, w in zip(audit.in_h, audit.in_w)],
        "kernel": audit["kernel"], "stride": audit["stride"],
        "padding added (t b l r)": [sides(r, "pad") for _, r in audit.iterrows()],
        "padding read (t b l r)": [sides(r, "read") for _, r in audit.iterrows()],
        "never read": audit["unread_sides"].str.replace(",", ", "), "reads more": audit["extra_sides"].str.replace(",", ", ")})


def prediction_rows(preds: pd.DataFrame) -> pd.DataFrame:
    """One row per intervention, one column per metric, each 'value [low, high]'."""
    rows = {}
    for _, r in preds.iterrows():
        rows.setdefault(r.intervention, {"intervention": r.intervention})[r.metric.replace("_", " ")] = (
            f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]")
    return pd.DataFrame(list(rows.values()))


def report_figures(rep: PaddingReport) -> dict:
    """The report's four figures (matplotlib), computed from its tables; captions live in :func:`report_html`."""
    from . import plots

    figs = {"depth": plots.learned_depth_figure(rep.pan_depth)}
    rows = rep.strongest
    if len(rows):
        figs["examples"] = plots.pan_map_gallery(rep.scan, rows, ncols=min(4, len(rows)), size=1.9, title="")
    figs["maps"] = plots.mean_map_grid(rep.maps, ncols=MAP_DEPTHS, size=1.5)
    t = rep.predictions.assign(model=rep.model)
    figs["predictions"] = plots.intervention_plot(t, "agreement", title="")
    ax = figs["predictions"].axes[0]
    ax.set_xlabel("share of images whose top-1 class is unchanged (95% CI)")
    if ax.get_legend() is not None:
        ax.get_legend().remove()  # one model: its name is the page's title
    return figs


def report_html(rep: PaddingReport) -> str:
    """The self-contained page: summary and recommendations first (no links), then each section's evidence."""
    figs = report_figures(rep)
    esc = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Padding report: {esc(rep.model)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>Padding report: {esc(rep.model)}</h1>",
             f"<p class='meta'>Input {rep.input_size} px; {esc(rep.images)}. Methods of the padding analysis book "
             f"(padlib); recommendations are derived from the numbers below by stated rules. "
             f"Computed in {rep.seconds.get('total', 0):.0f} s.</p>",
             "<div class='summary'><b>Summary</b><ul>"
             + "".join(f"<li>{esc(s)}</li>" for s in rep.summary_lines()) + "</ul></div>",
             "<div class='recs'><b>Recommendations</b><ol>"
             + "".join(f"<li>{esc(r.text)} <i>(rests on {esc(r.evidence)})</i></li>" for r in rep.recommendations)
             + "</ol></div>"]

    s = rep.audit_summary
    parts.append("<h2>1. Padding audit</h2>")
    parts.append(f"<p>At {rep.input_size} px, {s['n_uneven']} of {s['n_padding_layers']} padding layers pad unevenly. "
                 f"A layer pads unevenly when its sliding windows read more padding on one side of an axis than on the "
                 f"other (PyTorch: the far side's padding goes unread when the stride does not divide the size; "
                 f"TensorFlow 'SAME': the extra padding sits at the bottom/right). Sizes within 16 px at which every "
                 f"layer pads evenly: {esc(', '.join(map(str, rep.even_sizes[:8])) or 'none')}.</p>")
    uneven = rep.audit[rep.audit.uneven.astype(bool)] if len(rep.audit) else rep.audit
    if len(uneven):
        parts.append(_table(audit_rows(uneven), 1, "The layers that pad unevenly (padding added and padding the "
                                                   "windows read, per side: top, bottom, left, right)."))
    else:
        parts.append(_table(audit_rows(rep.audit.head(12)), 1, "Padding layers (none pads unevenly; first 12)."))

    tr = rep.pan_control[rep.pan_control.init == "trained"].iloc[0]
    parts.append("<h2>2. Padding Aware Neurons</h2>")
    parts.append(f"<p>A channel is a learned PAN when its border response is caused by the padding (beyond a "
                 f"circular-padding null at a 1% false-positive rate) and beyond what the same layer gives at random "
                 f"initialisation. This model: {int(tr.learned)} learned PANs ({tr.learned_pct:.1f}% of "
                 f"{int(tr.filters)} padded filters); {int(tr.padding_caused)} padding-caused channels.</p>")
    ctrl = pd.DataFrame({
        "network": rep.pan_control["init"], "seed": rep.pan_control["seed"].map(lambda v: "" if pd.isna(v) else int(v)),
        "padded filters": rep.pan_control["filters"], "padding-caused": rep.pan_control["padding_caused"],
        "padding-caused %": rep.pan_control["padding_caused_pct"].round(1), "learned PANs": rep.pan_control["learned"],
        "learned PANs %": rep.pan_control["learned_pct"].round(1), "tau": rep.pan_control["tau"].round(2)})
    parts.append(_table(ctrl, None, "", "{:g}".format))
    parts.append(_figure(figs["depth"], 1, "Share of each padded layer's filters that are learned PANs (solid) and "
                                           "padding-caused (dashed), trained vs the same architecture at random "
                                           "initialisation, along depth."))
    if "examples" in figs:
        parts.append(_figure(figs["examples"], 2, "The strongest learned PANs: each channel's mean pre-activation "
                                                  "map over the probe images (red above, blue below its interior "
                                                  "mean); d = layer depth, c = channel, s = stride."))
    parts.append("<h2>3. Spatial bias of the feature maps</h2>")
    parts.append("<p>Mean |activation| over the probe images (each with its mirror images, so that content "
                 "cancels), over uniform grey inputs (content-free), and over grey inputs to four random-init copies "
                 "of the architecture (what the padding does without learning). The index: how far each border line "
                 "deviates from the interior, in units of the map's mean; a lean is counted where it exceeds its "
                 "5% t-test bound over image splits.</p>")
    parts.append(_figure(figs["maps"], 3, "Mean feature maps at evenly spaced depths (each map on its own colour "
                                          "scale; rows: input and network)."))
    b = rep.bias_index[["input", "network", "layer", "h", "w", "top_bottom", "left_right", "border_centre",
                        "lean_tb", "lean_lr", "predicted_tb", "predicted_lr"]]
    parts.append("<details><summary>Table 2. The spatial-bias index per depth (click to open)</summary>"
                 + _table(b) + "</details>")
    parts.append("<h2>4. Predictions under a padding swap or another input size</h2>")
    parts.append("<p>The same images through the model with its padding replaced at inference (same weights), and "
                 "resized to the nearest size that pads evenly and to an equally small uneven resize (the control). "
                 "Agreement: top-1 class unchanged; KL: KL(intact || changed), mean over images; 95% bootstrap "
                 "intervals over images. These are sensitivities of trained weights, not the effect of training "
                 "with another padding or size.</p>")
    parts.append(_figure(figs["predictions"], 4, "Share of images whose top-1 class is unchanged by each "
                                                 "intervention, with 95% bootstrap intervals."))
    parts.append(_table(prediction_rows(rep.predictions), 3, "Every metric per intervention, with 95% bootstrap "
                                                             "intervals over images."))
    parts.append(f"<p class='meta'>Seconds per stage: {esc(', '.join(f'{k} {v:.0f}' for k, v in rep.seconds.items()))}."
                 f"</p></body></html>")
    return "\n".join(parts)


def save_report(rep: PaddingReport, path, force: bool = False) -> str:
    """Write :func:`report_html` to ``path``, a new file unless ``force`` (your files are never overwritten)."""
    path = check_new_output(path, force, "report file")
    text = report_html(rep)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def default_report_path(model_spec: str) -> str:
    """``padding-report-<arch>[-<checkpoint stem>].html`` in the working folder."""
    from .models import split_model_spec

    name, path = split_model_spec(model_spec)
    stem = name.replace("/", "_")
    if path:
        stem += "-" + os.path.splitext(os.path.basename(path))[0]
    return f"padding-report-{stem}.html"


# ---------------------------------------------------------------------------------------------------------
# Command line


def register_cli(subparsers) -> None:
    p = subparsers.add_parser("report", help="one self-contained HTML page answering the book's questions for a model")
    p.add_argument("model", help="model name (mobilenet_v2, timm/resnet50, ...) or NAME=PATH for your own weights")
    p.add_argument("--images", type=int, default=128, help="number of probe images (default 128)")
    p.add_argument("--image-dir", help="a folder of your images (searched recursively) instead of the offline photos")
    p.add_argument("--size", type=int, default=None, help="input size in pixels (default: the model's own)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", help="HTML file to write, a new file unless --force "
                                 "(default padding-report-<model>.html here)")
    p.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args) -> int:
    from .models import load_model

    out = args.out or default_report_path(args.model)
    if not out.endswith((".html", ".htm")):
        raise PadlibError(f"--out must end in .html, got '{out}'")
    check_new_output(out, args.force, "report file")  # before the work, not after it
    t0 = time.perf_counter()
    model = load_model(args.model, device=args.device)
    rep = report(model, args.images, image_dir=args.image_dir, size=args.size, device=args.device, seed=args.seed)
    save_report(rep, out, force=args.force)
    for line in rep.summary_lines():
        print(line)
    print("recommendations:")
    for i, r in enumerate(rep.recommendations, 1):
        print(f"  {i}. {r.text} ({r.evidence})")
    print(f"wrote {out} in {time.perf_counter() - t0:.0f} s")
    return 0
