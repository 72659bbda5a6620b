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


def test_paired_effects_find_planted_effects_and_only_them():
    eff = ch4_design.paired_effects(_summary(-0.15, 0.08))
    res = eff[eff.resolved]
    got = {(r.effect, r.scheme, r.metric, None if pd.isna(r.size) else int(r.size)) for r in res.itertuples()}
    assert got == {("size", "zero", "top_minus_bottom", None), ("padding", "circular", "border_deficit", 48),
                   ("padding", "circular", "border_deficit", 49)}
    size_row = eff[(eff.effect == "size") & (eff.scheme == "zero") & (eff.metric == "top_minus_bottom")].iloc[0]
    assert size_row.ci_low < -0.15 < size_row.ci_high and size_row.half_width < 0.05
    null = ch4_design.paired_effects(_summary(0.0, 0.0))
    assert not null.resolved.any()
    assert eff.attrs["uneven"] == 48 and eff.attrs["even"] == 49 and eff.attrs["n_tests"] == len(eff)
    tiny = ch4_design.paired_effects(_summary(-0.01, 0.0, noise=0.0001))  # consistent but below the floor
    assert not tiny.resolved.any()
    assert "No effect is resolved" in ch4_readings.effect_lines(null)[0]


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


def test_chapter_findings_box_reads_its_tables():
    """The box's verdicts follow the planted tables: a resolved side effect and deficit, a compensation pattern."""
    from padlib.chapters.findings import findings_markdown

    summary = _summary(-0.15, 0.08)
    summary.loc[summary["scheme"] == "zero", "border_deficit"] -= 0.1  # a blind frame with zero padding
    effects, cells = ch4_design.paired_effects(summary), ch4_design.cell_table(summary)
    energy = pd.DataFrame([{"size": size, "scheme": sc, "seed": seed, "layer": "1",
                            "energy_tb": -0.05 * (size == 48) + 0.001 * seed, "energy_lr": 0.001 * seed}
                           for size in (48, 49) for sc in ("zero", "circular") for seed in range(6)])
    energy_fx = ch4_design.energy_effects(energy)
    comp = pd.DataFrame([{"model": "m", "axis": "top/bottom", "reads_more": "top", "pretrained_trained_size": 0.0,
                          "pretrained_even_size": -0.6, "init_trained_size": 0.5, "init_even_size": 0.0,
                          "verdict": "compensates"}])
    comp.attrs["floor"] = ch4_readings.LEAN_FLOOR
    esum = pd.DataFrame([{"model": "m", "reads": "top/left", "layers": 3, "energy_tb": -0.1, "energy_tb_init_min": -0.01,
                          "energy_tb_init_max": 0.01, "energy_tb_differs": True, "energy_lr": 0.0,
                          "energy_lr_init_min": -0.01, "energy_lr_init_max": 0.01, "energy_lr_differs": False}])
    zoo = {"uneven_at_default": 9, "audited": 10, "share_uneven": 0.9, "uneven_fixed_by_nearest_size": 8}
    box = ch4_readings.chapter_findings_box(zoo, comp, esum, energy_fx, cells, effects)
    verdicts = [f.verdict for f in box]
    assert verdicts[0] == "holds"  # the zoo
    assert verdicts[1] == "not here"  # no axis follows ...
    assert "1 of 1 compensate instead" in box[1].evidence
    assert verdicts[2] == "partly"  # kernels: pretrained 1 of 2 axes, matched networks: top/bottom only
    assert verdicts[3] == "holds"  # the planted frame deficit with zero padding at both sizes
    assert verdicts[4] == "partly"  # top/bottom resolved, left/right not
    assert "Findings" in findings_markdown(box)
