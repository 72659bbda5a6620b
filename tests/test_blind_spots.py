"""The matched blind-spot experiment (chapter 4): accuracy maps over digit positions, their summary, paired effects.

Planted case: a translation-invariant template classifier made blind to a band along one border; the map summary
finds the band on that side and nothing in the unmasked control. The paired-effects rule on planted summaries."""
import numpy as np
import pandas as pd
import pytest

from padlib.stats import holm_adjust
from padlib.errors import PadlibError
from padlib.chapters import ch4_blind_spots as ch4_readings
from padlib.experiments import ch4_blind_spots as ch4_design
from padlib.experiments import planted as planted_cases


def test_position_grid_touches_both_borders():
    assert ch4_design.position_grid(48, 12, 3)[0] == 0 and ch4_design.position_grid(48, 12, 3)[-1] == 36
    assert ch4_design.position_grid(49, 12, 3)[-1] == 37 and len(ch4_design.position_grid(49, 12, 3)) == 14
    with pytest.raises(PadlibError, match="does not fit"):
        ch4_design.position_grid(10, 12, 3)
    with pytest.raises(PadlibError, match="positive"):
        ch4_design.position_grid(48, 12, 0)


@pytest.fixture(scope="module")
def black_maps():
    return ch4_design.map_images(48, 12, 3, 24, texture_range=(0.0, 0.0))


@pytest.mark.parametrize("side, metric, sign", [("top", "top_minus_bottom", -1), ("bottom", "top_minus_bottom", 1),
                                                ("left", "left_minus_right", -1), ("right", "left_minus_right", 1)])
def test_planted_blind_band_is_found_on_its_side(black_maps, side, metric, sign):
    images, labels, placement = black_maps
    clf = planted_cases.template_classifier(12)
    control = ch4_design.map_summary(ch4_design.accuracy_map(clf, images, labels, placement))
    assert control["mean"] > 0.9  # the template classifier reads these digits anywhere
    for m in ch4_design.METRICS[1:]:
        assert abs(control[m]) < 0.05, (m, control[m])
    planted = ch4_design.map_summary(ch4_design.accuracy_map(planted_cases.masked_band(clf, side, 8), images, labels, placement))
    assert sign * planted[metric] > 0.5
    assert planted["border_deficit"] < -0.1 and planted["worst_drop"] > 0.3
    other = "left_minus_right" if metric == "top_minus_bottom" else "top_minus_bottom"
    assert abs(planted[other]) < 0.05
    assert side in planted["worst_region"]


def _summary(size_effect: float, scheme_effect: float, seeds=range(6), noise: float = 0.01):
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for size in (48, 49):
            for scheme in ("zero", "circular"):
                tb = (size_effect if size == 48 and scheme == "zero" else 0.0) + noise * rng.standard_normal()
                bd = (scheme_effect if scheme == "circular" else 0.0) - 0.05 + noise * rng.standard_normal()
                rows.append({"size": size, "scheme": scheme, "seed": seed, "mean": 0.8, "border_deficit": bd,
                             "top_minus_bottom": tb, "left_minus_right": noise * rng.standard_normal(),
                             "worst_drop": 0.1 + noise * rng.standard_normal(), "worst_region": "top"})
    return pd.DataFrame(rows)


def _excludes_zero(t):
    return (t["ci_low"] > 0) | (t["ci_high"] < 0)


def test_paired_effects_find_planted_effects_and_only_them():
    eff = ch4_design.paired_effects(_summary(-0.15, 0.08))
    got = {(r.effect, r.scheme, r.metric, None if pd.isna(r.size) else int(r.size)) for r in eff[_excludes_zero(eff)].itertuples()}
    assert got == {("size", "zero", "top_minus_bottom", None), ("padding", "circular", "border_deficit", 48),
                   ("padding", "circular", "border_deficit", 49)}
    size_row = eff[(eff.effect == "size") & (eff.scheme == "zero") & (eff.metric == "top_minus_bottom")].iloc[0]
    assert size_row.ci_low < -0.15 < size_row.ci_high and size_row.half_width < 0.05
    assert not {"resolved", "p_holm"} & set(eff.columns)  # no floor, no adjustment over every test: the readings adjust
    null = ch4_design.paired_effects(_summary(0.0, 0.0))
    assert _excludes_zero(null).sum() <= 1
    assert eff.attrs["uneven"] == 48 and eff.attrs["even"] == 49 and eff.attrs["n_tests"] == len(eff)
    assert eff.attrs["seeds"] == 6
    # a consistent effect under the old 2-point floor is now an effect: no floor is stacked on the interval
    tiny = ch4_design.paired_effects(_summary(-0.01, 0.0, noise=0.0001))
    row = tiny[(tiny.effect == "size") & (tiny.scheme == "zero") & (tiny.metric == "top_minus_bottom")].iloc[0]
    assert row.ci_high < 0


def test_effect_lines_count_the_intervals_that_exclude_zero():
    eff = ch4_design.paired_effects(_summary(-0.15, 0.08))
    k = int(_excludes_zero(eff).sum())
    lines = ch4_readings.effect_lines(eff)
    assert lines[0].startswith(f"{k} of {len(eff)} paired differences")
    assert len(lines) == 1 + k + 1
    null = ch4_design.paired_effects(_summary(0.0, 0.0))
    assert ch4_readings.effect_lines(null)[0].startswith(f"{int(_excludes_zero(null).sum())} of {len(null)}")


def test_holm_is_step_down_and_monotone():
    assert np.allclose(holm_adjust([0.01, 0.04, 0.03, 0.5, float("nan")]), [0.05, 0.12, 0.12, 1.0, 1.0])


def test_matched_study_runs_end_to_end_and_is_deterministic():
    kw = dict(schemes=("zero", "circular"), seeds=(0, 1), n_train=96, n_eval=32, epochs=0.5, width=4, step=9,
              n_digits=4, progress=False)
    a, b = ch4_design.matched_study(**kw), ch4_design.matched_study(**kw)
    assert len(a.summary) == 2 * 2 * 2 and set(a.summary["size"]) == {48, 49}
    pd.testing.assert_frame_equal(a.summary, b.summary)
    assert set(a.maps.groupby(["size", "scheme", "seed"]).size()) == {25, 36}  # 5x5 grid at 48, 6x6 at 49
    eff = ch4_design.paired_effects(a.summary)
    assert {"size", "padding"} == set(eff.effect)
    with pytest.raises(PadlibError, match="at least 2 seeds"):
        ch4_design.matched_study(seeds=(0,), progress=False)


