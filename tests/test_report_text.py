"""padlib report's generated text against its own tables, on planted numbers (no model run).

Every count ("N of M") and every comparison word in the summary and the recommendations is checked against the
table the page shows, on both sides of each rule's boundary: the lean sentences against the lean table (both come
from ``lean_counts``), the swap rule at its agreement bound, the learned-PAN rule at its factor, the even-size
sentence (more / fewer / about as many), the padding audit's counts against its table, and the evidence levels."""
import re

import numpy as np
import pandas as pd
import pytest
import torch

import padlib
from padlib import model_report
from padlib.audit import audit_summary, padding_audit
from padlib.model_report import EvidenceLevel, lean_counts
from padlib.viz.report import _level_badge, audit_rows, bias_rows, lean_rows, size_test_words


def _bias(tb, lr=None, predicted_tb="top", predicted_lr="left", inp="natural", unmeasured=0):
    """A bias-index table with the given per-depth leans ('' = none); ``unmeasured`` extra depths too small to
    measure (index NaN) that must not be counted."""
    lr = list(lr) if lr is not None else [""] * len(tb)
    n = len(tb)
    rows = pd.DataFrame({"input": inp, "network": "trained", "layer": [f"l{i}" for i in range(n)], "h": 7, "w": 7,
                         "top_bottom": [0.3 if v == "top" else -0.3 if v == "bottom" else 0.01 for v in tb],
                         "left_right": [0.3 if v == "left" else -0.3 if v == "right" else 0.01 for v in lr],
                         "border_centre": 0.1, "lean_tb": list(tb), "lean_lr": lr,
                         "predicted_tb": predicted_tb, "predicted_lr": predicted_lr})
    small = pd.DataFrame({"input": inp, "network": "trained", "layer": [f"s{i}" for i in range(unmeasured)], "h": 2,
                          "w": 2, "top_bottom": np.nan, "left_right": np.nan, "border_centre": np.nan, "lean_tb": "",
                          "lean_lr": "", "predicted_tb": predicted_tb, "predicted_lr": predicted_lr})
    return pd.concat([rows, small], ignore_index=True) if unmeasured else rows


def _planted(even_agree=0.80, control_agree=0.81, swap_agree=0.5, learned_pct=19.0, init_pct=1.0, bias=None,
             swap_low=None, n_images=64, fpr=0.01, summary=None, even_sizes=(225,), specialist=None):
    """A PaddingReport holding chosen numbers (no model run): each rule's input planted."""
    def row(name, v, half=0.02, low=None):
        return {"intervention": name, "metric": "agreement", "value": v, "ci_low": v - half if low is None else low,
                "ci_high": min(v + half, 1.0), "n": n_images}

    preds = pd.DataFrame([row(f"{m} padding", swap_agree, 0.005, swap_low) for m in model_report.SWAP_MODES]
                         + [row("225 px (even)", even_agree), row("223 px (uneven control)", control_agree)])
    control = pd.DataFrame([{"init": "trained", "seed": None, "filters": 1000, "padding_caused": 300,
                             "learned": round(10 * learned_pct), "padding_caused_pct": 30.0, "learned_pct": learned_pct,
                             "tau": 1.5},
                            {"init": "random init", "seed": 10, "filters": 1000, "padding_caused": 600,
                             "learned": round(10 * init_pct), "padding_caused_pct": 60.0, "learned_pct": init_pct,
                             "tau": 0.5}])
    if specialist is not None:  # the learned PANs that are also specialists, as learned_pan_control counts them
        control["specialist"] = [specialist, 0]
    bias = _bias([""] * 4) if bias is None else bias
    summary = summary or {"n_padding_layers": 18, "n_uneven": 5, "unread_sides": "bottom,right",
                          "extra_sides": "top,left"}
    return model_report.PaddingReport("planted", 224, n_images, "planted", pd.DataFrame(), summary, list(even_sizes),
                                      control, pd.DataFrame(), pd.DataFrame(), bias, preds,
                                      {"even": 225, "control": 223}, [], fpr=fpr)


def _recs(rep):
    return model_report.recommendations(rep)


def _texts(rep):
    return " ".join(r.text for r in _recs(rep))


# ---------------------------------------------------------------------------------------------------------
# The lean sentences and the lean table: one computed set

def _lean_sentences(text):
    return {m[1]: (int(m[3]), int(m[4]), m[2], int(m[5]), int(m[6]))
            for m in re.finditer(r"lean to the (\w+) \(([a-z/]+)\) at (\d+) of (\d+) depths \((\d+) to the \w+, "
                                 r"(\d+) to neither\)", text)}


def test_the_reviewed_case_counts_the_side_not_both_sides():
    """The page's table said bottom 7 and right 10 of 19, the sentence 10 and 14 (every leaning depth, either
    side): now the sentence counts the side it names, and bottom (7 of 19, under half) gives no sentence."""
    tb = ["top"] * 3 + ["bottom"] * 7 + [""] * 9
    lr = ["left"] * 4 + ["right"] * 10 + [""] * 5
    rep = _planted(bias=_bias(tb, lr, unmeasured=2))
    said = _lean_sentences(_texts(rep))
    assert set(said) == {"right"}
    assert said["right"] == (10, 19, "left/right", 4, 5)
    table = lean_rows(rep).set_index("axis")
    assert table.loc["left/right", "lean right"] == 10 and table.loc["left/right", "lean left"] == 4
    assert table.loc["top/bottom", "lean bottom"] == 7 and table.loc["top/bottom", "lean top"] == 3
    assert (table["depths measured"] == 19).all() and table.loc["top/bottom", "leans to (rule)"] == "no side"
    summary = " ".join(rep.summary_lines())
    assert "top/bottom, top 3 / bottom 7 / neither 9 of 19; left/right, left 4 / right 10 / neither 5 of 19" in summary


@pytest.mark.parametrize("tb, side", [
    (["bottom"] * 2 + [""] * 2, "bottom"),          # 2 of 4: exactly half leans that way -> a sentence
    (["bottom"] + [""] * 3, ""),                     # 1 of 4: under half -> none
    (["bottom"] * 2 + ["top"] * 2, ""),              # a tie: no side
    (["top"] * 3 + ["bottom"], "top"),               # 3 of 4, one the other way
    (["bottom"] * 5 + ["top"] * 4, "bottom"),        # 5 of 9 against 4
    (["bottom"] * 4 + ["top"] + [""] * 4, ""),       # 4 of 9: under half
])
def test_lean_rule_on_both_sides_of_its_boundary(tb, side):
    rep = _planted(bias=_bias(tb))
    counts = lean_counts(rep.bias_index).set_index("axis").loc["top/bottom"]
    assert counts.leans_to == side
    assert (counts.n_a, counts.n_z, counts.depths) == (tb.count("top"), tb.count("bottom"), len(tb))
    said = _lean_sentences(_texts(rep))
    if side:
        other = "top" if side == "bottom" else "bottom"
        assert said == {side: (tb.count(side), len(tb), "top/bottom", tb.count(other), tb.count(""))}
        assert tb.count(side) >= len(tb) / 2 and tb.count(side) > tb.count(other)
    else:
        assert said == {} and "lean to" not in _texts(rep)
    row = lean_rows(rep).set_index("axis").loc["top/bottom"]
    assert row["leans to (rule)"] == (side or "no side")
    assert (row["lean top"], row["lean bottom"], row["neither"]) == (tb.count("top"), tb.count("bottom"), tb.count(""))


@pytest.mark.parametrize("predicted, words", [("bottom", "the side the padding audit predicts"),
                                              ("top", "not the side the padding audit predicts (top)"),
                                              ("", "with even padding on that axis")])
def test_lean_sentence_says_whether_the_audit_predicted_its_side(predicted, words):
    text = _texts(_planted(bias=_bias(["bottom"] * 3 + [""], predicted_tb=predicted)))
    lean = [r.statement for r in _recs(_planted(bias=_bias(["bottom"] * 3 + [""], predicted_tb=predicted)))
            if "lean to" in r.statement]
    assert len(lean) == 1 and f"at 3 of 4 depths (0 to the top, 1 to neither), {words}" in text
    clause = lean[0].split("neither), ", 1)[1].split(":", 1)[0]
    assert clause.startswith(words) and ("not the side" in clause) is (predicted == "top")


@pytest.mark.parametrize("with_se, how, column", [(True, "beyond their 5% t-test bound", "5% t-test"),
                                                   (False, "by the sign of the index (no image splits", "sign only")])
def test_lean_sentence_says_how_a_depth_was_counted(with_se, how, column):
    """Natural maps have image splits (a t-test per depth); the trained model's constant-input maps have none,
    so their leans are signs: the sentence and the table say which."""
    bias = _bias(["top", "bottom", ""])
    if with_se:
        bias = bias.assign(top_bottom_se=0.05, left_right_se=0.05)
    line = next(s for s in _planted(bias=bias).summary_lines() if s.startswith("Spatial bias (natural"))
    assert f"depths leaning {how}" in line
    assert set(lean_rows(_planted(bias=bias))["a depth leans by"]) == {column}


def test_per_depth_table_shows_the_leans_the_counts_count():
    bias = _bias(["top", "bottom", ""], ["right", "", "left"], unmeasured=1)
    rows = bias_rows(bias)
    assert list(rows["lean t/b"]) == ["top", "bottom", "", ""] and list(rows["lean l/r"]) == ["right", "", "left", ""]
    assert rows["top - bottom"].iloc[3] == "" and rows["top - bottom"].iloc[0] == "+0.300"
    assert len(rows.columns) <= 9  # fits the page at 1280 px


# ---------------------------------------------------------------------------------------------------------
# The other rules, each on both sides of its boundary

@pytest.mark.parametrize("low, harmless", [(0.99, True), (0.9899, False), (0.995, True), (0.5, False)])
def test_swap_rule_at_its_agreement_bound(low, harmless):
    text = _texts(_planted(swap_agree=0.995, swap_low=low))
    assert ("Do not swap" in text) is not harmless
    assert ("Reflect, replicate and circular padding leave the top-1 class unchanged on at least 99%" in text) is harmless
    if not harmless:
        assert "with reflect, replicate and circular padding the lower bound" in text and "falls below 99%" in text
        m = re.search(r"\(lowest: (\w+), unchanged on ([\d.]+)% \[([\d.]+), ", text)
        assert m and float(m[3]) < 99 and m[1] == "reflect"  # 98.99 prints as such, not rounded to 99.0


def test_swap_rule_counts_the_modes_it_names():
    rep = _planted()
    rep.predictions.loc[rep.predictions.intervention == "circular padding", ["value", "ci_low"]] = [0.999, 0.995]
    text = _texts(rep)
    assert "with reflect and replicate padding the lower bound" in text
    assert "Circular padding leaves the top-1 class unchanged" in text


def _pan_numbers(text):
    m = re.search(r"(?:detect the border: |are few: )([\d.]+)% of (?:its )?padded filters (?:are learned PANs )?"
                  r"against ([\d.]+)% at random initialisation", text)
    return float(m[1]), float(m[2])


@pytest.mark.parametrize("learned, init, fpr, learned_words", [
    (3.0, 1.0, 0.01, True), (2.9, 1.0, 0.01, False),       # 3x the random-init share, on either side
    (1.0, 0.0, 0.01, True), (0.9, 0.0, 0.01, False),       # no random-init PAN: the false-positive rate is the floor
    (4.9, 0.0, 0.05, False), (5.0, 0.0, 0.05, True),
    (2.93, 0.976, 0.01, True), (2.93, 0.98, 0.01, False),  # a hair either side: printed with more decimals
    (2.95, 0.98, 0.01, True)])
def test_learned_pan_rule_at_its_factor(learned, init, fpr, learned_words):
    """The word (learned / few) and the two printed shares agree with the rule, also where one decimal would
    round the pair across it."""
    text = _texts(_planted(learned_pct=learned, init_pct=init, fpr=fpr))
    assert ("learned to detect the border" in text) is learned_words
    assert ("Learned PANs are few" in text) is not learned_words
    assert f"no less than the {100 * fpr:g}% false-positive rate" in text
    ours, theirs = _pan_numbers(text)
    assert (ours >= max(3 * theirs, 100 * fpr)) is learned_words
    assert ours == pytest.approx(learned, abs=0.05) and theirs == pytest.approx(init, abs=0.05)


@pytest.mark.parametrize("even, control, word", [(0.40, 0.80, "more"), (0.95, 0.80, "fewer"), (0.80, 0.81, "about as many")])
def test_the_size_comparison_word_agrees_with_the_numbers_it_prints(even, control, word):
    """The sentence compares two printed shares; its word must say what the two numbers say, on both sides."""
    text = _texts(_planted(even, control))
    m = re.search(r"changes its top-1 class on ([\d.]+)% \[([\d.]+), ([\d.]+)\] of the images, (more|fewer|about as many) "
                  r"(?:than|as) the equally small resize to 223 px changes \(([\d.]+)%", text)
    assert m, text
    ours, lo, hi, said, theirs = float(m[1]), float(m[2]), float(m[3]), m[4], float(m[5])
    assert said == word and lo <= ours <= hi
    assert {"more": ours > theirs, "fewer": ours < theirs, "about as many": abs(ours - theirs) < 5}[said]


def test_each_rule_against_its_control():
    """Every rule's effect planted, then every effect absent (the controls)."""
    tuned = _texts(_planted(0.40, 0.80, 0.5, 19.0, 1.0, bias=_bias(["bottom"] * 3 + [""])))
    assert "At 225 px every padding layer pads evenly" in tuned and "bottom and right" in tuned
    assert "tuned to the uneven padding" in tuned  # the even size moves predictions beyond the control
    assert "Do not swap the padding at inference" in tuned and "learned to detect the border" in tuned
    assert "lean to the bottom (top/bottom) at 3 of 4 depths (0 to the top, 1 to neither), not the side" in tuned
    control = _texts(_planted(0.80, 0.81, 0.999, 1.2, 1.0, swap_low=0.995))
    assert "64 images do not tell them apart): this test does not show the even padding changing more" in control
    assert "Do not swap" not in control and "leave the top-1 class unchanged" in control
    assert "Learned PANs are few" in control and "lean to" not in control
    assert "even padding suits these weights better" in _texts(_planted(0.95, 0.80))


# ---------------------------------------------------------------------------------------------------------
# Evidence levels and the even size

def test_even_size_is_arithmetic_only_with_the_books_caveat():
    recs = _recs(_planted(0.95, 0.80))  # even when the even size disturbs this model's predictions less
    first = recs[0]
    assert first.level is EvidenceLevel.ARITHMETIC
    assert first.statement.startswith("At 225 px every padding layer pads evenly; at 224 px, 5 of 18 padding layers")
    assert "did not show that the even size helps" in first.statement and "Train and evaluate" not in first.text
    assert not re.search(r"\d+(\.\d+)?\s*(%|accuracy)", first.statement)  # no number from the book hard-coded
    assert first.text.endswith("[Evidence: arithmetic only.]")
    assert [r.level for r in recs[1:]] == [EvidenceLevel.MEASURED] * (len(recs) - 1)


@pytest.mark.parametrize("summary, even_sizes, start", [
    ({"n_padding_layers": 18, "n_uneven": 5, "unread_sides": "bottom", "extra_sides": "top"}, (),
     "5 of 18 padding layers pad unevenly at 224 px and no size within 16 px pads evenly"),
    ({"n_padding_layers": 18, "n_uneven": 0, "unread_sides": "", "extra_sides": ""}, (),
     "All 18 padding layers pad evenly at 224 px")])
def test_other_padding_items_are_arithmetic_only(summary, even_sizes, start):
    first = _recs(_planted(summary=summary, even_sizes=even_sizes))[0]
    assert first.statement.startswith(start) and first.level is EvidenceLevel.ARITHMETIC


def test_levels_reach_the_json_summary_and_the_page():
    rep = _planted(bias=_bias(["bottom"] * 3 + [""]))
    rep.recommendations = _recs(rep)
    record = rep.summary_record()
    assert [r["level"] for r in record["recommendations"]] == [r.level.value for r in rep.recommendations]
    assert {r["level"] for r in record["recommendations"]} == {"arithmetic only", "measured on this model"}
    assert record["n_images"] == 64 and record["fpr"] == 0.01
    assert set(EvidenceLevel) == {EvidenceLevel("measured on this model"),
                                  EvidenceLevel("shown in the book's trained networks"), EvidenceLevel("arithmetic only")}
    assert {_level_badge(v) for v in EvidenceLevel} == {
        "<span class='level level-measured'>measured on this model</span>",
        "<span class='level level-book'>shown in the book&#x27;s trained networks</span>",
        "<span class='level level-arithmetic'>arithmetic only</span>"}


# ---------------------------------------------------------------------------------------------------------
# The summary's counts

@pytest.mark.parametrize("n_images, fpr, words", [(64, 0.01, "on 64 probe images at a 1% false-positive rate"),
                                                  (128, 0.05, "on 128 probe images at a 5% false-positive rate")])
def test_pan_count_is_stated_with_its_images_and_false_positive_rate(n_images, fpr, words):
    line = next(s for s in _planted(n_images=n_images, fpr=fpr).summary_lines() if s.startswith("PANs: "))
    assert line.startswith(f"PANs: 190 learned PANs {words} (circular-padding null), 19.0% of 1000 padded filters")
    assert "300 padding-caused channels in all" in line


@pytest.mark.parametrize("specialist, learned_pct, words", [
    (120, 19.0, "; 120 of the 190 learned PANs are specialists"), (190, 19.0, "; all 190 of the 190 learned PANs are"),
    (0, 19.0, "; none of the 190 learned PANs are"), (0, 0.0, None), (None, 19.0, None)])
def test_the_pan_line_says_how_many_learned_pans_are_specialists(specialist, learned_pct, words):
    line = next(s for s in _planted(specialist=specialist, learned_pct=learned_pct).summary_lines()
                if s.startswith("PANs: "))
    if words is None:  # no learned PANs, or a table without the reading: no specialist clause
        assert "specialist" not in line
    else:
        assert words in line and line.endswith("the false-positive rate.")


@pytest.mark.parametrize("size, uneven", [(64, True), (65, False)])
def test_padding_counts_in_the_summary_are_the_audit_tables(size, uneven):
    """The 'N of M' and the sides in the padding sentence against Table 1's rows (resnet18: 64 px pads
    unevenly, 65 = 1 mod 32 evenly)."""
    audit = padding_audit(padlib.load_model("resnet18", pretrained=False), size)
    s = audit_summary(audit)
    rep = _planted(summary=s)
    rep.input_size = size
    line = rep.summary_lines()[0]
    table = audit_rows(audit[audit.uneven.astype(bool)])
    n_padded = int((audit[["pad_top", "pad_bottom", "pad_left", "pad_right"]].sum(axis=1) > 0).sum())
    if uneven:
        m = re.match(r"Padding: (\d+) of (\d+) padding layers pad unevenly at 64 px \(padding never read: (.+); "
                     r"more padding read: (.+)\)", line)
        assert m and int(m[1]) == len(table) > 0 and int(m[2]) == n_padded
        sides = lambda col: sorted({x for v in table[col] for x in v.split(", ") if x})  # noqa: E731
        assert sorted(m[3].split(" and ")) == sides("never read") and sorted(m[4].split(" and ")) == sides("reads more")
    else:
        assert len(table) == 0 and line == f"Padding: all {n_padded} padding layers pad evenly at 65 px."
    torch.manual_seed(0)


@pytest.mark.parametrize("size_test, n_uneven, words", [
    ({"even": 225, "control": 223}, 5, ", and resized to 225 px, the nearest size that pads evenly, and to 223 px, an "
                                       "uneven size 1 px away on the other side (the control)"),
    ({"even": 225, "control": None}, 5, "(no uneven size at the same distance could serve as the control)"),
    ({"even": None, "control": None}, 5, "; no resize (no size within 16 px pads evenly)"),
    ({"even": None, "control": None}, 0, "; no resize (every padding layer pads evenly at 224 px)")])
def test_section_four_says_which_sizes_ran(size_test, n_uneven, words):
    rep = _planted(summary={"n_padding_layers": 18, "n_uneven": n_uneven, "unread_sides": "", "extra_sides": ""})
    rep.size_test = size_test
    assert words in size_test_words(rep)


def test_depth_figure_uses_the_books_role_colours():
    """Trained in the book's trained colour, random init in its mid grey, as on every page."""
    import matplotlib
    import matplotlib.pyplot as plt
    from padlib.viz.report import depth_figure
    from padlib.viz.style import PRETRAINED, RANDOM_INIT

    profile = pd.DataFrame({"model": "m", "network": ["trained"] * 3 + ["random init"] * 3, "layer": list("abcabc"),
                            "rel_depth": [0, 0.5, 1] * 2, "learned_pct": [5, 9, 2, 1, 0, 1],
                            "padding_caused_pct": [20, 30, 10, 60, 70, 65]})
    fig = depth_figure(profile)
    colours = {line.get_label(): matplotlib.colors.to_hex(line.get_color()) for line in fig.axes[0].lines}
    plt.close(fig)
    assert colours == {"trained: learned PANs": PRETRAINED.lower(), "trained: padding-caused": PRETRAINED.lower(),
                       "random init: learned PANs": RANDOM_INIT.lower(), "random init: padding-caused": RANDOM_INIT.lower()}
