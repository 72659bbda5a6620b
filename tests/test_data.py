"""Probe images: deterministic crops of the offline photographs, or any folder, with clear errors."""
import numpy as np
import pytest
import torch
from PIL import Image

import padlib


def test_offline_photos_all_load():
    for name in padlib.offline_photo_names():
        im = padlib.load_photo(name)
        assert im.mode == "RGB" and min(im.size) >= 150


def test_probe_images_are_deterministic_and_seeded():
    a = padlib.probe_images(6, size=64, seed=3).tensor()
    b = padlib.probe_images(6, size=64, seed=3).tensor()
    c = padlib.probe_images(6, size=64, seed=4).tensor()
    assert a.shape == (6, 3, 64, 64)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # image i does not depend on how many images were asked for
    assert torch.equal(padlib.probe_images(2, size=64, seed=3).tensor(), a[:2])


def test_probe_images_use_the_models_normalisation():
    probe = padlib.probe_images(2, model="tf_efficientnet_lite1")
    assert probe.size == 240
    x01 = probe.image01(0)
    assert torch.allclose(probe[0], (x01 - 0.5) / 0.5)


def test_batches_cover_all_images_in_order():
    probe = padlib.probe_images(5, size=32)
    batches = list(probe.batches(2, progress=False))
    assert [b.shape[0] for b in batches] == [2, 2, 1]
    assert torch.equal(torch.cat(batches), probe.tensor())


def _write_images(folder, n, size=(40, 30)):
    rng = np.random.default_rng(0)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / ("sub" if i % 2 else ".") / f"img{i}.png")


def test_folder_of_images_recursive_centre_crops(tmp_path):
    _write_images(tmp_path, 5)
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="only 5 usable image"):  # fewer than asked: said, not hidden
        probe = padlib.probe_images(10, size=24, image_dir=str(tmp_path))
    assert len(probe) == 5  # centre mode: one per file, n capped
    assert probe.tensor().shape == (5, 3, 24, 24)
    crops = padlib.probe_images(7, size=16, image_dir=str(tmp_path), mode="random_crops")
    assert crops.tensor().shape == (7, 3, 16, 16)


def _one_line_error(image_dir, match):
    with pytest.raises(padlib.ProbeDataError, match=match) as e:
        padlib.probe_images(4, image_dir=str(image_dir))
    assert "\n" not in str(e.value) and str(image_dir) in str(e.value)


def test_folder_errors_are_one_line_and_actionable(tmp_path):
    _one_line_error(tmp_path / "missing", "does not exist")
    _one_line_error(tmp_path, "contains no images")
    (tmp_path / "broken.jpg").write_bytes(b"not really a jpeg")
    _one_line_error(tmp_path, "none could be read")
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    _one_line_error(f, "is a file")


def test_unreadable_folder_says_so_instead_of_empty(tmp_path, monkeypatch):
    """A folder that cannot be listed (permissions) is reported as unreadable, not as 'no images'."""
    import os

    denied = tmp_path / "denied"
    denied.mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(denied):
            raise PermissionError(13, "Permission denied", str(denied))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)  # root ignores chmod, so deny the listing itself
    _one_line_error(tmp_path, "cannot read .*denied.*Permission denied")


def test_bad_parameters():
    with pytest.raises(padlib.PadlibTypeError, match="n must be int"):
        padlib.probe_images("8")
    with pytest.raises(padlib.ProbeDataError, match="n must be >= 1"):
        padlib.probe_images(0)
    with pytest.raises(padlib.ProbeDataError, match="mode must be"):
        padlib.probe_images(2, mode="tiles")
