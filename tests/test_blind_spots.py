"""Chapter 4's trained design (small detectors): the canvases, the heat-map cells, the positive control's padding,
recall by position read off a planted heat map, the map and side summaries on planted maps, and a tiny study end to
end (deterministic, model-agnostic of workers)."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import padlib
from padlib.errors import PadlibError
from padlib.experiments import ch4_blind_spots as ch4_design
from padlib.experiments import ch4_detection as det
from padlib.stats import holm_adjust


def test_heat_map_cells_and_targets():
    assert det.heat_map_size(96) == 12 and det.heat_map_size(97) == 13
    net = det.SmallDetector(4, mean=0.3, std=0.25).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 1, 96, 96)).shape == (2, 12, 12)
        assert net(torch.rand(2, 1, 97, 97)).shape == (2, 13, 13)
    # cell i is centred on pixel 8 i: a ring centred at 3.5 is cell 0, at 4.5 cell 1, past the last cell clipped
    assert [det._cell(c, 12) for c in (0.0, 3.5, 4.5, 11.9, 12.1, 93.0)] == [0, 0, 1, 1, 2, 11]
    y = det.heat_targets([[(2.5, 90.5)], []], 96)
    assert y.shape == (2, 12, 12) and y[0, 0, 11] == 1 and y.sum() == 1


def test_the_uneven_size_reads_only_top_left_padding_at_every_stride2_layer():
    net = det.SmallDetector(4, mean=0.3, std=0.25)
    for size, uneven in ((96, 5), (97, 0)):
        audit = padlib.padding_audit(net, size)
        strided = audit[audit["stride"] == "2x2"]
        assert len(strided) == 5
        assert int(strided["uneven"].sum()) == uneven, (size, strided[["uneven"]])
        if uneven:
            assert set(strided["extra_sides"]) == {"top,left"}


def test_shapes_and_canvases():
    ring, open_ring, square = (det.shape_patch(s, 6) for s in det.SHAPES)
    assert ring.sum() == 20 and square.sum() == 36 and open_ring.sum() == 18
    assert (det.shape_patch("open ring", 6, "top")[0] == 0).sum() == 2  # the gap is in the top side
    with pytest.raises(PadlibError, match="unknown shape"):
        det.shape_patch("star", 6)
    a, ca = det.detection_canvases(8, 96, seed=3)
    b, cb = det.detection_canvases(8, 96, seed=3)
    assert torch.equal(a, b) and ca == cb and a.shape == (8, 1, 96, 96)
    assert 0 <= float(a.min()) and float(a.max()) <= 1
    assert all(0 <= y <= 95 and 0 <= x <= 95 for cs in ca for y, x in cs)


def test_position_test_set_touches_both_borders_and_is_deterministic():
    images, place = det.position_test_set(96, object_size=6, step=10, n_backgrounds=2)
    tops = sorted(place["top"].unique())
    assert tops[0] == 0 and tops[-1] == 90 and len(place) == len(tops) ** 2 * 2
    assert images.shape == (len(place), 1, 96, 96)
    images2, place2 = det.position_test_set(96, object_size=6, step=10, n_backgrounds=2)
    assert torch.equal(images, images2)
    with pytest.raises(PadlibError, match="object_size"):
        det.position_test_set(96, object_size=40)


class _PlantedHeat(nn.Module):
    """A 'detector' whose heat map is known: logit ``inside`` everywhere, ``border`` on the first cell row."""

    def __init__(self, inside: float, border: float, cells: int = 12):
        super().__init__()
        self.inside, self.border, self.cells = inside, border, cells

    def forward(self, x):
        y = torch.full((x.shape[0], self.cells, self.cells), self.inside)
        y[:, 0] = self.border
        return y


@pytest.mark.parametrize("border, recall", [(-3.0, 0.0), (-0.01, 0.0), (0.01, 1.0)])
def test_recall_by_position_reads_the_rings_cell_near_the_threshold(border, recall):
    images, place = det.position_test_set(96, object_size=6, step=2, n_backgrounds=1)
    pos = det.detection_by_position(_PlantedHeat(2.0, border), images, place, 96)
    first = pos[pos["top"] == 0]  # centre 2.5: cell row 0
    assert (first["recall"] == recall).all()
    assert (pos[pos["top"] >= 2]["recall"] == 1.0).all()  # centre 4.5 and beyond: other rows
    assert np.isclose(first["confidence"].mean(), border)


def _planted_map(side=None, drop=0.3, size=96, step=2, edge=4):
    grid = list(range(0, size - 6 + 1, step))
    g = np.full((len(grid), len(grid)), 0.8)
    if side == "top":
        g[:edge] -= drop
    elif side == "bottom":
        g[-edge:] -= drop
    elif side == "left":
        g[:, :edge] -= drop
    elif side == "right":
        g[:, -edge:] -= drop
    return pd.DataFrame([{"y": y, "x": x, "recall": g[i, j]} for i, y in enumerate(grid) for j, x in enumerate(grid)])


@pytest.mark.parametrize("side, metric, sign", [("top", "top_minus_bottom", -1), ("bottom", "top_minus_bottom", 1),
                                                ("left", "left_minus_right", -1), ("right", "left_minus_right", 1)])
def test_planted_blind_band_is_found_on_its_side(side, metric, sign):
    edge = det.band_steps(2)
    assert edge == 4  # one 8-px heat-map cell of 2-px steps
    flat = ch4_design.map_summary(_planted_map(), edge, value="recall")
    assert all(abs(flat[m]) < 1e-9 for m in ch4_design.METRICS[1:])
    assert all(abs(v) < 1e-9 for v in det.side_deficits(_planted_map(), edge).values())
    planted = ch4_design.map_summary(_planted_map(side), edge, value="recall")
    assert sign * planted[metric] > 0.25 and planted["border_deficit"] < -0.05
    deficits = det.side_deficits(_planted_map(side), edge)
    assert deficits[f"{side}_deficit"] == pytest.approx(-0.3 + 0.0, abs=0.06)
    assert all(abs(v) < 0.1 for k, v in deficits.items() if k != f"{side}_deficit")
    assert side in planted["worst_region"]
    # near the threshold: a 1-point band is still seen, on its side, and is the only one
    small = det.side_deficits(_planted_map(side, drop=0.01), edge)
    assert min(small, key=small.get) == f"{side}_deficit"


def test_noisy_side_padding_fills_only_its_side_and_is_reproducible():
    x = torch.ones(1, 1, 4, 4)
    for side, region in (("top", (slice(0, 1), slice(None))), ("left", (slice(None), slice(0, 1)))):
        pad = det.NoisySidePadding(side, 3.0, torch.Generator().manual_seed(0))
        out = pad.pad(x, (1, 1, 1, 1))
        mask = torch.zeros(6, 6, dtype=torch.bool)
        mask[region] = True
        inner = torch.zeros(6, 6, dtype=torch.bool)
        inner[1:5, 1:5] = True
        assert (out[0, 0][mask] != 0).all() and (out[0, 0][~mask & ~inner] == 0).all()
        assert torch.equal(out[0, 0][inner], torch.ones(16))
    a = det.NoisySidePadding("top", 3.0, torch.Generator().manual_seed(5)).pad(x, (1, 1, 1, 1))
    b = det.NoisySidePadding("top", 3.0, torch.Generator().manual_seed(5)).pad(x, (1, 1, 1, 1))
    assert torch.equal(a, b)
    with pytest.raises(PadlibError, match="side"):
        det.NoisySidePadding("middle")
    base = det.SmallDetector(4)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    noisy = det.with_noisy_side(base, "top", 3.0, 0)
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert all(type(m).__name__ == "Conv2d" for m in base.modules() if isinstance(m, nn.Conv2d))
    schemes = {type(m.scheme).__name__ for m in noisy.modules() if hasattr(m, "scheme")}
    assert schemes == {"NoisySidePadding"}


def test_tiny_study_end_to_end_is_deterministic():
    kw = dict(seeds=(0, 1), schemes=("zero", "circular"), width=2, steps=2, n_train=16, step=30, n_backgrounds=1,
              workers=1, progress=False)
    a, b = det.detection_study(**kw), det.detection_study(**kw)
    assert len(a.summary) == 2 * 2 * 2 + 2  # sizes x schemes x seeds, plus the control at 96 px
    assert set(a.summary["scheme"]) == {"zero", "circular", det.CONTROL}
    pd.testing.assert_frame_equal(a.summary.drop(columns="cpu_seconds"), b.summary.drop(columns="cpu_seconds"))
    pd.testing.assert_frame_equal(a.maps, b.maps)
    assert {"top_deficit", "border_deficit", "false_alarms"} <= set(a.summary.columns)
    assert set(a.energy["scheme"]) == {"zero", "circular"} and a.settings["task"] == "detection"
    tests = det.detection_tests(a.summary)
    assert {"zone", "side", "even size", "positive control"} <= set(tests["family"])
    with pytest.raises(PadlibError, match="at least 2 seeds"):
        det.detection_study(seeds=(0,), progress=False)


def test_holm_is_step_down_and_monotone():
    assert np.allclose(holm_adjust([0.01, 0.04, 0.03, 0.5, float("nan")]), [0.05, 0.12, 0.12, 1.0, 1.0])


def test_recall_by_position_leaves_every_modules_mode_as_it_found_it():
    net = det.SmallDetector(2, mean=0.3, std=0.25).train()
    net.stages[0][1].eval()  # a user's frozen BatchNorm inside a training model
    images, place = det.position_test_set(96, object_size=6, step=45, n_backgrounds=1)
    det.detection_by_position(net, images, place, 96)
    det.false_alarms(net, 96, n=2)
    assert net.training and not net.stages[0][1].training and net.stages[1][1].training
