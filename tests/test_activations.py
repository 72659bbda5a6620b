"""Streaming statistics equal the statistics of stacked activations, and hooks never leak."""
import pytest
import torch
from torch import nn
from padlib import _hooks



def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 3, padding=1))


def test_streaming_sums_match_stacked_activations_for_any_batch_size():
    net, x = _net(), torch.randn(10, 3, 8, 8)
    ref = net[0](x).double()
    for bs in (1, 3, 10):
        st = _hooks.layer_map_stats(net, x, ["0", "2"], batch_size=bs, progress=False)["0"]
        assert st.n == 10
        assert torch.allclose(st.mean, ref.mean(0), atol=1e-6)
        assert torch.allclose(st.var, ref.var(0, unbiased=False), atol=1e-5)


def test_hooks_are_removed_even_when_the_forward_fails():
    net = _net()
    with pytest.raises(RuntimeError):
        _hooks.layer_map_stats(net, torch.randn(2, 5, 8, 8), ["0"], progress=False)  # wrong channel count
    assert not net[0]._forward_hooks
    with pytest.raises(Exception, match="no layer named"):
        _hooks.layer_map_stats(net, torch.randn(2, 3, 8, 8), ["nope"], progress=False)


def test_eval_mode_restores_each_submodules_own_mode_also_on_error():
    from padlib._hooks import eval_mode

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.BatchNorm2d(2), torch.nn.ReLU())
    net.train()
    net[1].eval()  # a user's frozen BatchNorm inside a model in training mode
    with pytest.raises(RuntimeError, match="boom"):
        with eval_mode(net):
            assert not any(m.training for m in net.modules())
            raise RuntimeError("boom")
    assert net.training and net[0].training and not net[1].training


def test_the_conv_trace_leaves_a_training_models_batchnorm_statistics_alone():
    from padlib.kernels import conv_input_sizes

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.Conv2d(4, 4, 3, stride=2, padding=1))
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert conv_input_sizes(net, 16) == {"0": (16, 16), "3": (16, 16)}
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()) and net.training
