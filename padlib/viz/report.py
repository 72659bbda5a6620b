"""The padding report's page: its figures and one self-contained HTML file (figures inlined as PNG)."""
from __future__ import annotations

import base64
import html

import pandas as pd

from .._files import atomic_write
from ..errors import check_new_output
from ..model_report import MAP_DEPTHS, PaddingReport
from .ch1_pans import learned_depth_figure, pan_map_gallery
from .ch3_ablation import intervention_plot
from .ch4_blind_spots import mean_map_grid
from .common import figure_png

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
    figs = {"depth": learned_depth_figure(rep.pan_depth)}
    rows = rep.strongest
    if len(rows):
        figs["examples"] = pan_map_gallery(rep.scan, rows, ncols=min(4, len(rows)), size=1.9, title="")
    figs["maps"] = mean_map_grid(rep.maps, ncols=MAP_DEPTHS, size=1.5)
    t = rep.predictions.assign(model=rep.model)
    figs["predictions"] = intervention_plot(t, "agreement", title="")
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
    with atomic_write(path) as f:  # the old file, or the whole new page: never half a page
        f.write(text)
    return path

