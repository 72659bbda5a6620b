"""Chapter 2's readings: every verdict planted on both sides of its boundary, every computed word and count."""
import numpy as np
import pandas as pd
import pytest

from padlib.chapters import ch2_kernels as R
from padlib.chapters.findings import CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SUPPORTED
from padlib.errors import PadlibError
from padlib.experiments import ch2_kernels as D

TYPES = ["side", "corner", "edge", "silenced"]


# ---------------------------------------------------------------------------------------------------------
# "at least a level": the rule behind the detector and the clustering claims


def test_at_least_reads_the_interval_against_the_level():
    assert R.at_least(0.55, 0.70, 0.5, p=0.01) == SUPPORTED
    assert R.at_least(0.55, 0.70, 0.5, p=0.06) == INCONCLUSIVE     # above, but not after the Holm adjustment
    assert R.at_least(0.30, 0.45, 0.5, p=0.01) == CONTRADICTED     # wholly below the level
    assert R.at_least(0.30, 0.45, 0.5, p=0.60) == CONTRADICTED     # the equivalence side needs no p
    assert R.at_least(0.45, 0.60, 0.5, p=0.01) == INCONCLUSIVE     # straddles the level


# ---------------------------------------------------------------------------------------------------------
# Learned PAN types against random init


def _draw(rng, p, n, set_, model, layers=12):
    return pd.DataFrame({"model": model, "set": set_, "type": rng.choice(TYPES, n, p=p),
                         "layer": rng.integers(0, layers, n).astype(str)})


def test_type_difference_finds_a_planted_shift_and_not_a_null():
    rng = np.random.default_rng(0)
    same, shifted = [0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.4, 0.3]
    sets = pd.concat([_draw(rng, same, 400, D.PAN_SETS[0], "moved"), _draw(rng, shifted, 400, D.PAN_SETS[2], "moved"),
                      _draw(rng, same, 400, D.PAN_SETS[0], "alike"), _draw(rng, same, 400, D.PAN_SETS[2], "alike")])
    assert D.type_shares(sets).groupby(["model", "set"]).share_pct.sum().round(6).eq(100).all()
    d = D.type_difference(sets, n_boot=300, n_perm=300).set_index("model")
    assert d.loc["moved", "differs"] and not d.loc["alike", "differs"]
    assert d.loc["moved", "tv_low"] <= 0.2 <= d.loc["moved", "tv_high"]  # the planted distance is 0.2
    assert d.loc["moved", "tv_low"] <= d.loc["moved", "tv_distance"] <= d.loc["moved", "tv_high"]
    assert d.loc["alike", "tv_distance"] < 0.1 and d.loc["moved", "p_holm"] >= d.loc["moved", "p"]
    assert d.loc["alike", "excess_low"] <= 0 <= d.loc["alike", "excess_high"]  # no difference: none beyond chance
    assert d.loc["moved", "excess_low"] <= 0.2 <= d.loc["moved", "excess_high"] and d.loc["moved", "excess_low"] > 0
    assert (d.excess_high == d.tv_high).all() and (d.excess_low == d.tv_low - d.tv_chance).all()
    assert (d.tv_excess == d.tv_distance - d.tv_chance).all() and (d.tv_chance > 0).all()
    lines = R.type_difference_findings(d.reset_index())
    assert " differ from " in lines[0] and "do not differ detectably" in lines[1]
    with pytest.raises(PadlibError, match="layer"):
        D.type_difference(sets.drop(columns="layer"))


def test_type_difference_compares_layer_for_layer():
    """Layers whose types differ from each other, each the same in both sets, but the sets' PANs spread over the
    layers differently: the pooled shares differ, the layer-matched distance and the stratified test do not."""
    rng = np.random.default_rng(1)
    parts = []
    for layer in range(10):
        p = np.roll([0.7, 0.1, 0.1, 0.1], layer % 4)
        for set_, n in ((D.PAN_SETS[0], rng.integers(5, 60)), (D.PAN_SETS[2], rng.integers(5, 60))):
            parts.append(pd.DataFrame({"model": "m", "set": set_, "type": rng.choice(TYPES, n, p=p),
                                       "layer": str(layer)}))
    d = D.type_difference(pd.concat(parts), n_boot=300, n_perm=500).iloc[0]
    assert d.p > 0.05 and d.tv_distance < d.tv_pooled and d.coverage == 1.0


def _type_diff(tv_low, tv_high, p_holm, chance=0.0):
    """Intervals given as judged (``tv_low``/``tv_high`` are excess_low/excess_high), the raw distance ``chance``
    above the estimate."""
    n = len(tv_low)
    excess = [(a + b) / 2 for a, b in zip(tv_low, tv_high)]
    return pd.DataFrame({"model": [f"m{i}" for i in range(n)], "set_b": D.PAN_SETS[2], "n_a": 100, "n_b": 300,
                         "layers": 10, "tv_distance": [e + chance for e in excess],
                         "tv_low": [a + chance for a in tv_low], "tv_high": [b + chance for b in tv_high],
                         "tv_chance": chance, "tv_excess": excess, "excess_low": tv_low, "excess_high": tv_high,
                         "p_holm": p_holm, "rises": "edge 3->23%", "falls": "side 37->15%"})


def test_types_finding_on_both_sides_of_each_boundary():
    assert R.types_finding(_type_diff([0.15, 0.2], [0.3, 0.3], [0.001, 0.01])).verdict == SUPPORTED
    assert R.types_finding(_type_diff([0.15, 0.02], [0.3, 0.3], [0.001, 0.2])).verdict == INCONCLUSIVE
    # one model's whole interval short of the distance of interest: a counterexample
    assert R.types_finding(_type_diff([0.15, 0.02], [0.3, 0.08], [0.001, 0.2])).verdict == CONTRADICTED
    f = R.types_finding(_type_diff([0.16, 0.02], [0.3, 0.3], [0.001, 0.2]).assign(coverage=[0.9, 0.97]))
    assert "m0 +0.23 [+0.16, +0.30] (0.23 observed, 0.00 by chance)" in f.observed and "hold 90-97% of the learned PANs" in f.note and "p 0.001, 0.2" in f.test and "over 2 models" in f.test
    assert "200 learned PANs against 600 random-init channels" in f.scale and f.detectable
    # a raw interval above the level that chance explains: judged beyond chance, not on the raw distance
    f = R.types_finding(_type_diff([-0.05], [0.15], [0.39], chance=0.25))
    assert f.verdict == INCONCLUSIVE and "m0 +0.05 [-0.05, +0.15] (0.30 observed, 0.25 by chance)" in f.observed
    # the comparison with the trained padding-caused set is not the claim's table
    assert R.types_finding(_type_diff([0.1], [0.2], [0.01]).assign(set_b=D.PAN_SETS[1])) is None


# ---------------------------------------------------------------------------------------------------------
# The data-free detector


def _merged(rng, n_layers=10, per=40, false_alarm=0.05, hit=0.8):
    parts = []
    for layer in range(n_layers):
        is_pan = rng.random(per) < 0.3
        pred = np.where(is_pan, rng.random(per) < hit, rng.random(per) < false_alarm)
        parts.append(pd.DataFrame({"layer": f"l{layer}", "is_pan": is_pan, "pred_is_pan": pred}))
    return pd.concat(parts, ignore_index=True)


def test_detector_intervals_count_and_resample_layers():
    from tests.test_kernels import _agreement_table
    from padlib.kernel_types import detector_agreement

    t = _agreement_table()
    d = D.detector_intervals({"m": t}, n_boot=100).set_index("measure")
    a = detector_agreement(t, tau=2.0).set_index("predictor").loc["data-free"]
    assert d.loc["precision", "value"] == pytest.approx(a.precision) and d.loc["recall", "value"] == pytest.approx(a.recall)
    assert (d.layers == 2).all() and d.loc["recall", "true_positives"] == a.true_positives
    rng = np.random.default_rng(0)
    d = D.detector_intervals({"good": _merged(rng), "bad": _merged(rng, false_alarm=0.6)}, n_boot=400)
    assert (d.low <= d.value).all() and (d.value <= d.high).all() and len(d) == 4
    assert (d.p_holm >= d.p).all()


def _detector(rows):
    return pd.DataFrame([{"model": m, "measure": k, "value": (lo + hi) / 2, "low": lo, "high": hi, "p_holm": p,
                          "layers": 10, "pans": 100} for m, k, lo, hi, p in rows])


def test_detector_finding_on_both_sides_of_the_level():
    good = [("a", "precision", 0.6, 0.8, 0.01), ("a", "recall", 0.55, 0.7, 0.01)]
    assert R.detector_finding(_detector(good)).verdict == SUPPORTED
    straddle = good + [("b", "precision", 0.45, 0.7, 0.5), ("b", "recall", 0.6, 0.7, 0.01)]
    f = R.detector_finding(_detector(straddle))
    assert f.verdict == INCONCLUSIVE and "3 of 4 intervals lie wholly above 0.5, 0 wholly below" in f.note
    low = straddle + [("c", "precision", 0.8, 0.9, 0.01), ("c", "recall", 0.2, 0.4, 0.01)]
    f = R.detector_finding(_detector(low))
    assert f.verdict == CONTRADICTED and "4 of 6 intervals lie wholly above 0.5, 1 wholly below" in f.note
    assert "c precision 0.85 [0.80, 0.90], recall 0.30 [0.20, 0.40]" in f.observed
    assert "over 6 tests" in f.test and "300 PANs in 30 layers" in f.scale
    assert R.detector_finding(None) is None


def test_detector_finding_without_an_interval_is_not_testable_for_that_model():
    nan = float("nan")
    assert R.at_least(nan, nan, 0.5, p=nan) == NOT_TESTABLE
    none = [("a", "precision", nan, nan, nan), ("a", "recall", nan, nan, nan)]
    f = R.detector_finding(_detector(none))  # a model without PANs: nothing to predict
    assert f.verdict == NOT_TESTABLE and "not defined" in f.observed
    good = [("b", "precision", 0.6, 0.8, 0.01), ("b", "recall", 0.55, 0.7, 0.01)]
    both = R.detector_finding(_detector(none + good))
    assert both.verdict == SUPPORTED and not both.needed  # judged on the model that has some


# ---------------------------------------------------------------------------------------------------------
# Rule types against kernel clusters


def _clustered(rng, agree, n=400, layers=10):
    types = rng.choice(TYPES, n)
    codes = pd.Categorical(types, categories=TYPES).codes
    cluster = np.where(rng.random(n) < agree, codes, rng.integers(0, 4, n))
    return pd.DataFrame({"type": types, "cluster": cluster, "layer": rng.integers(0, layers, n).astype(str)})


def test_ari_intervals_equal_sklearn_and_hold_the_clusters_fixed():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    checks = {}
    for name, agree in (("high", 0.9), ("low", 0.25)):
        cl = _clustered(rng, agree)
        checks[name, "profile"] = (cl, {"ari": adjusted_rand_score(cl.type, cl.cluster), "p_value": 0.005})
        checks[name, "border"] = (cl, {"ari": 0.0, "p_value": 0.5})
    checks["all models", "profile"] = (cl, {"ari": 0.0, "p_value": 0.5})
    a = D.ari_intervals(checks, n_boot=400).set_index("model")
    assert list(a.index) == ["high", "low"]  # one feature set, the pooled entry left out
    for name in ("high", "low"):
        assert a.loc[name, "ari"] == pytest.approx(checks[name, "profile"][1]["ari"])
        assert a.loc[name, "low"] <= a.loc[name, "ari"] <= a.loc[name, "high"]
    assert a.loc["high", "low"] > R.ARI_OF_INTEREST > a.loc["low", "high"]
    f = R.clusters_finding(a.reset_index())
    assert f.verdict == CONTRADICTED  # the low model's interval lies wholly below the ARI of interest
    assert "in 2 of 2 models" in f.note  # both above chance (permutation)
    text = R.taxonomy_findings(checks, a.reset_index())
    assert "wholly below 0.2 in 1 of 2 and wholly above it in 1 of 2" in text
    assert "above the permutation null (p < 0.05) in 2 of 3" in text


def _aris(rows):
    return pd.DataFrame([{"model": m, "features": "profile", "ari": (lo + hi) / 2, "low": lo, "high": hi, "p_holm": p,
                          "p_perm_holm": pp, "n": 100, "layers": 10} for m, lo, hi, p, pp in rows])


def test_clusters_finding_on_both_sides_of_the_level_of_interest():
    assert R.clusters_finding(_aris([("a", 0.3, 0.5, 0.01, 0.01)])).verdict == SUPPORTED
    assert R.clusters_finding(_aris([("a", 0.15, 0.3, 0.4, 0.01)])).verdict == INCONCLUSIVE
    f = R.clusters_finding(_aris([("a", 0.08, 0.12, 0.01, 0.01), ("b", 0.05, 0.1, 0.01, 0.3)]))
    assert f.verdict == CONTRADICTED and "in 1 of 2 models" in f.note  # above chance in one only
    assert R.clusters_finding(_aris([("a", 0.3, 0.5, 0.01, 0.01)]).assign(features="border")) is None


def test_taxonomy_findings_counts_reach_and_chance():
    summ = lambda ari, p: {"ari": ari, "ari_coarse": ari, "p_value": p}  # noqa: E731
    text = R.taxonomy_findings({("a", "profile"): (None, summ(0.1, 0.01)), ("b", "profile"): (None, summ(0.25, 0.2))})
    assert "ARI 0.10 to 0.25" in text and "null (p < 0.05) in 1 of 2" in text
    assert "interest (0.2) in 1 of 2" in text
    assert "interest (0.2) in 0 of 1" in R.taxonomy_findings({("a", "border"): (None, summ(0.1, 0.5))})
    assert "poorly" not in text and "well" not in text  # no wording bands beside the declared level


# ---------------------------------------------------------------------------------------------------------
# Mean-kernel lean


def _lean_table(tl, br, noise=0.005, n=5, seed=0, modes=("abs",), s1=None):
    """Stride-2 layers reading top/left (model 'm') and bottom/right ('lite'): pretrained lean ``tl``/``br`` per
    layer plus noise, random init 0 plus noise. ``s1``: (lean of model m, lean of lite) of 8 stride-1 layers each,
    pretrained (random init 0), reading every side; None: no stride-1 layers."""
    rng = np.random.default_rng(seed)
    rows = []
    for mode in modes:
        for init in ("pretrained", "random init"):
            for i, (model, reads, lean) in enumerate((("m", "top/left", tl), ("lite", "bottom/right", br))):
                layers = [(f"s2.{k}", 2, reads, lean) for k in range(n)]
                if s1 is not None:
                    layers += [(f"s1.{k}", 1, "even", s1[i]) for k in range(8)]
                for layer, stride, rd, lv in layers:
                    v = (lv if init == "pretrained" else 0.0) + rng.normal(0, noise)
                    rows.append({"model": model, "init": init, "mode": mode, "layer": layer, "stride": stride,
                                 "reads": rd, "asym_lr": v, "asym_tb": v, "asym_lr_lo": v - 0.01,
                                 "asym_lr_hi": v + 0.01, "asym_tb_lo": v - 0.01, "asym_tb_hi": v + 0.01,
                                 "read_top": 1 if rd == "top/left" or stride == 1 else 0,
                                 "read_left": 1 if rd == "top/left" or stride == 1 else 0,
                                 "read_bottom": 1 if rd == "bottom/right" or stride == 1 else 0,
                                 "read_right": 1 if rd == "bottom/right" or stride == 1 else 0})
    return pd.DataFrame(rows)


def test_stride1_control_removes_a_lean_every_layer_has():
    t = _lean_table(0.1, -0.1, s1=(0.0, 0.0))
    c = D.stride1_control(t).set_index("reads")
    assert (c.layers == 5).all() and (c.stride1_layers == 8).all()
    assert c.loc["top/left", "excess"] == pytest.approx(c.loc["top/left", "stride2"] - c.loc["top/left", "stride1"])
    assert c.loc["top/left", "low"] > 0 > c.loc["bottom/right", "high"] and (c.p_holm >= c.p).all()
    f = R.lean_finding(D.lean_tests(t), controls=D.stride1_control(t))
    assert f.verdict == SUPPORTED and "beyond the stride-1 layers +0.1" in f.observed and "beyond stride 1" in f.test
    # every layer of each model leans as its stride-2 layers do: the lean does not survive the control
    same = _lean_table(0.1, -0.1, s1=(0.1, -0.1), noise=0.002)
    f = R.lean_finding(D.lean_tests(same), controls=D.stride1_control(same))
    assert D.lean_tests(same).pipe(lambda d: (d.low > 0).iloc[0]) and f.verdict == CONTRADICTED
    # most of it is shared, measured noisily: the excess's interval spans 0 and reaches the lean of interest
    half = _lean_table(0.1, -0.1, s1=(0.095, -0.095), noise=0.05)
    assert D.stride1_control(half).pipe(lambda d: ((d.low < 0) & (d.high > 0)).all())
    f = R.lean_finding(D.lean_tests(half), controls=D.stride1_control(half))
    assert f.verdict == INCONCLUSIVE


def test_both_indices_are_in_the_line_and_the_grid_confound_is_counted():
    both = pd.concat([_lean_table(0.1, -0.1, s1=(0.0, 0.0)),
                      _lean_table(0.0, 0.0, noise=0.002, modes=("signed",), s1=(0.0, 0.0))])
    leans, ctrl, grid = D.lean_tests(both), D.stride1_control(both), D.grid_offsets(both)
    assert (grid.grid_rows.abs() == 0.5).all() and grid.toward_read.all() and len(grid) == 10
    f = R.lean_finding(leans, controls=ctrl, grid=grid)
    assert f.verdict == SUPPORTED and "abs index: top/left-reading" in f.observed
    assert "signed index: top/left-reading" in f.observed
    assert "the signed index (secondary, not voting) would be contradicted by the same rule" in f.note
    assert "in 10 of 10 unevenly padded stride-2 layers the sampled grid is shifted toward the padding read" in f.note
    # a layer that reads its padding evenly has a centred grid and is not counted among the uneven ones
    even = both.assign(read_bottom=both.read_top, read_right=both.read_left, reads="even")
    g = D.grid_offsets(even)
    assert (g.grid_rows == 0).all() and not g.toward_read.any()
    signed_ok = pd.concat([_lean_table(0.1, -0.1, s1=(0.0, 0.0)), _lean_table(0.1, -0.1, modes=("signed",),
                                                                              s1=(0.0, 0.0))])
    f = R.lean_finding(D.lean_tests(signed_ok), controls=D.stride1_control(signed_ok))
    assert "the signed index (secondary, not voting) would be supported" in f.note


def test_lean_tests_pair_each_layer_with_its_random_init():
    t = _lean_table(0.1, -0.1)
    le = D.lean_tests(t).set_index("reads")
    assert list(le.index) == ["top/left", "bottom/right"] and (le.layers == 5).all()
    manual = t[t.reads == "top/left"].assign(lean=lambda d: (d.asym_lr + d.asym_tb) / 2)
    diff = (manual[manual.init == "pretrained"].lean.to_numpy() - manual[manual.init == "random init"].lean.to_numpy())
    assert le.loc["top/left", "diff"] == pytest.approx(diff.mean())
    assert le.loc["top/left", "low"] > 0 > le.loc["bottom/right", "high"]
    assert (le.p_holm >= le.p).all()


def test_lean_finding_on_both_sides_of_each_boundary():
    assert R.lean_finding(D.lean_tests(_lean_table(0.1, -0.1))).verdict == SUPPORTED
    # the top/left layers lean the wrong way: the opposite direction resolved
    assert R.lean_finding(D.lean_tests(_lean_table(-0.1, -0.1))).verdict == CONTRADICTED
    # no lean at all, measured precisely: the equivalence test excludes the lean of interest
    assert R.lean_finding(D.lean_tests(_lean_table(0.0, 0.0, noise=0.002))).verdict == CONTRADICTED
    # no lean, measured too noisily to exclude it
    assert R.lean_finding(D.lean_tests(_lean_table(0.0, 0.0, noise=0.2, n=3))).verdict == INCONCLUSIVE
    one_side = D.lean_tests(_lean_table(0.1, -0.1).query("reads == 'top/left'"))
    f = R.lean_finding(one_side)
    assert f.verdict == NOT_TESTABLE and "bottom/right" in f.needed
    f = R.lean_finding(D.lean_tests(_lean_table(0.1, -0.1)))
    assert "top/left-reading +0.1" in f.observed and "(5 layers)" in f.observed and "over the 2 sides; all" in f.test
    assert "2 pretrained ImageNet models, 2 families; 10 stride-2 layers" in f.scale
    assert R.lean_finding(D.lean_tests(_lean_table(0.1, -0.1, modes=("signed",)))) is None  # abs is primary


def test_lean_lines_and_conclusion_words_follow_the_intervals():
    both = pd.concat([_lean_table(0.1, -0.1), _lean_table(0.0, 0.0, noise=0.05, n=3, modes=("signed",))])
    lines = R.lean_lines(D.lean_tests(both))
    assert lines[0].endswith("the predicted direction (> 0 predicted)")
    assert lines[1].endswith("the predicted direction (< 0 predicted)")
    assert "no resolved direction" in lines[2]
    wrong = R.lean_lines(D.lean_tests(_lean_table(-0.1, 0.1)))
    assert all("the opposite of the predicted direction" in ln for ln in wrong)
    text = R.asymmetry_conclusion(R.asymmetry_findings(both), D.lean_tests(both))
    assert "the abs index resolves the predicted direction on both sides, the signed index does not resolve it" in text
    assert "weight magnitude" in text
    same = pd.concat([_lean_table(0.1, -0.1), _lean_table(0.1, -0.1, modes=("signed",))])
    text = R.asymmetry_conclusion(R.asymmetry_findings(same), D.lean_tests(same))
    assert "the signed index resolves it" in text and "weight magnitude" not in text


def _corollary_rows(even=None, s1_sig=0):
    rows = []
    for init in ("pretrained", "random init"):
        for model, lean in (("m", 0.1), ("lite", -0.1)):
            v2 = lean if init == "pretrained" else 0.0
            rows.append({"model": model, "init": init, "mode": "abs", "stride": 2, "reads": "uneven", "asym_lr": v2,
                         "asym_tb": v2, "asym_lr_lo": v2 - 0.01, "asym_lr_hi": v2 + 0.01, "asym_tb_lo": v2 - 0.01,
                         "asym_tb_hi": v2 + 0.01})
            for i in range(4):  # stride-1 layers; the first s1_sig pretrained ones lean significantly
                v = 0.05 if init == "pretrained" and i < s1_sig else 0.0
                rows.append({"model": model, "init": init, "mode": "abs", "stride": 1, "reads": "even", "asym_lr": v,
                             "asym_tb": v, "asym_lr_lo": v - 0.01, "asym_lr_hi": v + 0.01, "asym_tb_lo": v - 0.01,
                             "asym_tb_hi": v + 0.01})
        if even is not None:
            v = even if init == "pretrained" else 0.0
            rows.append({"model": "lite", "init": init, "mode": "abs", "stride": 2, "reads": "even", "asym_lr": v,
                         "asym_tb": v, "asym_lr_lo": v - 0.01, "asym_lr_hi": v + 0.01, "asym_tb_lo": v - 0.01,
                         "asym_tb_hi": v + 0.01})
    return pd.DataFrame(rows)


def test_asymmetry_corollaries_on_both_sides_and_counted_not_voting():
    good = R.asymmetry_findings(_corollary_rows(even=0.02)).set_index(["check", "model"])
    assert good["consistent"].all() and len(good) == 3
    bad = R.asymmetry_findings(_corollary_rows(even=-0.3, s1_sig=4)).set_index(["check", "model"])
    assert not bad.loc[("even leans less", "lite"), "consistent"]
    assert not bad.loc[("at down-sampling", "m"), "consistent"]
    assert "4 of 4 layers lean significantly" in bad.loc[("at down-sampling", "m"), "measured"]
    assert "abs index, secondary checks (shown, not voting): 0 of 3 consistent" in R.asymmetry_conclusion(bad.reset_index())
    assert "3 of 3 consistent" in R.asymmetry_conclusion(good.reset_index())
    # the corollaries are counted in the note and do not change the verdict
    leans = D.lean_tests(_lean_table(0.1, -0.1))
    f = R.lean_finding(leans, bad.reset_index())
    assert f.verdict == SUPPORTED and "0 of 3 corollaries consistent" in f.note


# ---------------------------------------------------------------------------------------------------------
# Sentences under the detector's figures


def test_agreement_verdict_gain_words_on_both_sides():
    from tests.test_kernels import _agreement_table
    from padlib.kernel_types import detector_agreement, disagreement_by_layer

    t = _agreement_table()
    agree = detector_agreement(t, tau=2.0).assign(model="m")
    layers = disagreement_by_layer(t).assign(model="m")
    text = R.agreement_verdict(agree, layers)
    gain = agree.set_index("predictor").recall
    assert gain["measured means"] - gain["data-free"] < 0.1
    assert "not mainly due to estimating" in text and "mean signed gaps (these add up exactly)" in text
    boosted = agree.copy()
    boosted.loc[boosted.predictor == "measured means", "recall"] = gain["data-free"] + 0.3
    assert "costs recall" in R.agreement_verdict(boosted, layers)
    assert "precision >= 0.5" not in text  # the claim is the box's, with intervals


# ---------------------------------------------------------------------------------------------------------
# The box: one line per claim, each with its section; the test plan


def test_chapter_findings_box_gives_each_section_its_line():
    type_diff = _type_diff([0.15, 0.2], [0.3, 0.3], [0.001, 0.01])
    detector = _detector([("a", "precision", 0.6, 0.8, 0.01), ("a", "recall", 0.2, 0.4, 0.01)])
    aris = _aris([("a", 0.08, 0.12, 0.01, 0.01)])
    leans = D.lean_tests(_lean_table(0.1, -0.1))
    box = R.chapter_findings_box(type_diff, detector, aris, leans)
    assert [f.verdict for f in box] == [SUPPORTED, CONTRADICTED, CONTRADICTED, SUPPORTED]
    assert [f.section for f in box] == list(R.SECTIONS.values())
    assert [f.claim for f in R.chapter_findings_box(detector=detector)] == [box[1].claim]
    assert [f.claim for f in R.chapter_findings_box(leans=leans)] == [box[3].claim]
    assert R.chapter_findings_box() == []
    for f in box:
        assert "our reading" in f.claimed and f.detectable and "Holm" in f.test


def test_method_markdown_names_each_primary_test_and_level():
    text = R.method_markdown(4)
    assert text.startswith("```{dropdown}") and text.endswith("```")
    for level in (R.TV_OF_INTEREST, R.PREDICT_LEVEL, R.ARI_OF_INTEREST, R.LEAN_OF_INTEREST):
        assert f"{level:g}" in text
    assert text.count("Primary test") == 3 and "Four primary tests" in text and "Holm over the 4 models" in text
    assert "ONE threshold" in text and "after earlier builds" in text and "sampled grid" in text


def test_families_counted_from_model_names():
    assert R._families(["mobilenet_v2", "tf_efficientnet_lite0", "tf_efficientnet_lite1"]) == 2
    assert R._count(1, "model") == "1 model" and R._count(3, "model") == "3 models"


# ---------------------------------------------------------------------------------------------------------
# Figures: readable at the site's width, one colour per meaning


def test_layer_label_keeps_whole_components():
    from padlib.viz.ch2_kernels import layer_label

    assert layer_label("features.17.conv.1.0") == "features.17.conv.1.0"  # 20 characters: whole
    assert layer_label("features.17.conv.1.0", 12) == "\u202617.conv.1.0"
    assert layer_label("blocks.5.1.conv_dw", 9) == "\u2026conv_dw"
    assert layer_label("conv_stem_very_long_name", 5) == "conv_stem_very_long_name"  # one word is never cut


def _text_sizes(fig):
    import matplotlib.text as mtext

    return [t.get_fontsize() for t in fig.findobj(mtext.Text) if t.get_text().strip() and t.get_visible()]


def test_gallery_and_grid_text_is_readable_and_names_are_whole():
    import matplotlib.pyplot as plt
    from padlib.viz import ch2_kernels as F

    entries = [{"type": "side", "layer": "features.14.conv.1.0", "channel": 3, "is_pan": True, "sign_pattern": "T+",
                "score": 3.0, "kernel": np.eye(3), "map": np.random.rand(8, 8), "bn_sign": -1.0,
                "border_profile": pd.DataFrame({"distance": [0, 1], "side": ["top"] * 2, "z": [3.0, 0.1]})},
               {"type": "side", "layer": "features.14.conv.1.0", "channel": 9, "is_pan": False, "sign_pattern": "",
                "score": 0.1, "kernel": -np.eye(3), "map": np.random.rand(8, 8), "border_profile": None}]
    fig = F.kernel_gallery(entries, title="m: side")
    assert fig.get_figwidth() <= 8 and min(_text_sizes(fig)) >= 7
    texts = " ".join(t.get_text() for t in fig.findobj(plt.Text))
    assert "features.14.conv.1.0: side PAN #3 (T+), control #9" in texts and "BN-flipped" in texts
    plt.close(fig)
    asym = pd.DataFrame([{"model": "tf_efficientnet_lite0", "init": "pretrained", "stride": 2, "reads": "top/left",
                          "layer": "features.14.conv.1.0", "mean_kernel": np.eye(3) / 3, "asym_lr": 0.1,
                          "asym_tb": -0.1, "depth": 0}])
    fig = F.mean_kernel_grid(asym)
    texts = [t.get_text() for t in fig.findobj(plt.Text)]
    assert any(t.startswith("features.14.conv.1.0\n") for t in texts) and min(_text_sizes(fig)) >= 8
    plt.close(fig)


def test_asymmetry_plot_uses_the_book_colours_and_its_caption_names_them():
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt
    from padlib.viz import ch2_kernels as F
    from padlib.viz.style import PRETRAINED, RANDOM_INIT, colour_name

    rows = [{"model": "m", "init": init, "stride": s, "reads": reads, "depth": d, "asym_lr": 0.1, "asym_tb": 0.1,
             "asym_lr_lo": 0.0, "asym_lr_hi": 0.2, "asym_tb_lo": 0.0, "asym_tb_hi": 0.2}
            for init in ("pretrained", "random init") for d, (s, reads) in enumerate([(1, "even"), (2, "top/left"),
                                                                                      (2, "even")])]
    fig = F.asymmetry_plot(pd.DataFrame(rows))
    colours = {mcolors.to_hex(line.get_color()) for ax in fig.axes for line in ax.get_lines() if len(line.get_xdata()) > 1}
    assert {PRETRAINED.lower(), RANDOM_INIT.lower()} <= colours
    caption = F.reads_caption()
    assert all(colour_name(c) in caption for c in F.READS_COLOURS.values())
    assert caption in [t.get_text() for t in fig.texts]
    assert "grey" not in " ".join(colour_name(c) for c in F.TYPE_COLOURS.values())  # grey means random init
    plt.close(fig)


def test_site_build_drops_thebe_scripts_but_keeps_widget_states_that_spell_thebe():
    """The site build drops thebe's scripts; a widget state holds each page's PNG in base64, which can spell
    "thebe" by chance, and must stay (it once removed this chapter's kernel browser)."""
    import importlib.util
    import types

    from padlib.chapters.site import REPO

    spec = importlib.util.spec_from_file_location("offline_site", REPO / "book" / "_ext" / "offline_site.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    state = types.SimpleNamespace(attributes={"body": '{"state": "iVBOR' + "A" * 6000 + 'xxTheBexx"}'})
    config = types.SimpleNamespace(attributes={"body": "const THEBE_JS_URL = 'x';"})
    file = "_static/sphinx-thebe.js"
    assert not ext._is_thebe(state)
    assert ext._is_thebe(config) and ext._is_thebe(file) and not ext._is_thebe("_static/widgets.js")
    context = {"script_files": [state, config, file, "_static/widgets.js"], "css_files": ["_static/thebe.css"]}
    ext._strip_thebe(None, "p", "t", context, None)
    assert context["script_files"] == [state, "_static/widgets.js"] and context["css_files"] == []


# ---------------------------------------------------------------------------------------------------------
# One threshold for the type comparison


def _raw_scan_table(zs, effect_share=1.0):
    """A scan table of one layer, one channel per z on the top side (effect = ``effect_share`` of it)."""
    from padlib.padding import LOCATIONS

    rows = []
    for ch, z in enumerate(zs):
        row = {"layer": "l0", "channel": ch, "stride": 1}
        for loc in LOCATIONS:
            row[f"z_{loc}"] = z if loc == "top" else 0.0
            row[f"effect_{loc}"] = effect_share * z if loc == "top" else 0.0
        rows.append(row)
    return pd.DataFrame(rows)


def test_at_threshold_types_the_copy_at_the_given_tau():
    from padlib.pans import classify_pans

    t = classify_pans(_raw_scan_table([0.5, 1.0, 2.0, 3.0]), 0.4, 0.4).assign(padding_caused=True)
    assert t.is_pan.sum() == 4  # cut at its own low tau
    at = D.at_threshold(t, 1.6, 1.6)
    assert at.is_pan.tolist() == [False, False, True, True] and at.attrs["tau"] == 1.6
    assert not at.get("padding_caused", at.is_pan).iloc[0]  # the stale column of the old cut is gone
    assert D.at_threshold(t, 0.1, 0.1).is_pan.all()


def test_threshold_sentence_gives_both_thresholds_and_counts():
    from types import SimpleNamespace

    from padlib.pans import classify_pans

    raw = _raw_scan_table([0.5, 1.0, 2.0, 3.0])
    copy = SimpleNamespace(table=classify_pans(raw, 0.4, 0.4), tau=0.4, tau_corner=0.5)
    scans = {"m": SimpleNamespace(tau=1.6, tau_corner=2.0)}
    typed = {"m": D.at_threshold(copy.table, 1.6, 2.0)}
    th = D.threshold_table(scans, {"m": (copy, None)}, typed)
    assert th.iloc[0][["caused_at_copy_tau", "caused_at_trained_tau", "filters"]].tolist() == [4, 2, 4]
    text = R.threshold_sentence(th)
    assert "the trained model's: tau 1.60 (corners 2.00)" in text and "copies have 2 padding-caused channels (50.0%" in text
    assert "would set tau at 0.40 and flag 4 (100.0%)" in text
