"""padlib report's objects-at-every-position stage (padlib.model_report.position_stage, section 5 of the page).

A tiny classifier at 32 px (fast): the stage runs inside the report, its objects and backgrounds come from different
photographs, its sentence, JSON record, figure and table agree with blind_sides' verdicts, and turning it off
(positions=0 or None) leaves the report as it was. The sentence's two wordings on planted summaries (verdicts
computed by blind_sides, not planted). Models the stage cannot read (a dense map, an output of another shape, grey
input) are skipped with one reason, never a crash. The model is left as it was given."""
import re

import pandas as pd
import pytest
import torch
from torch import nn

import padlib
from padlib import model_report
from padlib.model_report import POOLED, PositionStage, position_stage
from padlib.position_sensitivity import blind_sides
from padlib.viz.report import _positions_section, position_rows, report_html
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
    assert len(st.objects) == model_report.POSITION_OBJECTS and len(st.backgrounds) == model_report.POSITION_BACKGROUNDS
    assert not set(st.objects) & set(st.backgrounds)  # never an object on its own photograph
    assert len(st.table) == len(st.objects) * len(st.backgrounds) * 3 * 3
    assert set(st.table["object"]) == set(st.objects) and set(st.table["background"]) == set(st.backgrounds)
    assert list(st.verdicts["side"]) == ["top", "bottom", "left", "right"]
    assert (st.verdicts["n_backgrounds"] == len(st.backgrounds)).all() and set(st.summary["object"]) == {POOLED}
    assert "positions" in rep.seconds
    line = rep.summary_lines()[-1]
    assert line.startswith("Objects at every position (3 objects of 8 px at 3x3 positions on 6 backgrounds;")
    assert ("no side resolved blinder" in line) is (not st.sides("blind"))
    record = rep.summary_record()["positions"]
    assert record["n_positions"] == 3 and record["sesoi"] == model_report.POSITION_SESOI
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
    assert line.startswith("Objects at every position (1 object of 56 px at 5x5 positions on 4 backgrounds;")
    assert "no side" not in line
    record = st.record()
    assert record["blind"] == ["top"] and record["undecided"] == ["right"]
    assert record["objects"] == {"cat": {"target": 281, "target_name": "tabby", "centre_prob_median": 0.2}}
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
    assert position_stage(_classifier(), two, SIZE, 3).skipped.startswith("the probe has 2 photographs")


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
    full = torch.stack([make_background(probe._open(j), SIZE) for j in range(len(st.objects))])
    with torch.no_grad():
        expected = model(preprocessing(model).normalize(full)).argmax(1).tolist()
    assert list(st.objects.values()) == expected and list(st.objects) == probe.source_names[:len(st.objects)]
    assert set(st.table["target"]) <= set(expected)
    assert all(0 < p <= 1 for p in st.centre_prob.values()) and set(st.centre_prob) == set(st.objects)
