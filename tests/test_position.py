"""PPP measures: near zero / chance for circular padding on stationary inputs, clearly not with zero padding."""
import pytest
import torch

from padlib.errors import PadlibError, ProbeDataError
from padlib.layers import convert_padding
from padlib.position import border_test, place_on_canvas, position_depth_px, position_pattern_strength, position_readout, ppp_measures, ppp_profile, readout_by_distance, stationary_images
from padlib.experiments.digits import digit_patches
from padlib.experiments.ch5_schemes import ppp_at_ceiling, ppp_band_summary, ppp_over_runs
from padlib.experiments.digits import digits_on_canvas
from padlib.experiments.smallnets import vgg_small


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    data = digits_on_canvas(8)
    base = vgg_small(1, 10, width=6, depth=3, mean=data.mean, std=data.std).eval()
    return {s: convert_padding(base, s) for s in ("zero", "circular", "reflect")}


@pytest.fixture(scope="module")
def probe():
    return digits_on_canvas(256, seed=1, split="test").images


def test_stationary_images_are_shifted_copies(probe):
    s = stationary_images(probe[:8], seed=0)
    assert torch.equal(s, stationary_images(probe[:8], seed=0))
    for a, b in zip(probe[:8], s):
        assert torch.equal(a.flatten().sort().values, b.flatten().sort().values)
    mean = stationary_images(probe, seed=0).mean(0)[0]
    assert mean.std() < 0.5 * probe.mean(0)[0].std()  # flatter than the placed digits' mean


def test_pattern_strength_is_noise_for_circular_and_clear_with_zero_padding(nets, probe):
    circ = position_pattern_strength(nets["circular"], probe)
    zero = position_pattern_strength(nets["zero"], probe)
    assert list(circ.layer) == list(zero.layer) and len(circ) == 6
    assert (circ["null_floor"] > 0).all()
    assert circ["excess"].abs().max() < 0.01  # within sampling noise of the null floor
    assert zero["excess"].max() > 0.03
    assert zero["excess"].max() > 5 * circ["excess"].abs().max()
    # without making the probe stationary the placed digits' own layout shows up even for circular padding
    raw = position_pattern_strength(nets["circular"], probe, stationary=False)
    assert raw["excess"].max() > circ["excess"].abs().max()


def test_position_readout_finds_nothing_with_circular_padding(nets, probe):
    circ = position_readout(nets["circular"], probe[:128])
    zero = position_readout(nets["zero"], probe[:128])
    assert set(circ.layer) == set(zero.layer) and "all" in set(circ.layer)
    assert circ.loc[circ.layer == "all", "r2"].max() < 0.05
    assert zero.loc[zero.layer == "all", "r2"].min() > 0.3
    assert zero.loc[zero.layer == "all", "spearman"].min() > 0.5


def test_border_test_is_at_chance_for_circular_padding(nets):
    patches = digit_patches(64, 16, seed=0)
    circ = border_test(nets["circular"], patches, 32)
    zero = border_test(nets["zero"], patches, 32)
    assert (circ["accuracy"] - 0.5).abs().max() <= 0.05
    assert zero.loc[zero.layer == "all", "accuracy"].item() >= 0.9
    assert (circ["n_test"] == 64).all()


def planted_distance_net(reach: int) -> torch.nn.Module:
    """A hand-set network whose features encode the distance to the border up to ``reach`` pixels, whatever the
    image: a 1x1 conv makes a map of ones, and channel (side, j) of a zero-padded (2 reach + 1)-wide conv reads
    the pixel j steps towards that side: 1 on the canvas, 0 in the padding. A pixel at distance d < reach from
    the left border has exactly d of its left channels at 1; beyond ``reach`` every channel is 1."""
    from torch import nn

    ones = nn.Conv2d(1, 1, 1)
    ones.weight.data.zero_()
    ones.bias.data.fill_(1.0)
    k = 2 * reach + 1
    edge = nn.Conv2d(1, 4 * reach, k, padding=reach, bias=False)
    edge.weight.data.zero_()
    c = 0
    for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0)):  # left, right, top, bottom
        for j in range(1, reach + 1):
            edge.weight.data[c, 0, reach + dy * j, reach + dx * j] = 1.0
            c += 1
    return nn.Sequential(ones, edge).eval()


def test_readout_by_distance_finds_a_planted_reach_and_nothing_without_a_border():
    images = torch.rand(16, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    for reach in (4, 12):
        net = planted_distance_net(reach)
        bands = readout_by_distance(net, images, cell=4)
        assert list(bands.distance_px) == list(range(0, 32, 4)) and bands.attrs["cell"] == 4
        inside = bands[bands.distance_px < reach]
        beyond = bands[bands.distance_px >= reach]
        assert (inside.side_accuracy > 0.99).all()  # every cell within the reach knows its side
        assert (beyond.side_accuracy - 0.5).abs().max() < 0.02  # beyond it, none does
        assert position_depth_px(bands) == pytest.approx(reach, abs=1.0)
        assert bands.attrs["r2"] > 0.05
        control = readout_by_distance(convert_padding(net, "circular"), images, cell=4)  # no border at all
        assert (control.side_accuracy - 0.5).abs().max() < 0.02 and abs(position_depth_px(control)) < 1.0
        assert abs(control.attrs["r2"]) < 0.05


def test_readout_by_distance_on_random_networks(nets):
    probe = digits_on_canvas(32, canvas_size=64, digit_size=16, seed=2, split="test", background="texture").images
    zero = readout_by_distance(nets["zero"], probe, cell=4)
    circ = readout_by_distance(nets["circular"], probe, cell=4)
    assert zero.side_accuracy.iloc[0] > 0.8 and zero.side_accuracy.iloc[-1] < 0.65  # at the border, not inside
    assert (circ.side_accuracy - 0.5).abs().max() < 0.06
    assert position_depth_px(zero) > position_depth_px(circ) + 4


def test_ppp_profile_rows_and_over_runs(nets, probe):
    from padlib.experiments.training import SchemeRun

    big = digits_on_canvas(16, canvas_size=48, digit_size=16, seed=3, split="test").images
    measures, bands = ppp_profile(nets["circular"], big, cell=4)
    assert list(measures.measure) == ["pattern_strength", "readout_r2", "border_side_accuracy", "position_depth_px"]
    assert measures.set_index("measure").loc["border_side_accuracy", "value"] == pytest.approx(0.5, abs=0.1)
    alone = readout_by_distance(nets["circular"], big, cell=4)
    assert bands.side_accuracy.tolist() == pytest.approx(alone.side_accuracy.tolist())
    assert ppp_measures(nets["zero"], big).set_index("measure").loc["border_side_accuracy", "value"] > 0.8
    runs = [SchemeRun(s, 0, nets[s], nets[s], None) for s in ("zero", "circular")]
    m, b = ppp_over_runs(runs, big, progress=False)
    assert set(m.state) == {"init", "trained"} and len(m) == 2 * 2 * 4 and {"scheme", "seed"} <= set(b.columns)
    summary = ppp_band_summary(b)
    assert set(summary.columns) >= {"scheme", "state", "distance_px", "mean", "std"} and len(summary) == 2 * 2 * 6
    with pytest.raises(ProbeDataError, match="square"):
        readout_by_distance(nets["zero"], torch.rand(4, 1, 32, 48))
    with pytest.raises(ProbeDataError, match="at least 4 cells"):
        readout_by_distance(nets["zero"], torch.rand(4, 1, 12, 12), cell=4)


def test_place_on_canvas_positions():
    p = torch.ones(2, 1, 3, 3)
    tl, br = place_on_canvas(p, 8, "top-left"), place_on_canvas(p, 8, "bottom-right")
    assert tl[0, 0, :3, :3].sum() == 9 and tl.sum() == 18
    assert br[0, 0, 5:, 5:].sum() == 9 and br.sum() == 18
    with pytest.raises(PadlibError):
        place_on_canvas(p, 8, "centre")
    with pytest.raises(ProbeDataError):
        place_on_canvas(p, 2, "top-left")


def test_bad_inputs(nets):
    with pytest.raises(ProbeDataError):
        position_pattern_strength(nets["zero"], [1, 2, 3])
    with pytest.raises(ProbeDataError):
        border_test(nets["zero"], torch.rand(2, 1, 4, 4), 8)
    with pytest.raises(PadlibError, match="no layer"):
        position_pattern_strength(nets["zero"], torch.rand(4, 1, 16, 16), layers=["nope"])


def _ppp_table(values):
    """Tidy PPP rows from {(measure, scheme): ([init per seed], [trained per seed])}."""
    import pandas as pd

    rows = []
    for (measure, scheme), (init, trained) in values.items():
        for seed, (a, b) in enumerate(zip(init, trained)):
            rows += [{"scheme": scheme, "seed": seed, "state": "init", "measure": measure, "value": a},
                     {"scheme": scheme, "seed": seed, "state": "trained", "measure": measure, "value": b}]
    return pd.DataFrame(rows)


def test_ppp_changes_pair_seeds_and_count_the_schemes():
    from padlib.chapters.ch5_schemes import ppp_changes, ppp_lines, ppp_table

    ppp = _ppp_table({
        ("pattern_strength", "circular"): ([0.000, 0.001, -0.001], [0.001, -0.001, 0.000]),
        ("pattern_strength", "zero"): ([0.050, 0.055, 0.052], [0.035, 0.036, 0.034]),   # falls, high at init
        ("pattern_strength", "reflect"): ([0.000, 0.001, 0.000], [0.010, 0.012, 0.011]),  # learned
        ("pattern_strength", "noisy"): ([0.000, 0.001, 0.000], [0.030, -0.020, 0.005]),  # spread too large
        ("readout_r2", "circular"): ([0.0, 0.01, 0.02], [0.1, 0.11, 0.12]),  # the control drifts up by 0.1
        ("readout_r2", "zero"): ([0.6, 0.5, 0.7], [0.7, 0.6, 0.8]),  # ... and so does zero: nothing beyond it
        ("border_side_accuracy", "circular"): ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
        ("border_side_accuracy", "zero"): ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
    })
    v = ppp_changes(ppp).set_index(["measure", "scheme"])
    assert v.loc[("pattern_strength", "zero"), "training"] == "falls"
    assert v.loc[("pattern_strength", "zero"), "at_init"] == "above control"
    assert v.loc[("pattern_strength", "reflect"), "training"] == "rises"
    assert v.loc[("pattern_strength", "reflect"), "at_init"] == "at control level"
    assert v.loc[("pattern_strength", "noisy"), "training"] == "no resolved change"
    assert v.loc[("readout_r2", "circular"), "training"] == "rises"
    assert v.loc[("readout_r2", "zero"), "training"] == "no resolved change"
    assert v.loc[("border_side_accuracy", "zero"), "training"] == "no resolved change"
    assert v.loc[("border_side_accuracy", "zero"), "at_init"] == "above control"
    # learned minus initial: zero's fall (-0.0173) minus its initial excess (+0.0523) per seed
    assert v.loc[("pattern_strength", "zero"), "learned_minus_initial"] == pytest.approx(-0.0173 - 0.0523, abs=5e-4)
    assert v.loc[("pattern_strength", "zero"), "lmi_ci_high"] < 0
    text = "\n".join(ppp_lines(v.reset_index()))
    # counted from the table: pattern_strength has 3 bordered schemes, 1 rises, 1 falls, 1 starts above control
    assert ("of 3 schemes with a border: 1 rise with training (reflect), 1 fall (zero), 1 start above the circular "
            "control (zero)") in text
    assert "of 1 schemes with a border: 0 rise with training (none), 0 fall (none), 1 start above" in text
    assert "saturates" in text and ppp_at_ceiling(v.reset_index()) == ["border_side_accuracy"]
    assert not any(w in text for w in ("supported", "SUPPORTED", "holds", "floor 0"))
    one = ppp_changes(ppp[ppp.seed == 0])
    assert (one.training.str.startswith("unknown")).all()
    table = ppp_table(ppp)
    assert table.loc["pattern strength", "zero"] == "0.05→0.04" and list(table.columns)[0] == "circular"
    assert table.loc["pattern strength", "circular"] == "0.00→0.00"  # no "-0.00"
    with pytest.raises(PadlibError, match="both states"):
        ppp_changes(ppp[ppp.state == "init"])


def _depth(schemes: dict):
    """position_depth_px rows with a circular control at 0 and {scheme: (init, trained)} per seed (3 seeds)."""
    values = {("position_depth_px", "circular"): ([0.1, -0.1, 0.0], [0.2, 0.0, -0.1])}
    values.update({("position_depth_px", s): v for s, v in schemes.items()})
    return _ppp_table(values)


@pytest.mark.parametrize("schemes, expected, verdict", [
    # learns: nothing at init, +5 px after training; padded: +8 px at init, nothing added by training
    ({"learns": ([0.0, 0.2, -0.1], [5.0, 5.3, 4.8])}, {"learns": "supported"}, "supported"),
    ({"learns": ([0.0, 0.2, -0.1], [5.0, 5.3, 4.8]), "padded": ([8.0, 8.2, 7.9], [8.1, 8.0, 7.8])},
     {"learns": "supported", "padded": "contradicted"}, "contradicted"),
    ({"learns": ([0.0, 0.2, -0.1], [5.0, 5.3, 4.8]), "noisy": ([0.0, 0.1, 0.0], [9.0, -6.0, 3.0])},
     {"learns": "supported", "noisy": "inconclusive"}, "inconclusive"),
    # an interval wholly short of the declared 1 px, though it straddles 0: contradicted by the equivalence test
    ({"small": ([0.0, 0.1, 0.0], [0.1, 0.7, -0.2])}, {"small": "contradicted"}, "contradicted"),
])
def test_ppp_primary_test_and_its_box_line(schemes, expected, verdict):
    from padlib.chapters.ch5_schemes import (PPP_DEPTH_OF_INTEREST, chapter_findings_box, ppp_changes, ppp_primary,
                                             ppp_primary_lines)

    changes = ppp_changes(_depth(schemes))
    primary = ppp_primary(changes)
    assert dict(zip(primary.scheme, primary.verdict)) == expected
    assert "circular" not in set(primary.scheme) and (primary.p_holm >= primary.lmi_p).all()
    box = chapter_findings_box(ppp=primary, changes=changes, ppp_scale="planted")
    assert len(box) == 1 and box[0].verdict == verdict and box[0].scale == "planted"
    assert f"at least {PPP_DEPTH_OF_INTEREST:g} px" in box[0].claimed and f"Holm over the {len(schemes)} schemes" in box[0].test
    lines = "\n".join(ppp_primary_lines(primary))
    if "padded" in schemes:
        assert "padded" in box[0].observed and "the padding gives more at initialisation than training adds" in lines
        assert "present at initialisation beyond the circular control: learns +0.0, padded +8.0" in box[0].observed
        assert "(from +0.0 px with learns to +8.0 px with padded)" in box[0].observed
    if "learns" in schemes:
        assert "training adds more than the padding gives at initialisation" in lines


def test_ppp_box_says_the_padding_modules_rise_is_confounded():
    from padlib.chapters.ch5_schemes import chapter_findings_box, ppp_changes, ppp_primary

    changes = ppp_changes(_depth({"padding_module": ([0.0, 0.2, -0.1], [5.0, 5.3, 4.8])}))
    box = chapter_findings_box(ppp=ppp_primary(changes), changes=changes)
    assert "confounded" in box[0].note and "learned padding" in box[0].note


def test_receptive_field_of_the_small_networks():
    from padlib.position import receptive_field_px
    from padlib.experiments.smallnets import vgg_small

    assert receptive_field_px(vgg_small(width=4, depth=3), 64) == 32  # 3x3 convs twice per stage, two 2x2 pools
    assert receptive_field_px(vgg_small(width=4, depth=2), 64) == 14
    assert receptive_field_px(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 11, padding=5)), 64) == 11
