"""The output adapter: every branch of select_output on planted outputs, the channels-last rule on both sides of
each threshold, and compare_outputs' measures against hand computation (border band and interior)."""
import math
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn

import padlib
from padlib.outputs import border_band, is_channels_last, to_nchw

T = torch.arange(6.0).view(2, 3)
U = -T


@pytest.mark.parametrize("out, expected", [
    (T, T),
    ((T, U), T),
    ([None, "x", U, T], U),                    # the first tensor, past what is not one
    (namedtuple("Pair", ["scores", "feature"])(U, T), U),
    ({"aux": U, "out": T}, T),                 # "out" wins wherever it stands
    ({"meta": 3, "logits": U, "x": T}, U),     # else the first tensor
])
def test_select_output_default_rules(out, expected):
    assert padlib.select_output(out) is expected


def test_select_output_explicit_key_index_and_function():
    assert padlib.select_output({"out": T, "aux": U}, output="aux") is U
    assert padlib.select_output((T, U), output=1) is U
    assert padlib.select_output([T, U], output=-1) is U
    assert padlib.select_output((T, {"deep": U}), output=lambda o: o[1]["deep"]) is U


@pytest.mark.parametrize("out, output, words", [
    ({1, 2}, None, ["set", "output="]),
    ("text", None, ["str", "output="]),
    ((None, "x"), None, ["tuple without a tensor", "output="]),
    ({"a": 1}, None, ["dict without a tensor", "output="]),
    ((T, U), "out", ["output='out'", "forward returned a tuple", "output="]),
    ({"out": T}, "aux", ["output='aux'", "'out'"]),
    ((T, U), 2, ["output=2", "2 items"]),
    ({"out": T}, 0, ["output=0", "a dict, not a tuple or list"]),
    ((T, "x"), 1, ["[1] gave a str, not a tensor"]),
    ((T, U), True, ["output= must be a key, an index or a function", "bool"]),
    ((T, U), 1.5, ["output= must be", "float"]),
])
def test_select_output_refuses_in_one_line(out, output, words):
    with pytest.raises(padlib.PadlibError) as e:
        padlib.select_output(out, output=output)
    text = str(e.value)
    assert "\n" not in text
    for w in words:
        assert w in text, (w, text)


def test_output_kind_logits_dense_and_other_shapes():
    assert padlib.output_kind(torch.zeros(2, 10)) == "logits"
    assert padlib.output_kind(torch.zeros(2, 3, 16, 16)) == "dense"
    assert padlib.output_kind(torch.zeros(2, 16, 16, 2)) == "dense"
    with pytest.raises(padlib.PadlibError, match=r"shape \(2, 3, 4\) is neither logits"):
        padlib.output_kind(torch.zeros(2, 3, 4))
    with pytest.raises(padlib.PadlibTypeError):
        padlib.output_kind((T,))


@pytest.mark.parametrize("shape, channels_last", [
    ((1, 128, 128, 2), True),     # CRAFT's score maps
    ((1, 8, 8, 4), True),         # both thresholds met exactly
    ((1, 8, 8, 5), False),        # last dim above 4
    ((1, 7, 8, 2), False),        # a middle dim under 8
    ((1, 8, 7, 2), False),
    ((1, 3, 256, 256), False),    # an image-like map
    ((1, 1024, 2, 2), False),     # a bottleneck: few columns but few rows too
    ((4, 10), False),             # logits are never channels-last
])
def test_channels_last_rule_on_both_sides_of_each_threshold(shape, channels_last):
    assert is_channels_last(torch.zeros(shape)) is channels_last


def test_channels_last_can_be_forced_either_way():
    t = torch.randn(1, 8, 8, 2)
    assert to_nchw(t).shape == (1, 2, 8, 8)
    assert to_nchw(t, channels_last=False).shape == (1, 8, 8, 2)
    assert to_nchw(torch.zeros(1, 3, 16, 16), channels_last=True).shape == (1, 16, 3, 16)
    with pytest.raises(padlib.PadlibTypeError):
        to_nchw(t, channels_last="yes")


def test_border_band_is_the_interior_margin():
    band = border_band((8, 8))  # margin max(1, ceil(8 / 8)) = 1
    assert int(band.sum()) == 28 and not band[1:7, 1:7].any()
    band = border_band((24, 17))  # margin ceil(17 / 8) = 3
    assert band[:3].all() and band[-3:].all() and band[:, :3].all() and band[:, -3:].all()
    assert not band[3:21, 3:14].any()
    assert border_band((2, 2)).all()  # no interior under 3 px


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_compare_logits_against_hand_computation():
    ref = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    oth = np.array([[0.0, 3.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 5.0]])
    p, q = _softmax(ref), _softmax(oth)
    kl = (p * (np.log(p) - np.log(q))).sum(-1).mean()
    r = padlib.compare_outputs(torch.tensor(ref), (torch.tensor(oth), "extra"))
    assert r["kind"] == "logits" and r["n"] == 3 and r["shape"] == (3,)
    assert r["agreement"] == pytest.approx(2 / 3)
    assert r["kl"] == pytest.approx(kl)
    same = padlib.compare_outputs(torch.tensor(ref), torch.tensor(ref))
    assert same["agreement"] == 1.0 and same["kl"] == pytest.approx(0.0, abs=1e-12)


def _planted_maps():
    """Two images, 2 channels, 8x8: channel 0 above channel 1 everywhere in the reference."""
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(2, 2, 8, 8, generator=g, dtype=torch.float64)
    ref[:, 0] += 2.0
    return ref


def test_compare_dense_change_at_the_border_only():
    ref = _planted_maps()
    oth = ref.clone()
    oth[0, :, 0, 0] = torch.tensor([0.0, 9.0])  # image 0, a corner: changed and its argmax flipped
    r = padlib.compare_outputs(ref, oth)
    assert r["kind"] == "dense" and r["shape"] == (2, 8, 8) and r["margin"] == 1 and not r["channels_last"]
    band = border_band((8, 8))
    d0 = (oth[0] - ref[0])[:, band].norm() / ref[0][:, band].norm()
    assert r["relative_change_border"] == pytest.approx(float(d0) / 2)   # image 1 unchanged: 0
    assert r["relative_change_interior"] == 0.0
    assert r["relative_change"] == pytest.approx(float((oth[0] - ref[0]).norm() / ref[0].norm()) / 2)
    assert r["argmax_agreement_border"] == pytest.approx((27 / 28 + 1) / 2)
    assert r["argmax_agreement_interior"] == 1.0
    assert r["argmax_agreement"] == pytest.approx((63 / 64 + 1) / 2)


def test_compare_dense_change_in_the_interior_only():
    ref = _planted_maps()
    oth = ref.clone()
    oth[1, :, 4, 4] = torch.tensor([-1.0, 1.0])
    r = padlib.compare_outputs(ref, oth)
    assert r["relative_change_border"] == 0.0 and r["argmax_agreement_border"] == 1.0
    d1 = (oth[1] - ref[1])[:, ~border_band((8, 8))].norm() / ref[1][:, ~border_band((8, 8))].norm()
    assert r["relative_change_interior"] == pytest.approx(float(d1) / 2)
    assert r["argmax_agreement_interior"] == pytest.approx((1 + 35 / 36) / 2)


def test_compare_dense_channels_last_reads_the_same_and_one_channel_has_no_argmax():
    ref = _planted_maps()
    oth = ref * 1.5
    first = padlib.compare_outputs(ref, oth)
    last = padlib.compare_outputs(ref.permute(0, 2, 3, 1), oth.permute(0, 2, 3, 1))
    assert last["channels_last"] and last["shape"] == (2, 8, 8)
    for key in ("relative_change", "relative_change_border", "relative_change_interior", "argmax_agreement"):
        assert last[key] == pytest.approx(first[key])
    assert first["relative_change"] == pytest.approx(0.5)
    one = padlib.compare_outputs(ref[:, :1], oth[:, :1])
    assert "argmax_agreement" not in one and one["relative_change_border"] == pytest.approx(0.5)
    tiny = padlib.compare_outputs(ref[:, :, :2, :2], oth[:, :, :2, :2])
    assert math.isnan(tiny["relative_change_interior"]) and tiny["relative_change_border"] == pytest.approx(0.5)


def test_compare_outputs_refuses_different_shapes():
    with pytest.raises(padlib.PadlibError, match="differ in shape"):
        padlib.compare_outputs(torch.zeros(2, 3), torch.zeros(3, 3))


class _Detector(nn.Module):
    """A tiny dense network returning CRAFT's kind of tuple: channels-last scores and a feature map."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y.permute(0, 2, 3, 1), y


def test_describe_outputs_dense_and_logits_one_row_per_image():
    x = torch.randn(3, 3, 16, 16)
    det = _Detector().eval()
    rows = padlib.describe_outputs(det, x)
    assert len(rows) == 3 and set(rows["output"]) == {"[0]"} and set(rows["kind"]) == {"dense"}
    assert rows["shape"][0] == (2, 16, 16)
    with torch.no_grad():
        expect = det.conv(x)[:, 0].amax((1, 2))
    assert np.allclose(rows["peak"], expect.numpy(), atol=1e-6)
    rows = padlib.describe_outputs(det, x, output=1)
    assert set(rows["output"]) == {"[1]"} and rows["shape"][0] == (2, 16, 16)
    clf = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 4)).eval()
    rows = padlib.describe_outputs(clf, x)
    assert set(rows["kind"]) == {"logits"} and rows["class_name"].isin(["0", "1", "2", "3"]).all()
    assert ((rows["probability"] > 0.25) & (rows["probability"] <= 1)).all()


class _Odd(nn.Module):
    def forward(self, x):
        return {"boxes": [1, 2]}


def test_describe_and_predict_refuse_unreadable_outputs_in_one_line():
    with pytest.raises(padlib.PadlibError) as e:
        padlib.describe_outputs(_Odd(), torch.zeros(1, 3, 8, 8))
    assert "dict without a tensor" in str(e.value) and "output=" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(padlib.PadlibError) as e:
        padlib.predict(_Detector().eval(), torch.zeros(1, 3, 8, 8))
    assert "returns a tuple, not class logits" in str(e.value) and "describe_outputs" in str(e.value)


def test_compare_outputs_gives_the_comparisons_metrics_only():
    """dense_metrics' per-image squared norms (what evaluate pools) are not compare_outputs' results."""
    torch.manual_seed(0)
    ref = torch.randn(2, 3, 8, 8)
    r = padlib.compare_outputs(ref, ref + 0.1)
    assert not [k for k in r if k.startswith("sq_")]
    assert {"relative_change", "relative_change_border", "argmax_agreement"} <= set(r)
