"""Chapter 4's position study (section 4): the pretrained-model design run on a tiny planted model, its readings on
both sides of every verdict, the positive control found on its side, and the kernel line's sign-flip words.

The planted model: a stride-2 3x3 convolution with zero padding whose only tap is the centre (it subsamples, and at an
even size its windows read the top/left padding, so the padding audit names top and left), then a bright-square
detector (box filter with circular padding, threshold, ReLU, global max pool, three classes). Objects are white
squares, backgrounds smooth random textures, so confidences vary with the background and intervals have a width. A
band of input pixels attenuated along one side plants a weak side there."""
import matplotlib

matplotlib.use("Agg")

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from padlib.chapters import ch4_blind_spots as ch4
from padlib.chapters.findings import CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, SUPPORTED, section_markdown
from padlib.errors import PadlibError
from padlib.experiments import ch4_blind_spots as design
from padlib.experiments.planted import attenuated_band

SIZE, OBJ, N_POS = 64, 12, 7


class Detector(nn.Module):
    """Subsample by 2 (zero-padded 3x3 stride-2 conv, centre tap only), then detect a bright square."""

    def __init__(self, k=5, threshold=1.0, gain=1.5):
        super().__init__()
        self.sub = nn.Conv2d(3, 3, 3, stride=2, padding=1, bias=False)
        self.conv = nn.Conv2d(3, 1, k, padding=k // 2, padding_mode="circular")
        self.fc = nn.Linear(1, 3)
        with torch.no_grad():
            self.sub.weight.zero_()
            for c in range(3):
                self.sub.weight[c, c, 1, 1] = 1.0
            self.conv.weight.fill_(1 / (3 * k * k))
            self.conv.bias.fill_(-threshold)
            self.fc.weight.copy_(torch.tensor([[gain], [0.0], [-gain]]))
            self.fc.bias.zero_()
        self.eval()

    def forward(self, x):
        return self.fc(torch.relu(self.conv(self.sub(x))).amax((-1, -2)))


def textures(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 8, 8, generator=g)
    smooth = nn.functional.interpolate(low, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return {f"bg{i}": 0.25 + 0.4 * smooth[i] for i in range(n)}


SQUARES = {"square": torch.ones(3, OBJ, OBJ), "tile": torch.ones(3, 16, 16)}


def study(model, n_bg=6, **kw):
    kw = {"n_objects": 2, "n_backgrounds": n_bg, "object_size": OBJ, "size": SIZE, "n_positions": N_POS,
          "crops": SQUARES, "backgrounds": textures(n_bg), "progress": False, **kw}
    return design.pretrained_position_study({"planted": model}, **kw)


@pytest.fixture(scope="module")
def weak_top():
    return study(attenuated_band(Detector(), "top", OBJ, 0.2))


@pytest.fixture(scope="module")
def even():
    return study(Detector())


# ---------------------------------------------------------------------------------------------------------
# the design on the planted model


def test_the_study_finds_a_planted_weak_top_and_its_tables_are_tidy(weak_top):
    s = weak_top
    assert s.reads == {"planted": {"tb": "top", "lr": "left"}}  # the audit of the stride-2 conv at an even size
    assert s.recognition["recognised"].all() and len(s.recognition) == 2 * 6 and s.recognition["rank"].eq(0).all()
    assert (s.recognition["target"] == 0).all() and s.recognition["object_size"].eq(OBJ).all()
    assert set(s.table["variant"]) == {"model", "control"}
    assert len(s.table) == 2 * 2 * 6 * N_POS * N_POS  # variants x objects x backgrounds x positions
    assert len(s.bands) == 2 * 6 and s.bands["n_objects"].eq(2).all()
    t = s.tests[s.tests.variant == "model"].set_index("test")
    assert t.loc["border", "ci_high"] < 0 and t.loc["padding side", "ci_high"] < 0
    assert t.loc["border", "n"] == 6 and t.loc["padding side", "sides"] == "top/left"
    top = s.summary[(s.summary.variant == "model") & (s.summary.side == "top")].iloc[0]
    assert top["estimate"] < -0.3 and top["n_backgrounds"] == 6
    for side in ("bottom", "left", "right"):
        row = s.summary[(s.summary.variant == "model") & (s.summary.side == side)].iloc[0]
        assert abs(row["estimate"]) < 0.05, side
    m = s.maps[s.maps.variant == "model"]
    assert len(m) == N_POS * N_POS and m["n"].eq(6).all()
    assert m.loc[m.row == 0, "change"].mean() < m.loc[m.row == N_POS - 1, "change"].mean() - 0.3
    assert s.settings["side_share"] == pytest.approx(OBJ / SIZE)


def test_bands_average_objects_inside_a_background_first():
    rows = []
    for obj, shift in (("a", 0.0), ("b", -1.0)):
        for r in range(5):
            for c in range(5):
                rows.append({"object": obj, "background": "x", "row": r, "col": c,
                             "change": shift + (-0.5 if r == 0 and 0 < c < 4 else 0.0)})
    bands = design.position_bands(pd.DataFrame(rows), 5)
    assert bands.loc[0, "top"] == pytest.approx(-1.0) and bands.loc[0, "interior"] == pytest.approx(-0.5)
    assert bands.loc[0, "bottom"] == pytest.approx(-0.5) and bands.loc[0, "n_objects"] == 2


def test_padding_side_is_signed_by_the_side_read():
    bands = pd.DataFrame({"background": list("abc"), "top": [-1.0, -1.2, -0.8], "bottom": [0.0, 0.1, -0.1],
                          "left": [0.0] * 3, "right": [0.0] * 3, "interior": [0.0] * 3})
    pyt = design.position_tests(bands, {"tb": "top", "lr": ""}).set_index("test")
    tf = design.position_tests(bands, {"tb": "bottom", "lr": ""}).set_index("test")
    assert pyt.loc["padding side", "mean"] == pytest.approx(-1.0)
    assert tf.loc["padding side", "mean"] == pytest.approx(1.0)
    both = design.position_tests(bands, {"tb": "top", "lr": "left"}).set_index("test")
    assert both.loc["padding side", "mean"] == pytest.approx(-0.5)  # averaged over the two axes
    none = design.position_tests(bands, {"tb": "", "lr": ""}).set_index("test")
    assert np.isnan(none.loc["padding side", "ci_low"])
    assert pyt.loc["border", "mean"] == pytest.approx(-0.25)


def test_attenuated_band_keeps_preprocessing_and_refuses_bad_sides():
    class Seen(nn.Module):
        def forward(self, x):
            self.x = x
            return x

    m = Seen()
    m.padlib_preprocessing = "prep"
    w = attenuated_band(m, "bottom", 4, 0.5)
    assert w.padlib_preprocessing == "prep"
    w(torch.ones(1, 3, 8, 8))
    assert m.x[0, :, -4:].eq(0.5).all() and m.x[0, :, :4].eq(1.0).all()
    with pytest.raises(PadlibError, match="side"):
        attenuated_band(m, "middle", 4)
    with pytest.raises(PadlibError, match="factor"):
        attenuated_band(m, "top", 4, 1.5)


# ---------------------------------------------------------------------------------------------------------
# the positive control, and the readings on the planted model


def test_positive_control_is_found_exactly_on_its_side(weak_top, even):
    for s in (weak_top, even):
        c = ch4.position_control(s)
        assert c.loc[0, "planted"] == "top" and c.loc[0, "found"] == "top" and bool(c.loc[0, "exact"])
        assert c.loc[0, "ci_high"] < -ch4.POSITION_SOI
    lines = ch4.position_lines(even)
    assert any("Positive control, planted with the top band" in line and "exactly the planted side" in line
               for line in lines)
    assert "recognises 2 of 2 candidate objects" in lines[0]
    assert "found top" in ch4.padding_side_finding(even).note


def test_readings_on_the_planted_model(weak_top, even):
    assert ch4.border_position_finding(weak_top).verdict == SUPPORTED
    assert ch4.padding_side_finding(weak_top).verdict == SUPPORTED
    f = ch4.border_position_finding(even)  # no weak side: the drop is excluded from reaching -POSITION_SOI
    assert f.verdict == CONTRADICTED and "planted" in f.observed
    assert f"{OBJ} px ({OBJ / SIZE:.0%} of the canvas side" in f.scale and "not detectors" in f.scale
    assert "more than the 10% this chapter calls small" in f.note
    text = section_markdown([f], ch4.SECTION_POSITIONS)
    assert text.startswith("**Contradicted.**")


def test_not_testable_when_no_object_is_recognised():
    s = study(Detector(), n_bg=3, min_prob=0.999)
    assert not s.recognition["recognised"].any() and s.tests.empty and s.table.empty
    few = study(Detector(), n_bg=3, control_factor=0.97)  # a faint planted band on three backgrounds
    c = ch4.position_control(few)
    assert not c.loc[0, "exact"] and "too few backgrounds to show a weak side" in ch4.padding_side_finding(few).note
    for f in (ch4.border_position_finding(s), ch4.padding_side_finding(s)):
        assert f.verdict == NOT_TESTABLE and "planted" in f.needed and "recognise" in f.needed
    assert ch4.position_control(s).empty


# ---------------------------------------------------------------------------------------------------------
# the readings on tables with a known answer


def _study(rows, models=("m1", "m2")):
    tests = pd.DataFrame([{"model": m, "variant": "model", "test": test, "sides": "top/left", "mean": mean,
                           "ci_low": lo, "ci_high": hi, "p": p, "n": 8, "n_objects": 3, "n_pairs": 20}
                          for m, test, mean, lo, hi, p in rows],
                         columns=["model", "variant", "test", "sides", "mean", "ci_low", "ci_high", "p", "n",
                                  "n_objects", "n_pairs"])
    settings = {"models": list(models), "size": 224, "object_size": 56, "side_share": 0.25, "area_share": 0.0625,
                "n_positions": 7, "min_prob": 0.1, "check_sizes": [22]}
    rec = pd.DataFrame([{"model": m, "object": "cat", "background": "b", "object_size": z, "recognised": z == 56,
                         "target_name": "cat"}
                        for m in models for z in (56, 22)])
    return SimpleNamespace(tests=tests, settings=settings, recognition=rec, summary=pd.DataFrame(
        columns=["model", "variant", "side"]), controls={}, reads={m: {"tb": "top", "lr": "left"} for m in models})


def _both(test, mean, half, p):
    return [(m, test, mean, mean - half, mean + half, p) for m in ("m1", "m2")]


@pytest.mark.parametrize("test, finding", [("border", ch4.border_position_finding),
                                           ("padding side", ch4.padding_side_finding)])
def test_position_findings_on_each_side_of_their_boundaries(test, finding):
    assert finding(_study(_both(test, -0.5, 0.2, 0.001))).verdict == SUPPORTED
    assert finding(_study(_both(test, 0.5, 0.2, 0.001))).verdict == CONTRADICTED  # the opposite direction
    short = finding(_study(_both(test, 0.0, 0.05, 0.9)))  # the whole interval short of -POSITION_SOI
    assert short.verdict == CONTRADICTED
    wide = finding(_study(_both(test, -0.1, 0.3, 0.5)))
    assert wide.verdict == INCONCLUSIVE and wide.detectable.endswith("nats")
    # Holm over the two models: raw p 0.02 each passes (adjusted 0.04), 0.03 does not (0.06)
    assert finding(_study(_both(test, -0.5, 0.4, 0.02))).verdict == SUPPORTED
    assert finding(_study(_both(test, -0.5, 0.4, 0.03))).verdict == INCONCLUSIVE
    one = finding(_study(_both(test, -0.5, 0.2, 0.001)[:1]))  # m2 recognised nothing: judged on m1
    assert one.verdict == SUPPORTED and "not testable for m2" in one.note
    none = finding(_study([]))
    assert none.verdict == NOT_TESTABLE and "m1, m2 recognise centred" in none.needed


def test_position_lines_and_scale_state_the_small_object_check():
    s = _study(_both("border", -0.5, 0.2, 0.001))
    f = ch4.border_position_finding(s)
    assert "2 pretrained ImageNet classifiers at 224 px" in f.scale and "3 objects on 8 backgrounds" in f.scale
    assert "25% of the canvas side, 6% of its area" in f.scale
    assert "at 22 px" in f.note and "m1 0 of 1" in f.note and "a detector" in f.note
    assert any(line.startswith("At 22 px") for line in ch4.position_lines(s))


def test_box_includes_the_position_lines_in_section_order():
    s = _study(_both("border", -0.5, 0.2, 0.001) + _both("padding side", -0.5, 0.2, 0.001))
    lines = [ch4.border_position_finding(s), ch4.padding_side_finding(s)]
    assert all(f.section == ch4.SECTION_POSITIONS for f in lines)
    assert "POSITION_SOI" in ch4.constants_markdown()


# ---------------------------------------------------------------------------------------------------------
# the kernel line's sign flip with the padding convention


def _kernels(mobile_tb, mobile_lr, lite_tb, lite_lr, half=0.02):
    rows = []
    for model, reads, vals in (("mobilenet_v2", "top/left", (mobile_tb, mobile_lr)),
                               ("tf_efficientnet_lite0", "bottom/right", (lite_tb, lite_lr))):
        for axis, v in zip(("top/bottom", "left/right"), vals):
            rows.append({"model": model, "axis": axis, "reads": reads, "layers": 3, "pretrained": v,
                         "init_mean": 0.0, "init_min": -0.01, "init_max": 0.01, "seeds": 4, "mean": v,
                         "ci_low": v - half, "ci_high": v + half, "p": 0.001 if abs(v) > half else 0.5})
    return pd.DataFrame(rows)


def test_kernel_line_names_the_sign_flip_when_both_lean_the_predicted_way():
    words = ch4.kernel_sign_words(_kernels(-0.1, -0.1, -0.1, -0.1))
    assert ("mobilenet_v2 (PyTorch padding, reads more top/left) puts less energy than random init on its top row "
            "and left column") in words
    assert ("tf_efficientnet_lite0 (TF 'SAME' padding, reads more bottom/right) puts less energy than random init "
            "on its bottom row and right column") in words
    assert words.endswith("the side with less energy flips with the padding convention")
    f = ch4.kernel_finding(_kernels(-0.1, -0.1, -0.1, -0.1))
    assert f.observed.startswith(words) and "Holm p" in f.observed


def test_kernel_line_says_when_the_sides_do_not_follow_the_convention():
    words = ch4.kernel_sign_words(_kernels(-0.1, -0.1, 0.1, -0.1))  # lite0 has less energy on its top row
    assert "tf_efficientnet_lite0 (TF 'SAME' padding, reads more bottom/right) puts less energy than random init " \
           "on its top row and right column" in words
    assert words.endswith("does not follow the padding convention in every model") and "flips" not in words
    unresolved = ch4.kernel_sign_words(_kernels(-0.1, -0.01, -0.1, -0.1))
    assert "(not resolved on left/right)" in unresolved and "not every interval excludes 0" in unresolved


def test_recognition_leaves_the_model_in_its_own_mode():
    model = Detector().train()  # a model handed over in training mode stays in it
    objects = design.position_objects(1, OBJ, SIZE, SQUARES)
    bgs = textures(2)
    before = {k: v.clone() for k, v in bgs.items()}
    r = design.object_recognition(model, objects, bgs, SIZE)
    assert model.training and len(r) == 2
    assert all(torch.equal(bgs[k], before[k]) for k in bgs)  # the backgrounds are pasted on copies
