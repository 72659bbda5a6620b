"""The offline zoo loads the real ImageNet weights; bad names and missing weights give one-line errors."""
import urllib.error

import pytest
import torch

import padlib


def test_torchvision_and_timm_import():
    import timm
    import torchvision

    assert torchvision.__version__ and timm.__version__
    torchvision.models.mobilenet_v2(weights=None)  # the operator registry works with this torch build


@pytest.fixture(scope="module")
def photos():
    return [padlib.load_photo("chelsea"), padlib.load_photo("coffee")]


CATS = {"Egyptian cat", "tabby", "tiger cat"}


def test_mobilenet_v2_predicts_cat_and_espresso(photos):
    model = padlib.load_model("mobilenet_v2")
    top = padlib.predict(model, photos, k=1)["class_name"].tolist()
    assert top[0] in CATS
    assert top[1] == "espresso"


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"])
def test_efficientnet_lite_predicts_espresso(name, photos):
    model = padlib.load_model(name)
    top = padlib.predict(model, photos, k=1)["class_name"].tolist()
    assert top[1] == "espresso"
    assert top[0] in CATS


def test_model_is_eval_mode_with_its_preprocessing():
    model = padlib.load_model("tf_efficientnet_lite1")
    assert not model.training
    prep = padlib.preprocessing(model)
    assert prep.input_size == 240 and prep.mean == (0.5, 0.5, 0.5)
    assert padlib.preprocessing("tf_efficientnet_lite1") == prep
    assert padlib.preprocessing("mobilenet_v2").mean == padlib.preprocess.IMAGENET_MEAN


def test_random_init_for_any_name_differs_from_pretrained():
    a = padlib.load_model("mobilenet_v2", pretrained=False)
    b = padlib.load_model("mobilenet_v2")
    assert not torch.equal(a.features[0][0].weight, b.features[0][0].weight)
    c = padlib.load_model("timm/resnet18", pretrained=False)
    assert type(c).__module__.startswith("timm")
    d = padlib.load_model("resnet18", pretrained=False)
    assert type(d).__module__.startswith("torchvision")


def test_unknown_model_names_suggests_and_lists_offline_models():
    with pytest.raises(padlib.UnknownModelError) as e:
        padlib.load_model("mobilenet_v3_smal")
    msg = str(e.value)
    assert "mobilenet_v3_small" in msg and "tf_efficientnet_lite0" in msg and "\n" not in msg
    with pytest.raises(padlib.UnknownModelError):
        padlib.load_model("keras/resnet50")


def test_wrong_parameter_types_are_clear():
    with pytest.raises(padlib.PadlibTypeError, match="model name must be str"):
        padlib.load_model(50)
    with pytest.raises(padlib.PadlibTypeError, match="pretrained must be bool"):
        padlib.load_model("mobilenet_v2", pretrained="yes")


def _no_network(*args, **kwargs):
    raise urllib.error.URLError("[Errno -2] Name or service not known")


def test_weights_unavailable_offline_names_the_offline_models(monkeypatch):
    """torchvision: the download fails (patched where torchvision calls it, so this holds online too)."""
    import torchvision.models._api as tv_api

    monkeypatch.setattr(tv_api, "load_state_dict_from_url", _no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    with pytest.raises(padlib.WeightsUnavailableError) as e:
        padlib.load_model("resnet18")
    msg = str(e.value)
    assert "resnet18" in msg and "mobilenet_v2" in msg and "pretrained=False" in msg and "\n" not in msg


def test_timm_weights_unavailable_offline_names_the_offline_models(monkeypatch):
    """timm: its pretrained loader fails as it does without a network; padlib turns that into one clear line."""
    import timm.models._builder as builder

    monkeypatch.setattr(builder, "load_pretrained", _no_network)
    monkeypatch.setattr(builder, "load_state_dict_from_hf", _no_network, raising=False)
    with pytest.raises(padlib.WeightsUnavailableError) as e:
        padlib.load_model("timm/resnet10t")
    msg = str(e.value)
    assert "resnet10t" in msg and "tf_efficientnet_lite0" in msg and "pretrained=False" in msg and "\n" not in msg
    assert isinstance(padlib.load_model("timm/resnet10t", pretrained=False), torch.nn.Module)


def _channels_last_forwards(rounds: int) -> int:
    """Forward passes only, channels-last, on the thin shapes whose channels-last weight gradient corrupts
    oneDNN's heap on some CPUs (1x1 and 3x3, stride 1 and 2, from 1-8 channels, dense and depthwise)."""
    import itertools

    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)
    n = 0
    for c_in, k, s, depthwise in itertools.product([1, 3, 4, 8], [1, 3], [1, 2], [False, True]):
        conv = nn.Conv2d(c_in, 2 * c_in if depthwise else 8, k, s, k // 2, groups=c_in if depthwise else 1, bias=False)
        with padlib.models.channels_last_inference(conv):
            assert conv.weight.stride() == torch.empty(conv.weight.shape, memory_format=torch.channels_last).stride()
            for _ in range(rounds):
                out = conv(torch.randn(32, c_in, 24, 24).to(memory_format=torch.channels_last))
                assert not out.requires_grad
                n += 1
        assert conv.weight.stride() == torch.empty(conv.weight.shape).stride()  # back in (N, C, H, W)
    return n


def test_channels_last_inference_is_forward_only_and_survives_the_thin_shapes():
    """The ablation evaluates in channels-last (forward passes only); the same shapes whose channels-last backward
    crashes an AMD EPYC run 2,560 forward passes cleanly (in their own process, with a time limit)."""
    from tests.isolation import run_isolated

    assert run_isolated(_channels_last_forwards, 80, timeout=180) == 32 * 80


def test_channels_last_inference_restores_the_weights_on_error():
    conv = torch.nn.Conv2d(3, 4, 1)
    with pytest.raises(RuntimeError, match="boom"):
        with padlib.models.channels_last_inference(conv):
            raise RuntimeError("boom")
    assert conv.weight.stride() == (3, 1, 1, 1)
