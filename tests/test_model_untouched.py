"""The user's model is sacred: every public method that runs it leaves it exactly as it was.

A small CNN in TRAIN mode (BatchNorm updating its statistics, dropout active) with one BatchNorm deliberately
frozen in eval mode and a hook of the user's own: after each method, the state dict is bitwise the same, every
submodule keeps its own mode, only the user's hook remains and nothing moved. Also when the method fails midway
(Ctrl-C inside the report), and the guard itself on a block that misbehaves on purpose."""
import warnings

import pytest
import torch
from torch import nn

import padlib
from padlib import _hooks, audit, interventions, kernels, model_report, pans, position, spatial_bias

N, SIZE = 8, 32


def _net(padding_mode="zeros") -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, 1, 1, padding_mode=padding_mode), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 12, 3, 2, 1), nn.BatchNorm2d(12), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(12, 10))
    for bn in net.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_(0, 0.3)
            bn.running_var.uniform_(0.5, 2.0)
    net.train()
    net[4].eval()  # a frozen BatchNorm inside a training model: must stay frozen, the others training
    return net


def _images(n=N, size=SIZE):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(2))


def _hook_keys(model):
    return {(name, attr): tuple(getattr(m, attr)) for name, m in model.named_modules() for attr in _hooks._HOOK_DICTS
            if getattr(m, attr, None)}


def _snapshot(model):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {name: m.training for name, m in model.named_modules()}, _hook_keys(model),
            {k: v.device for k, v in model.state_dict().items()})


def _assert_untouched(model, before):
    state, modes, hooks, devices = before
    now = model.state_dict()
    assert now.keys() == state.keys()
    changed = [k for k in state if not torch.equal(now[k], state[k])]
    assert not changed, f"state changed: {changed}"
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert _hook_keys(model) == hooks, "hooks added or removed"
    assert {k: v.device for k, v in now.items()} == devices
    assert all(p.grad is None for p in model.parameters())


def _probe(model):
    return padlib.probe_images(N, size=SIZE, model=model)


METHODS = {
    "report": lambda m: model_report.report(m, N, size=SIZE, progress=False, n_boot=20),
    "position_stage": lambda m: model_report.position_stage(m, _probe(m), SIZE, 3),
    "scan_pans": lambda m: pans.scan_pans(m, _images(), progress=False),
    "find_pans": lambda m: pans.find_pans(m, _images(), progress=False, reference=None),
    "evaluate": lambda m: interventions.evaluate(m, _images(), reference=m, n_boot=20),
    "model_logits": lambda m: interventions.model_logits(m, _images()),
    "padding_interventions": lambda m: interventions.padding_interventions(m, _images(), n_boot=20, progress=False),
    "size_interventions": lambda m: interventions.size_interventions(m, _probe(m), (33, 31), SIZE, n_boot=20,
                                                                     progress=False),
    "border_sensitivity": lambda m: interventions.border_sensitivity(m, _images(), shifts=(4,), n_boot=20),
    "channel_means": lambda m: interventions.channel_means(m, _images(), ["0", "3"]),
    "mean_feature_maps": lambda m: spatial_bias.mean_feature_maps(m, _images(), progress=False, splits=2,
                                                                  flips=True),
    "position_pattern_strength": lambda m: position.position_pattern_strength(m, _images()),
    "position_readout": lambda m: position.position_readout(m, _images(), grid=4),
    "readout_by_distance": lambda m: position.readout_by_distance(m, _images(), cell=4),
    "border_test": lambda m: position.border_test(m, _images(8, 8), SIZE),
    "receptive_field_px": lambda m: position.receptive_field_px(m, SIZE, channels=3),
    "data_free_pans": lambda m: kernels.data_free_pans(m, 2.0, input_size=SIZE),
    "mean_kernel_asymmetry": lambda m: kernels.mean_kernel_asymmetry(m, SIZE, n_boot=10),
    "row_energy": lambda m: kernels.row_energy(m, SIZE, n_boot=10),
    "padding_audit": lambda m: audit.padding_audit(m, SIZE),
    # a dense model: the net's convolutional trunk (its own submodules, so their state, modes and hook are checked)
    "border_reach": lambda m: padlib.border_reach(m[:9], _images(2, 64), tile=32, padding="reflect", n_boot=20),
    "position_sensitivity": lambda m: padlib.position_sensitivity(m, [torch.ones(3, 4, 4)], [0.5, 0.2], size=SIZE,
                                                                  n_positions=3, progress=False),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_method_leaves_a_training_model_untouched(method):
    model = _net()
    model[0].register_forward_hook(lambda *a: None)  # the user's own hook stays
    before = _snapshot(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        METHODS[method](model)
    _assert_untouched(model, before)
    repaired = [str(w.message) for w in caught if "put it back" in str(w.message)]
    assert not repaired, repaired  # the guard is a safety net: the method itself must not change the model


def test_methods_measure_the_model_as_it_predicts():
    """In train mode dropout and batch statistics would change every number; the methods run it in eval mode."""
    model, x = _net(), _images()
    frozen = _net().eval()
    assert torch.equal(interventions.model_logits(model, x), interventions.model_logits(frozen, x))
    a = spatial_bias.mean_feature_maps(model, x, progress=False)
    b = spatial_bias.mean_feature_maps(frozen, x, progress=False)
    assert all((a[k] == b[k]).all() for k in a.maps)


def test_report_interrupted_midway_leaves_the_model_untouched(monkeypatch):
    model = _net()
    before = _snapshot(model)

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(model_report, "padding_interventions", interrupt)  # after the scan and the maps ran
    with pytest.raises(KeyboardInterrupt):
        model_report.report(model, N, size=SIZE, progress=False, n_boot=20)
    _assert_untouched(model, before)


def test_scan_failing_in_a_batch_leaves_the_model_untouched():
    model = _net()
    before = _snapshot(model)
    calls = []

    def fail_on_second_batch(module, inputs, output):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")

    model[6].register_forward_hook(fail_on_second_batch)
    user_hooks = _hook_keys(model)
    with pytest.raises(RuntimeError, match="disk on fire"):
        pans.scan_pans(model, _images(16), batch_size=8, progress=False)
    assert _hook_keys(model) == user_hooks
    _assert_untouched(model, (before[0], before[1], user_hooks, before[3]))


def test_late_refusal_leaves_the_model_untouched():
    model = _net("reflect")  # the data-free response refuses a reflect-padded conv, after the trace ran
    before = _snapshot(model)
    with pytest.raises(padlib.PadlibError, match="reflect"):
        kernels.data_free_pans(model, 2.0, input_size=SIZE)
    _assert_untouched(model, before)


def test_guard_undoes_a_block_that_misbehaves():
    model = _net()
    before = _snapshot(model)
    with pytest.raises(KeyboardInterrupt):
        with _hooks.model_untouched(model):
            assert not any(m.training for m in model.modules())
            model[0].register_forward_hook(lambda *a: None)
            model[3].register_forward_pre_hook(lambda *a: None)
            model.train()
            model(_images())  # training-mode BatchNorm writes its statistics
            model[2] = nn.Identity()
            raise KeyboardInterrupt
    _assert_untouched(model, before)
    assert isinstance(model[2], nn.ReLU)
    with pytest.warns(RuntimeWarning, match="buffer running_mean written"):
        with _hooks.model_untouched(model, "a careless method"):
            model.train()
            model(_images())
    _assert_untouched(model, before)
    with _hooks.model_untouched("mobilenet_v2") as name:  # a name: nothing to guard
        assert name == "mobilenet_v2"
