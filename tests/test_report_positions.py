"""padlib report's objects-at-every-position stage (padlib.model_report.position_stage, section 5 of the page).

A tiny classifier at 32 px (fast): the stage runs inside the report, its objects and backgrounds come from different
photographs, its sentence, JSON record, figure and table agree with blind_sides' verdicts, and turning it off
(positions=0 or None) leaves the report as it was. The sentence's two wordings on planted summaries (verdicts
computed by blind_sides, not planted). Only the pairs the model recognises centred are measured: a planted
classifier on one-colour photographs recognises chosen pairs, and the counts, the pairs measured and the skip when
too few backgrounds keep a pair are checked against them. Models the stage cannot read (a dense map, an output of
another shape, grey input) are skipped with one reason, never a crash. The model is left as it was given."""
import html
import re

import pandas as pd
import pytest
import torch
from torch import nn

import padlib
from padlib import model_report
from padlib.model_report import POOLED, PositionStage, position_stage
from padlib.position_sensitivity import blind_sides
from padlib.viz.report import _positions_section, position_figure, position_rows, report_html
from tests.test_model_untouched import _assert_untouched, _net, _snapshot
from tests.test_report_text import _planted

SIZE = 32


def _classifier(out=None) -> nn.Module:
    """A tiny padded CNN with 10 classes; ``out='dense'`` drops the head (a (N, 12, 8, 8) map), 'tuple' returns
    (logits, features), '3d' returns (N, 10, 2)."""
    torch.manual_seed(3)
    body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 12, 3, 2, 1), nn.ReLU())
    if out == "dense":
        return body.eval()
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(12, 10))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = body, head

        def forward(self, x):
            f = self.body(x)
            y = self.head(f)
            return (y, f) if out == "tuple" else y.view(-1, 5, 2) if out == "3d" else y

    return Net().eval()


@pytest.fixture(scope="module")
def probe():
    return padlib.probe_images(8, size=SIZE)


@pytest.fixture(scope="module")
def reports():
    """The same tiny report with the stage (3 positions per axis) and without it."""
    net = _classifier()
    kw = dict(size=SIZE, progress=False, n_boot=20)
    return model_report.report(net, 8, positions=3, **kw), model_report.report(net, 8, positions=0, **kw)


def _images(page: str) -> int:
    return len(re.findall(r'<img [^>]*src="data:image/png;base64,', page))


def test_stage_runs_in_the_report_on_a_tiny_classifier(reports):
    rep, without = reports
    st = rep.positions
    assert isinstance(st, PositionStage) and not st.skipped
    assert st.object_px == SIZE // 4 and st.n_positions == 3
    rec = st.recognition  # every candidate on every background tried, centred
    n_tried = model_report.POSITION_OBJECTS * model_report.POSITION_BACKGROUNDS
    assert len(rec) == n_tried and rec["object"].nunique() == model_report.POSITION_OBJECTS
    assert not set(rec["object"]) & set(rec["background"])  # never an object on its own photograph
    kept = rec[rec["kept"]]
    assert kept["recognised"].all() and len(kept) == min(int(rec["recognised"].sum()), model_report.POSITION_PAIRS)
    assert set(st.objects) == set(kept["object"]) and st.backgrounds == list(dict.fromkeys(kept["background"]))
    assert len(st.table) == len(kept) * 3 * 3
    assert set(zip(st.table["object"], st.table["background"])) == set(zip(kept["object"], kept["background"]))
    assert list(st.verdicts["side"]) == ["top", "bottom", "left", "right"]
    assert (st.verdicts["n_backgrounds"] == len(st.backgrounds)).all() and set(st.summary["object"]) == {POOLED}
    assert "positions" in rep.seconds
    line = rep.summary_lines()[-1]
    assert line.startswith(f"Objects at every position ({len(st.objects)} objects of 8 px at 3x3 positions on "
                           f"{len(st.backgrounds)} backgrounds; {len(kept)} of {n_tried} object-background pairs kept")
    assert ("no side resolved blinder" in line) is (not st.sides("blind"))
    record = rep.summary_record()["positions"]
    assert record["n_positions"] == 3 and record["sesoi"] == model_report.POSITION_SESOI
    assert record["recognition"]["pairs_tried"] == n_tried and record["recognition"]["pairs_kept"] == len(kept)
    capped = len(kept) < int(rec["recognised"].sum())  # this random net recognises more pairs than the cap
    assert capped and f"{int(rec['recognised'].sum())} on which the model recognises" in line
    assert f"at most {model_report.POSITION_PAIRS} measured" in line
    assert [s["verdict"] for s in record["sides"]] == list(st.verdicts["verdict"])
    assert [c["contrast"] for c in record["contrasts"]] == ["top-bottom", "left-right"]
    assert record["blind"] + record["no_blind_band"] + record["undecided"] != []
    assert set(record["objects"]) == set(st.objects) and record["backgrounds"] == st.backgrounds
    page = report_html(rep)
    assert "<h2>5. Objects at every position</h2>" in page and "<b>Figure 5.</b> Objects at every position." in page
    assert _images(page) == _images(report_html(without)) + 1  # its one figure
    rows = position_rows(st)
    assert list(rows["verdict"][:4]) == list(st.verdicts["verdict"]) and len(rows) == 6


def test_turned_off_the_report_is_as_before(reports):
    with_stage, without = reports
    assert without.positions is None and "positions" not in without.seconds
    assert "positions" not in without.summary_record()
    assert not any("Objects at every position" in s for s in without.summary_lines())
    assert with_stage.summary_lines()[:-1] == without.summary_lines()  # the stage runs last, changes nothing else
    pd.testing.assert_frame_equal(with_stage.predictions, without.predictions)
    page = report_html(without)
    assert "Objects at every position" not in page and "Figure 5" not in page and "Table 6" not in page
    rep = model_report.report(_classifier(), 8, size=SIZE, progress=False, n_boot=20, positions=None)
    assert rep.positions is None


def _planted_stage(rows: dict, n: int = 4) -> PositionStage:
    """A stage whose summary holds the planted (estimate, low, high) per side; the verdicts by blind_sides."""
    summary = pd.DataFrame([{"object": POOLED, "side": s, "estimate": e, "ci_low": lo, "ci_high": hi, "p": 0.5,
                             "p_holm": 1.0, "n_backgrounds": n, "direction": ""}
                            for s, (e, lo, hi) in rows.items()])
    summary.attrs.update(level=0.95)
    st = PositionStage(5, 56, objects={"cat": 281}, target_names={"cat": "tabby"}, centre_prob={"cat": 0.2},
                       backgrounds=[f"bg{i}" for i in range(n)])
    st.recognition = pd.DataFrame({"object": "cat", "background": st.backgrounds + ["dark"], "target": 281,
                                   "centre_prob": 0.2, "rank": 0, "recognised": [True] * n + [False],
                                   "kept": [True] * n + [False]})
    st.summary, st.verdicts = summary, blind_sides(summary, st.sesoi, object=POOLED).table
    return st


FLAT = (0.0, -0.05, 0.05)


def test_summary_line_says_which_side_is_blinder():
    st = _planted_stage({"top": (-0.5, -0.6, -0.4), "bottom": FLAT, "left": FLAT, "right": (-0.1, -0.4, 0.2),
                         "top-bottom": (-0.5, -0.6, -0.4), "left-right": FLAT})
    assert st.sides("blind") == ["top"] and st.sides("no blind band") == ["bottom", "left"]
    line = st.summary_line()
    assert ": the top side resolved blinder than the interior by more than 0.10 nats (Holm over the four sides): " \
           "top -0.50 [-0.60, -0.40] nats; a blind band of 0.10 nats ruled out on the bottom and left; undecided " \
           "on the right." in line
    assert line.startswith("Objects at every position (1 object of 56 px at 5x5 positions on 4 backgrounds; 4 of 5 "
                           "object-background pairs kept, those on which the model recognises the object centred (its "
                           "class in the model's top 5 at probability >= 0.05); change in the log-probability")
    assert "no side" not in line
    record = st.record()
    assert record["blind"] == ["top"] and record["undecided"] == ["right"]
    assert record["objects"] == {"cat": {"target": 281, "target_name": "tabby", "centre_prob_median": 0.2,
                                         "n_backgrounds": None}}  # planted: no table
    assert record["recognition"] == {"pairs_tried": 5, "pairs_recognised": 4, "pairs_kept": 4, "backgrounds_tried": 5,
                                     "backgrounds_recognised": 4, "top_k": 5, "min_prob": 0.05, "max_pairs": 18}
    two = _planted_stage({"top": (-0.5, -0.6, -0.4), "bottom": FLAT, "left": (-0.7, -0.8, -0.6), "right": FLAT})
    assert "the top and left sides resolved blinder" in two.summary_line()
    assert "top -0.50 [-0.60, -0.40] nats; left -0.70 [-0.80, -0.60] nats" in two.summary_line()


def test_summary_line_says_no_side_is_blinder():
    """The interval below -sesoi unadjusted but not after Holm: not blind, and the line does not say so."""
    st = _planted_stage({"top": (-0.4, -0.6, -0.2), "bottom": FLAT, "left": (0.01, -0.3, 0.3), "right": FLAT})
    assert st.sides("blind") == []
    line = st.summary_line()
    assert ": no side resolved blinder than the interior by more than 0.10 nats (4 backgrounds; lowest: top -0.40 " \
           "[-0.60, -0.20] nats); a blind band of 0.10 nats ruled out on the bottom and right; undecided on the top " \
           "and left." in line
    assert "side resolved blinder:" not in line and "sides resolved" not in line
    flat = _planted_stage({s: FLAT for s in ("top", "bottom", "left", "right")})
    assert flat.summary_line().endswith("(4 backgrounds; lowest: top 0.00 [-0.05, +0.05] nats); a blind band of "
                                        "0.10 nats ruled out on the top, bottom, left and right.")


@pytest.mark.parametrize("kind, reason", [("dense", "dense map of shape (12, 8, 8), not class logits"),
                                          ("3d", "cannot be read as class logits")])
def test_a_model_without_class_logits_is_skipped_with_its_reason(kind, reason, probe):
    model = _classifier(kind)
    before = _snapshot(model)
    st = position_stage(model, probe, SIZE, 5)
    _assert_untouched(model, before)
    assert reason in st.skipped and st.table is None and st.verdicts is None
    assert st.summary_line() == f"Objects at every position: not run ({st.skipped})."
    assert st.record() == {"skipped": st.skipped}
    section = _positions_section(st, None)
    assert "Not run: " in section and "<img" not in section
    rep = _planted()
    rep.positions = st
    assert rep.summary_record()["positions"] == {"skipped": st.skipped}
    assert rep.summary_lines()[-1] == st.summary_line()


def test_a_tuple_output_is_read_by_its_logits(probe):
    st = position_stage(_classifier("tuple"), probe, SIZE, 3)
    assert not st.skipped and len(st.verdicts) == 4


def test_grey_models_and_too_few_photographs_are_skipped(probe, tmp_path):
    grey = nn.Sequential(nn.Conv2d(1, 4, 3, 1, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    assert "1-channel images" in position_stage(grey, probe, SIZE, 3).skipped
    from PIL import Image
    for i in range(2):
        Image.new("RGB", (40, 40), (40 * i, 90, 200)).save(tmp_path / f"p{i}.png")
    with pytest.warns(UserWarning, match="only 2 usable image"):
        two = padlib.probe_images(8, size=SIZE, image_dir=str(tmp_path))
    assert position_stage(_classifier(), two, SIZE, 3).skipped == ("the probe has 2 photographs; the stage needs "
                                                                   "one for an object and 3 others as backgrounds")


def test_the_stage_runs_a_training_model_in_eval_mode(probe):
    """Dropout off, BatchNorm on its running statistics: two runs agree, and the model is left in train mode."""
    model = _net()
    one, two = position_stage(model, probe, SIZE, 3), position_stage(model, probe, SIZE, 3)
    assert model.training and not one.skipped
    pd.testing.assert_frame_equal(one.recognition, two.recognition)
    pd.testing.assert_frame_equal(one.table, two.table)


def test_report_with_the_stage_leaves_the_model_untouched():
    model = _net()  # train mode, a frozen BatchNorm, dropout
    model[0].register_forward_hook(lambda *a: None)
    before = _snapshot(model)
    rep = model_report.report(model, 8, size=SIZE, progress=False, n_boot=20, positions=3)
    assert rep.positions is not None and not rep.positions.skipped
    _assert_untouched(model, before)


@pytest.mark.parametrize("positions", [2, 1, -1, 16, 3.0, True, "5"])
def test_bad_positions_are_refused_in_one_line_before_any_work(positions):
    with pytest.raises(padlib.PadlibError, match=r"^positions must be 0 or None .* whole number from 3 to 15"):
        padlib.report("no_such_model_xyz", images=8, positions=positions)  # refused before the name is looked up
    with pytest.raises(padlib.PadlibError, match=r"^positions=9: 9 positions do not fit"):
        padlib.report(_classifier(), images=8, size=8, positions=9)


def test_the_target_is_the_class_the_model_gives_the_objects_photograph(probe):
    """Not the class of the small object centred on a background (mostly the background's class)."""
    from padlib.blind_spot_maps import make_background
    from padlib.models import preprocessing

    model = _classifier()
    st = position_stage(model, probe, SIZE, 3)
    full = torch.stack([make_background(probe._open(j), SIZE) for j in range(model_report.POSITION_OBJECTS)])
    with torch.no_grad():
        expected = model(preprocessing(model).normalize(full)).argmax(1).tolist()
    rec = st.recognition.drop_duplicates("object")
    assert list(rec["target"]) == expected and list(rec["object"]) == probe.source_names[:len(expected)]
    assert all(st.objects[o] == t for o, t in zip(rec["object"], expected) if o in st.objects)
    assert set(st.table["target"]) <= set(expected)
    assert all(0.05 <= p <= 1 for p in st.centre_prob.values()) and set(st.centre_prob) == set(st.objects)


# The planted classifier: one-colour photographs. Objects (the first five files): four colours with no green, each
# its own class (0-3), and a fifth, mid-green, whose class (4) reads the green of the top-left pixel: its photograph
# alone earns it, but centred the pixel is the background's, so it is recognised nowhere. Backgrounds (the next
# eight): quiet (green 0) or loud (green 1). Classes 0-3 read the colour at the canvas's centre (the object, centred);
# 15 loud classes (5-19) read the top-left pixel's green: on a loud background they outrank the object's class.
OBJECT_COLOURS = [(255, 0, 0), (0, 0, 255), (255, 0, 255), (128, 0, 0), (0, 77, 0)]


class _ColourNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)  # RGB input for the stage's check; its output is not used
        self.register_buffer("protos", torch.tensor(OBJECT_COLOURS[:4], dtype=torch.float32) / 255)
        self.padlib_preprocessing = padlib.preprocessing(nn.Identity()).__class__(input_size=SIZE, mean=(0, 0, 0),
                                                                                   std=(1, 1, 1))

    def forward(self, x):
        c = x.shape[-1] // 2
        centre = x[:, :, c - 2:c + 2, c - 2:c + 2].mean((2, 3))
        g = x[:, 1, 0, 0]
        own = -50 * ((centre[:, None, :] - self.protos[None]) ** 2).sum(-1)  # classes 0-3: 0 when the colour matches
        mid = (10 - 200 * (g - 77 / 255) ** 2)[:, None]  # class 4: 10 on the mid-green photograph, -8 on green 0
        loud = (20 * g - 5)[:, None].expand(-1, 15)  # classes 5-19: -5 on green 0, +15 on green 1
        return torch.cat([own, mid, loud], 1)


def _colour_probe(tmp_path, loud):
    from PIL import Image
    colours = OBJECT_COLOURS + [(60, 255 if g else 0, 120) for g in loud]
    for i, col in enumerate(colours):
        Image.new("RGB", (40, 40), col).save(tmp_path / f"p{i:02d}.png")
    return padlib.probe_images(len(colours), size=SIZE, image_dir=str(tmp_path))


def test_only_pairs_recognised_centred_are_measured(tmp_path):
    loud = [False, True, False, True, False, True, True, True]  # quiet backgrounds: p05, p07 and p09
    model = _ColourNet()
    before = _snapshot(model)
    st = position_stage(model, _colour_probe(tmp_path, loud), SIZE, 3)
    _assert_untouched(model, before)
    assert not st.skipped
    rec = st.recognition
    assert len(rec) == 5 * 8 and list(rec["object"].unique()) == [f"p{i:02d}.png" for i in range(5)]
    assert list(rec.drop_duplicates("object")["target"]) == [0, 1, 2, 3, 4]  # p04's photograph alone: class 4
    quiet = ["p05.png", "p07.png", "p09.png"]
    expected = {(f"p{i:02d}.png", b) for i in range(4) for b in quiet}
    assert set(zip(rec.loc[rec["recognised"], "object"], rec.loc[rec["recognised"], "background"])) == expected
    assert (rec["recognised"] == rec["kept"]).all()  # 12 pairs: under the cap
    assert rec.loc[~rec["recognised"], "centre_prob"].max() < model_report.POSITION_MIN_PROB
    assert set(zip(st.table["object"], st.table["background"])) == expected  # the rest never measured
    assert len(st.table) == 12 * 9 and "p04.png" not in st.objects and st.backgrounds == quiet
    assert list(st.objects) == ["p00.png", "p01.png", "p02.png", "p03.png"]
    assert (st.verdicts["n_backgrounds"] == 3).all()
    assert all(p > 0.5 for p in st.centre_prob.values())
    record = st.record()
    assert record["recognition"] == {"pairs_tried": 40, "pairs_recognised": 12, "pairs_kept": 12,
                                     "backgrounds_tried": 8, "backgrounds_recognised": 3, "top_k": 5,
                                     "min_prob": 0.05, "max_pairs": 18}
    assert record["backgrounds"] == quiet and {o["n_backgrounds"] for o in record["objects"].values()} == {3}
    line = st.summary_line()
    assert line.startswith("Objects at every position (4 objects of 8 px at 3x3 positions on 3 backgrounds; 12 of "
                           "40 object-background pairs kept, those on which the model recognises the object centred "
                           "(its class in the model's top 5 at probability >= 0.05); change in")
    page = _positions_section(st, position_figure(st))
    assert "mean over 3 backgrounds of the objects recognised on each (4 objects, 12 pairs;" in page
    assert "Only the pairs on which the model sees the object are measured: 12 of 40 object-background" in page


def test_too_few_backgrounds_with_a_recognised_pair_skip_the_stage(tmp_path):
    loud = [False, True, False, True, True, True, True, True]  # two quiet backgrounds
    st = position_stage(_ColourNet(), _colour_probe(tmp_path, loud), SIZE, 3)
    reason = ("objects recognised centred on 8 of 40 object-background pairs, on 2 of 8 backgrounds (at least 3 "
              "backgrounds needed; recognised: the object's class in the model's top 5 at probability >= 0.05)")
    assert st.skipped == reason and st.table is None and st.verdicts is None
    assert st.summary_line() == f"Objects at every position: not run ({reason})."
    assert "\n" not in st.summary_line()
    assert st.record() == {"skipped": reason, "recognition": {
        "pairs_tried": 40, "pairs_recognised": 8, "pairs_kept": 8, "backgrounds_tried": 8,
        "backgrounds_recognised": 2, "top_k": 5, "min_prob": 0.05, "max_pairs": 18}}
    section = _positions_section(st, None)
    assert section == f"<h2>5. Objects at every position</h2><p>Not run: {html.escape(reason)}.</p>"


def test_the_cap_keeps_every_background_before_a_second_object():
    pairs = [(o, b) for o in "abc" for b in range(8)]
    kept = model_report._kept_pairs(pairs, 18)
    assert len(kept) == 18 and {b for _, b in kept} == set(range(8))
    assert {o for o, _ in kept if o in "ab"} == {"a", "b"} and sum(o == "c" for o, _ in kept) == 2
    assert model_report._kept_pairs(pairs[:5], 18) == set(pairs[:5])
