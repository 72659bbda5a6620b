"""padlib.position_sensitivity: objects pasted over a grid on backgrounds, confidence by position, against centre.

The planted models: a fixed bright-square detector (a box-filter conv with circular padding, so translation
invariant on the torus; ReLU above a threshold; global max pool; linear to 3 classes), wrapped so that a band of
K input pixels on one side is attenuated before the detector. Objects are 8-px white squares on a 64-px canvas,
backgrounds smooth random textures (bilinear up-sampled 8x8 noise), so the confidence varies with the background
around the object and the intervals over backgrounds have a real width. The null: a seeded random CNN with circular
padding everywhere and global average pooling, which has no preferred position on the torus."""
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import padlib
from padlib import stats
from padlib.position_sensitivity import _box_on_map
from tests.test_model_untouched import _assert_untouched, _net, _snapshot

SIZE, OBJ, N_POS = 64, 8, 7
SQUARE = {"square": torch.ones(3, OBJ, OBJ)}


class Template(nn.Module):
    """Detects a bright square: box-filter mean over 9x9 (circular padding), minus a threshold, ReLU, max pool."""

    def __init__(self, k=9, threshold=1.0, gain=1.5):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, k, padding=k // 2, padding_mode="circular")
        self.fc = nn.Linear(1, 3)
        with torch.no_grad():
            self.conv.weight.fill_(1 / (3 * k * k))
            self.conv.bias.fill_(-threshold)
            self.fc.weight.copy_(torch.tensor([[gain], [0.0], [-gain]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).amax((-1, -2)))


class Band(nn.Module):
    """``inner`` with the ``k`` outermost input pixels of ``side`` multiplied by 1 - ``strength``."""

    def __init__(self, inner, side="top", k=OBJ, strength=1.0):
        super().__init__()
        self.inner, self.side, self.k, self.strength = inner, side, k, strength

    def forward(self, x):
        mask = torch.ones_like(x[:1, :1])
        where = {"top": (..., slice(0, self.k), slice(None)), "bottom": (..., slice(-self.k, None), slice(None)),
                 "left": (..., slice(0, self.k)), "right": (..., slice(-self.k, None))}[self.side]
        mask[where] = 1 - self.strength
        return self.inner(x * mask)


def backgrounds(n, seed=0, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    smooth = nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return {f"bg{i}": 0.25 + 0.4 * smooth[i] for i in range(n)}


def null_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, padding_mode="circular"), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5)).eval()


def run(model, n_bg=8, seed=0, **kw):
    kw = {"size": SIZE, "n_positions": N_POS, "progress": False, **kw}
    return padlib.position_sensitivity(model, SQUARE, backgrounds(n_bg, seed), **kw)


def side(summary, name):
    return summary.set_index("side").loc[name]


# ------------------------------------------------------------------------------------------------------------
# the table

def test_table_columns_grid_and_distances():
    table = run(Template(), n_bg=2)
    assert list(table.columns) == ["object", "background", "target", "top", "left", "row", "col", "dist_top",
                                   "dist_bottom", "dist_left", "dist_right", "response", "centre_response", "change"]
    assert len(table) == 2 * N_POS * N_POS
    assert table.attrs["size"] == SIZE and table.attrs["n_positions"] == N_POS
    assert table.attrs["response"] == "logprob" and table.attrs["targets"] == {"square": 0}
    assert (table["target"] == 0).all()  # the detector's class, predicted with the square centred
    # the object touches every border: 0 px from each side at the grid's ends
    for d in ("dist_top", "dist_bottom", "dist_left", "dist_right"):
        assert table[d].min() == 0 and table[d].max() == SIZE - OBJ
    assert (table["dist_top"] + table["dist_bottom"] == SIZE - OBJ).all()
    assert sorted(table["top"].unique()) == padlib.blind_spot_maps.grid_positions(SIZE, OBJ, N_POS)
    assert np.allclose(table["change"], table["response"] - table["centre_response"])
    assert (table["response"] <= 0).all()  # log-probabilities
    # centre_response is the object centred on that background, computed independently here
    bg = backgrounds(2)["bg1"]
    canvas = padlib.blind_spot_maps.paste_centre(SQUARE["square"], bg.clone(), SIZE)
    x = padlib.preprocessing(Template()).normalize(canvas[None])
    with torch.no_grad():
        expected = float(Template()(x).log_softmax(-1)[0, 0])
    assert table.loc[table["background"] == "bg1", "centre_response"].iloc[0] == pytest.approx(expected, abs=1e-6)


def test_identical_tables_on_two_calls():
    a, b = run(Band(Template()), n_bg=3), run(Band(Template()), n_bg=3, batch_size=7)
    pd.testing.assert_frame_equal(a, run(Band(Template()), n_bg=3))
    assert a.attrs == run(Band(Template()), n_bg=3).attrs
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-6)  # batching changes nothing but rounding


# ------------------------------------------------------------------------------------------------------------
# the planted blind band is found, on the side where it was planted

@pytest.mark.parametrize("planted", ["top", "right"])
def test_planted_blind_band_is_found_on_its_side(planted):
    summary = padlib.position_summary(run(Band(Template(), planted)))
    opposite = {"top": "bottom", "right": "left"}[planted]
    assert abs(side(summary, opposite)["estimate"]) < 0.05  # the opposite side sees the object as the interior does
    s = side(summary, planted)
    assert s["ci_high"] < 0 and s["direction"] == "down" and s["p_holm"] < 0.05
    assert s["estimate"] < -0.5  # the probability falls to about a third of the centre's (log-ratio ~ -0.84)
    verdict = padlib.blind_sides(summary, sesoi=0.2)
    assert verdict.blind == [planted]
    assert sorted(verdict.no_blind_band) == sorted({"top", "bottom", "left", "right"} - {planted})
    # the asymmetry: top - bottom (or left - right) on the planted axis, the other axis flat
    contrast, other = ("top-bottom", "left-right") if planted == "top" else ("left-right", "top-bottom")
    c = side(summary, contrast)
    assert c["ci_high"] < 0 if planted == "top" else c["ci_low"] > 0
    assert side(summary, other)["ci_low"] < 0 < side(summary, other)["ci_high"]
    for s_name in {"top", "bottom", "left", "right"} - {planted}:
        assert abs(side(summary, s_name)["estimate"]) < 0.05, s_name
    assert summary["n_backgrounds"].eq(8).all()
    assert np.allclose(summary["p_holm"], stats.holm_adjust(summary["p"]))  # Holm over the object's six rows


def test_verdict_moves_across_the_sesoi():
    """Attenuations either side of the sesoi (0.5): 0.3 gives a drop (-0.38) that is certainly not zero but smaller
    than the sesoi (not blind; ruled out at 0.5), 0.4 a drop (-0.59) beyond it (blind); 0 nothing. And on one table,
    a sesoi just below the measured drop flags the side, just above it rules it out, at the drop: undecided."""
    sesoi = 0.5
    weak = side(padlib.position_summary(run(Band(Template(), strength=0.3))), "top")
    strong_summary = padlib.position_summary(run(Band(Template(), strength=0.4)))
    strong = side(strong_summary, "top")
    assert -sesoi < weak["ci_low"] and weak["ci_high"] < 0 and strong["ci_high"] < -sesoi
    weak_v = padlib.blind_sides(padlib.position_summary(run(Band(Template(), strength=0.3))), sesoi)
    assert weak_v.blind == [] and "top" in weak_v.no_blind_band
    assert padlib.blind_sides(strong_summary, sesoi).blind == ["top"]
    none = padlib.blind_sides(padlib.position_summary(run(Band(Template(), strength=0.0))), sesoi)
    assert none.blind == [] and sorted(none.no_blind_band) == ["bottom", "left", "right", "top"]
    # the boundary itself, on the strong table: the interval is about +-0.01 wide
    drop, half = -strong["estimate"], (strong["ci_high"] - strong["ci_low"]) / 2
    assert padlib.blind_sides(strong_summary, drop - 3 * half).blind == ["top"]
    above = padlib.blind_sides(strong_summary, drop + 3 * half)
    assert above.blind == [] and "top" in above.no_blind_band
    at = padlib.blind_sides(strong_summary, drop)
    assert "top" in at.undecided and at.table.set_index("side").loc["top", "verdict"] == "undecided"


# ------------------------------------------------------------------------------------------------------------
# the null

def test_translation_invariant_model_has_no_blind_side():
    summary = padlib.position_summary(run(null_cnn(), n_bg=16))
    assert summary["n_backgrounds"].eq(16).all()
    for contrast in ("top-bottom", "left-right"):
        c = side(summary, contrast)
        assert c["ci_low"] < 0 < c["ci_high"], contrast
    assert (summary["p_holm"] > 0.05).all()
    verdict = padlib.blind_sides(summary, sesoi=0.05)
    assert verdict.blind == []
    widest = (summary["ci_high"] - summary["ci_low"]).max()
    # a drop of 0.05 (5% of the probability) is ruled out on every side with 16 backgrounds
    assert sorted(verdict.no_blind_band) == ["bottom", "left", "right", "top"], widest
    # the unadjusted equivalence is stats' rule, both ways
    for r in summary.itertuples():
        if r.side in ("top", "bottom", "left", "right"):
            assert stats.equivalence_excludes(r.ci_low, r.ci_high, 0.05)
            assert stats.equivalence_excludes(r.ci_low, r.ci_high, -0.05)


def test_blind_sides_holds_the_four_sides_to_holm():
    """An interval just below -sesoi on its own (one-sided p 0.02 < 0.025) is not blind once Holm counts four sides."""
    v = np.array([-1.3, -0.9, -1.1, -0.7, -1.2, -0.8, -1.0, -1.05])
    t = stats.t_test(v)
    sesoi = -t.high - 0.004
    p_alone = stats.interval_p(t.mean, t.low, t.high, t.n, null=-sesoi, alternative="less")
    assert 0.0125 < p_alone < 0.025  # blind at the interval's level, not after multiplying by 4
    flat = stats.t_test(v - v.mean())
    rows = [{"object": "o", "side": "top", "estimate": t.mean, "ci_low": t.low, "ci_high": t.high, "n_backgrounds": 8}]
    rows += [{"object": "o", "side": s, "estimate": flat.mean, "ci_low": flat.low, "ci_high": flat.high,
              "n_backgrounds": 8} for s in ("bottom", "left", "right")]
    summary = pd.DataFrame(rows)
    summary.attrs["level"] = 0.95
    verdict = padlib.blind_sides(summary, sesoi)
    assert verdict.blind == [] and "top" in verdict.undecided
    assert verdict.table.set_index("side").loc["top", "p_blind_holm"] == pytest.approx(4 * p_alone)
    only_top = padlib.blind_sides(summary.iloc[:1], sesoi)  # a family of one: blind
    assert only_top.blind == ["top"]


def test_interval_p_reads_the_t_interval_back():
    v = np.array([0.3, -0.1, 0.5, 0.2, 0.05, 0.4])
    t = stats.t_test(v)
    assert stats.interval_p(t.mean, t.low, t.high, t.n) == pytest.approx(t.p, rel=1e-9)
    # a one-sided p of (1 - level) / 2 exactly at each bound of the interval
    assert stats.interval_p(t.mean, t.low, t.high, t.n, null=t.high, alternative="less") == pytest.approx(0.025)
    assert stats.interval_p(t.mean, t.low, t.high, t.n, null=t.low, alternative="greater") == pytest.approx(0.025)
    assert stats.interval_p(1.0, 1.0, 1.0, 5, null=2.0, alternative="less") == 0.0  # zero width: known exactly
    assert stats.interval_p(1.0, 1.0, 1.0, 5, null=0.5, alternative="less") == 1.0
    assert math.isnan(stats.interval_p(1.0, float("nan"), 2.0, 5))


# ------------------------------------------------------------------------------------------------------------
# outputs of any shape

class TupleOut(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x), x.mean(1)


class DictOut(TupleOut):
    def forward(self, x):
        return {"features": x.mean(1), "logits": self.inner(x)}


def test_tuple_and_dict_outputs_are_read_by_select_output():
    plain = run(Band(Template()), n_bg=2)
    pd.testing.assert_frame_equal(run(TupleOut(Band(Template())), n_bg=2), plain)
    pd.testing.assert_frame_equal(run(DictOut(Band(Template())), n_bg=2, output="logits"), plain)


class Segmenter(nn.Module):
    """1x1 conv: channel 1 lights up on bright pixels, channel 0 on dark ones (N, 2, H, W)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]).view(2, 3, 1, 1))
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(x)


def test_dense_map_model_reads_the_target_channel_in_the_box():
    table = run(Segmenter(), n_bg=3)
    assert table.attrs["kind"] == "dense" and table.attrs["targets"] == {"square": 1}
    # a pointwise segmenter reads only the object's own pixels: the same at every position
    assert np.allclose(table["change"], 0, atol=1e-9)
    # the value by hand: mean over the pasted box of softmax(channels)[1], logged
    r = table.iloc[10]
    canvas = backgrounds(3)[r["background"]].clone()
    canvas[:, r["top"]:r["top"] + OBJ, r["left"]:r["left"] + OBJ] = 1.0
    with torch.no_grad():
        p = Segmenter()(padlib.preprocessing(Segmenter()).normalize(canvas[None])).double().softmax(1)[0, 1]
    box = p[r["top"]:r["top"] + OBJ, r["left"]:r["left"] + OBJ]
    assert r["response"] == pytest.approx(math.log(float(box.mean())), abs=1e-9)
    # and a blind band planted in front of it is found
    verdict = padlib.blind_sides(padlib.position_summary(run(Band(Segmenter()), n_bg=6)), sesoi=0.2)
    assert verdict.blind == ["top"]
    logit = run(Segmenter(), n_bg=1, response="logit")
    assert (logit["response"] > 0).all()


def test_box_is_scaled_to_a_coarser_map():
    assert _box_on_map(0, 0, 8, 8, 64, 16, 16) == (slice(0, 2), slice(0, 2))
    assert _box_on_map(56, 9, 8, 8, 64, 16, 16) == (slice(14, 16), slice(2, 5))
    assert _box_on_map(63, 63, 1, 1, 64, 4, 4) == (slice(3, 4), slice(3, 4))  # at least one map pixel


# ------------------------------------------------------------------------------------------------------------
# arguments, and the model left as found

class ThreeD(nn.Module):
    def forward(self, x):
        return x.mean(1)  # (N, H, W)


@pytest.mark.parametrize("kwargs, name", [
    ({"objects": {}}, "objects"),
    ({"objects": torch.ones(3, 8, 8)}, "objects"),
    ({"objects": [torch.ones(3, 80, 80)]}, "objects"),
    ({"objects": [torch.ones(8, 8)]}, "objects"),
    ({"backgrounds": []}, "backgrounds"),
    ({"backgrounds": [2.0]}, "backgrounds"),
    ({"n_positions": 2}, "n_positions"),
    ({"n_positions": 60}, "n_positions"),
    ({"response": "probability"}, "response"),
    ({"batch_size": 0}, "batch_size"),
    ({"size": 0}, "size"),
    ({"target": 7}, "target"),
    ({"target": "tench"}, "target"),
    ({"target": [0, 1]}, "target"),
    ({"target": {"circle": 0}}, "target"),
    ({"model": ThreeD()}, "model"),
    ({"model": TupleOut(Template()), "output": "logits"}, "output"),
])
def test_argument_errors_name_the_argument(kwargs, name):
    args = {"model": Template(), "objects": SQUARE, "backgrounds": backgrounds(2), "size": SIZE, "n_positions": 5,
            "progress": False, **kwargs}
    with pytest.raises(padlib.PadlibError, match=name):
        padlib.position_sensitivity(**args)


def test_summary_and_verdict_arguments():
    table = run(Template(), n_bg=2, n_positions=3)
    with pytest.raises(padlib.PadlibError, match="band"):
        padlib.position_summary(table, band=2)
    with pytest.raises(padlib.PadlibError, match="table"):
        padlib.position_summary(table.drop(columns="change"))
    with pytest.raises(padlib.PadlibError, match="level"):
        padlib.position_summary(table, level=95)
    summary = padlib.position_summary(table)
    for bad in (0, -0.1, float("nan"), "0.5"):
        with pytest.raises(padlib.PadlibError, match="sesoi"):
            padlib.blind_sides(summary, bad)
    two = pd.concat([summary, summary.assign(object="other")])
    two.attrs = summary.attrs
    with pytest.raises(padlib.PadlibError, match="object"):
        padlib.blind_sides(two, 0.5)
    assert padlib.blind_sides(two, 0.5, object="other").table["object"].eq("other").all()


def test_model_left_as_found_also_after_an_argument_error():
    objs, bgs = [torch.ones(3, 4, 4)], [0.5, torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))]
    model = _net()  # training mode, one frozen BatchNorm, dropout
    model[0].register_forward_hook(lambda *a: None)
    before = _snapshot(model)
    table = padlib.position_sensitivity(model, objs, bgs, size=32, n_positions=3, progress=False)
    _assert_untouched(model, before)
    assert table["response"].notna().all()
    # measured in eval mode: the same numbers as an eval-mode copy gives
    frozen = _net().eval()
    pd.testing.assert_frame_equal(table, padlib.position_sensitivity(frozen, objs, bgs, size=32, n_positions=3,
                                                                     progress=False))
    for kwargs in ({"target": 99}, {"n_positions": 2}, {"response": "x"}):  # after the probe ran, and before
        with pytest.raises(padlib.PadlibError):
            padlib.position_sensitivity(model, objs, bgs, size=32, progress=False, **{"n_positions": 3, **kwargs})
        _assert_untouched(model, before)


def test_background_tensors_are_not_written():
    bgs = backgrounds(2)
    copies = {k: v.clone() for k, v in bgs.items()}
    padlib.position_sensitivity(Template(), SQUARE, bgs, size=SIZE, n_positions=3, progress=False)
    assert all(torch.equal(bgs[k], copies[k]) for k in bgs)
