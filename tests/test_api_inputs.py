"""Bad API calls get one line naming the user's value and what to do, as a PadlibError, before any work.

Tiny models built here and 32 px images: the whole file runs in seconds."""
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import padlib
from padlib.errors import PadlibError


def tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, stride=2, padding=1))


X = torch.randn(8, 3, 32, 32)


def _nan():
    x = X.clone()
    x[3, 0, 5, 5] = float("nan")
    return x


# (what is given, keyword arguments, words the message must hold)
BAD_CALLS = [
    ("numpy", lambda: X.numpy(), {}, ["numpy ndarray of shape (8, 3, 32, 32)", "torch.from_numpy"]),
    ("None", lambda: None, {}, ["got NoneType None", "ProbeImages from padlib.probe_images"]),
    ("str", lambda: "8", {}, ["got str '8'", "pass the int 8"]),
    ("float", lambda: 8.0, {}, ["got float 8.0", "pass the int 8"]),
    ("uint8", lambda: (X * 40 + 128).clamp(0, 255).to(torch.uint8), {}, ["dtype torch.uint8", "preprocessing"]),
    ("nan", _nan, {}, ["images contain NaN or infinite values", "image 3"]),
    ("inf", lambda: X.clone().fill_(float("inf")), {}, ["images contain NaN or infinite values"]),
    ("3-d", lambda: X[0], {}, ["shape (3, 32, 32)", "x[None]"]),
    ("list of arrays", lambda: [X.numpy()], {}, ["images[0]", "ndarray"]),
    ("device 123", lambda: X, {"device": 123}, ["device must be 'cpu', 'cuda'", "int 123"]),
    ("device name", lambda: X, {"device": "gpu0"}, ["device 'gpu0' is not a device"]),
]


def _one_line(e) -> str:
    msg = str(e.value)
    assert isinstance(e.value, PadlibError)
    assert "\n" not in msg and "one-shot" not in msg
    return msg


@pytest.mark.parametrize("given, kwargs, words", [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS])
def test_find_pans_refuses_bad_images_and_devices_in_one_line(given, kwargs, words):
    with pytest.raises(PadlibError) as e:
        padlib.find_pans(tiny(), given(), progress=False, **kwargs)
    msg = _one_line(e)
    for w in words:
        assert w in msg


@pytest.mark.parametrize("call", ["model_logits", "evaluate", "mean_feature_maps"])
@pytest.mark.parametrize("given, words", [(lambda: X.numpy(), "torch.from_numpy"), (_nan, "NaN"),
                                          (lambda: None, "got NoneType None")])
def test_other_methods_share_the_check(call, given, words):
    from padlib.interventions import evaluate, model_logits
    from padlib.spatial_bias import mean_feature_maps

    fn = {"model_logits": model_logits, "evaluate": evaluate, "mean_feature_maps": mean_feature_maps}[call]
    with pytest.raises(PadlibError) as e:
        fn(tiny(), given())
    assert words in _one_line(e)
    with pytest.raises(PadlibError) as e:
        fn(tiny(), X, device=123)
    assert "int 123" in _one_line(e)


def test_float64_images_run_as_the_models_dtype():
    from padlib.interventions import model_logits

    m = tiny()
    assert torch.allclose(model_logits(m, X.double()), model_logits(m, X))
    table = padlib.find_pans(m, X.double(), progress=False, reference=None)
    assert len(table) == 8


def _png(path, array):
    Image.fromarray(array).save(path)


def test_a_corrupt_file_is_skipped_counted_and_named(tmp_path):
    rng = np.random.default_rng(0)
    _png(tmp_path / "a.png", rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    (tmp_path / "b.jpg").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file\(s\) \(first: b.jpg\)"):
        images = padlib.probe_images(2, size=32, image_dir=str(tmp_path))
    assert images.skipped == ["b.jpg"] and images.converted == {}
    assert "1 unreadable file(s) skipped (first: b.jpg)" in images.describe()


def test_grey_rgba_and_16_bit_images_are_counted_as_converted(tmp_path):
    rng = np.random.default_rng(0)
    _png(tmp_path / "grey.png", rng.integers(0, 255, (40, 40), dtype=np.uint8))
    _png(tmp_path / "rgba.png", rng.integers(0, 255, (40, 40, 4), dtype=np.uint8))
    _png(tmp_path / "wide.png", rng.integers(0, 65535, (40, 40)).astype(np.uint16))
    with pytest.warns(UserWarning, match="converted to RGB: 1 16-bit, 1 RGBA, 1 grey"):
        images = padlib.probe_images(3, size=32, image_dir=str(tmp_path))
    assert images.converted == {"grey": 1, "RGBA": 1, "16-bit": 1} and images.skipped == []
    assert "converted to RGB: 1 16-bit, 1 RGBA, 1 grey" in images.describe()
    wide = images.image01(images.source_names.index("wide.png"))
    assert 0.2 < wide.mean() < 0.8  # scaled to 8 bits, not clipped to white


def test_fewer_usable_images_than_asked_is_a_warning_with_the_count(tmp_path):
    _png(tmp_path / "a.png", np.zeros((40, 40, 3), np.uint8))
    with pytest.warns(UserWarning, match="only 1 usable image"):
        assert len(padlib.probe_images(4, size=32, image_dir=str(tmp_path))) == 1


def test_offline_photographs_are_described_as_before():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        images = padlib.probe_images(16)
    assert images.describe() == "16 probe images at 224px (random crops of 18 photos, seed 0)"
    assert images.skipped == [] and images.converted == {}


def test_report_refuses_a_folder_with_one_image(tmp_path):
    _png(tmp_path / "a.png", np.zeros((40, 40, 3), np.uint8))
    with pytest.raises(PadlibError) as e:
        padlib.report(tiny(), 8, image_dir=str(tmp_path), size=32, progress=False)
    msg = _one_line(e)
    assert f"'{tmp_path}' has 1 usable image(s), fewer than the 8 the report needs" in msg


def test_a_truncated_checkpoint_is_one_complete_sentence_naming_the_file(tmp_path):
    good, cut = tmp_path / "good.pth", tmp_path / "cut.pth"
    torch.save(tiny().state_dict(), good)
    cut.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(PadlibError) as e:
        padlib.models.load_checkpoint(cut)
    msg = _one_line(e)
    assert f"checkpoint '{cut}'" in msg and "cut short" in msg and msg.endswith("save or download it again")
    assert "Error" not in msg and "miniz" not in msg
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(PadlibError) as e:
        padlib.models.load_checkpoint(tmp_path / "empty.pth")
    assert "is empty (0 bytes)" in _one_line(e) and "EOFError" not in str(e.value)


def test_ablate_with_100000_images_is_refused_in_seconds(monkeypatch):
    """No image is rendered and no model runs: the estimate (a meta forward) refuses before any work."""
    from padlib.experiments import ch3_ablation

    def no_work(*a, **k):
        raise AssertionError("work started before the memory check")

    monkeypatch.setenv("PADLIB_MAX_MEMORY_GB", "4")
    monkeypatch.setattr(ch3_ablation, "probe_images", no_work)
    monkeypatch.setattr(ch3_ablation, "find_pans", no_work)
    t0 = time.perf_counter()
    with pytest.raises(PadlibError) as e:
        ch3_ablation.ablation_report(tiny(), n_images=100000, size=32, progress=False)
    msg = _one_line(e)
    assert time.perf_counter() - t0 < 10
    assert "100000 evaluation images (--images, n_images)" in msg and "at most" in msg and "4.0 GB" in msg
