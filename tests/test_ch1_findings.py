"""Chapter 1's readings on planted tables: each primary test, each verdict boundary and each computed word or count,
planted on both sides."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from padlib.chapters import ch1_pans as R
from padlib.chapters import claims
from padlib.chapters.findings import CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SUPPORTED, section_markdown
from padlib.errors import PadlibError
from padlib.experiments import ch1_pans as D
from padlib.padding import SIDES
from padlib.stats import cluster_ratio_bootstrap, wilson_interval

SESOI = claims.LEARNED_EXCESS_SESOI_PCT


# --- the cluster bootstrap ---------------------------------------------------------------------------------

def test_cluster_ratio_bootstrap_resamples_whole_clusters():
    num, den = np.array([9, 1, 8, 2, 9, 1]), np.full(6, 10)
    r = cluster_ratio_bootstrap(num, den, null=0.5, n_boot=4000, seed=0)
    assert r.estimate == pytest.approx(30 / 60) and r.clusters == 6
    assert r.low < 0.5 < r.high and r.p > 0.5
    # the same 60 units as if independent (Wilson) give a much narrower interval than clusters that disagree
    lo, hi = wilson_interval(30, 60)
    assert r.high - r.low > 1.3 * (hi - lo)
    # every cluster above 1/2: resolved, p at its floor
    up = cluster_ratio_bootstrap([8, 9, 7, 8], [10] * 4, null=0.5, n_boot=999, seed=1)
    assert up.low > 0.5 and up.p == pytest.approx(2 / 1000)
    down = cluster_ratio_bootstrap([1, 2, 1, 3], [10] * 4, null=0.5, n_boot=999, seed=1)
    assert down.high < 0.5 and down.p == pytest.approx(2 / 1000)
    assert cluster_ratio_bootstrap(num, den, n_boot=500, seed=3) == cluster_ratio_bootstrap(num, den, n_boot=500, seed=3)
    one = cluster_ratio_bootstrap([3], [10])
    assert one.estimate == 0.3 and np.isnan(one.low) and np.isnan(one.p)
    assert np.isnan(cluster_ratio_bootstrap([0, 0], [0, 0]).estimate)
    with pytest.raises(PadlibError, match="one numerator and one denominator"):
        cluster_ratio_bootstrap([1, 2], [3])


# --- are PANs learned: trained minus random init, per layer --------------------------------------------------

def _scan(model, per_layer_pans, filters=100, n_images=64):
    rows = []
    for k, pans in enumerate(per_layer_pans):
        rows += [{"layer": f"l{k}", "stride": 1, "channel": c, "is_pan": c < pans} for c in range(filters)]
    return SimpleNamespace(table=pd.DataFrame(rows), model_name=model, n_images=n_images)


def _parts(model, trained, random_inits):
    parts = {"trained": _scan(model, trained)}
    parts.update({f"random init {10 + i}": _scan(model, r) for i, r in enumerate(random_inits)})
    return parts


def test_learned_by_layer_and_excess_read_the_copies():
    parts = _parts("m", [20, 10, 30, 0], [[1, 2, 0, 1], [3, 0, 0, 1]])
    by = D.learned_by_layer(parts)
    assert list(by.trained) == [20, 10, 30, 0] and list(by.random_init) == [2.0, 1.0, 0.0, 1.0]
    assert (by.filters == 100).all() and (by.seeds == 2).all() and (by.n_images == 64).all()
    e = D.learned_excess(by, n_boot=2000).iloc[0]
    assert e.trained_pct == 15.0 and e.random_init_pct == 1.0 and e.excess_pct == pytest.approx(14.0)
    assert (e.layers, e.filters, e.seeds, e.n_images) == (4, 400, 2, 64)
    assert e.low_pct < 14.0 < e.high_pct


def _excess(rows):
    return pd.DataFrame([{"model": m, "layers": 18, "filters": 7000, "seeds": 2, "n_images": 64,
                          "trained_pct": tr, "random_init_pct": 1.0, "excess_pct": (lo + hi) / 2,
                          "low_pct": lo, "high_pct": hi, "p": p} for m, tr, lo, hi, p in rows])


def test_learned_excess_is_judged_per_model_with_holm_and_every_model_must_pass():
    good = [("m1", 15.0, 10.0, 20.0, 0.0002), ("m2", 12.0, 8.0, 16.0, 0.0002)]
    v = R.learned_excess_verdicts(_excess(good))
    assert list(v.verdict) == [SUPPORTED] * 2 and list(v.p_adj) == pytest.approx([0.0004, 0.0004])
    box = R.chapter_findings_box(excess=_excess(good))
    assert box[0].verdict == SUPPORTED and "2 of 2 models resolve it" in box[0].note
    assert "m1 +15.0 [10.0, 20.0]" in box[0].observed and "adjusted p m1 4.0e-04, m2 4.0e-04" in box[0].test
    assert f"at least {SESOI:g} point" in box[0].claimed and box[0].detectable.endswith("points per model")
    assert box[0].scale == "2 pretrained ImageNet models, 1 family, 64 probe images each, 2 random-init copies each"
    # p 0.03 passes alone; as two of three models after Holm (0.06) it does not: inconclusive
    near = [("a", 15.0, 10.0, 20.0, 0.0002), ("b", 3.0, 0.1, 5.0, 0.03), ("c", 3.0, 0.1, 5.0, 0.03)]
    v = R.learned_excess_verdicts(_excess(near))
    assert list(v.verdict) == [SUPPORTED, INCONCLUSIVE, INCONCLUSIVE] and v.p_adj.iloc[1] == pytest.approx(0.06)
    assert R.learned_excess_verdicts(_excess(near[:2])).verdict.iloc[1] == SUPPORTED  # 0.03 as the last step
    box = R.chapter_findings_box(excess=_excess(near))[0]
    assert box.verdict == INCONCLUSIVE and "1 of 3 models resolve it; not: b (inconclusive), c (inconclusive)" in box.note
    # the whole interval short of our smallest effect of interest: contradicted, and one model is enough
    short = [("a", 15.0, 10.0, 20.0, 0.0002), ("b", 1.2, -0.3, SESOI - 0.1, 0.4)]
    assert R.chapter_findings_box(excess=_excess(short))[0].verdict == CONTRADICTED
    reaches = [("a", 15.0, 10.0, 20.0, 0.0002), ("b", 1.2, -0.3, SESOI + 0.1, 0.4)]
    assert R.chapter_findings_box(excess=_excess(reaches))[0].verdict == INCONCLUSIVE
    below = [("a", 0.0, -5.0, -1.0, 0.0002)]
    assert R.chapter_findings_box(excess=_excess(below))[0].verdict == CONTRADICTED


# --- the paper's count and the summary's share: not testable, with our counts and the rates ------------------

def _summary(pans, filters=10000, n_images=64):
    return pd.DataFrame({"model": [f"m{i}" for i in range(len(pans))], "fpr": 0.01, "tau": 1.5,
                         "filters": filters, "pans": pans, "share_pct": [100 * p / filters for p in pans],
                         "n_images": n_images, "fire": 1, "silenced": 1, "fire_pct": 0.1, "silenced_pct": 0.1})


def _sensitivity(counts_by_rate, filters=10000):
    return pd.DataFrame([{"model": f"m{i}", "fpr": r, "tau": 1.0, "pans": c, "share_pct": 100 * c / filters}
                         for r, counts in counts_by_rate.items() for i, c in enumerate(counts)])


def test_count_claims_are_not_testable_and_say_where_our_counts_would_fall():
    low, high = claims.CLAIM_COUNT_RANGE
    summary = _summary([high + 50, high + 400])
    sens = _sensitivity({0.001: [300, 200], 0.002: [600, high + 1], 0.01: [high + 50, high + 400],
                         0.05: [3000, 4000]})
    count, share = R.chapter_findings_box(summary=summary, sensitivity=sens)
    assert count.verdict == share.verdict == NOT_TESTABLE and "detection criterion" in count.needed
    assert f"{high + 50}-{high + 400} PANs per model at our pre-specified fpr 0.01 on 64 probe images" in count.observed
    assert f"(0 of 2 models in {low}-{high}); every model in {low}-{high} at fpr 0.001 (of the rates tried, " \
           f"0.001-0.05)" in count.observed
    assert "every model in 1-4% at fpr 0.001 (" in share.observed  # 3.0% and 2.0%; 6.0% at 0.002
    assert "summary's source" in share.needed
    sens2 = _sensitivity({0.001: [300, 200], 0.002: [600, 900], 0.01: [high + 50, high + 400]})
    count2 = R.chapter_findings_box(summary=summary, sensitivity=sens2)[0]
    assert f"every model in {low}-{high} at fpr 0.001-0.002 (" in count2.observed
    none = R.chapter_findings_box(summary=summary, sensitivity=_sensitivity({0.01: [high + 50, high + 400]}))[0]
    assert f"no rate tried (0.01) puts every model in {low}-{high}" in none.observed
    inside = R.chapter_findings_box(summary=_summary([100, 200]), sensitivity=_sensitivity({0.01: [100, 200]}))[0]
    assert f"(2 of 2 models in {low}-{high})" in inside.observed and inside.verdict == NOT_TESTABLE
    assert R._rates([0.001, 0.05], [0.001, 0.01, 0.05]) == "0.001, 0.05"


def test_claim_check_says_where_each_count_lies_and_the_basis_sentence_counts_images():
    low, high = claims.CLAIM_COUNT_RANGE
    c = R.claim_check(_summary([low - 1, low, high, high + 1]))
    assert list(c.count_vs_reading) == ["below", "inside", "inside", "above"]
    assert "verdict" not in c
    assert "from 64 probe images per model at fpr 0.01" in R.count_basis(_summary([1, 2]))
    assert "from 32-64 probe images" in R.count_basis(_summary([1, 2]).assign(n_images=[32, 64]))
    text = R.pan_findings(_summary([low - 1, high + 1]), _sensitivity({0.01: [low - 1, high + 1]}))
    assert f"m0 at fpr 0.01 (tau = 1.50): {low - 1} PANs" in text and f"below {low}-{high}" in text
    assert f"above {low}-{high}" in text and "At fpr 0.01: 0 of 2 models" in text
    assert "Verdict" not in text and "holds" not in text


# --- sides: observed against each layer's arithmetic, in the layers that read both sides --------------------

def _side_table(model, padding, layers, reads, n_images=64, pads=None):
    """A scan table: stride-2 layers, each reading ``reads`` (padded rows ``pads`` per side, 1 by default) and
    with PANs on the given sides (one PAN per entry), then one stride-1 layer reading every side with PANs spread
    evenly."""
    pads = pads or {s: 1 for s in SIDES}
    rows = []
    for k, sides in enumerate(layers):
        for ch, side in enumerate(sides + [""] * 5):
            rows.append({"layer": f"s2_{k}", "stride": 2, "channel": ch, "padding": padding, "is_pan": bool(side),
                         "sides": side, "sign": 1 if side else 0, **{f"reads_{s}": s in reads for s in SIDES},
                         **{f"pad_{s}": pads[s] for s in SIDES}})
    for ch, side in enumerate(list(SIDES) * 5):
        rows.append({"layer": "s1", "stride": 1, "channel": ch, "padding": "1", "is_pan": True, "sides": side,
                     "sign": -1, **{f"reads_{s}": True for s in SIDES}, **{f"pad_{s}": 1 for s in SIDES}})
    t = pd.DataFrame(rows)
    t.attrs.update(model=model, n_images=n_images)
    return t


TL = ["top"] * 6 + ["left"] * 6 + ["bottom"]          # 12 of 13 on top/left
BR = ["bottom"] * 6 + ["right"] * 6 + ["top"]         # 1 of 13
EVEN = ["top", "bottom", "left", "right"] * 3         # 6 of 12
BR_ONLY = ["bottom"] * 6 + ["right"] * 6


def test_side_test_compares_flags_with_each_layers_arithmetic_in_layers_that_read_both_sides():
    # layers that read one pair only: their flags lie on the read sides by construction and are left out
    torch_pad = _side_table("torchnet", "1", [["top"] * 6 + ["left"] * 6] * 4, ("top", "left"))
    s = D.side_skew([torch_pad], n_boot=2000).set_index("stride")
    assert s.loc["2", "both_layers"] == 0 and s.loc["2", "one_pair_sides"] == 48 and np.isnan(s.loc["2", "follow_low"])
    assert s.loc["2", "top_left_share"] == 1.0  # the context share: arithmetic, not a finding
    assert R.skew_verdicts(s.reset_index()).verdict.tolist() == [NOT_TESTABLE]
    # layers reading every side alike, flags spread evenly: predicted 1/2, observed 1/2, difference 0
    even = D.side_skew([_side_table("even", "tf_same", [EVEN] * 4, tuple(SIDES))], n_boot=2000).set_index("stride")
    assert even.loc["2", "predicted_share"] == 0.5 and even.loc["2", "follow_diff"] == pytest.approx(0.0)
    assert even.loc["2", "follow_low"] == pytest.approx(0.0) and even.loc["2", "both_layers"] == 4
    # a 5x5 TF-SAME layer reads one row on the top/left and two on the bottom/right: predicted 1/3, not 1/2
    pads = {"top": 1, "left": 1, "bottom": 2, "right": 2}
    third = D.side_skew([_side_table("five", "tf_same", [["top", "left", "bottom", "right", "bottom", "right"]] * 3,
                                     tuple(SIDES), pads=pads)], n_boot=2000).set_index("stride")
    assert third.loc["2", "predicted_share"] == pytest.approx(1 / 3) and third.loc["2", "observed_share"] == pytest.approx(1 / 3)
    # flags leaning top/left in layers that read every side: the difference is the lean, with a layer interval
    lean = D.side_skew([_side_table("lean", "tf_same", [TL] * 4, tuple(SIDES))], n_boot=2000).set_index("stride")
    assert lean.loc["2", "follow_diff"] == pytest.approx(12 / 13 - 0.5) and lean.loc["2", "p_follow"] < 0.01
    # fewer than MIN_SIDE_LAYERS layers reading both sides: the estimate, no interval
    two = D.side_skew([_side_table("two", "tf_same", [TL] * (D.MIN_SIDE_LAYERS - 1), tuple(SIDES))],
                      n_boot=500).set_index("stride")
    assert np.isfinite(two.loc["2", "follow_diff"]) and np.isnan(two.loc["2", "follow_low"])


def test_rows_read_come_from_the_padding_and_say_when_they_may_be_off():
    t = _side_table("x", "1", [TL], tuple(SIDES), pads={"top": 2, "left": 2, "bottom": 2, "right": 2})
    rows, exact = D._rows_read(t[t.stride == 2])
    assert rows == {"top": 2, "bottom": 2, "left": 2, "right": 2} and not exact  # PyTorch, 2 rows, stride 2
    tf = t.assign(padding="tf_same")
    assert D._rows_read(tf[tf.stride == 2])[1]
    one = _side_table("x", "1", [TL], ("top", "left"))
    assert D._rows_read(one[one.stride == 2]) == ({"top": 1, "bottom": 0, "left": 1, "right": 0}, True)


def _follow_rows(rows):
    return pd.DataFrame([{"model": m, "stride": "2", "padding_kind": "TF SAME", "pan_sides": 80, "layers": 5,
                          "top_left_share": 0.4, "ci_low": 0.3, "ci_high": 0.5, "p_half": 0.1,
                          "read_top_left_share": 0.45, "predicted": -1, "n_images": 64, "both_layers": 4,
                          "both_sides": 60, "observed_share": 0.5 + d, "predicted_share": 0.5, "follow_diff": d,
                          "follow_low": lo, "follow_high": hi, "p_follow": p, "one_pair_sides": 20,
                          "inexact_layers": 0} for m, d, lo, hi, p in rows])


def test_follows_verdict_boundaries_on_both_sides():
    e = claims.SIDE_FOLLOW_SESOI
    assert R.follows_verdict(-e + 0.01, e - 0.01, e, p=0.5) == SUPPORTED          # inside both bounds
    assert R.follows_verdict(-e - 0.01, e - 0.01, e, p=0.5) == INCONCLUSIVE       # reaches past -e
    assert R.follows_verdict(-e + 0.01, e + 0.01, e, p=0.01) == INCONCLUSIVE      # reaches past +e
    assert R.follows_verdict(0.01, 0.05, e, p=0.001) == SUPPORTED                 # resolved, but a trivial departure
    assert R.follows_verdict(e + 0.01, 0.3, e, p=0.001) == CONTRADICTED           # wholly beyond +e
    assert R.follows_verdict(-0.3, -e - 0.01, e, p=0.001) == CONTRADICTED         # wholly beyond -e
    assert R.follows_verdict(e + 0.01, 0.3, e, p=0.2) == INCONCLUSIVE             # beyond, but not after Holm
    assert R.follows_verdict(float("nan"), float("nan"), e) == NOT_TESTABLE


def test_side_claim_in_the_box_judges_every_model_and_says_what_is_left_out():
    e = claims.SIDE_FOLLOW_SESOI
    ok = [("a", 0.01, -0.05, 0.06, 0.6), ("b", -0.02, -0.08, 0.04, 0.5)]
    v = R.skew_verdicts(_follow_rows(ok))
    assert list(v.verdict) == [SUPPORTED, SUPPORTED]
    f = R.chapter_findings_box(skew=_follow_rows(ok))[0]
    assert f.verdict == SUPPORTED and "2 of 2 models resolve it" in f.note and "a +1 [-5, +6]" in f.observed
    assert f"within ±{100 * e:.0f} points" in f.claimed and "40 of 160 stride-2 flags" in f.note
    assert "context, not the test" in f.note and "over 2 models" in f.test
    # one model beyond the bound: contradicted (one counterexample is enough), after Holm over both
    bad = [ok[0], ("b", 0.25, 0.15, 0.35, 0.01)]
    v = R.skew_verdicts(_follow_rows(bad))
    assert v.p_adj.tolist() == pytest.approx([0.6, 0.02]) and list(v.verdict) == [SUPPORTED, CONTRADICTED]
    assert R.chapter_findings_box(skew=_follow_rows(bad))[0].verdict == CONTRADICTED
    # Holm: p 0.03 alone is enough, as the smaller of two at 0.03 it is not
    holm = [("b", 0.25, 0.15, 0.35, 0.03), ("c", 0.25, 0.15, 0.35, 0.03)]
    assert list(R.skew_verdicts(_follow_rows(holm)).verdict) == [INCONCLUSIVE, INCONCLUSIVE]
    assert list(R.skew_verdicts(_follow_rows(holm[:1])).verdict) == [CONTRADICTED]
    # a wide interval: inconclusive, with the smallest departure the design resolves
    wide = [ok[0], ("b", 0.05, -0.05, 0.2, 0.3)]
    f = R.chapter_findings_box(skew=_follow_rows(wide))[0]
    assert f.verdict == INCONCLUSIVE and "not: b (inconclusive)" in f.note and f.detectable.startswith("a departure of")
    # no model with layers that read both sides: not testable, and the line says what would be needed
    none = _follow_rows([("a", np.nan, np.nan, np.nan, np.nan)]).assign(both_layers=0, both_sides=0)
    f = R.chapter_findings_box(skew=none)[0]
    assert f.verdict == NOT_TESTABLE and "read padding on both" in f.needed and "no layer that reads both" in f.observed
    few = _follow_rows([("a", 0.02, np.nan, np.nan, np.nan)]).assign(both_layers=2)
    assert f"2 layers, fewer than {D.MIN_SIDE_LAYERS}: no interval" in R.chapter_findings_box(skew=few)[0].observed


def test_skew_sentences_give_the_test_then_the_context():
    rows = _follow_rows([("tf", 0.02, -0.03, 0.06, 0.5)]).assign(
        padding_kind=["TF SAME"], top_left_share=[0.3], ci_low=[0.2], ci_high=[0.4])
    torch = _follow_rows([("torch", np.nan, np.nan, np.nan, np.nan)]).assign(
        padding_kind="PyTorch", both_layers=0, both_sides=0, top_left_share=1.0, ci_low=0.9, ci_high=1.0)
    lines = R.skew_findings(pd.concat([torch, rows], ignore_index=True))
    assert "no layer that reads both sides has PAN sides" in lines[0] and "above 1/2" in lines[0]
    assert "52% of 60 flags on top/left against 50% predicted, a difference of +2 points [-3, +6]" in lines[1]
    assert "below 1/2" in lines[1] and "20 flags in layers that read one pair of sides only" in lines[1]
    assert lines[-1].startswith("Context, not a test") and "share is above every TF-SAME model's" in lines[-1]
    low = pd.concat([torch.assign(top_left_share=0.1), rows], ignore_index=True)
    assert "share is below every TF-SAME model's" in R.skew_findings(low)[-1]
    mid = pd.concat([torch.assign(top_left_share=0.3), rows], ignore_index=True)
    assert "within the range of the TF-SAME model's" in R.skew_findings(mid)[-1]
    assert not any("verdict" in x.lower() for x in lines)


def test_corner_pans_count_only_for_the_sides_their_layer_reads():
    """The cause of PAN-side flags on sides a stride-2 layer never reads: corner-only PANs were counted for both
    sides of their corner. A bottom-left corner of a layer that reads only top/left padding reads the left padding
    alone, so it counts for the left only, and the count of flags that the old rule put on unread sides is shown."""
    from padlib import pan_tables

    t = _side_table("torchnet", "1", [["top", "bottom-left corner", "top-left+top-right corners", "all corners"]],
                    ("top", "left"))
    c = pan_tables.side_counts(t)
    c2 = c[c.stride == "2"].set_index("side")
    assert c2.fire.to_dict() == {"top": 3, "bottom": 0, "left": 3, "right": 0}
    lost = pan_tables.corner_flags_on_unread_sides(t)
    assert lost.pans.tolist() == [3] and lost.unread_flags.tolist() == [1 + 1 + 2]
    text = R.corner_sentence(lost)
    assert "torchnet has 3 corner-only stride-2 PANs" in text and "(4 flags that counting both sides" in text
    # a layer that reads every side: corners count for both their sides, and nothing is lost
    full = _side_table("even", "tf_same", [["bottom-left corner"]], tuple(SIDES))
    f2 = pan_tables.side_counts(full)
    assert f2[(f2.stride == "2") & f2.side.isin(["bottom", "left"])].fire.tolist() == [1, 1]
    assert R.corner_sentence(pan_tables.corner_flags_on_unread_sides(full)).startswith("No corner-only PAN")


def test_a_side_whose_padding_is_never_read_has_no_padding_effect_and_no_flag():
    """Pins the other half of the explanation: the padding effect itself is exactly 0 on a side a stride-2 layer
    never reads (PyTorch padding 1 on an even input), so no side flag can land there; only corner counting could."""
    import torch
    from torch import nn

    from padlib.pans import find_pans

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8)).eval()
    with torch.no_grad():
        net[0].weight.abs_()  # positive kernels on a positive input: strong border responses
    t = find_pans(net, torch.rand(16, 1, 24, 24) + 1.0, tau=0.5, tau_corner=0.5, reference=None, progress=False)
    assert not t.reads_bottom.any() and not t.reads_right.any() and t.reads_top.all()
    assert (t.effect_bottom == 0).all() and (t.effect_right == 0).all() and (t.effect_bottom_right == 0).all()
    assert t.is_pan.any() and not t.sides.str.contains(r"^(?:bottom|right)|\+(?:bottom|right)\b").any()


# --- the control's headline: every comparison word and count computed ------------------------------------------

def _learned_summary(trained_pct, random_pct, caused_tr=15.0, caused_ri=(50.0, 50.0)):
    return pd.DataFrame({"model": ["a", "b"], "filters": [1000, 1000], "learned trained %": trained_pct,
                         "learned trained": [10 * v for v in trained_pct], "learned random init % (max)": random_pct,
                         "padding_caused trained %": caused_tr, "padding_caused trained": 10 * caused_tr,
                         "tau trained": [1.4, 1.6], "tau random init mean": [0.5, 0.6],
                         "padding_caused random init mean": [10 * c for c in caused_ri]})


def test_learned_headline_counts_both_ways():
    yes = R.learned_pan_headline(_learned_summary([12.0, 15.0], [1.5, 1.2]))
    assert yes.startswith("In 2 of 2 models the trained share of learned PANs is above") and "12.0-15.0%" in yes
    assert "more of the random copies than of the trained model in 2 of 2 models, so on its own" in yes
    assert "keeps 80-100% of the padding-caused channels" in yes and "at 0.50-0.60" in yes
    part = R.learned_pan_headline(_learned_summary([12.0, 1.0], [1.5, 1.2], caused_ri=(50.0, 5.0)))
    assert part.startswith("In 1 of 2 models") and "in 1 of 2 models." in part and "so on its own" not in part
    none = R.learned_pan_headline(_learned_summary([1.0, 1.0], [1.5, 1.2], caused_ri=(5.0, 5.0)))
    assert none.startswith("In 0 of 2 models") and "in 0 of 2 models." in none


def test_box_sections_and_scale_agree():
    box = (R.chapter_findings_box(excess=_excess([("mobilenet_v2", 15.0, 10.0, 20.0, 0.0002),
                                                  ("tf_efficientnet_lite0", 12.0, 8.0, 16.0, 0.0002)]))
           + R.chapter_findings_box(summary=_summary([1200, 1300]), sensitivity=_sensitivity({0.01: [1200, 1300]})))
    assert [f.section for f in box] == [R.LEARNED_SECTION, R.COUNT_SECTION, R.COUNT_SECTION]
    assert "2 pretrained ImageNet models, 2 families" in box[0].scale
    text = section_markdown(box, R.COUNT_SECTION)
    assert text.count("**Not testable here.**") == 2 and section_markdown(box, "elsewhere") == ""
    assert R.chapter_findings_box() == []


def test_sides_by_read_padding_groups_layers_by_what_they_read():
    t = _side_table("tfnet", "tf_same", [BR, BR], ("bottom", "right"))
    both = _side_table("tfnet", "tf_same", [TL], tuple(SIDES))
    both["layer"] = both.layer.str.replace("s2_0", "s2_both")
    tl = _side_table("torchnet", "1", [TL, []], ("top", "left"))
    by = D.sides_by_read_padding([pd.concat([t, both[both.stride == 2]]), tl])
    by = by.set_index("reads")
    assert by.loc["bottom/right only", ["layers", "models", "pan_sides", "top_left"]].tolist() == [2, 1, 26, 2]
    assert by.loc["top/left only", ["layers", "models", "pan_sides", "top_left"]].tolist() == [1, 1, 13, 12]
    assert by.loc["both", ["layers", "pan_sides", "top_left"]].tolist() == [1, 13, 12]
    text = R.sides_by_read_sentence(by.reset_index())
    assert text.startswith("Exploratory, beside the primary test")
    assert ("in the stride-2 layers that read only their top/left padding (1 layer of 1 model), 12 of 13 PAN-side "
            "flags are on the top or left; in those that read only their bottom/right padding (2 layers of 1 model), "
            "24 of 26 are on the bottom or right; in those that read both sides (1 layer of 1 model), 12 of 13 (92%) "
            "are on the top or left.") in text
    empty = by.reset_index().assign(layers=0)
    assert R.sides_by_read_sentence(empty) == "No stride-2 layer has PAN sides."


def test_tables_are_shown_narrow():
    low, high = claims.CLAIM_COUNT_RANGE
    summary = _summary([high + 50, 100]).assign(model=["mobilenet_v2", "tf_efficientnet_lite0"])
    sens = _sensitivity({0.001: [300, 20], 0.01: [high + 50, 100]}).assign(
        model=["mobilenet_v2", "tf_efficientnet_lite0"] * 2)
    t = R.rate_table(summary, sens)
    assert list(t.columns) == ["mobilenet_v2", "lite0", f"all in {low}-{high}", "all in 1-4%"]
    assert t.loc[0.001, "lite0"] == "20 (0.2%)" and not t.loc[0.001, f"all in {low}-{high}"]
    assert t.loc[0.01, "mobilenet_v2"] == f"{high + 50} (10.5%)" and not t.loc[0.01, f"all in {low}-{high}"]
    assert R.rate_table(summary.iloc[1:], sens[sens.model == "tf_efficientnet_lite0"].iloc[1:]).iloc[0, 1]
    s = R.shown(summary, {"model": "model", "pans": "PANs"}, transpose=True)
    assert list(s.columns) == ["mobilenet_v2", "lite0"] and list(s.index) == ["PANs"]


# ---------------------------------------------------------------------------------------------------------
# The three readings, the convergence and the settings: generated words against planted tables, both sides.

def test_convergence_sentence_says_within_or_outside_from_the_counts():
    import pandas as pd
    from padlib.chapters import ch1_pans as r

    conv = pd.DataFrame({"model": "m", "n_images": [16, 32, 64, 128], "specialist": [80, 90, 98, 100]})
    text = r.convergence_sentence(conv, 64)
    assert "80 at 16, 90 at 32, 98 at 64, 100 at 128" in text and "within 5%" in text and "(-2.0%)" in text
    far = conv.assign(specialist=[80, 90, 90, 100])
    assert "outside 5%" in r.convergence_sentence(far, 64) and "(-10.0%)" in r.convergence_sentence(far, 64)
    assert "were not among" in r.convergence_sentence(conv, 48)


def test_settings_note_says_when_the_verdict_depends_on_them():
    import pandas as pd
    from padlib.chapters import ch1_pans as r

    same = pd.DataFrame({"definition": ["specialist"] * 2 + ["learned"], "fpr": [0.01, 0.02, 0.01],
                         "bar": [0.9, 0.9, float("nan")], "verdict": ["supported"] * 3})
    assert r.settings_note(same, "supported").startswith("the same verdict at all 3 settings tried")
    mixed = same.assign(verdict=["supported", "inconclusive", "supported"])
    note = r.settings_note(mixed, "supported")
    assert note.startswith("the verdict depends on the settings") and "supported at 2" in note \
        and "inconclusive at 1" in note and "of the 3 settings" in note


def test_readings_sentence_and_planted_specialist_line_count_from_their_tables():
    import pandas as pd
    from padlib.chapters import ch1_pans as r

    summary = pd.DataFrame({"model": ["a", "b"], "filters": [100, 200], "padding_caused": [30, 40],
                            "learned": [20, 35], "specialist": [10, 0], "specialist_pct": [10.0, 0.0],
                            "expected_false_discoveries": [0.5, 0.0], "depthwise_pct": [99.0, 0.0],
                            "specialist_depthwise_pct": [100.0, float("nan")]})
    text = r.readings_sentence(summary)
    assert "a: 30 padding-caused, 20 learned, 10 specialists (10.0% of 100" in text
    assert "b: 40 padding-caused, 35 learned, 0 specialists" in text and "0.0-99.0%" in text
    assert "(b: 0% of padded filters) is smaller than every depthwise model's (10%)" in text
    larger = r.readings_sentence(summary.assign(specialist_pct=[1.0, 5.0]))
    assert "is larger than every depthwise model's (1%)" in larger
    same = r.readings_sentence(pd.concat([summary.assign(specialist_pct=[10.0, 5.0]),
                                          summary.iloc[[0]].assign(model="c", specialist_pct=0.5)]))
    assert "lies within the depthwise models' range (0.5-10%)" in same
    check = pd.DataFrame({"kind": ["specialist", "graded", "graded", "smoother", "smoother", "control"],
                          "padding_caused": [True, True, True, True, False, False],
                          "selectivity": [0.97, 0.92, 0.8, 0.7, 0.75, 0.5],
                          "specialist": [True, True, False, False, False, True]})
    line = r.specialist_planted_findings(check, 0.9, 0.5)
    assert "1 of 1 found" in line and "1 of 2 padding-caused, 0 called" in line and "2 of 3 called specialists" in line
    assert "(the lowest selectivity among them 0.920; the one missed at 0.800)" in line
    assert "controls flagged: 1 of 1" in line
    two = r.specialist_planted_findings(check.assign(specialist=[True, False, False, False, False, True]), 0.9, 0.5)
    assert "1 of 3 called specialists (the lowest selectivity among them 0.970; the 2 missed at 0.800-0.920)" in two
    every = r.specialist_planted_findings(check.assign(specialist=True), 0.9, 0.5)
    assert "3 of 3 called specialists (the lowest selectivity among them 0.800; none missed)" in every
    none = r.specialist_planted_findings(check.assign(specialist=False), 0.9, 0.5)
    assert "0 of 3 called specialists (the 3 missed at 0.800-0.970)" in none


def test_readings_figure_shows_every_panel_whole_on_one_scale():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from padlib.viz import ch1_pans as figures

    rows = []
    for model, scale in (("tall", 10.0), ("short", 2.0)):  # the tall panel first: a shared axis set last would clip it
        for reading, share in (("padding_caused", 1.0), ("learned", 0.9), ("specialist", 0.5)):
            for sign, part in (("fires", 0.6), ("silenced", 0.4)):
                rows.append({"model": model, "reading": reading, "sign": sign, "kind": "one side",
                             "pct": scale * share * part})
    fig = figures.readings_figure(pd.DataFrame(rows))
    for ax in [a for a in fig.axes if a.get_visible()]:
        assert ax.get_ylim()[1] >= 10.0  # the tallest stack (10%) fits in every panel
        tops = [t for t in ax.texts if t.get_text().endswith("%")]
        assert all(t.get_position()[1] <= ax.get_ylim()[1] for t in tops)
    assert [t.get_text() for t in fig.axes[0].texts] == ["10.0%", "9.0%", "5.0%"]
    plt.close(fig)
    five = pd.concat([pd.DataFrame(rows).assign(model=lambda d, k=k: d.model + str(k)) for k in range(3)])
    fig = figures.readings_figure(five[five.model.isin(["tall0", "short0", "tall1", "short1", "tall2"])])
    shown = [a for a in fig.axes if a.get_visible()]
    assert len(shown) == 5 and len(fig.axes) == 6  # two rows of three, the sixth panel hidden
    assert all(a.get_ylim()[1] >= 10.0 for a in shown)
    plt.close(fig)
