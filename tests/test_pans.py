"""PAN scanner: planted PANs are found with their sides and signs, controls are not, the null is clean."""
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from padlib import pans as P
from padlib.errors import NoPaddedLayersError, PadlibError
from padlib.layers import PadConv2d, TorchModePadding, convert_padding
from padlib.padding import layer_pads
from padlib import _pan_stream
from padlib import padding
from padlib import pan_tables
from padlib.chapters import ch1_pans as ch1_readings
from padlib.chapters import claims
from padlib.experiments import ch1_pans as ch1_design
from padlib.experiments import planted

# planted channels of the first conv (see _planted_net)
TOP, LEFT, CORNER, TOP_SILENCED, FRAME_SILENCED, TOP_LEFT, TOP_FLIPPED = 0, 1, 2, 3, 4, 5, 6
SOBEL_X, SOBEL_Y, LAPLACE, CONSTANT = 7, 8, 9, 10
RANDOM_CONTENT = list(range(11, 24))
PLANTED = {TOP: ("top", 1), LEFT: ("left", 1), CORNER: ("top-left corner", 1), TOP_SILENCED: ("top", -1),
           FRAME_SILENCED: ("frame", -1), TOP_LEFT: ("top+left", 1), TOP_FLIPPED: ("top", -1)}


def _images(n=48, size=24, seed=0):
    return planted.planted_probe_images(n, size, seed)


def _planted_net(padding_mode="zeros"):
    return planted.planted_pan_network(padding_mode)


def test_planted_network_matches_the_expectations_written_here():
    roles = planted.PLANTED_ROLES
    assert {ch: (roles[ch][1], roles[ch][2]) for ch in PLANTED} == PLANTED
    assert all(roles[ch][1] == "" for ch in [SOBEL_X, SOBEL_Y, LAPLACE, CONSTANT] + RANDOM_CONTENT)


@pytest.fixture(scope="module")
def planted_scan():
    # the learned reading: 7 planted PANs among 48 channels are too few for BH at 0.05 on an empirical null of
    # 48 (it needs about 1 / fdr discoveries); specialists have their own planted network below
    return P.scan_pans(_planted_net(), _images(), fpr=0.05, batch_size=16, progress=False, definition="learned")


def _first_layer(table):
    return table[table.layer == "0"].set_index("channel")


def test_planted_pans_are_found_with_their_sides_and_signs(planted_scan):
    t = _first_layer(planted_scan.table)
    for ch, (sides, sign) in PLANTED.items():
        assert t.loc[ch, "is_pan"], f"planted channel {ch} ({sides}) missed: {t.loc[ch, [f'z_{s}' for s in P.SIDES]]}"
        assert t.loc[ch, "sides"] == sides, (ch, t.loc[ch, "sides"])
        assert t.loc[ch, "sign"] == sign, (ch, t.loc[ch, "sign"])
    # the BN with negative gamma flips the sign of the very same kernel
    assert t.loc[TOP_FLIPPED, "z_top"] == pytest.approx(-t.loc[TOP, "z_top"], rel=1e-6)
    assert t.loc[TOP, "bn_scale"] > 0 > t.loc[TOP_FLIPPED, "bn_scale"]
    assert planted.planted_check(planted_scan).correct.all()


def test_edge_detectors_constant_and_content_channels_are_not_pans(planted_scan):
    t = _first_layer(planted_scan.table)
    controls = [SOBEL_X, SOBEL_Y, LAPLACE, CONSTANT] + RANDOM_CONTENT
    assert not t.loc[controls, "is_pan"].any(), t.loc[controls][t.loc[controls, "is_pan"]][["sides", "score"]]
    assert t.loc[CONSTANT, "constant"] and t.loc[CONSTANT, "score"] == 0
    assert (t.loc[controls, "score"] < planted_scan.tau).all()


def test_threshold_is_the_null_quantile_and_the_null_is_small(planted_scan):
    null = planted_scan.null
    assert null is not None and len(null) == len(planted_scan.table)
    assert (null.scheme == "circular").all()
    tau, tau_c = P.calibrate_tau(null, 0.05)
    assert (tau, tau_c) == (planted_scan.tau, planted_scan.tau_corner)
    assert (P.side_score(null) > tau).mean() <= 0.05 + 1e-9
    # the planted channels are far above the null: their contrast comes from zero padding
    t = _first_layer(planted_scan.table)
    assert t.loc[TOP, "z_top"] > 3 * tau
    nl = _first_layer(null)
    assert nl.loc[list(PLANTED), [f"z_{s}" for s in P.SIDES]].abs().max().max() < 0.5


def test_padding_effect_explains_the_contrast_and_matches_the_weight_based_prediction(planted_scan):
    t = _first_layer(planted_scan.table)
    for ch, side in [(TOP, "top"), (LEFT, "left"), (TOP_SILENCED, "top"), (CORNER, "top_left")]:
        z, e, zp = t.loc[ch, [f"z_{side}", f"effect_{side}", f"zpred_{side}"]]
        assert e / z > 0.8, (ch, z, e)
        assert zp == pytest.approx(z, rel=0.15), (ch, z, zp)


def test_circular_padded_network_has_no_pans(planted_scan):
    # a threshold that keeps every planted PAN of the zero-padded net finds nothing once padding is circular
    t = _first_layer(planted_scan.table)
    weakest = min(t.loc[ch, "score"] if "corner" not in s else t.loc[ch, "corner_score"]
                  for ch, (s, _) in PLANTED.items())
    tau = weakest / 2
    zero = P.find_pans(_planted_net(), _images(), tau=tau, progress=False, reference=None)
    assert _first_layer(zero).loc[list(PLANTED), "is_pan"].all()
    for circ in (convert_padding(_planted_net(), "circular"), _planted_net("circular")):  # padlib's and torch's
        c = P.find_pans(circ, _images(), tau=tau, progress=False, reference=None)
        assert not c.is_pan.any(), c[c.is_pan][["layer", "channel", "sides", "score"]]
        c0 = _first_layer(c)  # where the input meets the padding directly, circular leaves only noise
        assert max(c0.score.max(), c0.corner_score.max()) < weakest / 3


def test_one_by_one_network_says_there_is_nothing_to_scan():
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 4, 1), nn.Conv2d(4, 4, 3, padding=0))
    with pytest.raises(NoPaddedLayersError, match="no convolution that can read padding"):
        P.find_pans(net, torch.randn(2, 3, 16, 16), progress=False)


def test_scores_do_not_depend_on_batch_size_and_are_deterministic():
    net, x = _planted_net(), _images(n=20)
    cols = [c for c in P.find_pans(net, x, tau=2.0, progress=False).columns if c.startswith(("z_", "effect_"))]
    a = P.find_pans(net, x, tau=2.0, batch_size=20, progress=False)
    b = P.find_pans(net, x, tau=2.0, batch_size=3, progress=False)
    pd.testing.assert_frame_equal(a[cols], b[cols], atol=1e-4, rtol=1e-4)  # float32 batch sums: rounding only
    assert (a.is_pan == b.is_pan).all()
    c = P.find_pans(net, x, fpr=0.05, batch_size=7, progress=False)
    d = P.find_pans(net, x, fpr=0.05, batch_size=7, progress=False)
    pd.testing.assert_frame_equal(c, d, check_exact=True)
    assert c.attrs["tau"] == d.attrs["tau"]


def _full_replicate_effect(conv, x, st):
    """Reference: own output minus the output with the whole input replicate-padded, at the 8 locations."""
    y = conv(x)
    pads = layer_pads(conv, x.shape[-2:])
    rep = F.conv2d(F.pad(x, pads, mode="replicate"), conv.weight, conv.bias, conv.stride, 0, conv.dilation,
                   conv.groups)
    d = (y - rep).mean(0).double()
    c = _pan_stream._border_cuts(st)
    h, w = d.shape[-2:]
    return {"top": d[:, 0, c["left"]:w - c["right"]].mean(1), "bottom": d[:, -1, c["left"]:w - c["right"]].mean(1),
            "left": d[:, c["top"]:h - c["bottom"], 0].mean(1), "right": d[:, c["top"]:h - c["bottom"], -1].mean(1),
            "top_left": d[:, 0, 0], "top_right": d[:, 0, -1], "bottom_left": d[:, -1, 0], "bottom_right": d[:, -1, -1]}


def _check_effects(conv, x):
    stats, _ = _pan_stream._stream(nn.Sequential(conv), x, 2, "cpu", False, "")
    st = stats["0"]
    ref = _full_replicate_effect(conv, x, st)
    got = _pan_stream._border_effects(st)
    for loc in padding.LOCATIONS:
        assert torch.allclose(got[loc], ref[loc], atol=1e-5), loc
    return st, ref


@pytest.mark.parametrize("make, size", [
    (lambda: nn.Conv2d(4, 6, 3, padding=1), 12),
    (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1), 12),   # PyTorch: bottom/right padding never read
    (lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1), 13),
    (lambda: nn.Conv2d(4, 4, 5, padding=2, groups=4), 11),   # depthwise, two padded rows
    (lambda: nn.Conv2d(4, 6, 5, stride=2, padding=2), 12),
    (lambda: nn.Conv2d(4, 8, 3, padding=1, groups=4), 10),   # depthwise with channel multiplier 2
    (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), 10),   # grouped
    (lambda: nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=4), 13),
    (lambda: nn.Conv2d(4, 6, 3, padding=2, dilation=2), 10),
    (lambda: nn.Conv2d(4, 6, (3, 5), padding=(1, 2), stride=(1, 2)), 12),
    (lambda: PadConv2d(nn.Conv2d(4, 6, 3, padding=1), TorchModePadding("circular")), 9),
])
def test_border_strip_effect_equals_full_replicate_recomputation(make, size):
    torch.manual_seed(1)
    st, ref = _check_effects(make().eval(), torch.randn(5, 4, size, size) + 0.7)
    for side in P.SIDES:  # a side whose padding is never read has exactly no effect
        if not st.affected[side]:
            assert ref[side].abs().max() < 1e-6


def test_timm_dynamic_same_conv_is_scanned_with_its_asymmetric_padding():
    from timm.layers import Conv2dSame

    torch.manual_seed(0)
    conv = Conv2dSame(3, 5, 3, stride=2).eval()
    x = torch.randn(4, 3, 16, 16) + 0.5
    st, _ = _check_effects(conv, x)
    assert st.pads == (0, 1, 0, 1)  # TF SAME: the extra padding goes bottom/right
    assert not st.affected["top"] and st.affected["bottom"]
    t = P.find_pans(nn.Sequential(conv), x, tau=1.0, progress=False)
    assert (t.padding == "tf_same").all() and (t.effect_top == 0).all()


def test_tiny_maps_with_large_kernels_give_finite_scores_and_too_small_maps_are_skipped():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 5, padding=2), nn.ReLU(), nn.Conv2d(4, 4, 3, stride=2, padding=1),
                        nn.Conv2d(4, 4, 3, padding=1))
    x = torch.randn(6, 3, 4, 4) + 0.5
    scan = P.scan_pans(net, x, fpr=0.2, progress=False)
    assert set(scan.table.layer) == {"0"} and scan.skipped_layers == ["2", "3"]  # 2x2 outputs: no interior
    assert scan.table.filter(like="z_").notna().all().all() and scan.table.margin.eq(1).all()
    with pytest.raises(PadlibError, match="smaller than 3x3"):
        P.find_pans(net, torch.randn(2, 3, 2, 2), tau=1.0, progress=False)


def test_std_floor_holds_back_near_dead_channels():
    conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
    w = torch.zeros(3, 3, 3, 3)
    w[0, 0, 0, :], w[0, 0, 1, :] = -1.0, 1.0  # the top detector
    w[1] = w[0] * 1e-3                        # the same detector, nearly dead
    w[2, 1] = torch.randn(3, 3)               # a content channel
    conv.weight.data = w
    net = nn.Sequential(conv)
    raw = P.find_pans(net, _images(), tau=2.0, std_floor=0.0, progress=False).set_index("channel")
    floored = P.find_pans(net, _images(), tau=2.0, progress=False).set_index("channel")
    assert raw.loc[1, "z_top"] == pytest.approx(raw.loc[0, "z_top"], rel=1e-3)  # z is scale-free without floor
    assert floored.loc[1, "std_floored"] and not floored.loc[0, "std_floored"]
    assert floored.loc[1, "z_top"] < raw.loc[1, "z_top"] / 10
    assert floored.loc[0, "z_top"] == pytest.approx(raw.loc[0, "z_top"])


def test_bad_input_raises_clear_errors_and_leaves_no_hooks():
    net = _planted_net()
    with pytest.raises(PadlibError, match="cannot run on these images"):
        P.find_pans(net, torch.randn(2, 5, 16, 16), tau=2.0, progress=False)
    assert not any(m._forward_hooks for m in net.modules())
    with pytest.raises(PadlibError, match="fpr must be between"):
        P.find_pans(net, _images(n=4), fpr=1.5, progress=False)
    with pytest.raises(PadlibError, match="one-shot iterator"):
        P.find_pans(net, iter([_images(n=4)]), progress=False)
    with pytest.raises(PadlibError):
        P.find_pans(net, "not images", tau=2.0, progress=False)
    with pytest.raises(PadlibError, match="move the model"):
        P.find_pans(net, _images(n=4), tau=2.0, device="meta", progress=False)
    assert not any(m._forward_hooks for m in net.modules())


def test_scan_state_does_not_grow_with_the_number_of_images():
    net = _planted_net()
    states = {}
    for n in (16, 128):  # same model, size and batch size; 8x the images (both past the selectivity reference)
        stats, _ = _pan_stream._stream(net, _images(n=n), 8, "cpu", False, "")
        assert all(st.n == n for st in stats.values())
        states[n] = _pan_stream.state_bytes(stats)
    assert states[16] == states[128]  # every accumulated tensor and container, layer by layer, byte for byte
    assert all(b > 0 for b, _ in states[16].values())
    # the check can fail: an accumulator that kept one batch's output would change the signature
    stats, _ = _pan_stream._stream(net, _images(n=16), 8, "cpu", False, "")
    stats["0"].kept = [torch.zeros(8, 24, 24, 24)]
    assert _pan_stream.state_bytes(stats)["0"][0] == states[16]["0"][0] + 8 * 24 * 24 * 24 * 4
    # before the selectivity reference is complete, at most SELECTIVITY_IMAGES images wait in its buffer
    few, _ = _pan_stream._stream(net, _images(n=8), 8, "cpu", False, "")
    assert few["0"].sel_ref is None and sum(p.shape[0] for p in few["0"].sel_pending) == 8
    # what the scan returns is per-layer too: the maps of 8 and 64 images are the same size
    a = P.scan_pans(net, _images(n=8), tau=2.0, progress=False, reference=None)
    b = P.scan_pans(net, iter(_images(n=64).split(8)), tau=2.0, progress=False,
                    reference=None)  # a one-shot stream of batches: no second pass, so no null and no reference
    assert {k: v.shape for k, v in a.maps.items()} == {k: v.shape for k, v in b.maps.items()}
    assert a.maps["0"].dtype == torch.float32 and b.table.attrs["n_images"] == 64
    assert a.null is None and a.fpr is None


def test_timm_fused_batchnorm_act_is_found_and_its_affine_applied_before_the_activation():
    from timm.layers import BatchNormAct2d, create_conv2d

    torch.manual_seed(0)
    net = nn.Sequential(create_conv2d(3, 8, 3, stride=2, padding="same"), BatchNormAct2d(8),
                        create_conv2d(8, 8, 3, padding="same", depthwise=True), BatchNormAct2d(8),
                        create_conv2d(8, 6, 3, stride=2, padding=""), BatchNormAct2d(6)).eval()
    for bn in (net[1], net[3], net[5]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.weight.data[0] = -1.0  # a negative scale flips the sign
        bn.bias.data[1] = -5.0  # channel 1 is negative before the fused ReLU, zero after it
    x = torch.randn(6, 3, 33, 33) + 0.3
    scan = P.scan_pans(net, x, fpr=0.2, progress=False)
    t = scan.table
    assert list(t.layer.unique()) == ["0", "2", "4"] and (t.bn.groupby(t.layer).first() == ["1", "3", "5"]).all()
    assert (t[t.layer == "0"].padding == "tf_same").all()
    assert t.filter(regex="^(z|effect|zpred)_").notna().all().all() and t.score.map(float).notna().all()
    assert t.is_pan.dtype == bool and scan.null is not None
    bn = net[1]
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert t[t.layer == "0"].bn_scale.to_numpy() == pytest.approx(scale.detach().numpy(), rel=1e-5)
    with torch.no_grad():  # the map is the BatchNorm's affine output, before its fused ReLU
        pre = F.batch_norm(net[0](x), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    assert torch.allclose(scan.maps["0"], pre.mean(0), atol=1e-4)
    assert (scan.maps["0"][1] < 0).all()  # not clipped by the fused ReLU


def test_summary_profile_and_selection_helpers(planted_scan):
    s = pan_tables.pan_summary(planted_scan.table).iloc[0]
    t = planted_scan.table
    assert s.pans == t.is_pan.sum() and s.filters == len(t)
    assert s.fire + s.silenced == s.pans
    counts = pan_tables.side_sign_counts(t)
    assert counts.loc["top", "fire"] >= 2 and counts.loc["top", "silenced"] >= 2
    prof = pan_tables.border_profile(planted_scan, "0", TOP)
    top0 = prof[(prof.side == "top") & (prof.distance == 0)].z.iloc[0]
    assert top0 == pytest.approx(_first_layer(t).loc[TOP, "z_top"], rel=0.05)
    strong = pan_tables.strongest_pans(t, 1)
    assert strong.is_pan.all() and not strong.duplicated(["side_kind", "sign"]).any()
    assert not pan_tables.ordinary_channels(t, 3).is_pan.any()


def test_cli_scan_writes_the_table(tmp_path, capsys):
    from padlib.cli import main

    out = tmp_path / "pans.csv"
    rc = main(["scan", "mobilenet_v2", "--images", "2", "--size", "96", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "PANs:" in printed and "tau=" in printed
    t = pd.read_csv(out)
    for col in ["layer", "channel", "depth", "kernel", "stride", "padding", "z_top", "z_bottom", "z_left",
                "z_right", "effect_top", "sides", "sign", "is_pan"]:
        assert col in t.columns
    assert t.layer.nunique() == 18
    before = out.read_text()
    capsys.readouterr()
    rc = main(["scan", "mobilenet_v2", "--images", "2", "--size", "96", "--out", str(out)])
    err = capsys.readouterr()
    assert rc == 2 and "already exists" in err.err and "--force" in err.err and "PANs:" not in err.out  # before scanning
    assert out.read_text() == before


def test_summary_shares_and_claim_check_use_our_stated_reading():
    t = pd.DataFrame({"layer": ["a"] * 100, "channel": range(100), "is_pan": [True] * 30 + [False] * 70,
                      "sides": ["top"] * 20 + ["frame"] * 10 + [""] * 70, "sign": [1] * 20 + [-1] * 10 + [0] * 70})
    t.attrs.update(model="m", tau=2.0, fpr=0.01)
    s = pan_tables.pan_summary(t).iloc[0]
    assert (s.pans, s.share_pct, s.fire_pct, s.silenced_pct) == (30, 30.0, 20.0, 10.0)
    assert (s.top, s.top_pct, s.bottom_pct, s.frame_pct) == (30, 30.0, 10.0, 10.0)
    shares = pan_tables.side_sign_shares([t]).set_index("side")
    assert shares.loc["top", "fire_pct"] == 20.0 and shares.loc["left", "silenced_pct"] == 10.0
    low, high = claims.CLAIM_COUNT_RANGE
    summary = pd.DataFrame({"model": ["x", "y", "z"], "fpr": 0.01, "tau": 1.0, "filters": 1000,
                            "pans": [low - 1, low, high + 1], "share_pct": [2.3, 2.4, 100.0]})
    c = ch1_readings.claim_check(summary)
    assert list(c.dozens_to_hundreds) == [False, True, False]
    assert list(c.count_vs_reading) == ["below", "inside", "above"]
    assert list(c.about_2pct) == [True, True, False]


def test_findings_state_the_counts_per_model_and_per_threshold():
    low, high = claims.CLAIM_COUNT_RANGE
    summary = pd.DataFrame({"model": ["m1", "m2"], "fpr": 0.01, "tau": 1.5, "filters": [5000, 8000], "n_images": 64,
                            "pans": [high + 100, high + 5], "share_pct": [21.98, 12.56], "fire": [500, 400],
                            "silenced": [599, 604], "fire_pct": [10.0, 5.0], "silenced_pct": [11.98, 7.55]})
    sens = pd.DataFrame({"model": ["m1", "m2", "m1", "m2"], "fpr": [0.001, 0.001, 0.01, 0.01],
                         "tau": [2.5, 2.6, 1.5, 1.5], "pans": [300, 200, high + 100, high + 5],
                         "share_pct": [6.0, 2.5, 21.98, 12.56]})
    text = ch1_readings.pan_findings(summary, sens)
    assert f"'dozens to hundreds' = {low}-{high}" in text and "not the paper's numbers" in text
    assert "At fpr 0.001: 2 of 2 models" in text and "At fpr 0.01: 0 of 2 models" in text
    assert "holds" not in text and "Verdict" not in text  # the verdict is the findings box's alone
    assert "m1 at fpr 0.01" in text and f"above {low}-{high}" in text


def _skew_table(model, padding, s2_reads, s2_sides):
    """A synthetic scan table: one stride-2 layer reading ``s2_reads`` with PANs on ``s2_sides``, and one
    stride-1 layer reading every side with PANs spread evenly."""
    rows = []
    for ch, side in enumerate(s2_sides + [""] * 10):
        rows.append({"layer": "s2", "stride": 2, "channel": ch, "padding": padding, "is_pan": bool(side),
                     "sides": side, "sign": 1 if side else 0, **{f"reads_{s}": s in s2_reads for s in P.SIDES}})
    for ch, side in enumerate(list(P.SIDES) * 10):
        rows.append({"layer": "s1", "stride": 1, "channel": ch, "padding": "1", "is_pan": True, "sides": side,
                     "sign": -1, **{f"reads_{s}": True for s in P.SIDES}})
    t = pd.DataFrame(rows)
    t.attrs["model"] = model
    return t


def test_side_skew_compares_pan_sides_with_the_padding_that_is_read():
    torch_pad = _skew_table("torchnet", "1", ("top", "left"), ["top"] * 20 + ["left"] * 20)
    tf_same = _skew_table("tfnet", "tf_same", ("bottom", "right"), ["top"] * 30 + ["bottom"] * 2)
    skew = ch1_design.side_skew([torch_pad, tf_same], n_boot=500).set_index(["model", "stride"])
    assert skew.loc[("torchnet", "2"), "read_top_left_share"] == 1.0 and skew.loc[("torchnet", "2"), "predicted"] == 1
    assert skew.loc[("tfnet", "2"), "read_top_left_share"] == 0.0 and skew.loc[("tfnet", "2"), "predicted"] == -1
    assert skew.loc[("tfnet", "2"), "top_left_share"] == pytest.approx(30 / 32)
    assert skew.loc[("torchnet", "1"), "top_left_share"] == 0.5 and skew.loc[("torchnet", "1"), "predicted"] == 0
    # stride-1 layers read every side: predicted 1/2, and the flags spread evenly match it
    assert skew.loc[("torchnet", "1"), "follow_diff"] == pytest.approx(0.0)
    # one stride-2 layer, reading one pair of sides only: nothing to test, so the side claim is not testable
    assert skew.loc[("torchnet", "2"), "layers"] == 1 and pd.isna(skew.loc[("torchnet", "2"), "ci_low"])
    assert skew.loc[("torchnet", "2"), "both_layers"] == 0 and skew.loc[("torchnet", "2"), "one_pair_sides"] == 40
    assert (ch1_readings.skew_verdicts(skew.reset_index()).verdict == "not testable here").all()
    assert ch1_readings.chapter_findings_box(skew=skew.reset_index())[0].verdict == "not testable here"
    lines = ch1_readings.skew_findings(skew.reset_index())
    assert any("torchnet (PyTorch padding)" in x for x in lines)
    assert "TF SAME (tfnet): 94%. The PyTorch-padded models' share is above every TF-SAME model's" in lines[-1]


def test_planted_findings_and_method_settings(planted_scan):
    check = planted.planted_check(planted_scan)
    circ = P.find_pans(_planted_net("circular"), _images(), tau=planted_scan.tau,
                       tau_corner=planted_scan.tau_corner, progress=False)
    text = ch1_readings.planted_findings(check, circ, 0.05)
    assert "24 of 24 channels classified as built: 7 of 7 planted PANs" in text
    assert "0 of 17 controls" in text and "consistent with chance" in text
    flagged = circ.copy()
    flagged["is_pan"] = True  # every channel of the null flagged: far more than a 5% rate allows
    assert "more than chance" in ch1_readings.planted_findings(check, flagged, 0.05)
    none = circ.assign(is_pan=False)
    assert "gives about 2.4: none, consistent with chance." in ch1_readings.planted_findings(check, none, 0.05)
    one = circ.assign(is_pan=[i == 0 for i in range(len(circ))])  # one flag where about 2.4 are expected
    text = ch1_readings.planted_findings(check, one, 0.05)
    assert "and 1 or more arise by chance with probability 0.9" in text and text.endswith("consistent with chance.")
    settings = ch1_readings.method_settings().set_index("setting")
    assert settings.loc["MARGIN_FRACTION", "value"] == padding.MARGIN_FRACTION == 1 / 8
    assert settings.loc["CLAIM_COUNT_RANGE", "value"] == f"{claims.CLAIM_COUNT_RANGE[0]}-{claims.CLAIM_COUNT_RANGE[1]}"


def test_claim_tau_range_reads_the_threshold_curve():
    low, high = claims.CLAIM_COUNT_RANGE
    curves = pd.DataFrame({"model": "m", "tau": [1.0, 2.0, 3.0, 4.0], "pans": [high + 1, high, low, low - 1],
                           "null_exceed": [50, 5, 1, 0], "calibrated_tau": 1.0})
    r = ch1_readings.claim_tau_range(curves).iloc[0]
    assert (r.tau_min_in_range, r.tau_max_in_range, r.null_exceed_at_tau_min) == (2.0, 3.0, 5)
    assert not r.calibrated_tau_in_range


# --- the random-initialisation reference (reference="random_init", the default) -------------------------

def test_random_init_copy_rebuilds_the_architecture_seeded():
    from padlib.models import random_init_copy

    net = _planted_net()
    a, b, c = random_init_copy(net, 0), random_init_copy(net, 0), random_init_copy(net, 1)
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)
    assert not torch.equal(a[0].weight, net[0].weight) and a[1].weight[6] == 1.0  # BN gamma reset too
    assert [type(m) for m in a.modules()] == [type(m) for m in net.modules()]


def test_learned_verdict_keeps_strong_planted_pans_and_no_control():
    """By default (the learned verdict, fpr 0.01) every planted PAN is beyond the random-init copies of its
    layer, with its sides and sign; no control channel is; ``padding_caused`` is the older verdict, which
    ``reference=None`` (or "none") still gives as ``is_pan``, without the reference columns."""
    net, x = _planted_net(), _images()
    old = P.scan_pans(net, x, progress=False, reference=None, definition="padding").table
    assert old.attrs["definition"] == "padding" and "beyond_random_init" not in old
    assert (P.find_pans(net, x, progress=False, reference="none", definition="padding").is_pan == old.is_pan).all()
    scan = P.scan_pans(net, x, progress=False, definition="learned")
    t = scan.table
    assert (t["padding_caused"] == old["is_pan"]).all() and t.attrs["definition"] == "learned"
    assert (t["is_pan"] == (t["padding_caused"] & t["beyond_random_init"])).all()
    assert (t["learned"] == t["is_pan"]).all() and (t["specialist"] <= t["learned"]).all()
    first = t[t.layer == "0"].set_index("channel")
    for ch, (sides, sign) in PLANTED.items():
        assert first.loc[ch, "is_pan"] and first.loc[ch, "sides"] == sides and first.loc[ch, "sign"] == sign, ch
    assert not first.loc[7:, "is_pan"].any()
    assert set(scan.reference["seed"]) == {0, 1} and len(scan.init_thresholds) == t.layer.nunique()
    # the reference is one batch of its images: the verdict does not depend on the scan's batch size
    assert (P.find_pans(net, x, progress=False, batch_size=5, definition="learned").is_pan == t.is_pan).all()


@pytest.mark.parametrize("seed", [10, 11])
def test_random_init_network_is_a_null_for_the_learned_verdict(seed):
    """A random-init mobilenet_v2 (BatchNorm calibrated on the probe images, as a trained network's is) scanned
    by default on the default probe set: its learned-PAN share is near the false-positive rate (1.4-1.5%
    measured), while the circular null alone flags more than half of it."""
    from padlib.data import probe_images
    from padlib.models import load_model
    from padlib.pans import recalibrate_batchnorm

    torch.manual_seed(seed)
    model = load_model("mobilenet_v2", pretrained=False)
    probe = probe_images(64, model=model)
    recalibrate_batchnorm(model, probe)
    t = P.scan_pans(model, probe, progress=False).table
    assert t["padding_caused"].mean() > 0.3  # the circular null alone flags a third or more of a random network
    assert t["is_pan"].mean() <= 0.03


def test_planted_pans_deep_in_a_random_init_resnet_are_found_and_only_there():
    """Eight channels of a deep conv (layer3.1.conv2) of a random-init torchvision ResNet-18 get a PAN kernel
    its random initialisation does not have (every input channel's row above the pixel minus the pixel's row:
    an interior mean near zero, a jump where the top row reads zero padding). The default scan finds all eight,
    on the top side, firing; elsewhere in the network (and in the rest of that layer) it flags no more than a
    false-positive rate's worth."""
    from padlib.data import probe_images
    from padlib.models import load_model
    from padlib.pans import recalibrate_batchnorm

    torch.manual_seed(3)
    model = load_model("resnet18", pretrained=False)
    probe = probe_images(32, size=128, model=model)
    conv, planted = model.layer3[1].conv2, list(range(8))
    with torch.no_grad():
        for o in planted:
            conv.weight[o] = 0
            conv.weight[o, :, 0, :] = -1.0 / conv.in_channels
            conv.weight[o, :, 1, :] = 1.0 / conv.in_channels
    recalibrate_batchnorm(model, probe)  # as training would have left them
    t = P.find_pans(model, probe, progress=False)
    layer = t[t.layer == "layer3.1.conv2"].set_index("channel")
    assert layer.loc[planted, "is_pan"].all(), layer.loc[planted, ["score", "padding_caused", "beyond_random_init"]]
    assert (layer.loc[planted, "sides"] == "top").all() and (layer.loc[planted, "sign"] == 1).all()
    rest = t[~((t.layer == "layer3.1.conv2") & t.channel.isin(planted))]
    assert rest.is_pan.mean() <= 0.03, rest[rest.is_pan].groupby("layer").size()
    assert layer.drop(planted).is_pan.mean() <= 0.03
    assert rest.padding_caused.mean() > 0.3  # what the older definition would have called PANs


def test_reference_options_are_checked():
    net, x = _planted_net(), _images(8)
    with pytest.raises(PadlibError, match="reference must be 'random_init'"):
        P.scan_pans(net, x, reference="trained", progress=False)
    with pytest.raises(PadlibError, match="reference_bn must be"):
        P.scan_pans(net, x, reference="random_init", reference_bn="frozen", progress=False)
    with pytest.raises(PadlibError, match="one-shot iterator"):
        P.scan_pans(net, iter([x]), tau=1.0, reference="random_init", progress=False)


def test_cli_scan_reference_option(tmp_path, capsys):
    from padlib.cli import main

    out = tmp_path / "pans.csv"
    assert main(["scan", "mobilenet_v2", "--images", "4", "--size", "96", "--out", str(out)]) == 0  # the default
    assert "beyond random init" in capsys.readouterr().out
    t = pd.read_csv(out)
    assert {"padding_caused", "beyond_random_init", "init_side_threshold"} <= set(t.columns)
    assert (t.is_pan == t.specialist).all() and (t.specialist <= (t.padding_caused & t.beyond_random_init)).all()
    old = tmp_path / "old.csv"
    assert main(["scan", "mobilenet_v2", "--images", "4", "--size", "96", "--reference", "none",
                 "--out", str(old)]) == 0
    assert "beyond random init" not in capsys.readouterr().out
    o = pd.read_csv(old)
    assert "beyond_random_init" not in o and (o.is_pan == o.specialist).all()
    assert (o.padding_caused == t.padding_caused).all()
    padding = tmp_path / "padding.csv"
    assert main(["scan", "mobilenet_v2", "--images", "4", "--size", "96", "--definition", "padding",
                 "--out", str(padding)]) == 0
    assert (pd.read_csv(padding).is_pan == t.padding_caused).all()


def test_learned_pan_control_puts_trained_next_to_random_init():
    net, x = _planted_net(), _images()
    control, scans = P.learned_pan_control(net, x, seeds=(10, 11), progress=False, definition="learned")
    assert list(control.init) == ["trained", "random init", "random init"] and list(control.seed)[1:] == [10, 11]
    trained = control.iloc[0]
    assert trained.learned >= 5 and trained.learned <= trained.padding_caused
    assert (control.learned[1:] <= 0.03 * control.filters[1:] + 1).all()  # random-init copies: near the fpr
    assert set(scans) == {"trained", "random init 10", "random init 11"}
    summary = pan_tables.learned_pan_summary(control)
    r = summary.iloc[0]
    assert r["learned trained"] == trained.learned and r.seeds == 2
    assert r["learned random init range"] == f"{control.learned[1:].min()}-{control.learned[1:].max()}"
    line = ch1_readings.learned_pan_findings(summary)[0]
    assert line.startswith(f"{r.model}: {trained.learned} learned PANs") and "reference is off" not in line
    with pytest.raises(PadlibError, match="needs"):
        P.init_reference(net, x, seeds=(), progress=False)


def test_learned_score_table_depth_profile_and_sensitivity_follow_the_scans():
    net, x = _planted_net(), _images()
    control, scans = P.learned_pan_control(net, x, seeds=(10, 11), progress=False, definition="learned")
    scores = pan_tables.learned_score_table(scans)
    n = len(scans["trained"].table)
    assert scores.groupby("network").size().to_dict() == {"trained": n, "circular null": n, "random init": 2 * n}
    trained = scores[scores.network == "trained"]
    side, _ = P.caused_scores(scans["trained"].table)
    assert (trained.side_score.to_numpy() == side).all() and trained.init_side_threshold.notna().all()
    profile = pan_tables.learned_depth_profile(scans)
    tr = profile[profile.network == "trained"].set_index("layer")
    t = scans["trained"].table
    assert tr.loc["0", "learned_pct"] == pytest.approx(100 * t[t.layer == "0"].is_pan.mean())
    ri = profile[profile.network == "random init"].set_index("layer")
    both = [scans[k].table for k in ("random init 10", "random init 11")]
    assert ri.loc["0", "padding_caused_pct"] == pytest.approx(
        100 * sum(b[b.layer == "0"].padding_caused.mean() for b in both) / 2)
    # the sensitivity table at the scan's own rate reproduces the scan's learned count
    sens = ch1_design.threshold_sensitivity(scans["trained"], (0.05, P.DEFAULT_FPR))
    assert sens.set_index("fpr").loc[P.DEFAULT_FPR, "pans"] == int(t.is_pan.sum())
    old = ch1_design.threshold_sensitivity(P.scan_pans(net, x, progress=False, reference=None, definition="padding"),
                                           (P.DEFAULT_FPR,))
    assert old.pans.iloc[0] == int(t.padding_caused.sum()) >= sens.set_index("fpr").loc[P.DEFAULT_FPR, "pans"]


def test_excess_across_settings_rereads_one_control_at_every_setting():
    net, x = _planted_net(), _images()
    returned = P.learned_pan_control(net, x, seeds=(10, 11), progress=False, definition="learned")
    across = ch1_design.excess_across_settings({"toy": returned}, fprs=(0.01, 0.05), bars=(0.9,), n_boot=100)
    assert len(across) == 2 * 1 + 2  # specialists at two rates and one bar, learned at two rates
    same = ch1_design.excess_across_settings({"toy": returned[1]}, fprs=(0.01, 0.05), bars=(0.9,), n_boot=100)
    pd.testing.assert_frame_equal(across, same)  # the control's (table, scans) or just its scans
    at_scan = across[(across.definition == "learned") & (across.fpr == P.DEFAULT_FPR)]
    assert len(at_scan) == 1  # at the scan's own rate the learned reading reproduces the scan's count
    assert at_scan.trained_pct.iloc[0] == pytest.approx(100 * returned[1]["trained"].table.is_pan.mean())
    assert (across[across.definition == "learned"].bar.isna()).all()


def test_random_init_scan_recalibrates_and_scans_a_copy():
    net, x = _planted_net(), _images()
    scan, copy = P.random_init_scan(net, x, 10, reference=None, keep_model=True, definition="padding")
    assert copy is not net and not torch.equal(copy[0].weight, net[0].weight)
    assert scan.table.attrs["definition"] == "padding" and copy[1].running_var.sum() != copy[1].num_features
    again = P.random_init_scan(net, x, 10, reference=None, definition="padding")
    pd.testing.assert_frame_equal(again.table, scan.table)


def test_chapter_findings_box_reads_the_tables():
    net, x = _planted_net(), _images()
    control, scans = P.learned_pan_control(net, x, seeds=(10, 11), progress=False, definition="learned")
    by_layer = ch1_design.learned_by_layer(scans)
    excess = ch1_design.learned_excess(by_layer, n_boot=500)
    scan = scans["trained"]
    t = scan.table
    assert by_layer.trained.sum() == int(t.is_pan.sum()) and len(by_layer) == t.layer.nunique()
    tr = 100 * t.is_pan.mean()
    assert excess.trained_pct.iloc[0] == pytest.approx(tr)
    summary = pan_tables.pan_summary([scan.table])
    sensitivity = ch1_design.threshold_sensitivity(scan, (0.05, P.DEFAULT_FPR))
    box = ch1_readings.chapter_findings_box(excess, summary, sensitivity, ch1_design.side_skew([scan.table]),
                                            P.DEFAULT_FPR)
    assert [f.section for f in box][:2] == ["are-pans-learned-the-random-initialisation-control",
                                            "how-many-pans-against-the-paper-s-claim"]
    first = box[0]
    assert first.verdict in ("supported", "inconclusive", "contradicted") and f"trained {tr:.1f}-{tr:.1f}%" in first.observed
    count = box[1]  # the paper's criterion is unknown: our count is reported, never judged
    n = int(scan.table.is_pan.sum())
    assert count.verdict == "not testable here" and f"{n}-{n} PANs per model at our pre-specified fpr" in count.observed


def test_chapter_findings_box_gives_each_section_its_own_lines():
    """A section shows the box's lines for the tables it has; the full box is the same lines in the same order."""
    from padlib.chapters.findings import section_markdown

    net, x = _planted_net(), _images()
    scan = P.scan_pans(net, x, progress=False, definition="learned")
    summary = pan_tables.pan_summary([scan.table])
    sensitivity = ch1_design.threshold_sensitivity(scan, (0.05, P.DEFAULT_FPR))
    part = ch1_readings.chapter_findings_box(summary=summary, sensitivity=sensitivity)
    assert [f.section for f in part] == ["how-many-pans-against-the-paper-s-claim"] * 2
    skew = ch1_design.side_skew([scan.table])
    assert [f.claim for f in ch1_readings.chapter_findings_box(skew=skew)] == [
        f.claim for f in ch1_readings.chapter_findings_box(summary=summary, sensitivity=sensitivity, skew=skew)][2:]
    text = section_markdown(part, "how-many-pans-against-the-paper-s-claim")
    assert text.count("**") == 4 and text.count("*") == 12 and "dozens to hundreds" in text and section_markdown(part, "elsewhere") == ""
    assert ch1_readings.chapter_findings_box() == []


# ---------------------------------------------------------------------------------------------------------
# Specialists: selectivity, the bar calibrated on the null, and error control.

@pytest.fixture(scope="module")
def specialist_scan():
    # fdr 0.5: 24 channels, 5 planted specialists; BH on an empirical null of 24 cannot resolve 0.05 with
    # fewer than about 1 / 0.05 discoveries (checked below)
    return P.scan_pans(planted.planted_specialist_network(), planted.planted_specialist_images(), fpr=0.05,
                       fdr=0.5, progress=False, reference=None)


def test_planted_specialists_are_found_and_smoothers_are_not(specialist_scan):
    t = specialist_scan.table[specialist_scan.table.layer == "0"].set_index("channel")
    roles = planted.SPECIALIST_ROLES
    bar = specialist_scan.selectivity_threshold
    assert bar == pytest.approx(max(P.SPECIALIST_SELECTIVITY, P.calibrate_selectivity(specialist_scan.null, 0.05,
                                                                                        floor=0.0)))
    specialists = [i for i, r in enumerate(roles) if r[1] == "specialist"]
    smoothers = [i for i, r in enumerate(roles) if r[1] == "smoother"]
    controls = [i for i, r in enumerate(roles) if r[1] == "control"]
    assert t.loc[specialists, "specialist"].all() and t.loc[specialists, "is_pan"].all()
    # smoothers: caused by the padding, yet their border response sits inside their interior's spread
    assert t.loc[smoothers, "padding_caused"].all() and not t.loc[smoothers, "specialist"].any()
    assert (t.loc[smoothers, "selectivity"] < bar).all() and (t.loc[smoothers, "selectivity"] > 0.6).all()
    assert not t.loc[controls, "padding_caused"].any() and not t.loc[controls, "specialist"].any()
    # near the bar: selectivity falls as content is mixed in, and the bar cuts the graded detectors in two
    graded = t.loc[list(range(len(planted.SPECIALIST_NOISE))), "selectivity"].to_numpy()
    assert (np.diff(graded) < 0).all()
    assert t.loc[4, "specialist"] and t.loc[4, "selectivity"] < bar + 0.05  # just above
    assert not t.loc[5, "specialist"] and t.loc[5, "padding_caused"]         # below: padding-caused only


def test_selectivity_is_an_auroc_of_border_against_interior():
    """A channel equal to its input: the top row is planted at a known rank against the interior."""
    x = torch.rand(32, 1, 20, 20) + 1.0  # interior uniform on [1, 2]
    x[:, :, 0, :] = 1.75                 # the top row sits at the 75th percentile of the interior
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False, padding_mode="replicate")
    conv.weight.data.zero_()
    conv.weight.data[0, 0, 1, 1] = 1.0
    t = P.find_pans(nn.Sequential(conv, nn.Conv2d(1, 1, 3, padding=1)), x, tau=1.0, reference=None,
                    progress=False, definition="padding").set_index("layer")
    assert t.loc["0", "auroc_top"] == pytest.approx(0.75, abs=0.04)
    assert t.loc["0", "auroc_bottom"] == pytest.approx(0.5, abs=0.08)
    assert t.loc["0", "selectivity"] == pytest.approx(0.75, abs=0.04)


def test_selectivity_does_not_depend_on_the_batch_size():
    net, x = planted.planted_specialist_network(), planted.planted_specialist_images(40)
    a = P.find_pans(net, x, tau=1.0, batch_size=40, reference=None, progress=False, definition="padding")
    b = P.find_pans(net, x, tau=1.0, batch_size=7, reference=None, progress=False, definition="padding")
    assert np.allclose(a.selectivity, b.selectivity, atol=1e-9)


def test_fdr_q_values_and_their_resolution(specialist_scan):
    t = specialist_scan.table
    assert ((t.p_null > 0) & (t.p_null <= 1)).all() and (t.q_value >= t.p_null - 1e-12).all()
    assert (t.specialist <= (t.q_value <= 0.5)).all()
    # at 0.05, 24 channels cannot resolve 5 discoveries: no p is below 1 / 25
    strict = P.specialist_verdict(t, specialist_scan.selectivity_threshold, 0.05)
    assert t.p_null.min() >= 1 / 25 - 1e-12 and not strict.specialist.any()
    assert specialist_scan.expected_false_discoveries() == pytest.approx(0.5 * t.specialist.sum())
    pv = P.null_p_values(specialist_scan.null, specialist_scan.null)
    assert 0.4 < pv.mean() < 0.6  # the null against itself: p roughly uniform


def test_definition_and_reclassify(specialist_scan):
    t = specialist_scan.table
    for d, col in (("padding", "padding_caused"), ("specialist", "specialist")):
        again = P.reclassify(specialist_scan, definition=d)
        assert (again.is_pan == t[col]).all() and again.attrs["definition"] == d
    with pytest.raises(PadlibError, match="definition"):
        P.reclassify(specialist_scan, definition="learned")  # no reference
    with pytest.raises(PadlibError, match="one of"):
        P.scan_pans(planted.planted_specialist_network(), planted.planted_specialist_images(8), definition="x")
    with pytest.raises(PadlibError, match="selectivity_threshold"):
        P.scan_pans(planted.planted_specialist_network(), planted.planted_specialist_images(8), tau=1.0,
                    definition="specialist", reference=None, progress=False)


def test_batchnorm_state_and_the_reference_follow_the_model():
    net = planted.planted_specialist_network()
    assert P.batchnorm_state(net) == "initialised" and P.batchnorm_state(nn.Sequential(nn.Conv2d(1, 1, 3))) == "none"
    x = planted.planted_specialist_images(16)
    assert P.scan_pans(net, x, fpr=0.05, progress=False).reference_bn == "initialised"
    P.recalibrate_batchnorm(net, x)
    assert P.batchnorm_state(net) == "calibrated"
    assert P.scan_pans(net, x, fpr=0.05, progress=False).reference_bn == "recalibrated"
