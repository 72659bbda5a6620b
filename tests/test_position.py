"""PPP measures: near zero / chance for circular padding on stationary inputs, clearly not with zero padding."""
import pytest
import torch

from padlib.errors import PadlibError, ProbeDataError
from padlib.padding import convert_padding
from padlib.position import (
    border_test,
    digit_patches,
    place_on_canvas,
    position_pattern_strength,
    position_readout,
    ppp_measures,
    stationary_images,
)
from padlib.training import digits_on_canvas, vgg_small


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


def test_ppp_measures_rows(nets, probe):
    df = ppp_measures(nets["circular"], probe[:64], digit_patches(16, 16), 32)
    assert list(df.measure) == ["pattern_strength", "readout_r2", "readout_spearman", "border_accuracy"]
    assert df.set_index("measure").loc["border_accuracy", "value"] == pytest.approx(0.5, abs=0.13)


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


def test_ppp_learning_verdict_pairs_seeds_and_uses_their_spread():
    from padlib.position import ppp_findings, ppp_learning_verdict

    ppp = _ppp_table({
        ("pattern_strength", "circular"): ([0.000, 0.001, -0.001], [0.001, -0.001, 0.000]),
        ("pattern_strength", "zero"): ([0.050, 0.055, 0.052], [0.035, 0.036, 0.034]),   # falls, high at init
        ("pattern_strength", "reflect"): ([0.000, 0.001, 0.000], [0.010, 0.012, 0.011]),  # learned
        ("pattern_strength", "noisy"): ([0.000, 0.001, 0.000], [0.030, -0.020, 0.005]),  # spread too large
        ("readout_r2", "circular"): ([0.0, 0.01, 0.02], [0.1, 0.11, 0.12]),  # the control drifts up by 0.1
        ("readout_r2", "zero"): ([0.6, 0.5, 0.7], [0.7, 0.6, 0.8]),  # ... and so does zero: nothing beyond it
        ("border_accuracy", "circular"): ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
        ("border_accuracy", "zero"): ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]),
    })
    v = ppp_learning_verdict(ppp).set_index(["measure", "scheme"])
    assert v.loc[("pattern_strength", "zero"), "training"] == "falls"
    assert v.loc[("pattern_strength", "zero"), "at_init"] == "above control"
    assert v.loc[("pattern_strength", "reflect"), "training"] == "rises"
    assert v.loc[("pattern_strength", "reflect"), "at_init"] == "at control level"
    assert v.loc[("pattern_strength", "noisy"), "training"] == "no resolved change"
    assert v.loc[("readout_r2", "circular"), "training"] == "rises"
    assert v.loc[("readout_r2", "zero"), "training"] == "no resolved change"
    assert v.loc[("border_accuracy", "zero"), "training"] == "no resolved change"
    assert v.loc[("border_accuracy", "zero"), "at_init"] == "above control"
    text = "\n".join(ppp_findings(v.reset_index()))
    assert "NOT supported: it rises for reflect of 3 bordered schemes, falls for zero" in text
    assert "saturates" in text
    assert "largest rise beyond the control is +0.011 (reflect)" in text and "is +0.052 (zero)" in text
    one = ppp_learning_verdict(ppp[ppp.seed == 0])
    assert (one.training.str.startswith("unknown")).all()
    assert "cannot be decided with one seed" in "\n".join(ppp_findings(one))
