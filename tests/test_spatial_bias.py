"""Mean feature maps, the spatial-bias index and blind-spot maps, on small constructed models."""
import numpy as np
import pytest
import torch
from torch import nn

import padlib
from padlib.errors import PadlibError
from padlib.preprocess import Preprocessing
from padlib import blind_spot_maps
from padlib.viz import ch4_blind_spots as ch4_figures


def ones_conv(stride=2, padding=1, size=16):
    """One 3x3 all-ones conv: on a constant input, output positions that read zero padding are lower."""
    conv = nn.Conv2d(3, 1, 3, stride, padding, bias=False)
    nn.init.ones_(conv.weight)
    model = nn.Sequential(conv).eval()
    model.padlib_preprocessing = Preprocessing(size, size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return model


def test_mean_feature_maps_equals_direct_computation_and_splits_average():
    torch.manual_seed(0)
    model = padlib.toy_translation_model("zeros", input_size=16)
    x = torch.randn(10, 3, 16, 16)
    layers = ["features.1", "features.5"]
    fm = padlib.mean_feature_maps(model, x, layers, splits=2, batch_size=4, progress=False)
    outs = {}
    hooks = [model.get_submodule(l).register_forward_hook(lambda m, i, o, l=l: outs.__setitem__(l, o))
             for l in layers]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    for l in layers:
        np.testing.assert_allclose(fm[l], outs[l].abs().mean(1).mean(0).numpy(), rtol=1e-5, atol=1e-6)
        assert fm.split_maps[l].shape == (2, *fm[l].shape)
    assert fm.n == 10 and fm.layers == layers
    mean_fm = padlib.mean_feature_maps(model, x, layers, reduce="mean", progress=False)
    np.testing.assert_allclose(mean_fm["features.1"], outs["features.1"].mean(1).mean(0).numpy(), rtol=1e-5, atol=1e-6)


def test_circular_padding_on_constant_input_gives_flat_maps_and_zero_index():
    model = padlib.toy_translation_model("circular", input_size=16)
    x = padlib.constant_inputs(model, 16, levels=(0.2, 0.9))
    fm = padlib.mean_feature_maps(model, x, progress=False)
    idx = padlib.spatial_bias_index(fm)
    assert len(idx) >= 4
    for m in fm.maps.values():
        assert np.ptp(m) <= 1e-5 * max(np.abs(m).mean(), 1e-12)
    assert np.abs(idx[["left_right", "top_bottom", "border_centre"]].to_numpy()).max() < 1e-5
    zero = padlib.toy_translation_model("zeros", input_size=16)
    idx0 = padlib.spatial_bias_index(padlib.mean_feature_maps(zero, x, progress=False))
    assert np.abs(idx0["border_centre"]).max() > 1e-2  # the same model with zero padding is not flat


def test_planted_top_left_lean_is_measured_and_predicted():
    model = ones_conv()
    x = torch.ones(2, 3, 16, 16)  # 16 even: stride 2 reads the top/left padding only
    fm = padlib.mean_feature_maps(model, x, ["0"], progress=False)
    m = fm["0"]
    assert m.shape == (8, 8) and m[0, 3] == 18 and m[-1, 3] == 27 and m[3, 3] == 27
    idx = padlib.spatial_bias_index(fm).iloc[0]
    assert idx.dev_bottom == 0 and idx.dev_right == 0 and idx.top_bottom > 0.3 and idx.left_right > 0.3
    assert (idx.lean_tb, idx.lean_lr) == ("top", "left")
    audit = padlib.padding_audit(model, 16)
    assert padlib.predicted_lean(audit) == {"lean_tb": "top", "lean_lr": "left"}
    agree = padlib.bias_agreement(padlib.spatial_bias_index(fm), audit)
    assert bool(agree["agrees_tb"].iloc[0]) and bool(agree["agrees_lr"].iloc[0])
    # at an odd size the same layer pads evenly: no lean measured, none predicted
    fm17 = padlib.mean_feature_maps(model, torch.ones(2, 3, 17, 17), ["0"], progress=False)
    idx17 = padlib.spatial_bias_index(fm17).iloc[0]
    assert abs(idx17.top_bottom) < 1e-12 and idx17.lean_tb == ""
    assert padlib.predicted_lean(padlib.padding_audit(model, 17)) == {"lean_tb": "", "lean_lr": ""}


def test_lean_needs_two_standard_errors():
    maps = {"a": np.ones((8, 8))}
    maps["a"][0, 1:-1] = 1.01
    split = np.stack([maps["a"] + np.random.default_rng(i).normal(0, 0.2, (8, 8)) for i in range(4)])
    fm = padlib.FeatureMaps(maps, {"a": split}, n=4)
    idx = padlib.spatial_bias_index(fm).iloc[0]
    assert idx.top_bottom_se > 0.01 and idx.lean_tb == "" and idx.n_splits == 4
    tight = np.stack([maps["a"] * (1 + 1e-3 * i) for i in range(4)])  # consistent over splits: a lean
    assert padlib.spatial_bias_index(padlib.FeatureMaps(maps, {"a": tight}, n=4)).iloc[0].lean_tb == "top"


def test_translation_invariant_model_has_flat_blind_spot_map():
    model = padlib.toy_translation_model("circular", input_size=32)
    stim = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    bmap = padlib.blind_spot_map(model, stim, 0.5, target=3, stride=4, response="logit", progress=False)
    assert bmap.shape == (7, 7) and list(bmap.index) == list(range(0, 25, 4))
    v = bmap.to_numpy()
    assert np.ptp(v) < 1e-4 * np.abs(v).mean()
    s = padlib.blind_spot_summary(bmap)
    assert s["spread"] < 1e-4 * abs(s["median"]) and abs(s["worst_drop"]) < 1e-4 * abs(s["median"])
    zero = padlib.toy_translation_model("zeros", input_size=32)
    v0 = padlib.blind_spot_map(zero, stim, 0.5, target=3, stride=4, response="logit", progress=False).to_numpy()
    assert np.ptp(v0) > 1e-3 * np.abs(v0).mean()  # the control: zero padding is not translation invariant


def test_blind_spot_map_grid_reaches_every_border_and_target_defaults():
    model = padlib.toy_translation_model("zeros", input_size=30)
    stim, bg = torch.rand(3, 8, 8), torch.rand(3, 30, 30)
    bmap = padlib.blind_spot_map(model, stim, bg, stride=8, progress=False)
    assert list(bmap.index) == [0, 7, 15, 22] and list(bmap.columns) == [0, 7, 15, 22]  # 4 offsets, 0 to 30 - 8
    target, prob = padlib.blind_spot_maps.centre_prediction(model, stim, bg)
    assert bmap.attrs["target"] == target and bmap.attrs["size"] == 30
    canvas = bg.clone()
    canvas[:, 7:15, 15:23] = stim  # top 7, left 15, computed by hand
    with torch.no_grad():
        direct = model(padlib.preprocessing(model).normalize(canvas[None])).softmax(-1)[0, target]
    assert bmap.loc[7, 15] == pytest.approx(float(direct), rel=1e-5)
    p = bmap.to_numpy()
    assert ((p >= 0) & (p <= 1)).all()
    with pytest.raises(PadlibError, match="larger than the canvas"):
        padlib.blind_spot_map(model, torch.rand(3, 40, 40), 0.5, target=0, progress=False)
    with pytest.raises(PadlibError, match="response"):
        padlib.blind_spot_map(model, stim, 0.5, target=0, response="softmax", progress=False)


def test_default_target_does_not_paste_a_second_stimulus_into_the_map():
    """Regression: centre_prediction pasted the stimulus into the background tensor it was given (make_background
    returned the caller's tensor), so a map with target=None had a second copy of the stimulus at the centre of
    every canvas, and the caller's background was written."""
    model = padlib.toy_translation_model("zeros", input_size=32)
    stim, bg = torch.rand(3, 8, 8), torch.rand(3, 32, 32)
    original = bg.clone()
    default = padlib.blind_spot_map(model, stim, bg, stride=8, progress=False)
    assert torch.equal(bg, original)
    given = padlib.blind_spot_map(model, stim, bg, target=default.attrs["target"], stride=8, progress=False)
    assert np.array_equal(default.to_numpy(), given.to_numpy())
    padlib.blind_spot_maps.paste_centre(stim, bg, 32)
    assert torch.equal(bg, original)


def test_blind_spot_summary_on_planted_map():
    import pandas as pd

    v = np.ones((6, 6))
    v[:3, :3] = 0.4
    s = padlib.blind_spot_summary(pd.DataFrame(v))
    assert s["median"] == 1.0 and s["worst_region"] == "top-left"
    assert s["worst_drop"] == pytest.approx(0.6) and s["edge_top"] == pytest.approx(-0.3)
    assert s["edge_bottom"] == 0 and s["weakest_edge"] in ("top", "left")
    assert s["edge_tb"] == pytest.approx(-0.3) and s["edge_lr"] == pytest.approx(-0.3)


def test_depth_layers_and_variants():
    model = padlib.toy_translation_model("zeros", input_size=16)
    assert padlib.depth_layers(model) == [f"features.{i}" for i in range(8)]
    v = padlib.padding_variants(model, 16)
    assert list(v) == ["zero @16", "zero @17", "symmetric @16", "circular @16"]  # the paper's mitigations
    from padlib.layers import padding_scheme_of

    for scheme in ("symmetric", "circular"):
        assert all(padding_scheme_of(m) == scheme for _, m in v[f"{scheme} @16"][0].named_modules()
                   if isinstance(m, nn.Conv2d))
    assert list(padlib.padding_variants(model, 16, paddings=("reflect",))) == ["zero @16", "zero @17", "reflect @16"]
    with pytest.raises(PadlibError, match="mitigation padding"):
        padlib.padding_variants(model, 16, paddings=("mirror",))


def test_small_blind_spot_study():
    models = {"toy": padlib.toy_translation_model("zeros", input_size=16)}
    summary, maps = padlib.blind_spot_study(models, {"s": torch.rand(3, 6, 6)}, {"grey": 0.5, "noise": 0.2},
                                            size=16, stride=5, progress=False)
    assert len(summary) == 8 and len(maps) == 8
    assert set(summary["variant"]) == {"zero @16", "zero @17", "symmetric @16", "circular @16"}
    assert summary["target"].nunique() == 1
    table = padlib.mitigation_table(summary)
    assert list(table["maps"]) == [2, 2, 2, 2]
    effects = padlib.blind_spot_maps.mitigation_effects(summary)
    assert list(effects["variant"]) == ["zero @17", "symmetric @16", "circular @16"] and set(effects["pairs"]) == {2}
    base = summary[summary["variant"] == "zero @16"].set_index("background")["worst_drop"]
    other = summary[summary["variant"] == "symmetric @16"].set_index("background")["worst_drop"]
    assert effects.iloc[1]["worst_drop_diff_mean"] == pytest.approx(float((other - base).mean()))
    assert effects.iloc[1]["worst_drop_lower_in"] == int(((other - base) < 0).sum())


def test_flips_make_content_symmetric():
    # an identity "model": the mean map of one asymmetric image is asymmetric, of its four flips symmetric
    model = nn.Sequential(nn.Identity())
    x = torch.zeros(1, 3, 8, 8)
    x[..., 0, :] = 5.0  # a bright top row
    plain = padlib.mean_feature_maps(model, x, ["0"], progress=False)["0"]
    flipped = padlib.mean_feature_maps(model, x, ["0"], flips=True, progress=False)
    assert plain[0, 3] == 5 and plain[-1, 3] == 0
    np.testing.assert_allclose(flipped["0"], flipped["0"][::-1, ::-1])
    assert flipped.n == 4
    assert padlib.spatial_bias_index(flipped).iloc[0].top_bottom == 0


def test_random_init_maps_one_split_per_seed():
    fm = padlib.spatial_bias.random_init_maps("mobilenet_v2", lambda m: padlib.constant_inputs(m, 32, (0.5,)),
                                              seeds=(0, 1), layers=["features.0", "features.2"])
    assert fm.split_maps["features.2"].shape == (2, 8, 8)
    np.testing.assert_allclose(fm["features.2"], fm.split_maps["features.2"].mean(0))
    assert not np.allclose(fm.split_maps["features.2"][0], fm.split_maps["features.2"][1])  # seeds differ


def test_feature_map_explorer_is_precomputed_and_linked():
    import ipywidgets as widgets

    model = padlib.toy_translation_model("zeros", input_size=16)
    maps = {("toy", s): padlib.mean_feature_maps(model, torch.rand(2, 3, s, s), progress=False) for s in (16, 17)}
    audits = {("toy", s): padlib.padding_audit(model, s) for s in (16, 17)}
    explorer = ch4_figures.feature_map_explorer(maps, audits)
    sizes = explorer.children[0]
    assert isinstance(explorer, widgets.Tab) and len(sizes.children) == 2
    dropdown, stack = sizes.children[0].children
    assert list(dropdown.options) == maps[("toy", 16)].layers and len(stack.children) == len(dropdown.options)
    assert "data:image/png;base64," in stack.children[0].value and "features.0" in stack.children[0].value
    links = [w for w in widgets.Widget.widgets.values() if isinstance(w, widgets.widget_link.Link)
             and w.source[0] is dropdown and w.target[0] is stack]
    assert links and links[0].source[1] == "index" and links[0].target[1] == "selected_index"


def test_blind_spot_grids_have_the_same_shape_at_224_and_225():
    assert blind_spot_maps.grid_positions(224, 80, 7) == [0, 24, 48, 72, 96, 120, 144]
    p225 = blind_spot_maps.grid_positions(225, 80, blind_spot_maps.grid_count(224, 80, 24))
    assert len(p225) == 7 and p225[0] == 0 and p225[-1] == 145 and max(np.diff(p225)) - min(np.diff(p225)) <= 1
    assert blind_spot_maps.grid_count(225, 80, 24) == 8  # what a fixed 24-pixel step would give at 225: a near-duplicate row
    with pytest.raises(PadlibError, match="do not fit"):
        blind_spot_maps.grid_positions(20, 16, 6)
    # in a study, the map at the even size has the grid of the map at the reference size
    models = {"toy": padlib.toy_translation_model("zeros", input_size=16)}
    summary, maps = padlib.blind_spot_study(models, {"s": torch.rand(3, 6, 6)}, {"grey": 0.5}, size=16, stride=4,
                                            progress=False)
    shapes = {m.shape for m in maps.values()}
    assert shapes == {(4, 4)} and set(summary["grid"]) == {"4x4"}
    m17 = maps[("toy", "zero @17", "s", "grey")]
    assert list(m17.columns)[-1] == 11 and list(maps[("toy", "zero @16", "s", "grey")].columns)[-1] == 10


def test_stimulus_recognition_and_selection():
    import pandas as pd

    model = padlib.toy_translation_model("zeros", input_size=16)
    stim = {"a": torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(0))}
    rec = padlib.blind_spot_maps.stimulus_recognition({"toy": model}, stim, {"grey": 0.5, "dark": 0.1}, size=16)
    assert len(rec) == 2 and rec["target"].nunique() == 1 and bool(rec["target_is_top1"].iloc[0])
    target, prob = padlib.blind_spot_maps.centre_prediction(model, stim["a"], 0.5, 16)
    assert rec["target_prob"].iloc[0] == pytest.approx(prob, rel=1e-5)
    row = dict(target_is_top1=True, as_expected=True)
    table = pd.DataFrame([
        {"model": "m", "stimulus": "weak", "background": "g", "target_prob": 0.2, **row},
        {"model": "m", "stimulus": "strong", "background": "g", "target_prob": 0.9, **row},
        {"model": "m", "stimulus": "lost", "background": "g", "target_prob": 0.9, **row, "target_is_top1": False},
        {"model": "m", "stimulus": "wrong", "background": "g", "target_prob": 0.9, **row, "as_expected": False},
        {"model": "m", "stimulus": "faint", "background": "g", "target_prob": 0.01, **row},
    ])
    assert padlib.blind_spot_maps.select_stimuli(table, min_prob=0.05) == ["strong", "weak"]
    assert padlib.blind_spot_maps.select_stimuli(table, min_prob=0.05, k=1) == ["strong"]
    with pytest.raises(PadlibError, match="no stimulus is recognised"):
        padlib.blind_spot_maps.select_stimuli(table, min_prob=0.95)
