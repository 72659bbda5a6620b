"""Padding schemes: hand-computed pads, convert_padding keeps zero exact and changes only the border ring,
partial padding equals its formula, the Padding Module learns affine extrapolation with its own loss only."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import padlib
from padlib.errors import PadlibError
from padlib.layers import PadConv2d, convert_padding
from tests.isolation import run_isolated
from padlib.layers import ALL_SCHEMES, pad_with
from padlib.layers.padding_module import PaddingModule, edge_prediction_error, padding_module_loss, padding_modules

X = torch.arange(1.0, 10.0).view(1, 1, 3, 3)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids thread hand-off costs on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)  # [[1 2 3] [4 5 6] [7 8 9]]

EXPECTED_PAD1 = {
    "zero": [[0, 0, 0, 0, 0], [0, 1, 2, 3, 0], [0, 4, 5, 6, 0], [0, 7, 8, 9, 0], [0, 0, 0, 0, 0]],
    "reflect": [[5, 4, 5, 6, 5], [2, 1, 2, 3, 2], [5, 4, 5, 6, 5], [8, 7, 8, 9, 8], [5, 4, 5, 6, 5]],
    "replicate": [[1, 1, 2, 3, 3], [1, 1, 2, 3, 3], [4, 4, 5, 6, 6], [7, 7, 8, 9, 9], [7, 7, 8, 9, 9]],
    "circular": [[9, 7, 8, 9, 7], [3, 1, 2, 3, 1], [6, 4, 5, 6, 4], [9, 7, 8, 9, 7], [3, 1, 2, 3, 1]],
    "symmetric": [[1, 1, 2, 3, 3], [1, 1, 2, 3, 3], [4, 4, 5, 6, 6], [7, 7, 8, 9, 9], [7, 7, 8, 9, 9]],
    "partial": [[0, 0, 0, 0, 0], [0, 1, 2, 3, 0], [0, 4, 5, 6, 0], [0, 7, 8, 9, 0], [0, 0, 0, 0, 0]],
    # an untrained Padding Module is initialised to replicate padding
    "padding_module": [[1, 1, 2, 3, 3], [1, 1, 2, 3, 3], [4, 4, 5, 6, 6], [7, 7, 8, 9, 9], [7, 7, 8, 9, 9]],
}


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_each_scheme_pads_as_computed_by_hand(scheme):
    assert pad_with(X, scheme, 1)[0, 0].tolist() == EXPECTED_PAD1[scheme]


def test_symmetric_mirrors_the_edge_pixel_and_reflect_does_not():
    sym = pad_with(X, "symmetric", 2)[0, 0]
    rows = {0: [2, 1, 1, 2, 3, 3, 2], 1: [5, 4, 4, 5, 6, 6, 5], 2: [8, 7, 7, 8, 9, 9, 8]}
    expected = [rows[r] for r in (1, 0, 0, 1, 2, 2, 1)]
    assert sym.tolist() == expected
    assert pad_with(X, "reflect", 2)[0, 0, 2].tolist() == [3, 2, 1, 2, 3, 2, 1]


def test_padding_module_with_linear_extrapolation_weights_extends_an_affine_image():
    """Predictor 2 * (outermost) - (next) on every side: the padding is the affine continuation, corners too."""
    m = PaddingModule(1, depth=2)
    with torch.no_grad():
        m.weight.zero_()
        m.weight[:, 0, 0, 0, 0] = 2.0
        m.weight[:, 0, 0, 1, 0] = -1.0
    expected = [[-3, -2, -1, 0, 1], [0, 1, 2, 3, 4], [3, 4, 5, 6, 7], [6, 7, 8, 9, 10], [9, 10, 11, 12, 13]]
    assert torch.allclose(pad_with(X, m, 1)[0, 0], torch.tensor(expected, dtype=torch.float32))
    two = pad_with(X, m, 2)[0, 0]  # two rings: f(i, j) = 3i + j + 1 for i, j in -2..4
    grid = torch.arange(-2, 5, dtype=torch.float32)
    assert torch.allclose(two, 3 * grid[:, None] + grid[None, :] + 1, atol=1e-5)


def test_partial_conv_rescales_border_outputs_by_window_over_real_pixels():
    conv = nn.Conv2d(1, 1, 3, padding=1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(1.0)
    out = convert_padding(nn.Sequential(conv), "partial")(X)[0, 0]
    # corner (0, 0): real pixels 1 + 2 + 4 + 5 = 12 under a window of 4 real pixels -> 12 * 9 / 4 + bias
    assert out[0, 0].item() == pytest.approx(12 * 9 / 4 + 1)
    # top edge (0, 1): 1+2+3+4+5+6 = 21 over 6 real pixels; centre: 45, no rescaling
    assert out[0, 1].item() == pytest.approx(21 * 9 / 6 + 1)
    assert out[1, 1].item() == pytest.approx(45 + 1)
    ones = convert_padding(nn.Sequential(conv), "partial")(torch.ones(1, 1, 3, 3))
    assert torch.allclose(ones, torch.full_like(ones, 10.0))  # a constant image gives a constant output


@pytest.mark.parametrize("kernel,stride,padding,dilation", [(3, 1, 1, 1), (3, 2, 1, 1), (5, 1, 2, 1), (3, 1, 2, 2)])
def test_partial_padding_equals_the_formula(kernel, stride, padding, dilation):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, kernel, stride, padding, dilation)
    x = torch.randn(2, 3, 9, 10)
    out = convert_padding(nn.Sequential(conv), "partial")(x)
    # independent formula: count the real pixels under every window with unfold
    mask = F.unfold(F.pad(torch.ones(1, 1, 9, 10), (padding,) * 4), kernel, dilation, 0, stride).sum(1)
    raw = F.conv2d(x, conv.weight, None, stride, padding, dilation)
    ratio = (kernel * kernel / mask).view(1, 1, *raw.shape[-2:])
    assert torch.allclose(out, raw * ratio + conv.bias.view(1, -1, 1, 1), atol=1e-5)


def _net(c=3, depth=3):
    torch.manual_seed(0)
    layers = []
    for i in range(depth):
        layers += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers)


def test_zero_to_zero_is_bit_for_bit_identical_on_a_torchvision_model():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(2, 3, 32, 32)
    same = convert_padding(model, "zero")
    assert not any(isinstance(m, PadConv2d) for m in same.modules())
    with torch.no_grad():
        assert torch.equal(model(x), same(x))


@pytest.mark.parametrize("scheme", [s for s in ALL_SCHEMES if s != "zero"])
def test_other_schemes_change_only_the_border_ring(scheme):
    """A stack of three stride-1 3x3 convs: the padding reaches at most 3 pixels in from the border."""
    model = _net()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref, out = model(x), convert_padding(model, scheme)(x)
    assert out.shape == ref.shape
    assert torch.allclose(out[..., 3:-3, 3:-3], ref[..., 3:-3, 3:-3], atol=1e-6)
    assert (out - ref).abs()[..., :3, :].amax() > 1e-3  # the ring does change


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_output_shapes_unchanged_on_torchvision_and_timm_tf_same(scheme):
    import timm
    import torchvision

    torch.manual_seed(0)
    for model, size in [(torchvision.models.resnet18(weights=None), 33),
                        (timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=5), 97)]:
        model.eval()
        x = torch.randn(1, 3, size, size)
        converted = convert_padding(model, scheme)
        with torch.no_grad():
            assert converted(x).shape == model(x).shape
        # names and weights kept
        assert set(dict(model.named_parameters())) <= set(dict(converted.named_parameters()))


def _ramps(n, c=2, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    a, b, k = (torch.randn(n, c, 1, 1, generator=g) for _ in range(3))
    i = torch.arange(size, dtype=torch.float32)
    return a * i.view(1, 1, -1, 1) + b * i.view(1, 1, 1, -1) + k


def _padding_module_net(c=2):
    torch.manual_seed(0)
    return convert_padding(nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, 4, 3, padding=1)),
                           "padding_module")


def test_padding_module_learns_to_extrapolate_a_linear_ramp_exactly():
    torch.manual_seed(0)
    net = convert_padding(nn.Sequential(nn.Conv2d(2, 3, 3, padding=1)), "padding_module")
    module = padding_modules(net)[0][1]
    # the module's loss is quadratic in its weights: L-BFGS on it alone reaches the exact solution
    opt = torch.optim.LBFGS(module.parameters(), lr=1, max_iter=200, tolerance_grad=1e-12,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")
    ramps = _ramps(32, seed=1)
    net.train()

    def closure():
        opt.zero_grad()
        net(ramps)
        loss = padding_module_loss(net)
        loss.backward()
        return loss

    for _ in range(3):
        loss = opt.step(closure)
    assert loss.item() < 1e-6
    ramp = _ramps(1, seed=10_000, size=8)
    padded = pad_with(ramp, module, 1)
    a_b_k = ramp[0, :, 1, 0] - ramp[0, :, 0, 0], ramp[0, :, 0, 1] - ramp[0, :, 0, 0], ramp[0, :, 0, 0]
    i = torch.arange(-1, 9, dtype=torch.float32)
    truth = a_b_k[0].view(-1, 1, 1) * i.view(1, -1, 1) + a_b_k[1].view(-1, 1, 1) * i.view(1, 1, -1) + a_b_k[2].view(-1, 1, 1)
    assert torch.allclose(padded[0], truth, atol=2e-3 * truth.abs().max())
    err = edge_prediction_error(net, _ramps(8, seed=7), batch_size=4)
    first = err.set_index("predictor")["relative_to_zero"]
    assert first["padding_module"] < 1e-4 < first["reflect"]
    assert first["padding_module"] < first["replicate"]


def test_padding_module_loss_trains_only_the_module_and_the_main_loss_never_does():
    net = _padding_module_net()
    x, target = torch.randn(4, 2, 10, 10), torch.randn(4, 4, 10, 10)
    module_params = {id(p) for _, m in padding_modules(net) for p in m.parameters()}
    others = [p for p in net.parameters() if id(p) not in module_params]

    net.train()
    main = F.mse_loss(net(x), target)
    assert padding_module_loss(net) is not None  # stored by the forward
    grads_main = torch.autograd.grad(main, list(net.parameters()), allow_unused=True)
    for p, g in zip(net.parameters(), grads_main):
        if id(p) in module_params:
            assert g is None or torch.count_nonzero(g) == 0  # the main loss does not reach the module

    main = F.mse_loss(net(x), target)
    module_loss = padding_module_loss(net)
    assert padding_module_loss(net) is None  # collected once, then cleared
    g_main = torch.autograd.grad(main, others, retain_graph=True)
    g_both = torch.autograd.grad(main + module_loss, others, retain_graph=True, allow_unused=True)
    for a, b in zip(g_main, g_both):
        assert torch.equal(a, b)  # the module loss leaves every other gradient untouched
    g_module = torch.autograd.grad(module_loss, [p for _, m in padding_modules(net) for p in m.parameters()])
    assert all(torch.count_nonzero(g) > 0 for g in g_module)

    net.eval()
    net(x)
    assert padding_module_loss(net) is None  # no loss outside training


@pytest.mark.parametrize("c_in,c_out,groups,stride,size,bias", [
    (4, 6, 2, 1, 6, True),  # grouped
    (4, 4, 1, 2, 7, False),  # stride 2 on an odd map: the bottom/right padding is read
    (3, 5, 1, 2, 8, True),  # stride 2 on an even map: it is not
    (4, 4, 4, 1, 5, True),  # depthwise
    (1, 3, 1, 1, 4, False),  # one input channel, the thinnest map the fast path takes
    (5, 4, 1, 1, 6, True),  # stride 1, one group: three shifted products over all rings at once
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_padding_module_fast_conv_equals_conv_of_the_padded_map(c_in, c_out, groups, stride, size, bias, channels_last):
    """The zero-padded conv plus border correction equals convolving the ring-by-ring padded map, values and
    gradients (input and conv weights; the predictors get none); its module loss equals the per-side loss.
    Channels-last (the CUDA training layout) runs backward passes through oneDNN's channels-last kernels, which
    corrupt the heap on some CPUs: that case runs in its own process with a time limit."""
    args = (c_in, c_out, groups, stride, size, bias, channels_last)
    if channels_last:
        run_isolated(_fast_conv_case, *args, what="the channels-last Padding Module conv and its gradients")
    else:
        _fast_conv_case(*args)


def _fast_conv_case(c_in, c_out, groups, stride, size, bias, channels_last):
    torch.manual_seed(0)
    m = PaddingModule(c_in, groups=groups, depth=2).double()
    with torch.no_grad():
        m.weight.normal_()
        m.bias.normal_()
    conv = PadConv2d(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, groups=groups, bias=bias).double(), m)
    x = torch.randn(2, c_in, size, size, dtype=torch.float64)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    assert padlib.layers.padding_module._can_pad_fast(conv, x, (1, 1, 1, 1), m.depth)

    def slow(v, weight):
        return F.conv2d(m.pad(v, (1, 1, 1, 1)), weight, conv.bias, stride, 0, 1, groups)

    m.eval()
    w = conv.weight.detach().clone().requires_grad_()
    expected, got = slow(x, w), m(conv, x, (1, 1, 1, 1))
    assert torch.allclose(got, expected, atol=1e-12)
    g = torch.randn_like(expected)
    want = torch.autograd.grad(slow(x, w), [x, w], g)
    have = torch.autograd.grad(m(conv, x, (1, 1, 1, 1)), [x, conv.weight], g)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(want, have))
    assert m.weight.grad is None and m.bias.grad is None  # the padding never trains the module
    assert torch.autograd.gradcheck(lambda v: m(conv, v, (1, 1, 1, 1)), (x,))

    m.train()
    m(conv, x, (1, 1, 1, 1))
    loss = padding_module_loss(nn.Sequential(conv))
    per_side = torch.stack([F.mse_loss(m.predict(m._strip(x.detach(), s, 1, 2), s, detach=False),
                                       m._strip(x.detach(), s, 0, 1)) for s in range(4)]).mean()
    assert torch.allclose(loss, per_side)
    grads = torch.autograd.grad(loss, [m.weight, m.bias])
    want = torch.autograd.grad(per_side, [m.weight, m.bias])
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(grads, want))

    m(conv, x, (1, 1, 1, 1)).sum().backward()  # training forward, its module loss left unused
    assert m.weight.grad is None and m.bias.grad is None and conv.weight.grad is not None


def test_padding_module_slow_path_gradient_matches_autograd():
    """Padding amounts the fast path does not take (two rings, one side only) go ring by ring; gradcheck."""
    torch.manual_seed(0)
    m = PaddingModule(4, groups=2, depth=2).double()
    with torch.no_grad():
        m.weight.normal_()
        m.bias.normal_()
    for pads in [(2, 2, 2, 2), (0, 1, 0, 1)]:
        x = torch.randn(1, 4, 5, 5, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda v: m.pad(v, pads), (x,))


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(PadlibError, match="unknown padding scheme"):
        convert_padding(_net(), "mirror")
    with pytest.raises(PadlibError, match="depth"):
        PaddingModule(3, depth=0)
    with pytest.raises(PadlibError, match="no Padding Module"):
        edge_prediction_error(_net(), torch.randn(2, 3, 8, 8))


def test_bench_reports_one_ratio_per_scheme():
    from padlib.bench import BENCHMARKS
    from padlib.bench import bench_padding_schemes as bench_scheme_step_overhead

    assert any(b.__name__ == "bench_padding_schemes" for b in BENCHMARKS)
    out = bench_scheme_step_overhead(schemes=("reflect", "padding_module"), batch_size=4, repeats=1)
    assert set(out) == {"reflect_step_overhead", "padding_module_step_overhead", "padding_module_step_overhead_vgg"}
    assert all(v > 0 for v in out.values())


def test_edge_prediction_findings_count_layers_won_in_every_seed():
    import pandas as pd

    from padlib.chapters.ch5_schemes import edge_prediction_findings

    rows = []
    for seed, module_l2 in ((0, 0.3), (1, 0.9)):  # layer "b": the module wins only in seed 0
        for layer, vals in (("a", {"padding_module": 0.2, "replicate": 0.5, "reflect": 1.2}),
                            ("b", {"padding_module": module_l2, "replicate": 0.6, "reflect": 1.1})):
            rows += [{"seed": seed, "layer": layer, "predictor": p, "relative_to_zero": v} for p, v in vals.items()]
    table, lines = edge_prediction_findings(pd.DataFrame(rows))
    assert table.loc["b", "padding_module"] == pytest.approx(0.6)
    assert "on 1 of 2 layers in every one of 2 seed(s) (1 of 2 on the mean)" in lines[0]


def test_padding_views_one_per_padded_conv():
    from padlib.experiments.ch5_schemes import example_pad, most_varied_channel, padding_views

    fmap = torch.zeros(3, 8, 8)
    fmap[1, ::2] = 1.0
    assert most_varied_channel(fmap) == 1 and example_pad(fmap, 4) == 2 and example_pad(torch.zeros(1, 2, 2)) == 1
    net = convert_padding(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3, padding=1)),
                          "padding_module")
    views = padding_views(net, torch.rand(1, 8, 8), ["zero", "padding_module"], max_pad=3)
    assert [v["layer"] for v in views] == ["0", "2"] and all(v["pad"] == 2 for v in views)
    assert views[1]["examples"]["padding_module"].shape == (2, 12, 12)


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (2, 0, 1, 3), (6, 6, 5, 5), (4, 5, 5, 3)])
def test_copy_pad_matches_index_padding_keeps_channels_last_and_its_gradient(pads):
    """Circular and symmetric padding written in place: same values and gradients as index-based padding,
    and a channels-last input stays channels-last (so a channels-last network stays fast)."""
    from padlib.layers import copy_pad
    from padlib.layers import symmetric_index

    l, r, t, b = pads
    x = torch.randn(2, 3, 5, 6, dtype=torch.float64, requires_grad=True)
    mirror = lambda v: v.index_select(-1, symmetric_index(6, l, r)).index_select(-2, symmetric_index(5, t, b))
    wrap = lambda v: v.index_select(-1, torch.arange(-l, 6 + r) % 6).index_select(-2, torch.arange(-t, 5 + b) % 5)
    for is_mirror, ref in ((True, mirror), (False, wrap)):
        got = copy_pad(x, pads, is_mirror)
        assert torch.equal(got, ref(x))
        g = torch.randn_like(got)
        assert torch.allclose(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(ref(x), x, g)[0])
        cl = copy_pad(x.detach().to(memory_format=torch.channels_last), pads, is_mirror)
        assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, ref(x))


def test_circular_padding_wider_than_the_map_wraps_as_often_as_it_takes():
    """A dilated conv's padding can exceed a small map; circular padding is then the periodic extension (the
    torus), still borderless, and equals F.pad's circular where that applies."""
    import torch.nn.functional as F

    from padlib.layers.base import TorchModePadding

    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    circ = TorchModePadding("circular")
    assert torch.equal(circ.pad(x, (2, 1, 3, 2)), F.pad(x, (2, 1, 3, 2), mode="circular"))
    wide = circ.pad(x, (7, 6, 9, 5))
    assert wide.shape == (2, 3, 4 + 9 + 5, 5 + 7 + 6)
    rows, cols = torch.arange(-9, 4 + 5) % 4, torch.arange(-7, 5 + 6) % 5
    assert torch.equal(wide, x[:, :, rows][:, :, :, cols])
    assert torch.equal(wide[..., 9:13, 7:12], x)  # the map itself in the middle
