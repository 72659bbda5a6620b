"""padlib.kernels: the data-free border response against brute force, profiles, taxonomy, mean-kernel asymmetry."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from padlib.errors import PadlibError
from padlib.kernels import brute_force_response, data_free_input_means, data_free_pans, kernel_profile, mean_kernel_asymmetry, padding_response
from padlib.kernel_types import classify_pan_kernels, pan_type, taxonomy_clusters
from padlib.layers import PadConv2d, PaddingScheme
from padlib.viz import ch2_kernels as ch2_figures

KEYS = ["interior", "top", "bottom", "left", "right", "top_left", "top_right", "bottom_left", "bottom_right"]


def _same_conv(cin, cout, k, s, groups=1, dilation=1):
    from timm.layers import Conv2dSame

    return Conv2dSame(cin, cout, k, s, dilation=dilation, groups=groups)


CASES = [
    ("3x3 s1 p1", lambda: nn.Conv2d(5, 4, 3, 1, 1), (9, 10)),
    ("3x3 s2 p1 even (bottom unread)", lambda: nn.Conv2d(4, 6, 3, 2, 1), (12, 12)),
    ("3x3 s2 p1 odd", lambda: nn.Conv2d(4, 6, 3, 2, 1), (13, 11)),
    ("5x5 s2 p2 grouped", lambda: nn.Conv2d(6, 6, 5, 2, 2, groups=3), (12, 13)),
    ("3x3 dilated depthwise", lambda: nn.Conv2d(4, 8, 3, 2, 1, dilation=2, groups=4), (16, 15)),
    ("3x5 rectangular padding", lambda: nn.Conv2d(3, 5, (3, 5), (1, 2), (2, 1)), (11, 14)),
    ("'same' dilated", lambda: nn.Conv2d(3, 3, 3, 1, "same", dilation=2), (12, 12)),
    ("TF SAME 3x3 s2 even", lambda: _same_conv(4, 4, 3, 2), (16, 16)),
    ("TF SAME 5x5 s2 depthwise", lambda: _same_conv(4, 4, 5, 2, groups=4), (16, 15)),
    ("TF SAME 3x3 s2 odd", lambda: _same_conv(3, 2, 3, 2), (15, 15)),
    ("PadConv2d zero", lambda: PadConv2d(nn.Conv2d(3, 4, 3, 2, 1), PaddingScheme()), (10, 10)),
]


@pytest.mark.parametrize("name,make,hw", CASES, ids=[c[0] for c in CASES])
def test_padding_response_equals_brute_force(name, make, hw):
    conv = make().double()
    mu = torch.randn(conv.in_channels, dtype=torch.float64)
    predicted = padding_response(conv, mu, hw)
    measured = brute_force_response(conv, mu, hw)
    assert np.allclose(predicted[KEYS].to_numpy(), measured[KEYS].to_numpy(), atol=1e-10)
    assert np.abs(measured[KEYS[1:]].to_numpy()).max() > 1e-3  # the borders do shift: the check is not vacuous


def _hand_conv(kernel, stride=1, **kw):
    conv = nn.Conv2d(1, 1, len(kernel), stride, len(kernel) // 2, bias=False, **kw).double()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor(kernel, dtype=torch.float64)[None, None])
    return conv


def test_padding_response_known_answer():
    conv = _hand_conv([[1, 2, 3], [0, 10, 0], [-1, -1, -1]])
    r = padding_response(conv, [2.0]).iloc[0]
    assert r["interior"] == pytest.approx(2 * 13)
    assert r["top"] == pytest.approx(-2 * 6)
    assert r["bottom"] == pytest.approx(2 * 3)
    assert r["left"] == pytest.approx(-2 * 0)  # 1 + 0 - 1
    assert r["right"] == pytest.approx(-2 * 2)  # 3 + 0 - 1
    assert r["top_left"] == pytest.approx(-2 * (1 + 2 + 3 + 0 - 1))  # the shared tap counted once
    assert r["bottom_right"] == pytest.approx(-2 * (-1 - 1 - 1 + 3 + 0))


def test_uneven_padding_reads_one_side_only():
    from timm.layers import Conv2dSame

    kernel = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    torch_conv = _hand_conv(kernel[0, 0].tolist(), stride=2)
    tf_conv = Conv2dSame(1, 1, 3, 2, bias=False).double()
    with torch.no_grad():
        tf_conv.weight.copy_(kernel)
    pt = padding_response(torch_conv, [1.0], (224, 224)).iloc[0]
    tf = padding_response(tf_conv, [1.0], (224, 224)).iloc[0]
    assert (pt["top"], pt["left"], pt["bottom"], pt["right"]) == (-3, -3, 0, 0)  # PyTorch: top/left only
    assert (tf["top"], tf["left"], tf["bottom"], tf["right"]) == (0, 0, -3, -3)  # TF SAME: bottom/right only
    even = padding_response(torch_conv, [1.0], (225, 225)).iloc[0]
    assert even["top"] == even["bottom"] == -3


def test_padding_response_errors():
    with pytest.raises(PadlibError, match="in_hw"):
        padding_response(nn.Conv2d(2, 2, 3, 2, 1), [1, 1])
    with pytest.raises(PadlibError, match="zero padding"):
        padding_response(nn.Conv2d(2, 2, 3, 1, 1, padding_mode="reflect"), [1, 1])
    with pytest.raises(PadlibError, match="3 values"):
        padding_response(nn.Conv2d(2, 2, 3, 1, 1), [1, 1, 1])
    with pytest.raises(PadlibError):
        padding_response("not a conv", [1])
    with pytest.raises(PadlibError, match="too small"):
        brute_force_response(nn.Conv2d(1, 1, 5, 1, 2), [1.0], (4, 4))


def test_kernel_profile_features():
    conv = _hand_conv([[1, 2, 3], [0, 4, 0], [0, 0, 0]])
    f = kernel_profile(conv, [-2.0]).iloc[0]
    assert np.allclose(f["profile"], -2 * np.array([[1, 2, 3], [0, 4, 0], [0, 0, 0]]))
    assert f["l1"] == pytest.approx(20)
    assert f["mass_top"] == pytest.approx(-12 / 20) and f["mass_bottom"] == 0
    assert f["asym_tb"] == pytest.approx(12 / 20)
    assert f["asym_lr"] == pytest.approx((-6 + 2) / 20)
    assert f["centre_surround"] == pytest.approx((-8 + 12) / 20)
    assert f["positive_fraction"] == 0 and f["dc"] == pytest.approx(-1)
    # 5x5: border bands are two taps wide; profile3 pools them
    k5 = np.zeros((5, 5))
    k5[1, 2] = 1.0  # second row: still in the top band
    f5 = kernel_profile(_hand_conv(k5.tolist())).iloc[0]
    assert f5["mass_top"] == 1 and f5["profile3"][0, 1] == 1


def test_kernel_profile_respects_groups():
    conv = nn.Conv2d(4, 2, 3, 1, 1, groups=2, bias=False).double()
    with torch.no_grad():
        conv.weight.fill_(1.0)
    prof = kernel_profile(conv, [1, 2, 10, 20])
    assert np.allclose(prof.loc[0, "profile"], 3) and np.allclose(prof.loc[1, "profile"], 30)


def _planted_model():
    """conv -> BN -> ReLU6 -> depthwise conv with four planted kernels -> BN."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.ReLU6(),
                          nn.Conv2d(4, 4, 3, 1, 1, groups=4, bias=False), nn.BatchNorm2d(4)).eval()
    kernels = torch.zeros(4, 1, 3, 3)
    kernels[0] = 1.0  # smoothing: padding removes excitation everywhere -> silenced frame
    kernels[1, 0, 0, 1] = 1.0  # top-middle tap only -> silenced at the top, nowhere else
    kernels[2, 0, 1, 1] = 1.0  # centre tap only -> reads no padding, not a PAN
    kernels[3] = -0.125
    kernels[3, 0, 1, 1] = 1.0  # centre-surround -> fires on the frame
    with torch.no_grad():
        model[3].weight.copy_(kernels)
        model[1].bias.copy_(torch.tensor([1.0, 2.0, 0.5, 3.0]))
        model[1].weight.copy_(torch.tensor([0.5, 1.0, 2.0, 0.7]))
        model[4].running_var.fill_(0.25)
    return model


def test_data_free_input_means_match_monte_carlo():
    model = _planted_model()
    means = data_free_input_means(model).set_index("layer")
    assert means.loc["0", "source"] == "image" and np.allclose(means.loc["0", "mean"], 0, atol=1e-12)
    beta, gamma = model[1].bias.detach(), model[1].weight.detach()
    g = torch.Generator().manual_seed(1)
    sample = torch.clamp(beta[:, None] + gamma[:, None] * torch.randn(4, 400_000, generator=g), 0, 6).mean(1)
    assert means.loc["3", "source"] == "bn"
    assert np.allclose(means.loc["3", "mean"], sample.numpy(), atol=5e-3)


def test_data_free_pans_and_types_on_planted_kernels():
    model = _planted_model()
    pred = data_free_pans(model, tau=1.0, input_size=16)
    dw = pred[pred["layer"] == "3"].set_index("channel")
    assert list(dw["pred_is_pan"]) == [True, True, False, True]
    assert dw.loc[1, "pred_sides"] == "top" and dw.loc[1, "zp_top"] < 0
    assert dw.loc[3, "pred_sides"] == "top+bottom+left+right" and (dw.loc[3, [f"zp_{s}" for s in
                                                                             ("top", "left")]] > 0).all()
    types = classify_pan_kernels(dw.reset_index(), tau=1.0, z_prefix="zp_").set_index("channel")["type"]
    assert types.to_dict() == {0: "silenced", 1: "silenced", 3: "frame"}
    # zp = shift / following BN std (0.5); the shift of channel 0 at the top is minus 3 taps times the mean
    mu = data_free_input_means(model).set_index("layer").loc["3", "mean"]
    assert dw.loc[0, "zp_top"] == pytest.approx(-3 * mu[0] / np.sqrt(0.25 + 1e-5))


def test_pan_type_rule():
    assert pan_type({"top": 1}) == "side"
    assert pan_type({"top": 1, "left": 1}) == "corner"
    assert pan_type({"top": 1, "bottom": 1}) == "opposite"
    assert pan_type({"top": 1, "bottom": 1, "left": 1}) == "frame"
    assert pan_type({"top": 1, "bottom": 1, "left": 1, "right": 1}) == "frame"
    assert pan_type({"top": 1, "bottom": -1}) == "edge"
    assert pan_type({"left": -1}) == pan_type({"top": -1, "bottom": -1, "left": -1}) == "silenced"
    assert pan_type({}) == "none"


def test_classify_pan_kernels_uses_flagged_sides():
    # sides labels as padlib.pans writes them: 'top+left', 'frame', 'top-left corner', 'all corners'
    pans = pd.DataFrame({
        "layer": ["a"] * 6, "channel": range(6),
        "z_top": [5.0, 5.0, -4.0, 0.1, 0.0, 0.0], "z_bottom": [0.5, -6.0, -4.0, 0.0, 0.0, 0.0],
        "z_left": [5.0, 0.0, -4.0, 0.0, 0.0, 0.0], "z_right": [0.0, 0.0, -4.0, 0.0, 0.0, 0.0],
        "z_top_left": [0.0] * 4 + [3.0, -3.0], "z_top_right": [0.0] * 4 + [0.0, -3.0],
        "z_bottom_left": [0.0] * 4 + [0.0, -3.0], "z_bottom_right": [0.0] * 4 + [0.0, -3.0],
        "sides": ["top+left", "top+bottom", "frame", "", "top-left corner", "all corners"],
        "is_pan": [True, True, True, False, True, True]})
    out = classify_pan_kernels(pans)
    assert list(out["type"]) == ["corner", "edge", "silenced", "corner", "silenced"]
    assert list(out["extent"]) == ["corner", "opposite", "frame", "corner only", "corner only"]
    assert list(out["sign_pattern"])[:4] == ["T+ L+", "T+ B-", "T- B- L- R-", "TL+"]
    by_tau = classify_pan_kernels(pans, tau=4.5)  # flags from |z| >= tau instead of the sides label
    assert list(by_tau["type"]) == ["corner", "edge"]
    with pytest.raises(PadlibError, match="lacks columns"):
        classify_pan_kernels(pans.drop(columns="z_left"))


def test_taxonomy_clusters_recovers_planted_types():
    rng = np.random.default_rng(0)
    bases = {"side": [[1, 1, 1], [0, 0, 0], [0, 0, 0]], "frame": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
             "silenced": [[1, 1, 1], [1, 1, 1], [1, 1, 1]], "edge": [[1, 1, 1], [0, 0, 0], [-1, -1, -1]]}
    rows = []
    for t, b in bases.items():
        for i in range(30):
            p = np.array(b, float) + 0.1 * rng.standard_normal((3, 3))
            rows.append({"layer": "x", "channel": len(rows), "type": t, "profile3": p / np.abs(p).sum()})
    df = pd.DataFrame(rows)
    out, summary = taxonomy_clusters(df, seed=0, n_perm=200)
    assert summary["ari"] > 0.9 and summary["p_value"] < 0.01
    shuffled, s2 = taxonomy_clusters(df.assign(type=rng.permutation(df["type"].to_numpy())), seed=0, n_perm=200)
    assert abs(s2["ari"]) < 0.1 and s2["p_value"] > 0.01


def _asym_model(kernel_maker, stride=1, same=False, n=64):
    from timm.layers import Conv2dSame

    conv = Conv2dSame(n, n, 3, stride, groups=n, bias=False) if same else nn.Conv2d(n, n, 3, stride, 1, groups=n,
                                                                                    bias=False)
    with torch.no_grad():
        conv.weight.copy_(kernel_maker(n))
    return nn.Sequential(conv).eval()


def test_mean_kernel_asymmetry_known_leans():
    def right_column(n):
        w = torch.zeros(n, 1, 3, 3)
        w[:, 0, :, 2] = torch.rand(n, 3) + 0.1
        return w

    def top_row_negative(n):
        w = torch.zeros(n, 1, 3, 3)
        w[:, 0, 0, :] = -(torch.rand(n, 3) + 0.1)
        return w

    a = mean_kernel_asymmetry(_asym_model(right_column), input_size=16).iloc[0]
    assert a["asym_lr"] == pytest.approx(1) and a["asym_tb"] == pytest.approx(0, abs=0.2)
    assert a["asym_lr_lo"] == pytest.approx(1)
    assert np.allclose(a["mean_kernel"].sum(), 1)
    b_signed = mean_kernel_asymmetry(_asym_model(top_row_negative), input_size=16, mode="signed").iloc[0]
    b_abs = mean_kernel_asymmetry(_asym_model(top_row_negative), input_size=16, mode="abs").iloc[0]
    assert b_signed["asym_tb"] == pytest.approx(1) and b_abs["asym_tb"] == pytest.approx(-1)


def test_mean_kernel_asymmetry_random_control_and_reads():
    torch.manual_seed(0)
    rand = _asym_model(lambda n: torch.randn(n, 1, 3, 3), n=2048)
    r = mean_kernel_asymmetry(rand, input_size=16, mode="abs", seed=0).iloc[0]
    assert abs(r["asym_lr"]) < 0.03 and abs(r["asym_tb"]) < 0.03
    assert r["asym_lr_lo"] < 0 < r["asym_lr_hi"] or abs(r["asym_lr"]) < 0.01
    pt = mean_kernel_asymmetry(_asym_model(lambda n: torch.randn(n, 1, 3, 3), stride=2), input_size=16).iloc[0]
    tf = mean_kernel_asymmetry(_asym_model(lambda n: torch.randn(n, 1, 3, 3), stride=2, same=True),
                               input_size=16).iloc[0]
    odd = mean_kernel_asymmetry(_asym_model(lambda n: torch.randn(n, 1, 3, 3), stride=2), input_size=17).iloc[0]
    assert (pt["reads"], tf["reads"], odd["reads"]) == ("top/left", "bottom/right", "even")
    assert (pt["read_top"], pt["read_bottom"], tf["read_top"], tf["read_bottom"]) == (1, 0, 0, 1)
    with pytest.raises(PadlibError, match="mode"):
        mean_kernel_asymmetry(rand, input_size=16, mode="mean")


def test_check_padding_response_on_a_model():
    from padlib.kernels import check_padding_response

    table = check_padding_response(_planted_model(), input_size=12)
    assert list(table["layer"]) == ["0", "3"]
    assert (table["max_abs_error"] < 1e-5).all() and table["max_abs_shift"].iloc[1] > 0.1


def _agreement_table():
    sides = ("top", "bottom", "left", "right")
    df = pd.DataFrame({"layer": ["a"] * 4 + ["b"] * 2, "channel": [0, 1, 2, 3, 0, 1], "depth": [0] * 4 + [1] * 2,
                       "stride": [1] * 6, "is_pan": [True, True, False, False, True, False],
                       "pred_is_pan": [True, False, True, False, True, False]})
    for s in sides:
        df[f"zp_{s}"] = 0.0
        df[f"zpred_{s}"] = 0.0
        df[f"effect_{s}"] = 0.0
        df[f"z_{s}"] = 0.0
        df[f"reads_{s}"] = True
    df.loc[[0, 2, 4], "zp_top"] = 3.0  # data-free flags 0, 2, 4
    df.loc[[0, 1], "zpred_left"] = -3.0  # measured-means flags 0, 1
    df.loc[1, "zp_bottom"] = 9.0
    df.loc[1, "reads_bottom"] = False  # an unread side never counts
    df["effect_top"] = df["zp_top"] + 0.5
    df["z_top"] = df["effect_top"] + 1.0
    return df


def test_detector_agreement_counts():
    from padlib.kernel_types import detector_agreement

    out = detector_agreement(_agreement_table(), tau=2.0).set_index("predictor")
    assert out.loc["data-free", "predicted"] == 3 and out.loc["data-free", "true_positives"] == 2
    assert out.loc["data-free", "precision"] == pytest.approx(2 / 3)
    assert out.loc["data-free", "recall"] == pytest.approx(2 / 3)
    assert out.loc["measured means", "precision"] == 1 and out.loc["measured means", "recall"] == pytest.approx(2 / 3)
    with pytest.raises(PadlibError, match="tau"):
        detector_agreement(_agreement_table())


def test_disagreement_gaps_are_the_planted_offsets():
    from padlib.kernel_types import disagreement_by_layer

    out = disagreement_by_layer(_agreement_table()).set_index("layer")
    # layer a reads all four sides for channels 0, 2, 3 and three for channel 1: per-side offsets are planted
    # on 'top' only (effect = zp + 0.5, z = effect + 1), zpred differs from zp on top (zp) and left (-3)
    assert out.loc["b", "gap_inherited"] == pytest.approx(1.0 / 4)
    assert out.loc["b", "gap_position"] == pytest.approx((3.5 + 0.5) / 8)
    assert out.loc["a", "recall"] == pytest.approx(0.5) and out.loc["a", "precision"] == pytest.approx(0.5)


def test_taxonomy_clusters_border_features_and_errors():
    rows = []
    rng = np.random.default_rng(1)
    for t, top in (("silenced", 0.6), ("side", -0.6)):
        for i in range(25):
            f = {"mass_top": top + 0.05 * rng.standard_normal(), "mass_bottom": 0.05 * rng.standard_normal(),
                 "mass_left": 0.0, "mass_right": 0.0, "dc": 1.0, "centre_surround": 0.0}
            rows.append({"layer": "x", "channel": len(rows), "type": t, **f})
    out, s = taxonomy_clusters(pd.DataFrame(rows), features="border", n_perm=50)
    assert s["ari"] == pytest.approx(1.0) and s["ari_coarse"] == pytest.approx(1.0)
    with pytest.raises(PadlibError, match="features"):
        taxonomy_clusters(pd.DataFrame(rows), features="pixels")
    with pytest.raises(PadlibError, match="kernel features"):
        taxonomy_clusters(pd.DataFrame(rows).drop(columns="mass_top"), features="border")


def test_asymmetry_verdict_reads_the_table():
    from padlib.chapters.ch2_kernels import asymmetry_verdict

    def table(a, b):
        rows = []
        for init, scale in (("pretrained", 1.0), ("random init", 0.01)):
            for reads, lean in (("top/left", a), ("bottom/right", b)):
                rows.append({"model": reads, "init": init, "stride": 2, "reads": reads, "asym_lr": lean * scale,
                             "asym_tb": lean * scale, "asym_lr_lo": lean * scale - 0.01,
                             "asym_lr_hi": lean * scale + 0.01, "asym_tb_lo": lean * scale - 0.01,
                             "asym_tb_hi": lean * scale + 0.01})
        return pd.DataFrame(rows)

    text = asymmetry_verdict(table(0.1, -0.2))
    assert "opposite directions" in text and "away from the side" in text and "+0.100 vs -0.200" in text
    assert "the same way" in asymmetry_verdict(table(0.1, 0.2))
    assert "no comparison" in asymmetry_verdict(table(0.1, 0.2).query("reads == 'top/left'"))


def test_chapter_plots_render_on_small_tables():
    import ipywidgets as widgets
    import matplotlib.pyplot as plt


    entries = [{"model": "m", "type": "side", "layer": "l", "channel": 0, "is_pan": True, "sign_pattern": "T+",
                "score": 3.0, "kernel": np.eye(3), "profile": None, "map": np.random.rand(8, 8), "z": {}},
               {"model": "m", "type": "side", "layer": "l", "channel": 1, "is_pan": False, "sign_pattern": "",
                "score": 0.1, "kernel": -np.eye(3), "profile": None, "map": np.random.rand(8, 8), "z": {},
                "bn_sign": -1.0, "border_profile": pd.DataFrame({"distance": [0, 1, 0, 1], "side": ["top"] * 2 +
                                                                 ["left"] * 2, "z": [3.0, 0.1, -1.0, 0.0]})}]
    browser = ch2_figures.kernel_browser({"m: side": entries, "m: edge": entries[:1]})
    dropdown, stack = browser.children
    assert isinstance(stack, widgets.Stack) and len(stack.children) == 2
    assert all(img.value[:4] == b"\x89PNG" for img in stack.children)
    asym = pd.concat([mean_kernel_asymmetry(_asym_model(lambda n: torch.randn(n, 1, 3, 3), stride=s), input_size=16,
                                            n_boot=10).assign(model="m", init=init)
                      for s in (1, 2) for init in ("pretrained", "random init")], ignore_index=True)
    asym["depth"] = [0, 0, 1, 1]
    for fig in (ch2_figures.asymmetry_plot(asym), ch2_figures.mean_kernel_grid(asym),
                ch2_figures.detector_scatter(_agreement_table().assign(model="m", rel_depth=0.5), tau=2.0),
                ch2_figures.disagreement_plot(__import__("padlib").kernel_types.disagreement_by_layer(
                    _agreement_table()).assign(model="m"))):
        assert len(fig.axes) > 0
        plt.close(fig)


def test_integration_with_the_activation_scan():
    from padlib.kernel_types import gallery_entries, merge_detectors
    from padlib.kernels import model_kernel_profiles
    from padlib.pans import scan_pans

    model = _planted_model()
    g = torch.Generator().manual_seed(0)
    scan = scan_pans(model, torch.randn(16, 3, 24, 24, generator=g), tau=2.0, progress=False)
    cl = classify_pan_kernels(scan.table, model_kernel_profiles(model))
    dw = cl[cl["layer"] == "3"].set_index("channel")
    assert dw.loc[3, "type"] == "frame" and dw.loc[0, "type"] == "silenced"
    assert dw.loc[1, "type"] == "silenced" and "T-" in dw.loc[1, "sign_pattern"]
    assert 2 not in dw.index  # the centre-tap filter reads no padding
    merged = merge_detectors(scan.table, data_free_pans(model, tau=scan.tau, input_size=24))
    from padlib.kernel_types import detector_agreement

    agree = detector_agreement(merged).set_index("predictor")
    assert agree.loc["data-free", "recall"] > 0.5
    from padlib.experiments.ch2_kernels import detector_intervals

    boxed = detector_intervals({"planted": merged}, n_boot=50).set_index("measure")  # the box's numbers are the table's
    for measure in ("precision", "recall"):
        assert boxed.loc[measure, "value"] == pytest.approx(agree.loc["data-free", measure])
    assert boxed.loc["precision", "predicted"] == agree.loc["data-free", "predicted"]
    entries = gallery_entries(cl, scan.table, scan.maps, model, per_type=1)
    assert {e["type"] for e in entries} >= {"frame", "silenced"} and entries[0]["map"].shape == (24, 24)
    # a negative BatchNorm gamma flips the displayed kernel (as it flips the map and z); profiles in z units
    with torch.no_grad():
        model[4].weight.mul_(-1)
    scan = scan_pans(model, torch.randn(16, 3, 24, 24, generator=torch.Generator().manual_seed(0)), tau=2.0,
                     progress=False)
    cl = classify_pan_kernels(scan.table, model_kernel_profiles(model))
    for e in gallery_entries(cl, scan.table, scan.maps, model, per_type=1):
        raw = dict(model.named_modules())[e["layer"]].weight.detach().double()[e["channel"]].sum(0).numpy()
        expected = -1.0 if e["layer"] == "3" else 1.0
        assert e["bn_sign"] == expected and np.allclose(e["kernel"], expected * raw)
        prof = e["border_profile"].set_index(["side", "distance"])["z"]
        row = scan.table[(scan.table.layer == e["layer"]) & (scan.table.channel == e["channel"])].iloc[0]
        assert prof.loc[("top", 5)] == pytest.approx(
            (scan.maps[e["layer"]][e["channel"]][5, 1:-1].double().mean().item() - row.interior_mean)
            / row.interior_std, rel=1e-6)


class _ResidualNet(nn.Module):
    """stem conv-BN-ReLU, then a padded conv that reads relu(bn(x) + x): a residual sum, not a BatchNorm."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, 1, 1)
        self.bn0 = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.conv = nn.Conv2d(4, 4, 3, 1, 1)
        self.bn1 = nn.BatchNorm2d(4)
        self.after = nn.Conv2d(4, 4, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.act(self.bn0(self.stem(x)))
        z = self.act(self.bn1(self.conv(y)) + y)  # the shared ReLU is hooked twice
        return self.bn2(self.after(z))


def test_trace_finds_feeding_and_following_batchnorms_by_identity():
    from padlib._trace import trace_convs

    model = _ResidualNet().eval()
    trace = trace_convs(model, input_size=10)
    assert trace.feeding == {"stem": ("image", None, None), "conv": ("bn", "bn0", "act"), "after": None}
    assert trace.following == {"stem": "bn0", "conv": "bn1", "after": "bn2"}
    means = data_free_input_means(model, trace=trace).set_index("layer")
    assert list(means["source"]) == ["image", "bn", "unknown"] and np.isnan(means.loc["after", "mean"]).all()
    # timm's fused BatchNormAct2d: the activation lives inside the BatchNorm module
    from timm.layers import BatchNormAct2d

    fused = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), BatchNormAct2d(4, act_layer=nn.ReLU6),
                          nn.Conv2d(4, 4, 3, 1, 1, groups=4), nn.BatchNorm2d(4)).eval()
    with torch.no_grad():
        fused[1].bias.fill_(1.0)
    t = trace_convs(fused, input_size=8)
    assert t.feeding["2"] == ("bn", "1", None) and t.following["2"] == "3"
    mu = data_free_input_means(fused, trace=t).set_index("layer").loc["2", "mean"]
    from scipy.stats import norm

    expected = 1.0 * norm.cdf(1.0) + norm.pdf(1.0)  # E[max(X, 0)], X ~ N(1, 1); the clip at 6 adds < 1e-6
    assert np.allclose(mu, expected, atol=1e-4)  # the fused ReLU6 is found and applied


def test_data_free_pans_flag_corner_only_kernels():
    # rows 0 and columns 0 each sum to 0, so no side shifts; the top-left corner loses the union 1 - 1 - 1 = -1
    model = _planted_model()
    with torch.no_grad():
        model[3].weight.zero_()
        model[3].weight[0, 0] = torch.tensor([[1.0, -1, 0], [-1, 1, 0], [0, 0, 0]])
    pred = data_free_pans(model, tau=1.0, input_size=16, tau_corner=1.5)
    dw = pred[pred["layer"] == "3"].set_index("channel")
    mu = data_free_input_means(model).set_index("layer").loc["3", "mean"]
    std = np.sqrt(0.25 + 1e-5)
    assert np.allclose(dw.loc[0, [f"zp_{s}" for s in ("top", "bottom", "left", "right")]].astype(float), 0)
    assert dw.loc[0, "zp_top_left"] == pytest.approx(mu[0] / std)  # minus (-1) taps times the mean
    assert dw.loc[0, "zp_bottom_right"] == pytest.approx(0)  # row 2 and column 2 hold no weight
    flagged = abs(mu[0] / std) >= 1.5
    assert dw.loc[0, "pred_is_pan"] == flagged and dw.loc[0, "pred_sides"] == ""
    assert (dw.loc[0, "pred_corners"] != "") == flagged
    assert not dw.loc[1:, "pred_is_pan"].any()  # zero kernels shift nothing


def test_detector_agreement_counts_corner_only_pans():
    from padlib.kernel_types import detector_agreement

    df = _agreement_table()
    df["sides"] = ["top", "top-left corner", "", "", "top", ""]
    for prefix in ("zp_", "zpred_"):
        for c in ("top_left", "top_right", "bottom_left", "bottom_right"):
            df[f"{prefix}{c}"] = 0.0
    df.loc[1, "zp_top_left"] = 4.0  # the corner-only PAN is found through its corner (tau_corner 3)
    df.loc[3, "zp_bottom_right"] = 2.5  # below tau_corner: not flagged
    out = detector_agreement(df, tau=2.0, tau_corner=3.0).set_index("predictor")
    d = out.loc["data-free"]
    assert d["predicted"] == 4 and d["true_positives"] == 3 and d["recall"] == pytest.approx(1.0)
    assert d["corner_only_pans"] == 1 and d["recall_corner_only"] == 1.0 and d["recall_sides"] == 1.0
    assert d["recall_sides_only_rule"] == pytest.approx(2 / 3)  # the corner route is what finds channel 1
    assert d["precision_sides_only_rule"] == pytest.approx(2 / 3)


def test_signed_gaps_add_up_and_absolute_ones_bound_the_total():
    from padlib.kernel_types import disagreement_by_layer

    rng = np.random.default_rng(0)
    df = _agreement_table()
    for s in ("top", "bottom", "left", "right"):
        for p in ("zp", "zpred", "effect", "z"):
            df[f"{p}_{s}"] = rng.standard_normal(len(df))
    df.loc[2, "z_left"] = np.nan  # a missing value drops that entry from every gap alike
    out = disagreement_by_layer(df)
    total = out["signed_estimate"] + out["signed_position"] + out["signed_inherited"]
    assert np.allclose(total, out["signed_total"], atol=1e-12)
    assert (out["gap_total"] <= out["gap_estimate"] + out["gap_position"] + out["gap_inherited"] + 1e-12).all()
    assert not np.allclose(out["gap_total"], out["gap_estimate"] + out["gap_position"] + out["gap_inherited"])


def test_holm_adjust_matches_the_step_down_rule():
    from padlib.stats import holm_adjust

    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_pan_sets_type_the_learned_the_padding_caused_and_the_random_init_sets():
    from padlib.experiments.ch2_kernels import PAN_SETS, pan_sets
    from padlib.kernels import model_kernel_profiles
    from padlib.experiments.planted import planted_pan_network, planted_probe_images
    from padlib.pans import random_init_scan, scan_pans

    net, x = planted_pan_network(), planted_probe_images()
    scan = scan_pans(net, x, progress=False, definition="learned")  # 7 planted PANs: too few for BH at 0.05
    control, copy = random_init_scan(net, x, 10, reference=None, keep_model=True, definition="padding")
    sets = pan_sets(scan.table, model_kernel_profiles(net), control.table, model_kernel_profiles(copy), "planted")
    n = sets.groupby("set").size()
    assert n[PAN_SETS[0]] == scan.table.is_pan.sum() and n[PAN_SETS[1]] == scan.table.padding_caused.sum()
    assert n[PAN_SETS[2]] == control.table.is_pan.sum()
    assert sets["type"].notna().all() and (sets.model == "planted").all()


def test_row_energy_finds_a_planted_top_row_deficit_and_not_in_random_kernels():
    """Planted: stride-2 kernels with their top row scaled down carry less energy there; random kernels do not."""
    from torch import nn

    from padlib import kernels

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
                        nn.Conv2d(32, 32, 3, 1, 1))
    control = kernels.row_energy(net, 32)
    assert len(control) == 2 and set(control["reads"]) == {"top/left"}  # the stride-1 conv is left out
    assert (control["energy_tb_lo"] < 0).all() and (control["energy_tb_hi"] > 0).all()
    with torch.no_grad():
        for conv in (net[0], net[2]):
            conv.weight[:, :, 0, :] *= 0.3
    planted = kernels.row_energy(net, 32)
    assert (planted["energy_tb_hi"] < -0.2).all()
    assert (planted["energy_lr_lo"] < 0).all() and (planted["energy_lr_hi"] > -0.1).all()  # columns untouched


def test_stem_kernels_figure_has_one_row_per_model_and_rejects_a_model_without_convolutions():
    import pytest
    import torch
    from torch import nn


    torch.manual_seed(0)
    fig = ch2_figures.stem_kernels_figure({"a": nn.Sequential(nn.Conv2d(3, 4, 3)), "b": nn.Sequential(nn.Conv2d(1, 8, 3))},
                                    k=6)
    assert len(fig.axes) == 12 and fig.axes[0].get_ylabel() == "a" and len(fig.axes[0].images) == 1
    assert len(fig.axes[5].images) == 0 and len(fig.axes[11].images) == 1  # 'a' has 4 kernels, 'b' 8 (6 shown)
    with pytest.raises(ValueError, match="b has no Conv2d"):
        ch2_figures.stem_kernels_figure({"b": nn.Sequential(nn.ReLU())})
