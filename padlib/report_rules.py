"""The padding report's rules and sentences: the recommendations derived from its numbers by stated rules
(:data:`RULES`, ours), each with the figure or table it rests on and its level of evidence
(:class:`EvidenceLevel`), the lean counts every lean sentence and the page's lean table come from
(:func:`lean_counts`), and the words the sentences share. :mod:`padlib.model_report` computes the numbers.

The predictions' sentences speak of the output the report compared (:func:`headline_metric`,
:func:`prediction_lines`): a classifier's top-1 class, or a dense map's per-pixel argmax class and the relative
change of the map, in the border band and the interior."""
from __future__ import annotations

import math

from dataclasses import dataclass
from enum import Enum

import pandas as pd

# The rules behind the recommendations (ours). Agreement is the share of images whose top-1 class is unchanged (a
# dense map's: the share of its positions whose argmax class is unchanged, the per-pixel agreement).
RULES = {
    "swap_harmless_agreement": 0.99,  # a padding swap is harmless when the lower CI bound of agreement is above
    "swap_harmless_change": 0.01,  # ... for a one-channel map (no argmax): when the upper CI bound of the relative
    #                                change of the map is at most 1% of its size
    "learned_pan_factor": 3.0,  # learned PANs count when the trained share is >= 3x the random-init copy's
    "lean_share": 0.5,  # maps lean to a side when at least half the depths measured lean to THAT side (beyond
    #                     their 5% t-test bound) and more depths lean to it than to the opposite side
}

SWAP_MODES = ("reflect", "replicate", "circular")

EVEN_SIZE_REACH = 16  # sizes within this many pixels of the input size are searched for even padding

LEAN_AXES = (("top/bottom", "lean_tb", "predicted_tb", ("top", "bottom")),
             ("left/right", "lean_lr", "predicted_lr", ("left", "right")))


class EvidenceLevel(str, Enum):
    """How far a recommendation's evidence reaches (shown beside it on the page and in the JSON summary)."""

    MEASURED = "measured on this model"
    BOOK = "shown in the book's trained networks"
    ARITHMETIC = "arithmetic only"

    def __str__(self) -> str:
        return self.value


@dataclass
class Recommendation:
    """One plain recommendation, the figure or table it rests on, and how far its evidence reaches.

    ``statement`` is the sentence; ``text`` is the sentence with its evidence level (what the command line, the
    JSON summary and the book's introduction print)."""

    statement: str
    evidence: str
    level: EvidenceLevel

    def __post_init__(self):
        self.level = EvidenceLevel(self.level)

    @property
    def text(self) -> str:
        return f"{self.statement} [Evidence: {self.level.value}.]"

    def record(self) -> dict:
        """The JSON-ready form: statement, evidence level and the figure or table it rests on."""
        return {"text": self.statement, "level": self.level.value, "rests_on": self.evidence}



def _and(items) -> str:
    """['bottom', 'right'] or 'bottom,right' -> 'bottom and right'."""
    items = [i for i in (items.split(",") if isinstance(items, str) else items) if i]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else (items[0] if items else "no")


def _n(k: int, noun: str) -> str:
    """(1, 'object') -> '1 object', (3, 'object') -> '3 objects'."""
    return f"{k} {noun}{'' if k == 1 else 's'}"


def _nats(x: float) -> str:
    """A change in nats, signed, 2 decimals, '0.00' for what rounds to zero (never '-0.00')."""
    return "0.00" if abs(x) < 0.005 else f"{x:+.2f}"


def _pct(v: float) -> str:
    """0.01 -> '1%', 0.005 -> '0.5%'."""
    return f"{100 * v:g}%"


def _decimals(rule, *values) -> int:
    """The fewest decimals (1 to 4) at which the rounded ``values`` give the same ``rule(*values)`` as the exact
    ones: a number printed beside the bound a rule compares it with is never rounded across it (98.99 against
    99 prints as 98.99, not 99.0). Mostly 1, as everywhere else on the page."""
    truth = bool(rule(*values))
    for d in (1, 2, 3):
        if bool(rule(*(round(v, d) for v in values))) == truth:
            return d
    return 4


def _count_of(part: int, whole: int) -> str:
    """'all 5 of the 5', 'none of the 5', '3 of the 5': a part of a non-zero count in words that never contradict it."""
    if part == whole:
        return f"all {part} of the {whole}"
    return f"none of the {whole}" if part == 0 else f"{part} of the {whole}"


def _pan_rule(learned_pct: float, init_pct: float, fpr: float) -> bool:
    """Learned PANs count when the trained share is at least ``learned_pan_factor`` times the random-init share
    and no less than the false-positive rate (all in %)."""
    return learned_pct >= max(RULES["learned_pan_factor"] * init_pct, fpr)


def lean_counts(bias: pd.DataFrame, inp: str = "natural", network: str = "trained") -> pd.DataFrame:
    """Per axis, how many depths lean to each side and to neither, among the depths measured (maps of at least 3x3),
    with the side the maps lean to by :data:`RULES` ('' when none) and the side the padding audit predicts. The
    one table behind every lean sentence and the page's lean table. ``tested``: every depth's lean passed a 5%
    t-test over image splits (maps without splits, e.g. one constant input, lean by the index's sign alone)."""
    b = bias[(bias.input == inp) & (bias.network == network)] if len(bias) else bias
    rows = []
    for axis, col, pred_col, (a, z) in LEAN_AXES:
        index_col = "top_bottom" if col == "lean_tb" else "left_right"
        measured = b[pd.to_numeric(b[index_col], errors="coerce").notna()] if index_col in b else b.iloc[0:0]
        se = f"{index_col}_se"
        tested = bool(len(measured)) and se in measured and bool(pd.to_numeric(measured[se], errors="coerce").notna().all())
        n_a, n_z = int((measured[col] == a).sum()), int((measured[col] == z).sum())
        depths = len(measured)
        top = a if n_a > n_z else z if n_z > n_a else ""
        n_top = max(n_a, n_z)
        side = top if top and depths and n_top >= RULES["lean_share"] * depths else ""
        predicted = str(b[pred_col].iloc[0]) if len(b) and pred_col in b else ""
        rows.append({"input": inp, "axis": axis, "depths": depths, "side_a": a, "n_a": n_a, "side_z": z, "n_z": n_z,
                     "n_neither": depths - n_a - n_z, "leans_to": side, "predicted": predicted, "tested": tested})
    return pd.DataFrame(rows)


def _lean_count_words(r) -> str:
    return f"{r.axis}, {r.side_a} {r.n_a} / {r.side_z} {r.n_z} / neither {r.n_neither} of {r.depths}"



def _metric(preds: pd.DataFrame, intervention: str, metric: str):
    r = preds[(preds.intervention == intervention) & (preds.metric == metric)]
    return r.iloc[0] if len(r) else None


def headline_metric(preds: pd.DataFrame, kind: str = "logits") -> str:
    """The metric the predictions' figure and sentences lead with: top-1 ``agreement`` for logits, the per-pixel
    ``argmax_agreement`` for maps of several channels, else the ``relative_change`` of the map."""
    if kind == "logits":
        return "agreement"
    return "argmax_agreement" if (preds["metric"] == "argmax_agreement").any() else "relative_change"


def _pc(v: float) -> str:
    return "" if v is None or not math.isfinite(v) else f"{100 * v:.{_dp(v)}f}%"


def _regions(preds: pd.DataFrame, intervention: str, metric: str, scale=_pc) -> str:
    """' (border band X, interior Y)' of a dense metric, '' where the map has no interior."""
    b, i = (_metric(preds, intervention, f"{metric}_{part}") for part in ("border", "interior"))
    if b is None or i is None:
        return ""
    return f" (border band {scale(b.value)}, interior {scale(i.value)})"


def prediction_lines(preds: pd.DataFrame, kind: str = "logits") -> list[str]:
    """The summary's sentence per intervention: logits, the share of images whose top-1 class is unchanged; dense
    maps, the per-pixel agreement (C > 1) and the relative change of the map, each with its 95% interval and its
    values in the border band and the interior."""
    lines = []
    if kind == "logits":
        for _, r in preds[preds.metric == "agreement"].iterrows():
            lines.append(f"{r.intervention}: top-1 unchanged on {100 * r.value:.1f}% of images "
                         f"[{100 * r.ci_low:.1f}, {100 * r.ci_high:.1f}].")
        return lines
    for name in dict.fromkeys(preds["intervention"]):
        parts = []
        for metric, words in (("argmax_agreement", "per-pixel agreement"), ("relative_change",
                                                                             "relative change of the map")):
            r = _metric(preds, name, metric)
            if r is not None:
                parts.append(f"{words} {100 * r.value:.{_dp(r.value)}f}% [{100 * r.ci_low:.{_dp(r.value)}f}, "
                             f"{100 * r.ci_high:.{_dp(r.value)}f}]" + _regions(preds, name, metric, _pc))
        if parts:
            lines.append(f"{name}: " + "; ".join(parts) + ".")
    return lines


def _dp(v: float) -> int:
    """Decimals for a share in %: 1, or 2 for a small relative change that would print as 0.0."""
    return 2 if math.isfinite(v) and 0 < 100 * abs(v) < 1 else 1


def _change(r, metric: str) -> tuple[float, float, float]:
    """(change, low, high) in %: the share that changed (100 - agreement) or the relative change itself."""
    if metric == "relative_change":
        return 100 * r.value, 100 * r.ci_low, 100 * r.ci_high
    return 100 * (1 - r.value), 100 * (1 - r.ci_high), 100 * (1 - r.ci_low)


def _size_recommendation(rep, kind: str) -> list[Recommendation]:
    """The even size against its uneven control, in the output's own terms."""
    ev, ctrl = rep.size_test.get("even"), rep.size_test.get("control")
    if ev is None or ctrl is None:
        return []
    metric = headline_metric(rep.predictions, kind)
    e = _metric(rep.predictions, f"{ev} px (even)", metric)
    c = _metric(rep.predictions, f"{ctrl} px (uneven control)", metric)
    if e is None or c is None:
        return []
    # said as what CHANGES, so "more"/"fewer" compare the numbers printed
    (changed, low, high), (changed_ctrl, c_low, c_high) = _change(e, metric), _change(c, metric)
    many, d = ("as many", 1) if metric != "relative_change" else ("as much", _dp(e.value))
    if low > c_high:
        verdict = (f"more than the equally small resize to {ctrl} px changes ({changed_ctrl:.{d}f}%): the trained "
                   f"weights are tuned to the uneven padding, so switch sizes only with retraining")
    elif high < c_low:
        verdict = (f"{'fewer' if many == 'as many' else 'less'} than the equally small resize to {ctrl} px changes "
                   f"({changed_ctrl:.{d}f}%): even padding suits these weights better than the control size does")
    else:
        verdict = (f"about {many} as the equally small resize to {ctrl} px changes ({changed_ctrl:.{d}f}%; the "
                   f"intervals overlap, so {rep.n_images} images do not tell them apart): this test does "
                   f"not show the even padding changing more than the resize alone does")
    what = {"agreement": "changes its top-1 class on {} of the images",
            "argmax_agreement": "changes the argmax class of {} of the output positions (per-pixel agreement, its "
                                f"map resized back to {rep.input_size} px)",
            "relative_change": "changes its map by {} of the map's size (relative change of the map, resized back "
                               f"to {rep.input_size} px)"}[metric]
    number = f"{changed:.{d}f}% [{low:.{d}f}, {high:.{d}f}]"
    also = ""
    if metric == "argmax_agreement":  # the map's values beside its argmax (scores can change where it does not)
        pair = [(size, _metric(rep.predictions, name, "relative_change"))
                for size, name in ((ev, f"{ev} px (even)"), (ctrl, f"{ctrl} px (uneven control)"))]
        if all(r is not None for _, r in pair):
            also = " Relative change of the map: " + ", ".join(
                f"{100 * r.value:.{_dp(r.value)}f}% [{100 * r.ci_low:.{_dp(r.value)}f}, "
                f"{100 * r.ci_high:.{_dp(r.value)}f}] at {size} px" for size, r in pair) + "."
    return [Recommendation(f"Evaluated at {ev} px without retraining, the model {what.format(number)}, {verdict}.{also}",
                           "Figure 4 (predictions under interventions)", EvidenceLevel.MEASURED)]


def _swap_recommendations(rep, kind: str) -> list[Recommendation]:
    """Padding swaps that change the predictions beyond the rule, and those that do not, in the output's terms."""
    metric = headline_metric(rep.predictions, kind)
    change = metric == "relative_change"
    limit = RULES["swap_harmless_change" if change else "swap_harmless_agreement"]
    harmless, harmful = [], []
    for mode in SWAP_MODES:
        r = _metric(rep.predictions, f"{mode} padding", metric)
        if r is None:
            continue
        ok = r.ci_high <= limit if change else r.ci_low >= limit
        (harmless if ok else harmful).append((mode, r))
    bound = f"{100 * limit:g}%"
    where = {"agreement": ("the share of images whose top-1 class is unchanged", "the top-1 class", "the images"),
             "argmax_agreement": ("the per-pixel agreement (the share of output positions whose argmax class is "
                                  "unchanged)", "the argmax class", "the output positions")}.get(metric)
    out = []
    if harmful:
        mode, w = (max if change else min)(harmful, key=lambda mr: mr[1].value)
        modes = _and([m for m, _ in harmful])
        if change:
            d = _decimals(lambda high: high > 100 * limit, 100 * w.ci_high)
            said = (f"with {modes} padding the upper bound of the relative change of the map rises above {bound} "
                    f"(largest: {mode}, {100 * w.value:.{d}f}% [{100 * w.ci_low:.{d}f}, {100 * w.ci_high:.{d}f}]"
                    + _regions(rep.predictions, f"{mode} padding", metric) + ")")
        else:
            d = _decimals(lambda low: low < 100 * limit, 100 * w.ci_low)
            said = (f"with {modes} padding the lower bound of {where[0]} falls below {bound} (lowest: {mode}, "
                    f"unchanged on {100 * w.value:.{d}f}% [{100 * w.ci_low:.{d}f}, {100 * w.ci_high:.{d}f}]"
                    + (_regions(rep.predictions, f"{mode} padding", metric) + "; relative change of the map: "
                       + _map_change(rep.predictions, mode) if kind != "logits" else "") + ")")
        out.append(Recommendation(
            f"Do not swap the padding at inference: {said}. The weights depend on the padding they were trained "
            f"with; compare schemes by training with each.", "Figure 4 (predictions under interventions)",
            EvidenceLevel.MEASURED))
    if harmless:
        modes, one = _and([m for m, _ in harmless]).capitalize(), len(harmless) == 1
        if change:
            said = (f"{modes} padding {'changes' if one else 'change'} the map by at most {bound} of its size "
                    f"(relative change of the map, upper bound of the 95% interval): the map hardly depends")
        else:
            said = (f"{modes} padding {'leaves' if one else 'leave'} {where[1]} unchanged on at least {bound} of "
                    f"{where[2]} (lower bound of the 95% interval): "
                    + ("predictions hardly depend" if kind == "logits" else "the argmax read from the map hardly "
                       "depends"))
        tail = "" if kind == "logits" or change else (
            "; relative change of the map (its values, which can change where the argmax does not): "
            + "; ".join(_map_change(rep.predictions, m) for m, _ in harmless))
        out.append(Recommendation(f"{said} on the values its own padding supplies{tail}.",
                                  "Figure 4 (predictions under interventions)", EvidenceLevel.MEASURED))
    return out


def _map_change(preds: pd.DataFrame, mode: str) -> str:
    """'reflect 0.27% [0.25, 0.30] (border band 0.42%, interior 0.00%)': the relative change of the map beside a
    dense map's per-pixel agreement (a map of scores, not classes, can keep its argmax and still change a lot)."""
    r = _metric(preds, f"{mode} padding", "relative_change")
    if r is None:
        return ""
    d = _dp(r.value)
    return (f"{mode} {100 * r.value:.{d}f}% [{100 * r.ci_low:.{d}f}, {100 * r.ci_high:.{d}f}]"
            + _regions(preds, f"{mode} padding", "relative_change"))


def reach_numbers(rep) -> tuple[int, int]:
    """(section, figure) numbers of the border-reach section on the page: after the position stage's section (5)
    and its figure (5) when that stage is on and ran."""
    positions = getattr(rep, "positions", None)
    return 5 + (positions is not None), 5 + (positions is not None and not positions.skipped)


def _reach_recommendation(rep) -> list[Recommendation]:
    """The tile overlap the border-reach stage measured, in its summary's words, with each swap beside it."""
    stage = getattr(rep, "reach", None)
    if stage is None or stage.skipped:
        return []
    r = stage.result
    line = r.summary()
    lead = f"Run tile by tile, this model's map differs from the whole-image map near each inner tile edge: {line}"
    tail = ""
    m = r.margins  # None for a side never an inner edge: the overlap is then NaN and no tail is written
    if r.overlap is not None and 0 < r.overlap < r.tile and None not in m.values():
        tail = (f". Overlap neighbouring tiles by that much and keep, of each tile, only what lies beyond its margin "
                f"at each inner edge (top {m['top']}, bottom {m['bottom']}, left {m['left']}, right {m['right']} px)")
    swaps = stage.swap_words(reasons=False)
    swap_words = (". With the padding swapped in at inference (the same weights, not retrained): "
                  + "; ".join(swaps)) if swaps else ""
    return [Recommendation(f"{lead}{tail}{swap_words}.", f"Figure {reach_numbers(rep)[1]} (border reach)",
                           EvidenceLevel.MEASURED)]


def recommendations(rep) -> list[Recommendation]:
    """Plain recommendations derived from the report's numbers by :data:`RULES` (ours), each with the figure or
    table it rests on and its :class:`EvidenceLevel`."""
    measured, arithmetic = EvidenceLevel.MEASURED, EvidenceLevel.ARITHMETIC
    out = []
    s, size = rep.audit_summary, rep.input_size
    if s["n_uneven"] and rep.even_sizes:
        # padding arithmetic, not a measured gain: the book's small networks trained at a size that pads evenly
        # did not show that the even size helps, so the sentence states the fact and says so
        out.append(Recommendation(
            f"At {rep.even_sizes[0]} px every padding layer pads evenly; at {size} px, {s['n_uneven']} of "
            f"{s['n_padding_layers']} padding layers pad unevenly and their padding on the {_and(s['unread_sides'])} "
            f"is never read. This is padding arithmetic, not a measured gain: Mind the Pad ties uneven padding to "
            f"asymmetric kernels and blind spots, but the book's small networks trained at a size that pads evenly "
            f"did not show that the even size helps. A change of size has to be measured by training at both "
            f"sizes; resizing at inference does not tell.", "Table 1 (padding audit)", arithmetic))
    elif s["n_uneven"]:
        out.append(Recommendation(
            f"{s['n_uneven']} of {s['n_padding_layers']} padding layers pad unevenly at {size} px and no size within "
            f"{EVEN_SIZE_REACH} px pads evenly: the padding arithmetic of this architecture (its strides and kernels) "
            f"does not allow it near this size.", "Table 1 (padding audit)", arithmetic))
    else:
        out.append(Recommendation(f"All {s['n_padding_layers']} padding layers pad evenly at {size} px: the input "
                                  f"size needs no change for the padding's sake.", "Table 1 (padding audit)",
                                  arithmetic))

    kind = getattr(rep, "output_kind", "logits")
    out += _size_recommendation(rep, kind) + _swap_recommendations(rep, kind) + _reach_recommendation(rep)

    tr = rep.pan_control[rep.pan_control.init == "trained"].iloc[0]
    ri_max = float(rep.pan_control[rep.pan_control.init == "random init"].learned_pct.max())
    fpr_pct = 100 * rep.fpr
    rule = (f"the rule: at least {RULES['learned_pan_factor']:g} times the random-init share and no less than the "
            f"{_pct(rep.fpr)} false-positive rate")
    d = _decimals(lambda a, b: _pan_rule(a, b, fpr_pct), float(tr.learned_pct), ri_max)
    ours, theirs = f"{tr.learned_pct:.{d}f}%", f"{ri_max:.{d}f}%"
    if _pan_rule(float(tr.learned_pct), ri_max, fpr_pct):
        out.append(Recommendation(
            f"The model has learned to detect the border: {ours} of its padded filters are learned PANs against "
            f"{theirs} at random initialisation ({rule}). Where the image border is not a real edge (crops "
            f"of larger scenes, tiles), expect responses to depend on where an object sits relative to the frame; "
            f"test with shifted crops, and consider a padding that does not mark the border when you retrain.",
            "Table 2 and Figure 1 (learned PANs), Figure 2 (strongest PANs)", measured))
    else:
        out.append(Recommendation(
            f"Learned PANs are few: {ours} of padded filters against {theirs} at random initialisation, short of "
            f"{rule}: this model did not make the border a feature of its own.",
            "Table 2 and Figure 1 (learned PANs)", measured))

    for r in lean_counts(rep.bias_index, "natural").itertuples():
        if not r.leans_to:
            continue
        other, n_side, n_other = ((r.side_z, r.n_a, r.n_z) if r.leans_to == r.side_a else (r.side_a, r.n_z, r.n_a))
        why = (", the side the padding audit predicts" if r.leans_to == r.predicted else
               f", not the side the padding audit predicts ({r.predicted})" if r.predicted else
               ", with even padding on that axis (content or learned asymmetry, not padding arithmetic)")
        out.append(Recommendation(
            f"Feature maps on natural images lean to the {r.leans_to} ({r.axis}) at {n_side} of {r.depths} depths "
            f"({n_other} to the {other}, {r.n_neither} to neither){why}: objects near that border are represented "
            f"differently from the same objects elsewhere.",
            "Figure 3 (mean feature maps) and Table 3 (leaning depths)", measured))
    return out
