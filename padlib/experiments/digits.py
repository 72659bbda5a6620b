"""Data the book makes: handwritten digits on textured canvases (cut by the border too), and dataset loaders."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..data import load_photo, offline_photo_names
from ..errors import PadlibError, ProbeDataError, check_type


def digit_patches(n: int, size: int = 16, seed: int = 0, split: str = "all") -> torch.Tensor:
    """``n`` real handwritten digits (scikit-learn) upscaled to ``size`` px, (n, 1, size, size) in [0, 1]."""

    digits, _, _ = _upscaled_digits(size)
    ids = np.arange(len(digits))
    pool = {"train": ids[ids % 5 != 0], "test": ids[ids % 5 == 0], "all": ids}[split]
    pick = np.random.default_rng(seed).choice(pool, n, replace=n > len(pool))
    return digits[torch.as_tensor(pick)].clone()


REGION_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right")


@dataclass
class ImageSet:
    """Images in [0, 1] (N, C, H, W), integer labels, per-sample metadata, and channel mean/std for models."""

    images: torch.Tensor
    labels: torch.Tensor
    meta: pd.DataFrame
    mean: tuple
    std: tuple
    name: str = "images"
    classes: list = field(default_factory=list)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __post_init__(self):
        if self.images.dim() != 4 or self.images.shape[0] != self.labels.shape[0]:
            raise ProbeDataError(f"images must be (N, C, H, W) with one label each, got {tuple(self.images.shape)} "
                                 f"and {tuple(self.labels.shape)} labels")

    def targets(self, target: str = "label") -> torch.Tensor:
        """Labels for a task: ``label`` (the class) or any integer column of ``meta`` (e.g. ``region``)."""
        if target == "label":
            return self.labels
        if target not in self.meta.columns:
            raise PadlibError(f"{self.name} has no '{target}' column; available: label, {', '.join(self.meta.columns)}")
        return torch.as_tensor(self.meta[target].to_numpy(), dtype=torch.long)

    def n_classes(self, target: str = "label") -> int:
        return int(self.targets(target).max()) + 1

    def head(self, n: int) -> "ImageSet":
        """The first ``n`` samples (all of them when there are fewer)."""
        check_type("n", n, int)
        return self.subset(range(min(max(n, 0), len(self))))

    def subset(self, index) -> "ImageSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return ImageSet(self.images[index], self.labels[index], self.meta.iloc[index.numpy()].reset_index(drop=True),
                        self.mean, self.std, self.name, self.classes)


def channel_stats(images: torch.Tensor) -> tuple[tuple, tuple]:
    """Per-channel mean and std of (N, C, H, W) images, as tuples (for :class:`Standardize`)."""
    m = images.mean(dim=(0, 2, 3))
    s = images.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return tuple(round(float(v), 6) for v in m), tuple(round(float(v), 6) for v in s)


@functools.lru_cache(maxsize=4)
def _upscaled_digits(digit_size: int):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.as_tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = F.interpolate(x, size=(digit_size, digit_size), mode="bilinear", align_corners=False).clamp(0, 1)
    ink = x[:, 0] > 0.2
    rows, cols = ink.any(2), ink.any(1)
    idx = torch.arange(digit_size)
    big = digit_size + 1
    box = torch.stack([torch.where(rows, idx, big).amin(1), torch.where(rows, idx, -1).amax(1),
                       torch.where(cols, idx, big).amin(1), torch.where(cols, idx, -1).amax(1)], 1)
    return x, torch.as_tensor(d.target, dtype=torch.long), box.numpy()


def source_digits(k: int = 16, seed: int = 0) -> tuple[list, list, dict]:
    """``k`` of scikit-learn's handwritten digits at their own 8x8 resolution, seeded, for showing the source
    data: (images scaled to [0, 1], labels, a description of the whole set read from the data itself)."""
    from sklearn.datasets import load_digits

    check_type("k", k, int)
    d = load_digits()
    pick = np.random.default_rng(seed).choice(len(d.images), min(k, len(d.images)), replace=False)
    top = float(d.images.max())
    about = {"n_digits": len(d.images), "height": d.images.shape[1], "width": d.images.shape[2],
             "grey_levels": len(np.unique(d.images)), "max_value": top, "classes": len(np.unique(d.target))}
    return [d.images[i] / top for i in pick], [int(d.target[i]) for i in pick], about


def describe_source_digits(about: dict) -> str:
    """One line on the source digits (from :func:`source_digits`): count, size, grey levels, classes."""
    return (f"{about['n_digits']} handwritten digits of {about['height']}x{about['width']} pixels, "
            f"{about['grey_levels']} grey levels (0..{about['max_value']:.0f}), {about['classes']} classes")


@functools.lru_cache(maxsize=2)
def _grey_photos() -> tuple:
    """The offline photographs as grey (H, W) tensors in [0, 1] (decoded once), with their names."""

    names = offline_photo_names()
    return tuple(torch.as_tensor(np.array(load_photo(n).convert("L")), dtype=torch.float32) / 255.0
                 for n in names), tuple(names)


BACKGROUNDS = ("black", "texture")


def texture_backgrounds(n: int, size: int, seed: int = 0, split: str = "train", low: float = 0.0,
                        high: float = 0.6) -> tuple[torch.Tensor, list]:
    """``n`` grey textures (N, 1, size, size) in [low, high]: random square crops (a third of the shorter side up
    to all of it) of the offline photographs, resized. Train and test crop disjoint photographs (every fourth
    photograph is a test photograph), so a network cannot memorise its test backgrounds. Returns (textures,
    photo name per texture)."""
    photos, names = _grey_photos()
    ids = np.arange(len(photos))
    pool = {"train": ids[ids % 4 != 0], "test": ids[ids % 4 == 0], "all": ids}[split]
    rng = np.random.default_rng([seed, 7, ("train", "test", "all").index(split)])
    out = torch.empty(n, 1, size, size)
    used = []
    for i in range(n):
        j = int(rng.choice(pool))
        im = photos[j]
        h, w = im.shape
        side = int(min(h, w) * rng.uniform(1 / 3, 1.0))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = im[top:top + side, left:left + side][None, None]
        t = F.interpolate(crop, size=(size, size), mode="area")[0, 0]
        lo, hi = t.min(), t.max()
        out[i, 0] = low + (high - low) * (t - lo) / (hi - lo).clamp_min(1e-6)  # each texture spans [low, high]
        used.append(names[j])
    return out, used


def digits_on_canvas(n: int, canvas_size: int = 32, digit_size: int = 16, seed: int = 0, split: str = "train",
                     border_fraction: float = 0.25, test_every: int = 5, stats: tuple | None = None,
                     background: str = "black", cut_fraction: float = 0.0, cut_range=(0.2, 0.5),
                     texture_range=(0.0, 0.6)) -> ImageSet:
    """Real handwritten digits (scikit-learn, 8x8) upscaled to ``digit_size`` and placed on a canvas.

    Positions are uniform over every place where the digit's ink stays on the canvas; a ``border_fraction``
    of samples is pushed against one random side, so its ink touches the border, and a ``cut_fraction`` is
    pushed past one random side, so that a share ``cut_range`` of its ink box lies off the canvas (the border
    cuts the digit: where padding that extrapolates the image can pay). Train and test use disjoint source
    digits (every ``test_every``-th digit is a test digit). ``background``: "black", or "texture" (grey crops
    of the offline photographs, :func:`texture_backgrounds`, spanning ``texture_range``, with white ink drawn
    over them, so that a content-preserving padding no longer pads black with black). ``meta`` keeps the placement: ``top``/``left``
    (of the digit box), the ink's distance to each side (negative: rows or columns cut off), ``border_distance``
    (the smallest, 0 = touching, negative = cut), ``cut`` (ink beyond the border), the ink centre ``cy``/``cx``
    and ``region`` (quadrant of the centre, see ``REGION_NAMES``). Deterministic per (seed, split). ``stats``
    (mean, std) defaults to this set's own.
    """
    check_type("n", n, int)
    if n < 1:
        raise ProbeDataError(f"n must be at least 1, got {n}")
    if not 4 <= digit_size <= canvas_size:
        raise ProbeDataError(f"need 4 <= digit_size <= canvas_size, got digit {digit_size} on canvas {canvas_size}")
    if split not in ("train", "test", "all"):
        raise ProbeDataError(f"split must be 'train', 'test' or 'all', got '{split}'")
    if background not in BACKGROUNDS:
        raise ProbeDataError(f"background must be one of {', '.join(BACKGROUNDS)}, got {background!r}")
    check_type("cut_fraction", cut_fraction, (int, float))
    if not (0 <= border_fraction <= 1 and 0 <= cut_fraction <= 1 and border_fraction + cut_fraction <= 1):
        raise ProbeDataError(f"border_fraction and cut_fraction must be shares that add up to at most 1, got "
                             f"{border_fraction} and {cut_fraction}")
    if not 0 < cut_range[0] <= cut_range[1] < 1:
        raise ProbeDataError(f"cut_range must be (low, high) with 0 < low <= high < 1, got {cut_range}")
    digits, targets, box = _upscaled_digits(digit_size)
    ids = np.arange(len(targets))
    pool = {"train": ids[ids % test_every != 0], "test": ids[ids % test_every == 0], "all": ids}[split]
    rng = np.random.default_rng([seed, ("train", "test", "all").index(split)])
    chosen = rng.choice(pool, n, replace=n > len(pool))
    if background == "texture":
        canvas, _ = texture_backgrounds(n, canvas_size, seed, split, *texture_range)
    else:
        canvas = torch.zeros(n, 1, canvas_size, canvas_size)
    rows = []
    for i, j in enumerate(chosen):
        t0, t1, l0, l1 = box[j]
        top_range = (-t0, canvas_size - 1 - t1)  # ink rows stay on the canvas
        left_range = (-l0, canvas_size - 1 - l1)
        top, left = int(rng.integers(top_range[0], top_range[1] + 1)), int(rng.integers(left_range[0], left_range[1] + 1))
        u = rng.random()
        if u < border_fraction + cut_fraction:
            side = int(rng.integers(4))
            extent = (t1 - t0 + 1) if side < 2 else (l1 - l0 + 1)
            off = int(round(rng.uniform(*cut_range) * extent)) if u >= border_fraction else 0
            off = max(off, 1) if u >= border_fraction else 0
            if side < 2:
                top = top_range[side] + (-off if side == 0 else off)
            else:
                left = left_range[side - 2] + (-off if side == 2 else off)
        ys, xs = max(top, 0), max(left, 0)
        ye, xe = min(top + digit_size, canvas_size), min(left + digit_size, canvas_size)
        ink = digits[j, 0, ys - top:ye - top, xs - left:xe - left]
        canvas[i, 0, ys:ye, xs:xe] = canvas[i, 0, ys:ye, xs:xe] * (1 - ink) + ink  # white ink over the background
        ink_top, ink_bottom, ink_left, ink_right = top + t0, top + t1, left + l0, left + l1
        d = {"top_gap": ink_top, "bottom_gap": canvas_size - 1 - ink_bottom, "left_gap": ink_left,
             "right_gap": canvas_size - 1 - ink_right}
        cy, cx = (ink_top + ink_bottom) / 2, (ink_left + ink_right) / 2
        rows.append({"digit_index": int(j), "label": int(targets[j]), "top": top, "left": left, **d,
                     "border_distance": min(d.values()), "cut": min(d.values()) < 0, "cy": cy, "cx": cx,
                     "region": 2 * int(cy >= (canvas_size - 1) / 2) + int(cx >= (canvas_size - 1) / 2)})
    meta = pd.DataFrame(rows)
    mean, std = stats if stats is not None else channel_stats(canvas)
    return ImageSet(canvas, torch.as_tensor(meta["label"].to_numpy()), meta, mean, std,
                    name=f"digits_on_canvas({split})", classes=[str(c) for c in range(10)])


def digits_train_test(n_train: int, n_test: int, canvas_size: int = 32, digit_size: int = 16, seed: int = 0,
                      border_fraction: float = 0.25, background: str = "black", cut_fraction: float = 0.0,
                      cut_range=(0.2, 0.5), texture_range=(0.0, 0.6)) -> tuple[ImageSet, ImageSet]:
    """Train and test digit canvases from disjoint source digits (and, with textures, disjoint photographs); the
    test set reuses the train mean/std."""
    kw = {"background": background, "cut_fraction": cut_fraction, "cut_range": cut_range, "texture_range": texture_range}
    train = digits_on_canvas(n_train, canvas_size, digit_size, seed, "train", border_fraction, **kw)
    test = digits_on_canvas(n_test, canvas_size, digit_size, seed, "test", border_fraction,
                            stats=(train.mean, train.std), **kw)
    return train, test


def cifar10(split: str = "train", n: int | None = None, root: str | Path = "~/.cache/padlib/cifar10",
            download: bool = True, seed: int = 0, stats: tuple | None = None) -> ImageSet:
    """CIFAR-10 through torchvision (downloaded into ``root`` when the network allows), optionally ``n`` samples."""
    from torchvision.datasets import CIFAR10

    if split not in ("train", "test"):
        raise ProbeDataError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(root).expanduser()
    try:
        ds = CIFAR10(str(root), train=(split == "train"), download=download)
    except Exception as e:  # no network, or a corrupt archive
        raise ProbeDataError(f"CIFAR-10 is not available under {root} and could not be downloaded ({e}); "
                             "run once with network access or use dataset='digits' or an image folder") from None
    x = torch.as_tensor(ds.data).permute(0, 3, 1, 2).float() / 255.0
    y = torch.as_tensor(ds.targets, dtype=torch.long)
    if n is not None and n < len(y):
        keep = torch.as_tensor(np.random.default_rng(seed).choice(len(y), n, replace=False))
        x, y = x[keep], y[keep]
    mean, std = stats if stats is not None else channel_stats(x)
    return ImageSet(x, y, pd.DataFrame({"label": y.numpy()}), mean, std, f"cifar10({split})", list(ds.classes))


def image_folder(folder: str | Path, size: int = 32, n: int | None = None, seed: int = 0,
                 stats: tuple | None = None) -> ImageSet:
    """A labelled folder (one sub-folder per class, as torchvision's ImageFolder), resized and centre-cropped."""
    from torchvision import transforms
    from torchvision.datasets import ImageFolder

    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ProbeDataError(f"image folder '{folder}' does not exist")
    try:
        ds = ImageFolder(str(folder), transform=transforms.Compose(
            [transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()]))
    except (FileNotFoundError, RuntimeError) as e:
        raise ProbeDataError(f"'{folder}' is not a labelled image folder (one sub-folder of images per class): {e}") from None
    order = np.arange(len(ds))
    if n is not None and n < len(ds):
        order = np.sort(np.random.default_rng(seed).choice(len(ds), n, replace=False))
    if not len(ds):
        raise ProbeDataError(f"'{folder}' has class folders but no images")
    xs, ys = zip(*(_folder_item(ds, int(i)) for i in order))
    x, y = torch.stack(xs), torch.as_tensor(ys, dtype=torch.long)
    mean, std = stats if stats is not None else channel_stats(x)
    return ImageSet(x, y, pd.DataFrame({"label": y.numpy()}), mean, std, f"folder({folder.name})", list(ds.classes))


def _folder_item(ds, i: int):
    """Item ``i`` of an ImageFolder; an unreadable image raises a one-line error naming the file."""
    try:
        return ds[i]
    except Exception as e:  # PIL's UnidentifiedImageError, truncated files, ...
        raise ProbeDataError(f"cannot read image '{ds.samples[i][0]}': {type(e).__name__}: {e}") from None


def load_dataset(dataset: str, n_train: int, n_test: int, seed: int = 0, size: int = 32, **digit_kwargs):
    """(train, test) for ``dataset``: 'digits' (offline), 'cifar10', or the path of a labelled image folder.

    A folder is split into train and test by a seeded shuffle (``n_test`` held out); it must hold at least
    ``n_train + n_test`` images.
    """
    check_type("dataset", dataset, (str, Path), "give 'digits', 'cifar10' or the path of a labelled image folder")
    check_type("n_train", n_train, int)
    check_type("n_test", n_test, int)
    if n_train < 1 or n_test < 1:
        raise ProbeDataError(f"n_train and n_test must be at least 1, got {n_train} and {n_test}")
    if dataset == "digits":
        return digits_train_test(n_train, n_test, seed=seed, **digit_kwargs)
    if dataset == "cifar10":
        train = cifar10("train", n_train, seed=seed)
        return train, cifar10("test", n_test, seed=seed, stats=(train.mean, train.std))
    full = image_folder(dataset, size=size, n=n_train + n_test, seed=seed)
    if len(full) < n_train + n_test:
        raise ProbeDataError(f"'{dataset}' holds {len(full)} images, fewer than n_train + n_test = "
                             f"{n_train + n_test}; lower n_train/n_test or add images")
    perm = torch.as_tensor(np.random.default_rng(seed).permutation(len(full)))
    train = full.subset(perm[n_test:])
    test = full.subset(perm[:n_test])
    train.mean, train.std = channel_stats(train.images)
    test.mean, test.std = train.mean, train.std
    return train, test

