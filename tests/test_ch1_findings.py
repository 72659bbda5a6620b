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


# --- sides: stride-2 top/left share against 1/2, toward the read padding ---------------------------------------

def _side_table(model, padding, layers, reads, n_images=64):
    """A scan table: stride-2 layers, each reading ``reads`` and with PANs on the given sides (one PAN per entry),
    then one stride-1 layer reading every side with PANs spread evenly."""
    rows = []
    for k, sides in enumerate(layers):
        for ch, side in enumerate(sides + [""] * 5):
            rows.append({"layer": f"s2_{k}", "stride": 2, "channel": ch, "padding": padding, "is_pan": bool(side),
                         "sides": side, "sign": 1 if side else 0, **{f"reads_{s}": s in reads for s in SIDES}})
    for ch, side in enumerate(list(SIDES) * 5):
        rows.append({"layer": "s1", "stride": 1, "channel": ch, "padding": "1", "is_pan": True, "sides": side,
                     "sign": -1, **{f"reads_{s}": True for s in SIDES}})
    t = pd.DataFrame(rows)
    t.attrs.update(model=model, n_images=n_images)
    return t


TL = ["top"] * 6 + ["left"] * 6 + ["bottom"]          # 12 of 13 on top/left
BR = ["bottom"] * 6 + ["right"] * 6 + ["top"]         # 1 of 13
EVEN = ["top", "bottom", "left", "right"] * 3


def test_side_skew_resamples_layers_and_predicts_from_the_read_padding():
    torch_pad = _side_table("torchnet", "1", [TL] * 4, ("top", "left"))
    tf_same = _side_table("tfnet", "tf_same", [BR] * 4, ("bottom", "right"))
    skew = D.side_skew([torch_pad, tf_same], n_boot=2000).set_index(["model", "stride"])
    assert skew.loc[("torchnet", "2"), "read_top_left_share"] == 1.0 and skew.loc[("torchnet", "2"), "predicted"] == 1
    assert skew.loc[("tfnet", "2"), "read_top_left_share"] == 0.0 and skew.loc[("tfnet", "2"), "predicted"] == -1
    assert skew.loc[("torchnet", "2"), "top_left_share"] == pytest.approx(12 / 13)
    assert skew.loc[("torchnet", "2"), "layers"] == 4 and skew.loc[("torchnet", "2"), "pan_sides"] == 52
    assert skew.loc[("torchnet", "1"), "top_left_share"] == 0.5 and skew.loc[("torchnet", "1"), "predicted"] == 0
    assert (skew.n_images == 64).all()
    # layers that disagree widen the interval: it spans 1/2 although 26 of 52 flags lean one way
    mixed = D.side_skew([_side_table("mixed", "1", [TL, BR, TL, BR, []], ("top", "left"))], n_boot=2000)
    m2 = mixed[mixed.stride == "2"].iloc[0]
    assert m2.ci_low < 0.5 < m2.ci_high and m2.layers == 4 and m2.pan_sides == 52  # a layer without PANs counts 0


def _skew_rows(rows):
    return pd.DataFrame([{"model": m, "stride": "2", "padding_kind": kind, "pan_sides": 60, "layers": 5,
                          "top_left_share": (lo + hi) / 2, "ci_low": lo, "ci_high": hi, "p_half": p,
                          "read_top_left_share": read, "predicted": int(np.sign(read - 0.5)), "n_images": 64}
                         for m, kind, read, lo, hi, p in rows])


def test_side_claim_is_judged_toward_the_read_padding_on_both_sides():
    toward = [("torch", "PyTorch", 1.0, 0.85, 0.98, 0.0002), ("tf", "TF SAME", 0.41, 0.12, 0.25, 0.0002)]
    v = R.skew_verdicts(_skew_rows(toward))
    assert list(v.verdict) == [SUPPORTED, SUPPORTED] and list(v.claimed) == [claims.SIDE_SKEW_SESOI,
                                                                           -claims.SIDE_SKEW_SESOI]
    f = R.chapter_findings_box(skew=_skew_rows(toward))[0]
    assert f.verdict == SUPPORTED and "2 of 2 models resolve it" in f.note and "torch 92% [85, 98]" in f.observed
    assert "5 stride-2 layers with PAN sides per model" in f.scale and "Holm over the 2 models" in f.test
    # the TF-SAME model leaning to the top/left, against its read padding: contradicted
    against = [toward[0], ("tf", "TF SAME", 0.41, 0.6, 0.8, 0.0002)]
    assert list(R.skew_verdicts(_skew_rows(against)).verdict) == [SUPPORTED, CONTRADICTED]
    assert R.chapter_findings_box(skew=_skew_rows(against))[0].verdict == CONTRADICTED
    # an interval that spans 1/2 and reaches the claimed lean: inconclusive; short of it on both sides: contradicted
    wide = [toward[0], ("tf", "TF SAME", 0.47, 0.3, 0.62, 0.4)]
    f = R.chapter_findings_box(skew=_skew_rows(wide))[0]
    assert f.verdict == INCONCLUSIVE and "not: tf (inconclusive)" in f.note and f.detectable.endswith("off 50%")
    narrow = [toward[0], ("tf", "TF SAME", 0.47, 0.47, 0.63, 0.4)]
    assert R.chapter_findings_box(skew=_skew_rows(narrow))[0].verdict == CONTRADICTED
    # Holm: p 0.03 alone passes, as the second of two it does not
    holm = [toward[0], ("tf", "TF SAME", 0.41, 0.2, 0.48, 0.03)]
    v = R.skew_verdicts(_skew_rows(holm))
    assert v.p_adj.iloc[1] == pytest.approx(0.03) and v.p_adj.iloc[0] == pytest.approx(0.0004)
    holm_fail = [toward[0], ("tf", "TF SAME", 0.41, 0.2, 0.48, 0.03), ("tf2", "TF SAME", 0.41, 0.2, 0.48, 0.03)]
    assert list(R.skew_verdicts(_skew_rows(holm_fail)).verdict) == [SUPPORTED, INCONCLUSIVE, INCONCLUSIVE]
    # every side read alike: no predicted direction, not testable for that model
    alike = [toward[0], ("sym", "TF SAME", 0.5, 0.4, 0.6, 0.5)]
    v = R.skew_verdicts(_skew_rows(alike))
    assert list(v.verdict) == [SUPPORTED, NOT_TESTABLE] and np.isnan(v.p_adj.iloc[1])
    only = R.chapter_findings_box(skew=_skew_rows([alike[1]]))[0]
    assert only.verdict == NOT_TESTABLE and "unevenly" in only.needed


def test_skew_sentences_compute_where_each_interval_lies():
    rows = _skew_rows([("torch", "PyTorch", 1.0, 0.85, 0.98, 0.0002), ("tf", "TF SAME", 0.41, 0.12, 0.25, 0.0002),
                       ("tf2", "TF SAME", 0.47, 0.4, 0.6, 0.5)])
    lines = R.skew_findings(rows)
    assert "above 1/2" in lines[0] and "below 1/2" in lines[1] and "interval spans 1/2" in lines[2]
    assert "share is above every TF-SAME model's" in lines[-1]
    low = rows.assign(top_left_share=[0.1, 0.3, 0.5])
    assert "share is below every TF-SAME model's" in R.skew_findings(low)[-1]
    mid = rows.assign(top_left_share=[0.4, 0.3, 0.5])
    assert "share is within the range of the TF-SAME model's" in R.skew_findings(mid)[-1]
    assert not any("toward the read padding" in x or "verdict" in x.lower() for x in lines)


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
