"""Chapter 4's trained detectors' border reach (tile overlap): the rows exist for the networks on the stride-32
lattice only (96 px, not 97), measuring them changes no network, a tiny study is deterministic, the sentence's
comparison words and counts go each way on planted tables, and the figure draws."""
import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from padlib.chapters import ch4_reach as ch4  # noqa: E402
from padlib.errors import PadlibError  # noqa: E402
from padlib.experiments import ch4_detection as det  # noqa: E402
from padlib.viz import ch4_blind_spots as figures  # noqa: E402

# the quick study of tests/test_blind_spots.py (both sizes, two schemes, two seeds, the control at 96 px)
TINY = dict(seeds=(0, 1), schemes=("zero", "circular"), width=2, steps=2, n_train=16, step=30, n_backgrounds=1,
            workers=1, progress=False)
INF = math.inf


@pytest.fixture(scope="module")
def tiny():
    return det.detection_study(**TINY)


def test_reach_rows_exist_for_the_96px_networks_only(tiny):
    assert set(tiny.reach["size"]) == {96} and set(tiny.reach_summary["size"]) == {96}
    nets = set(zip(tiny.summary["size"], tiny.summary["scheme"], tiny.summary["seed"]))
    got = set(zip(tiny.reach_summary["size"], tiny.reach_summary["scheme"], tiny.reach_summary["seed"]))
    assert got == {k for k in nets if k[0] == 96}  # every 96-px network, the noisy-top control too
    assert list(tiny.reach.columns[:6]) == ["size", "scheme", "seed", "tile", "distance", "error"]
    assert set(tiny.reach_summary["tile"]) == {96, 192}
    for col in ("margin_top", "margin_bottom", "margin_left", "margin_right", "overlap_rows", "overlap_cols",
                "overlap", "overlap_low", "overlap_high"):
        assert col in tiny.reach_summary
    assert (tiny.reach["error"] >= 0).all() and tiny.reach["distance"].max() <= 88
    assert tiny.settings["reach"]["tolerance"] == 0.01
    assert 0 < tiny.seconds["border reach (cpu, all networks)"] < 20


def test_the_reach_changes_no_network_and_the_tiny_study_is_deterministic(tiny):
    again = det.detection_study(**TINY)
    pd.testing.assert_frame_equal(tiny.reach, again.reach)
    pd.testing.assert_frame_equal(tiny.reach_summary.drop(columns="cpu_seconds"),
                                  again.reach_summary.drop(columns="cpu_seconds"))
    without = det.detection_study(**TINY, reach=False)
    assert not len(without.reach) and not len(without.reach_summary) and without.settings["reach"] is None
    pd.testing.assert_frame_equal(tiny.summary.drop(columns="cpu_seconds"),
                                  without.summary.drop(columns="cpu_seconds"))
    for name in ("maps", "curves", "energy"):
        pd.testing.assert_frame_equal(getattr(tiny, name), getattr(without, name))


def test_detector_reach_refuses_an_off_lattice_size_and_leaves_the_modes():
    net = det.SmallDetector(2, mean=0.3, std=0.25).train()
    net.stages[0][1].eval()  # a user's frozen BatchNorm inside a training model
    with pytest.raises(PadlibError, match="multiple of the detector's stride 32"):
        det.detector_reach(net, 97)
    table, rows = det.detector_reach(net, 96, dict(tiles=(2,), images=2, n_boot=20))
    assert set(table["tile"]) == {192} and len(rows) == 1 and rows["n_images"].iloc[0] == 2
    assert net.training and not net.stages[0][1].training and net.stages[1][1].training


# ---------------------------------------------------------------------------------------------------------
# the sentence, on planted tables


def _planted(margins: dict, tile: int = 192, seeds: int = 4) -> pd.DataFrame:
    """reach_summary rows: per scheme, per-seed margins (top, bottom, left, right), each a value or a list per seed."""
    rows = []
    for scheme, m in margins.items():
        for s in range(seeds):
            side = {k: (v[s] if isinstance(v, (list, tuple)) else v)
                    for k, v in zip(("top", "bottom", "left", "right"), m)}

            def up(px):
                return math.ceil(px / 32) * 32 if math.isfinite(px) else INF

            r_rows, r_cols = up(side["top"] + side["bottom"]), up(side["left"] + side["right"])
            rows.append({"size": 96, "scheme": scheme, "seed": s, "tile": tile, "tolerance": 0.01, "align": 32,
                         "max_distance": tile // 2 - 8, **{f"margin_{k}": float(v) for k, v in side.items()},
                         "overlap_rows": float(r_rows), "overlap_cols": float(r_cols),
                         "overlap": float(max(r_rows, r_cols))})
    return pd.DataFrame(rows)


def _lines(df):
    return ch4.reach_lines(df)


def test_reach_words_go_both_ways():
    longer = _planted({"zero": ([40, 40, 48, 40], 8, [40, 48, 40, 40], 8), "symmetric": ([16, 24, 16, 16], 8, 16, 8)})
    t = det.reach_tests(longer)
    assert t.iloc[0]["mean"] > 0 and t.iloc[0]["p_adj"] < 0.05
    assert "zero longer than symmetric" in _lines(longer)[-1]
    shorter = _planted({"zero": ([16, 24, 16, 16], 8, 16, 8), "symmetric": ([40, 40, 48, 40], 8, [40, 48, 40, 40], 8)})
    assert "symmetric longer than zero" in _lines(shorter)[-1]
    assert "zero minus symmetric -" in _lines(shorter)[-1]
    noisy = _planted({"zero": ([40, 16, 48, 8], 8, 16, 8), "symmetric": ([16, 40, 8, 48], 8, 16, 8)})
    last = _lines(noisy)[-1]
    assert "zero against symmetric not resolved (zero minus symmetric" in last
    assert "longer" not in last.split(": ", 1)[1]
    same = _planted({"zero": (40, 8, 40, 8), "symmetric": (40, 8, 40, 8), "circular": (40, 8, 40, 8)})
    assert "the same for zero, symmetric and circular padding in every seed (4)" in _lines(same)[-1]
    assert "Holm over the 3 pairs compared" in _lines(same)[-1]
    assert "one pair compared, no adjustment" in _lines(longer)[-1] and ", p < 0.001)" in _lines(longer)[-1]


def test_reach_words_need_holm_within_the_family():
    # three pairs; zero vs symmetric alone passes at 0.05 but not after Holm over the three
    base = [40, 40, 40, 40]
    df = _planted({"zero": ([48, 48, 56, 64], 8, 40, 8), "symmetric": (base, 8, 40, 8),
                   "circular": ([40, 48, 32, 48], 8, 40, 8)})
    t = det.reach_tests(df)
    row = t[(t.a == "zero") & (t.b == "symmetric")].iloc[0]
    assert row.p < 0.05 < row.p_adj and t.attrs["family"] == 3
    assert "zero against symmetric not resolved after Holm" in _lines(df)[-1]


def test_reach_overlaps_are_counted_per_scheme_axis_and_seed():
    df = _planted({"zero": (40, 8, [8, 8, 16, 8], 8), "circular": (INF, 8, 40, 8)}, seeds=4)
    lines = _lines(df)
    # zero: rows 48 -> 64, columns 16 -> 32 (24 -> 32): per axis, every seed the same
    assert "with zero padding they need 64 px of overlap in every seed (4) (64 px between tile rows and 32 between " \
           "tile columns;" in lines[0]
    assert "40 px in from a top edge, 8 from a bottom, 8 to 16 from a left and 8 from a right edge" in lines[0]
    assert "with circular padding they are too small in every seed (4)" in lines[0]
    assert "zero against circular: not compared (beyond the tile for circular in 4 of 4 seeds)" in lines[-1]
    mixed = _planted({"zero": ([40, 40, 72, INF], 8, 40, 8)})
    line = _lines(mixed)[0]
    assert "need 64 to 96 px of overlap over 3 of 4 seeds and are too small in the other 1" in line
    assert "differs for 40 to 72 px in from a top edge, 8 from a bottom, 40 from a left and 8 from a right edge" in line
    beyond = _planted({"zero": (INF, 8, INF, 8), "circular": (INF, 8, INF, 8)}, tile=96)
    lines = _lines(beyond)
    assert "Tiles of 96 px (the size the detectors were trained at)" in lines[0]
    assert "with every padding (zero and circular padding) they are too small in every seed (4)" in lines[0]
    assert "at 96 px not readable (every reach is beyond the tile)" in lines[-1]
    assert ch4.reach_lines(pd.DataFrame())[0].startswith("No border reach was measured")


def test_the_control_is_listed_but_never_compared():
    df = _planted({"zero": (40, 8, 40, 8), "noisy top": (INF, 8, 40, 8)})
    lines = _lines(df)
    assert "with the noisy-top control they are too small" in lines[0]
    t = det.reach_tests(df)
    assert not len(t) and "Whose reach" not in lines[-1]


# ---------------------------------------------------------------------------------------------------------
# the figure


def test_the_reach_figure_draws(tiny):
    fig = figures.detection_reach_figure(tiny)
    assert len(fig.axes) == 2 and fig.axes[0].get_yscale() == "symlog"
    labels = fig.axes[-1].get_legend_handles_labels()[1]
    assert labels == ["zero", "circular", "noisy top (control)"]
    assert fig.axes[0].lines[0].get_color() == "#000000"  # zero padding in the book's black
    plt.close(fig)
    caption = figures.detection_reach_caption(tiny)
    assert "black zero padding" in caption and "orange circular padding" in caption and "wine" in caption
    empty = det.DetectionStudy(*[pd.DataFrame()] * 4, {}, {})
    plt.close(figures.detection_reach_figure(empty))
    assert figures.detection_reach_caption(empty).startswith("No border reach was measured")
