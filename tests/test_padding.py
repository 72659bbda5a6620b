"""Padding arithmetic against hand-computed cases; conversion keeps weights, shapes and names."""
import pytest
import torch
from torch import nn

import padlib
from padlib import padding as P
from padlib import layers


def test_uneven_stride2_padding_arithmetic():
    # k=3, s=2, p=1: at even n the bottom/right padding is never read; at odd n both sides are.
    assert P.padding_read(224, 3, 2, 1, 1, 1) == {
        "out": 112, "read_before": 1, "read_after": 0, "unread_input": 0, "ceil_extra": 0}
    assert P.padding_read(225, 3, 2, 1, 1, 1) == {
        "out": 113, "read_before": 1, "read_after": 1, "unread_input": 0, "ceil_extra": 0}
    # 7x7 stride 2 padding 3 at 224: m = 224 + 6 - 6 - 1 = 223, r = 1 -> one bottom padding row unread
    assert P.padding_read(224, 7, 2, 1, 3, 3)["read_after"] == 2
    # no padding, stride 2, even n: the last input row is never read
    assert P.padding_read(8, 3, 2, 1, 0, 0)["unread_input"] == 1


def test_ceil_mode_pool_reads_past_the_far_padding_like_torch():
    # MaxPool2d(3, 2, 1, ceil_mode=True) at 224: 113 outputs, the last window hangs one row past the padding
    r = P.padding_read(224, 3, 2, 1, 1, 1, ceil_mode=True)
    assert r == {"out": 113, "read_before": 1, "read_after": 2, "unread_input": 0, "ceil_extra": 1}
    for n in (7, 8, 223, 224, 225):
        for k, s, p in ((3, 2, 1), (2, 2, 0), (3, 2, 0)):
            out = nn.MaxPool2d(k, s, p, ceil_mode=True)(torch.zeros(1, 1, n, n)).shape[-1]
            assert P.padding_read(n, k, s, 1, p, p, ceil_mode=True)["out"] == out, (n, k, s, p)


def test_tf_same_puts_the_extra_row_after():
    assert P.same_padding(224, 3, 2) == (0, 1)
    assert P.same_padding(225, 3, 2) == (1, 1)
    assert P.same_padding(224, 5, 2) == (1, 2)
    assert P.same_padding(10, 3, 1, d=2) == (2, 2)


def test_layer_pads_for_static_torch_same_and_timm_dynamic_same():
    from timm.layers import Conv2dSame

    assert P.layer_pads(nn.Conv2d(1, 1, 3, padding=1), (8, 8)) == (1, 1, 1, 1)
    assert P.layer_pads(nn.Conv2d(1, 1, 4, padding="same"), (8, 8)) == (1, 2, 1, 2)
    assert P.layer_pads(Conv2dSame(1, 1, 3, stride=2), (224, 225)) == (1, 1, 0, 1)


def test_padded_convs_finds_depthwise_and_dynamic_same_but_not_1x1():
    model = padlib.load_model("tf_efficientnet_lite0", pretrained=False)
    convs = P.padded_convs(model)
    assert any(c.groups == c.in_channels > 1 for _, c in convs)  # depthwise
    assert any(P.is_dynamic_same(c) for _, c in convs)
    assert all(max(c.kernel_size) > 1 for _, c in convs)
    with pytest.raises(padlib.NoPaddedLayersError, match="nothing for padding analysis"):
        P.require_padded_convs(nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3)))


def test_convert_padding_zero_is_bit_identical_and_others_change_only_the_border():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1))
    x = torch.randn(2, 2, 9, 9)
    assert torch.equal(layers.convert_padding(net, "zero")(x), net(x))
    for scheme in ("reflect", "replicate", "circular"):
        conv = layers.convert_padding(net, scheme)
        assert isinstance(conv[0], nn.Conv2d) and conv[0].weight is not net[0].weight  # a copy
        assert torch.equal(conv[0].weight, net[0].weight)
        y0, y1 = net(x), conv(x)
        assert y1.shape == y0.shape
        assert torch.allclose(y1[..., 1:-1, 1:-1], y0[..., 1:-1, 1:-1], atol=1e-6)
        assert not torch.allclose(y1, y0)
        expected = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode=scheme), net[0].weight, net[0].bias)
        assert torch.allclose(y1, expected, atol=1e-6)
    assert layers.padding_scheme_of(layers.convert_padding(net, "circular")[0]) == "circular"


def test_convert_padding_keeps_tf_same_asymmetry_and_round_trips():
    model = padlib.load_model("tf_efficientnet_lite0", pretrained=False)
    x = torch.randn(1, 3, 64, 64)
    circ = layers.convert_padding(model, "circular")
    names = [n for n, _ in P.padded_convs(model)]
    assert [n for n, _ in P.padded_convs(circ)] == names
    back = layers.convert_padding(circ, "zero")
    assert torch.allclose(back(x), model(x), atol=1e-5)
    with pytest.raises(padlib.PadlibError, match="unknown padding scheme"):
        layers.convert_padding(model, "mirror-ish")
