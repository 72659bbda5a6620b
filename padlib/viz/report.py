"""The padding report's page: its figures and one self-contained HTML file (figures inlined as PNG)."""
from __future__ import annotations

import base64
import html

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .._files import atomic_write
from ..errors import check_new_output
from ..evaluation import METRIC_WORDS
from ..model_report import INIT_MAP_SEEDS, MAP_DEPTHS, PaddingReport, PositionStage
from ..position_sensitivity import SIDES
from ..report_rules import EVEN_SIZE_REACH, headline_metric, lean_counts, reach_numbers
from .ch1_pans import pan_map_gallery
from .ch3_ablation import intervention_plot
from .ch4_blind_spots import POSITION_CMAP, mean_map_grid
from .common import figure_png
from .style import PRETRAINED, RANDOM_INIT, colour_name
from .tiling import border_reach_colours, border_reach_figure

AUDIT_ROWS_SHOWN = 12  # with no uneven layer, the audit table shows this many padding layers

# ---------------------------------------------------------------------------------------------------------
# The HTML page


_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;
color:#1b1b1b;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
.meta{color:#555;font-size:.9em}.summary{background:#eef6ee;border-left:4px solid #2e7d32;padding:.6em 1em}
.recs{background:#fff7e6;border-left:4px solid #e69f00;padding:.6em 1em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0;max-width:100%}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right;overflow-wrap:anywhere}
th{background:#f3f3f3}figure{margin:1em 0}figcaption{font-size:.9em;color:#333}img{max-width:100%}
details summary{cursor:pointer;color:#0b5394}.level{font-size:.85em;padding:0 .4em;border-radius:3px;
white-space:nowrap;border:1px solid #999}.level-measured{background:#e3f0e3}.level-book{background:#e3ebf6}
.level-arithmetic{background:#eee}
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
    """One row per intervention, one column per metric, each 'value [low, high]' (a dense map's metrics named as
    the page says them: per-pixel agreement, relative change of the map, border band, interior)."""
    rows = {}
    for _, r in preds.iterrows():
        rows.setdefault(r.intervention, {"intervention": r.intervention})[
            METRIC_WORDS.get(r.metric, r.metric.replace("_", " "))] = f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"
    return pd.DataFrame(list(rows.values()))


_PLOT_AXIS = {"agreement": "share of images whose top-1 class is unchanged (95% CI)",
              "argmax_agreement": "per-pixel agreement: share of output positions whose argmax class is unchanged "
                                  "(95% CI)",
              "relative_change": "relative change of the map: ||changed - intact|| / ||intact|| (95% CI)"}


REGION_STYLES = {"all positions": (PRETRAINED, "o"), "border band": (PRETRAINED, "s"), "interior": (PRETRAINED, "^")}


def predictions_figure(rep: PaddingReport):
    """Figure 4: the headline metric per intervention (:func:`padlib.report_rules.headline_metric`); a dense map's
    over all its positions, in the border band and in the interior (three markers in the near-black of trained
    weights: the regions are not models or schemes, so they take none of the book's colours)."""
    metric = headline_metric(rep.predictions, rep.output_kind)
    if rep.output_kind == "logits":
        t = rep.predictions.assign(model=rep.model)
    else:
        parts = {"": "all positions", "_border": "border band", "_interior": "interior"}
        t = pd.concat([rep.predictions[rep.predictions.metric == metric + k].assign(model=v, metric=metric)
                       for k, v in parts.items()], ignore_index=True)
    fig = intervention_plot(t, metric, title="", styles=REGION_STYLES)
    ax = fig.axes[0]
    ax.set_xlabel(_PLOT_AXIS[metric], fontsize=8 if metric != "agreement" else None)
    if metric != "relative_change":
        ax.set_xlim(right=1.0)
    if rep.output_kind == "logits" and ax.get_legend() is not None:
        ax.get_legend().remove()  # one model: its name is the page's title
    return fig


def lean_rows(rep: PaddingReport) -> pd.DataFrame:
    """The lean table on the page: per input and axis, the depths leaning to each side and to neither, from
    :func:`padlib.model_report.lean_counts` (the table the summary and the recommendations count from)."""
    rows = []
    for inp in ("natural", "constant"):
        for r in lean_counts(rep.bias_index, inp).itertuples():
            if r.depths:
                rows.append({"input": inp, "axis": r.axis, "depths measured": r.depths, f"lean {r.side_a}": r.n_a,
                             f"lean {r.side_z}": r.n_z, "neither": r.n_neither,
                             "leans to (rule)": r.leans_to or "no side", "audit predicts": r.predicted or "no side",
                             "a depth leans by": "5% t-test" if r.tested else "sign only"})
    df = pd.DataFrame(rows)
    if len(df):  # one column per side name: the top/bottom and left/right rows leave the other axis's blank
        cols = ["input", "axis", "depths measured", "lean top", "lean bottom", "lean left", "lean right", "neither",
                "leans to (rule)", "audit predicts", "a depth leans by"]
        df = df.reindex(columns=[c for c in cols if c in df]).astype(object).where(df.notna(), "")
    return df


def bias_rows(bias: pd.DataFrame) -> pd.DataFrame:
    """The per-depth spatial-bias index, a reader's columns only (each index with its standard error)."""
    def with_se(col):
        se = bias[f"{col}_se"] if f"{col}_se" in bias else pd.Series(float("nan"), index=bias.index)
        return [("" if pd.isna(v) else f"{v:+.3f}" + ("" if pd.isna(e) else f" ± {e:.3f}")) for v, e in zip(bias[col], se)]

    return pd.DataFrame({"input": bias["input"], "network": bias["network"], "layer": bias["layer"],
                         "map": [f"{h}x{w}" for h, w in zip(bias.h, bias.w)],
                         "top - bottom": with_se("top_bottom"), "left - right": with_se("left_right"),
                         "border - centre": [("" if pd.isna(v) else f"{v:+.2f}") for v in bias["border_centre"]],
                         "lean t/b": bias["lean_tb"], "lean l/r": bias["lean_lr"]})


def depth_figure(profile: pd.DataFrame):
    """Learned PANs (solid) and padding-caused channels (dashed) per padded layer along depth: the trained model
    in the book's trained colour, the same architecture at random initialisation in its random-init grey."""
    fig, ax = plt.subplots(figsize=(6.5, 2.8))
    for network, colour in (("trained", PRETRAINED), ("random init", RANDOM_INIT)):
        d = profile[profile.network == network].sort_values("rel_depth")
        ax.plot(d.rel_depth, d.learned_pct, "-", color=colour, lw=1.4, label=f"{network}: learned PANs")
        ax.plot(d.rel_depth, d.padding_caused_pct, "--", color=colour, lw=1.0, label=f"{network}: padding-caused")
    ax.set_xlabel("relative depth (0 = stem)", fontsize=9)
    ax.set_ylabel("% of the layer's filters", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7.5, ncol=2, loc="upper center", bbox_to_anchor=(0.5, 1.22), frameon=False)
    fig.tight_layout()
    return fig


def position_figure(stage: PositionStage):
    """Objects at every position (:func:`padlib.model_report.position_stage`): left, the mean change in the
    log-probability at each grid position against the object centred (the objects recognised on a background
    averaged inside it, then the mean over backgrounds, as the intervals weigh them), on a diverging
    scale centred at 0; right, each side's band minus the interior with its interval over backgrounds, filled where
    :func:`padlib.blind_sides` resolves the side blinder than ``-sesoi`` (dashed)."""
    n = stage.n_positions
    grid = (stage.table.groupby(["background", "row", "col"])["change"].mean().groupby(["row", "col"]).mean()
            .unstack("col")
            .reindex(index=range(n), columns=range(n)).to_numpy(dtype=float))
    lim = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.0
    lim = lim or 1.0
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(7.2, 2.9), gridspec_kw={"width_ratios": [1, 1.25]})
    im = ax.imshow(grid, cmap=POSITION_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
    ticks = [0, n // 2, n - 1]
    ax.set_xticks(ticks, ["left", "centre", "right"], fontsize=7.5)
    ax.set_yticks(ticks, ["top", "middle", "bottom"], fontsize=7.5)
    fig.colorbar(im, ax=ax, shrink=0.85).set_label("change (nats)", fontsize=8)
    v = stage.verdicts.set_index("side").reindex(list(SIDES))
    est = v["estimate"].to_numpy(dtype=float)
    yerr = np.vstack([np.clip(est - v["ci_low"].to_numpy(dtype=float), 0, None),
                      np.clip(v["ci_high"].to_numpy(dtype=float) - est, 0, None)])
    for i, side in enumerate(SIDES):
        blind = v.loc[side, "verdict"] == "blind"
        bx.errorbar(i, est[i], yerr=yerr[:, i:i + 1], fmt="o", ms=5, capsize=2, color=PRETRAINED,
                    mfc=PRETRAINED if blind else "white")
    bx.axhline(0, color="0.3", lw=0.6)
    bx.axhline(-stage.sesoi, color="0.3", lw=0.8, ls="--")
    bx.set_xticks(range(len(SIDES)), list(SIDES), fontsize=8)
    bx.set_xlim(-0.5, len(SIDES) - 0.5)
    bx.set_ylabel("side band minus interior (nats)", fontsize=8)
    fig.tight_layout()
    return fig


def position_caption(stage: PositionStage) -> str:
    """The prose under :func:`position_figure`, its counts from the stage."""
    n = stage.n_positions
    return (f"Objects at every position. Left: the change in the log-probability of the class the model gives each "
            f"object's photograph, with the object at each of {n} x {n} positions (from touching the top-left to "
            f"touching the bottom-right corner) against the same object centred on the same background, mean over "
            f"{len(stage.backgrounds)} backgrounds of the objects recognised on each ({len(stage.objects)} objects, "
            f"{len(stage.table.groupby(['object', 'background']))} pairs; blue: less confident than "
            f"centred; red: more). Right: each side's outer row or column (corners left out) minus the interior, "
            f"with {100 * stage.level:g}% intervals over backgrounds; dashed: -{stage.sesoi:g} nats, the smallest drop "
            f"of interest; filled: resolved blinder than that (Holm over the four sides).")


def position_rows(stage: PositionStage) -> pd.DataFrame:
    """Per side and contrast: the change with its interval and, per side, the verdict at the stage's sesoi."""
    v = stage.verdicts.set_index("side")
    rows = []
    for r in stage.summary.itertuples(index=False):
        side = r.side in v.index
        rows.append({"side": r.side if side else r.side.replace("-", " - "),
                     "change (nats)": f"{r.estimate:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]",
                     "backgrounds": int(r.n_backgrounds),
                     "p blind (Holm)": f"{v.loc[r.side, 'p_blind_holm']:.3g}" if side else "",
                     "verdict": v.loc[r.side, "verdict"] if side else "(contrast)"})
    return pd.DataFrame(rows)


def report_figures(rep: PaddingReport) -> dict:
    """The report's four figures (matplotlib), computed from its tables; captions live in :func:`report_html`."""
    figs = {"depth": depth_figure(rep.pan_depth)}
    rows = rep.strongest
    if len(rows):
        figs["examples"] = pan_map_gallery(rep.scan, rows, ncols=min(4, len(rows)), size=1.9, title="")
    figs["maps"] = mean_map_grid(rep.maps, ncols=MAP_DEPTHS, size=1.5)
    figs["predictions"] = predictions_figure(rep)
    if rep.positions is not None and not rep.positions.skipped:
        figs["positions"] = position_figure(rep.positions)
    if rep.reach is not None and not rep.reach.skipped:
        figs["reach"] = border_reach_figure(rep.reach.result, width=6.4, height=3.4)
    return figs


def size_test_words(rep: PaddingReport) -> str:
    """What the size test did, from ``rep.size_test`` (the sizes it ran), for section 4's opening sentence."""
    ev, ctrl = rep.size_test.get("even"), rep.size_test.get("control")
    if ev is None:
        return (f"; no resize (every padding layer pads evenly at {rep.input_size} px)" if not
                rep.audit_summary.get("n_uneven") else f"; no resize (no size within {EVEN_SIZE_REACH} px pads evenly)")
    if ctrl is None:
        return (f", and resized to {ev} px, the nearest size that pads evenly (no uneven size at the same distance "
                f"could serve as the control)")
    return (f", and resized to {ev} px, the nearest size that pads evenly, and to {ctrl} px, an uneven size "
            f"{abs(ev - rep.input_size)} px away on the other side (the control)")


def _measures_words(rep: PaddingReport) -> str:
    """What section 4 measures, in the output's own terms."""
    if rep.output_kind == "logits":
        return "Agreement: top-1 class unchanged; KL: KL(intact || changed), mean over images"
    argmax = (rep.predictions.metric == "argmax_agreement").any()
    return (f"The output compared is a dense map, {rep.output}: "
            + ("per-pixel agreement: the share of its positions whose argmax class is unchanged; " if argmax else "")
            + "relative change of the map: ||changed - intact|| / ||intact|| over its channels, positions and "
              "images (pooled, so that an image whose map is near zero cannot dominate); the agreement a mean over "
              "images; each also in the border band (the outer max(1, ceil(min(H, W) / 8)) rows and "
              "columns of the map) and the interior. A map at another input size is resized (bilinear) to the "
              "intact map's size before the comparison, for the even size and its control alike")


def _predictions_caption(rep: PaddingReport) -> str:
    if rep.output_kind == "logits":
        return "Share of images whose top-1 class is unchanged by each intervention, with 95% bootstrap intervals."
    metric = headline_metric(rep.predictions, rep.output_kind)
    what = ("Per-pixel agreement (share of the map's positions whose argmax class is unchanged)"
            if metric == "argmax_agreement" else "Relative change of the map")
    return (f"{what} under each intervention, over all positions (dots), in the border band (open squares) and in "
            f"the interior (triangles), with 95% bootstrap intervals over images.")


def _level_badge(level) -> str:
    kind = {"measured on this model": "measured", "arithmetic only": "arithmetic"}.get(str(level), "book")
    return f"<span class='level level-{kind}'>{html.escape(str(level))}</span>"


def report_html(rep: PaddingReport) -> str:
    """The self-contained page: summary and recommendations first (no links), then each section's evidence."""
    figs = report_figures(rep)
    esc = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Padding report: {esc(rep.model)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>Padding report: {esc(rep.model)}</h1>",
             f"<p class='meta'>Input {rep.input_size} px; {esc(rep.images)}. Methods of the padding analysis book "
             f"(padlib); recommendations are derived from the numbers below by stated rules. "
             + (f"Output compared: {esc(rep.output)}. " if rep.output else "") +
             f"Computed in {rep.seconds.get('total', 0):.0f} s.</p>",
             "<div class='summary'><b>Summary</b><ul>"
             + "".join(f"<li>{esc(s)}</li>" for s in rep.summary_lines()) + "</ul></div>",
             "<div class='recs'><b>Recommendations</b> (each with its level of evidence: measured on this "
             "model, shown in the book's trained networks, or padding arithmetic only)<ol>"
             + "".join(f"<li>{_level_badge(r.level)} {esc(r.statement)} <i>(rests on {esc(r.evidence)})</i></li>"
                       for r in rep.recommendations) + "</ol></div>"]

    s = rep.audit_summary
    parts.append("<h2>1. Padding audit</h2>")
    parts.append(f"<p>At {rep.input_size} px, {s['n_uneven']} of {s['n_padding_layers']} padding layers pad unevenly. "
                 f"A layer pads unevenly when its sliding windows read more padding on one side of an axis than on the "
                 f"other (PyTorch: the far side's padding goes unread when the stride does not divide the size; "
                 f"TensorFlow 'SAME': the extra padding sits at the bottom/right). Sizes within {EVEN_SIZE_REACH} px at which every "
                 f"layer pads evenly: {esc(', '.join(map(str, rep.even_sizes[:8])) or 'none')}.</p>")
    uneven = rep.audit[rep.audit.uneven.astype(bool)] if len(rep.audit) else rep.audit
    if len(uneven):
        parts.append(_table(audit_rows(uneven), 1, "The layers that pad unevenly (padding added and padding the "
                                                   "windows read, per side: top, bottom, left, right)."))
    else:
        parts.append(_table(audit_rows(rep.audit.head(AUDIT_ROWS_SHOWN)), 1,
                            f"Padding layers (none pads unevenly; the first {AUDIT_ROWS_SHOWN})."))

    tr = rep.pan_control[rep.pan_control.init == "trained"].iloc[0]
    parts.append("<h2>2. Padding Aware Neurons</h2>")
    parts.append(f"<p>A channel is a learned PAN when its border response is caused by the padding (beyond a "
                 f"circular-padding null at a {100 * rep.fpr:g}% false-positive rate) and beyond what the same layer "
                 f"gives at random initialisation. This model, on {rep.n_images} probe images: {int(tr.learned)} "
                 f"learned PANs ({tr.learned_pct:.1f}% of {int(tr.filters)} padded filters); {int(tr.padding_caused)} "
                 f"padding-caused channels. The counts depend on the number of probe images and the false-positive "
                 f"rate.</p>")
    pct = lambda col: rep.pan_control[col].map("{:.1f}".format)  # noqa: E731 (as the sentences print them)
    ctrl = pd.DataFrame({
        "network": rep.pan_control["init"], "seed": rep.pan_control["seed"].map(lambda v: "" if pd.isna(v) else int(v)),
        "padded filters": rep.pan_control["filters"], "padding-caused": rep.pan_control["padding_caused"],
        "padding-caused %": pct("padding_caused_pct"), "learned PANs": rep.pan_control["learned"],
        "learned PANs %": pct("learned_pct"), "tau": rep.pan_control["tau"].map("{:.2f}".format)})
    parts.append(_table(ctrl, 2, f"Learned PANs and padding-caused channels, trained and at random initialisation "
                                 f"({rep.n_images} probe images).", "{:g}".format))
    parts.append(_figure(figs["depth"], 1, f"Share of each padded layer's filters that are learned PANs (solid) and "
                                           f"padding-caused (dashed) along depth: trained ({colour_name(PRETRAINED)}) "
                                           f"vs the same architecture at random initialisation "
                                           f"({colour_name(RANDOM_INIT)})."))
    if "examples" in figs:
        parts.append(_figure(figs["examples"], 2, "The strongest learned PANs: each channel's mean pre-activation "
                                                  "map over the probe images (red above, blue below its interior "
                                                  "mean); d = layer depth, c = channel, s = stride."))
    parts.append("<h2>3. Spatial bias of the feature maps</h2>")
    init = (f", and over grey inputs to {len(INIT_MAP_SEEDS)} random-init copies of the architecture (what the "
            f"padding does without learning)" if "constant, random init" in rep.maps else "")
    parts.append(f"<p>Mean |activation| over the probe images (each with its mirror images, so that content "
                 f"cancels), over uniform grey inputs (content-free){init}. The index: how far each border line "
                 f"deviates from the interior, in units of the map's mean; a depth leans to a side where the index "
                 f"exceeds its 5% t-test bound over image splits (maps without splits, such as the one made from "
                 f"grey inputs to the trained model, by the index's sign alone). The maps lean to a side (the rule) "
                 f"when at least "
                 f"half the depths measured lean to that side and more lean to it than to the other.</p>")
    parts.append(_figure(figs["maps"], 3, "Mean feature maps at evenly spaced depths (each map on its own colour "
                                          "scale; rows: input and network)."))
    parts.append(_table(lean_rows(rep), 3, "Depths whose maps lean to each side (trained model), the side the "
                                           "rule gives and the side the padding audit predicts."))
    parts.append("<details><summary>Table 4. The spatial-bias index per depth, ± its standard error over image "
                 "splits (click to open)</summary>" + _table(bias_rows(rep.bias_index)) + "</details>")
    parts.append("<h2>4. Predictions under a padding swap or another input size</h2>")
    parts.append(f"<p>The same images through the model with its padding replaced at inference (same weights)"
                 f"{esc(size_test_words(rep))}. {esc(_measures_words(rep))}; 95% bootstrap intervals over images. "
                 f"These are sensitivities of trained weights, not the effect of training with another padding or "
                 f"size.</p>")
    if rep.skipped:
        parts.append("<p>Left out: " + "; ".join(f"{esc(k)}: {esc(v)}" for k, v in rep.skipped.items()) + ".</p>")
    parts.append(_figure(figs["predictions"], 4, _predictions_caption(rep)))
    parts.append(_table(prediction_rows(rep.predictions), 5, "Every metric per intervention, with 95% bootstrap "
                                                             "intervals over images."))
    if rep.positions is not None:
        parts.append(_positions_section(rep.positions, figs.get("positions")))
    if rep.reach is not None:
        parts.append(_reach_section(rep, figs.get("reach")))
    parts.append(f"<p class='meta'>Seconds per stage: {esc(', '.join(f'{k} {v:.0f}' for k, v in rep.seconds.items()))}."
                 f"</p></body></html>")
    return "\n".join(parts)


def _positions_section(stage: PositionStage, fig) -> str:
    """Section 5: what the stage did and found, or why it did not run."""
    esc = html.escape
    head = "<h2>5. Objects at every position</h2>"
    if stage.skipped:
        return head + f"<p>Not run: {esc(stage.skipped)}.</p>"

    def what(o, t):
        cls = stage.target_names.get(o, f"class {t}")
        p = stage.centre_prob.get(o)
        return f"{o} ({cls}" + (f"; centred, median probability {p:.2f}" if p is not None else "") + ")"

    names = "; ".join(what(o, t) for o, t in stage.objects.items())
    text = (f"<p>The centre square of each of {len(stage.objects)} probe photographs, at {stage.object_px} px, "
            f"pasted at every position of a {stage.n_positions} x {stage.n_positions} grid on each of "
            f"{len(stage.backgrounds)} other photographs ({esc(', '.join(stage.backgrounds))}); the response is the "
            f"log-probability of the class the model gives the object's photograph alone (objects, those classes "
            f"and their probability with the small object centred, median over the backgrounds kept: "
            f"{esc(names)}), against the same object centred on the same background "
            f"(<code>padlib.position_sensitivity</code>). "
            + (f"Only the pairs on which the model sees the object are measured: {esc(stage.kept_words())}. "
               if stage.kept_words() else "") +
            f"A small object the model does not recognise even centred has no "
            f"confidence to lose at a border. Backgrounds are the independent units: the objects recognised on a "
            f"background are averaged inside it, and every interval is over backgrounds. A side is resolved blinder "
            f"when its interval lies below -{stage.sesoi:g} nats (our smallest drop of interest) after Holm over the "
            f"four sides, and a blind band of that size is ruled out when the interval lies within "
            f"±{stage.sesoi:g}.</p>")
    return (head + text + _figure(fig, 5, position_caption(stage))
            + _table(position_rows(stage), 6, "Per side: band minus interior (and the two side contrasts), with "
                                              f"{100 * stage.level:g}% intervals over backgrounds."))


def _reach_section(rep: PaddingReport, fig) -> str:
    """The border-reach section: what the stage did and found, or why it did not run."""
    esc = html.escape
    stage = rep.reach
    section, figure = reach_numbers(rep)
    head = f"<h2>{section}. Border reach: how much overlap tiles need</h2>"
    if stage.skipped:
        return head + f"<p>Not run: {esc(stage.skipped)}.</p>"
    r = stage.result
    text = (f"<p>A dense model run tile by tile sees padding at each tile's inner edges, where the whole image gave "
            f"it the neighbouring pixels. {r.n_tiles} tiles of {r.tile} px were cut from {r.n_images} probe "
            f"photographs at {2 * r.tile} px (positions on the model's {r.align}-px stride lattice) and each tile's "
            f"map compared with the same region of the whole photograph's map "
            f"(<code>padlib.border_reach</code>): the error is the mean absolute difference at each distance from "
            f"the nearest inner tile edge, in units of the spread of the whole-image map (output "
            f"{esc(r.output)}, stride {r.stride:g}). The margin is the distance from which the error stays under "
            f"{100 * r.tolerance:g}%; neighbouring tiles meet bottom edge to top edge, so the overlap between tile "
            f"rows is the top margin plus the bottom margin (columns: left plus right), rounded up to the stride "
            f"lattice. Intervals: 95% bootstrap over photographs (the tiles of one photograph share its pixels). "
            f"The swaps are inference swaps of the same weights: how much of the reach the padding causes, not "
            f"what a model trained with that padding would need.</p>"
            f"<p><b>{esc(stage.summary_line())}</b></p>")
    return head + text + _figure(fig, figure, f"Tiled-prediction error against the distance from the nearest inner "
                                              f"tile edge ({border_reach_colours(r)}; swaps dashed); grey "
                                              f"line: the {100 * r.tolerance:g}% tolerance, dots: each margin.")


def save_report(rep: PaddingReport, path, force: bool = False) -> str:
    """Write :func:`report_html` to ``path``, a new file unless ``force`` (your files are never overwritten)."""
    path = check_new_output(path, force, "report file")
    text = report_html(rep)
    with atomic_write(path) as f:  # the old file, or the whole new page: never half a page
        f.write(text)
    return path

