"""Training small networks from scratch on CPU: data sets, models and a deterministic training loop.

The learned-padding chapter trains the same small network with every padding scheme on the same data with
the same budget. The offline data set is scikit-learn's real handwritten digits placed at random positions
on a larger canvas (touching the border in a known fraction of samples), so accuracy can be split by the
digit's distance to the border and the canvas region is a position label. CIFAR-10 (downloaded through
torchvision when the network allows) and any labelled image folder load into the same :class:`ImageSet`.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .errors import PadlibError, ProbeDataError, check_type
from .kernels import holm_adjust  # noqa: F401 - the book's one Holm adjustment, also used here

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
    from .data import load_photo, offline_photo_names

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


# ---------------------------------------------------------------------------------------------------------
# models


class Standardize(nn.Module):
    """(x - mean) / std per channel, inside the model, so data sets stay in [0, 1] and a black canvas is 0."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def _stats(in_channels, mean, std):
    return (mean if mean is not None else (0.0,) * in_channels, std if std is not None else (1.0,) * in_channels)


def vgg_small(in_channels: int = 1, num_classes: int = 10, width: int = 16, depth: int = 3,
              convs_per_stage: int = 2, batch_norm: bool = True, mean=None, std=None) -> nn.Sequential:
    """VGG-style: ``depth`` stages of ``convs_per_stage`` 3x3 convs (padding 1, width doubling), 2x2 max-pool
    after every stage but the last, global average pooling, one linear layer."""
    layers: list[nn.Module] = [Standardize(*_stats(in_channels, mean, std))]
    c_in = in_channels
    for stage in range(depth):
        c_out = width * 2**stage
        for _ in range(convs_per_stage):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=not batch_norm)]
            layers += [nn.BatchNorm2d(c_out)] if batch_norm else []
            layers += [nn.ReLU(inplace=True)]
            c_in = c_out
        if stage < depth - 1:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs (the first may have stride 2), 1x1 strided projection when needed."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
                         if stride != 1 or c_in != c_out else nn.Identity())

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


def resnet_small(in_channels: int = 1, num_classes: int = 10, width: int = 16, depth: int = 3,
                 blocks_per_stage: int = 1, mean=None, std=None) -> nn.Sequential:
    """ResNet-style: 3x3 stem, ``depth`` stages of basic blocks (stride-2 3x3 conv entering every stage after
    the first, width doubling), global average pooling, one linear layer."""
    layers: list[nn.Module] = [Standardize(*_stats(in_channels, mean, std)),
                               nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(inplace=True)]
    c_in = width
    for stage in range(depth):
        c_out = width * 2**stage
        for b in range(blocks_per_stage):
            layers.append(BasicBlock(c_in, c_out, 2 if (stage > 0 and b == 0) else 1))
            c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def strided_small(in_channels: int = 1, num_classes: int = 10, width: int = 16, depth: int = 3, mean=None,
                  std=None) -> nn.Sequential:
    """Mind the Pad's setting in miniature: ``depth`` stride-2 3x3 convs with padding 1 (each pads unevenly on
    an even input: PyTorch reads the top/left padding and never the bottom/right one), width doubling up to 4x,
    one stride-1 3x3 conv, global average pooling, one linear layer. Even everywhere when the input size is
    1 (mod 2**depth), e.g. 49 for depth 3 (or 4), uneven at 48."""
    layers: list[nn.Module] = [Standardize(*_stats(in_channels, mean, std))]
    c_in = in_channels
    for stage in range(depth):
        c_out = width * 2 ** min(stage, 2)
        layers += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        c_in = c_out
    layers += [nn.Conv2d(c_in, c_in, 3, 1, 1, bias=False), nn.BatchNorm2d(c_in), nn.ReLU(inplace=True),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


SMALL_MODELS = {"vgg": vgg_small, "resnet": resnet_small, "strided": strided_small}


def small_model(kind: str, data: ImageSet, num_classes: int | None = None, seed: int = 0, **kwargs) -> nn.Module:
    """A freshly initialised ``vgg``/``resnet`` small model for ``data`` (channels, classes, mean/std), seeded."""
    if kind not in SMALL_MODELS:
        raise PadlibError(f"unknown small model '{kind}'; choose one of {', '.join(SMALL_MODELS)}")
    torch.manual_seed(seed)
    n_cls = num_classes if num_classes is not None else max(data.n_classes(), len(data.classes))
    return SMALL_MODELS[kind](in_channels=data.images.shape[1], num_classes=n_cls, mean=data.mean, std=data.std,
                              **kwargs)


# ---------------------------------------------------------------------------------------------------------
# training


def training_memory_format(device) -> torch.memory_format:
    """The memory format padlib trains in: channels-last on CUDA, (N, C, H, W) on CPU, always.

    On CPU the channels-last weight gradient of oneDNN's thin 1x1 stride-2 convolutions (a ResNet shortcut from
    3 or 4 channels) corrupts the heap on some CPUs (seen: AMD EPYC family 25, torch 2.14.1, oneDNN 3.12): an abort,
    a bus error or a hang, depending on the run. Which shapes are affected depends on the CPU and the build, so
    no channels-last backward pass runs on CPU at all; (N, C, H, W) costs 15-50% more per step here."""
    return torch.channels_last if torch.device(device).type == "cuda" else torch.contiguous_format


def _check_channels_last(channels_last, device) -> torch.memory_format:
    """The memory format for a training pass: :func:`training_memory_format` unless ``channels_last`` is given;
    ``channels_last=True`` on CPU is refused (see there)."""
    if channels_last is None:
        return training_memory_format(device)
    check_type("channels_last", channels_last, bool)
    if channels_last and torch.device(device).type == "cpu":
        raise PadlibError("channels_last=True is refused on CPU: oneDNN's channels-last weight gradient corrupts the "
                          "heap on some CPUs; leave channels_last=None (NCHW on CPU, channels-last on CUDA)")
    return torch.channels_last if channels_last else torch.contiguous_format


def training_step(model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor,
                  channels_last: bool | None = None) -> tuple[float, float]:
    """One step on the main loss plus any Padding Module losses; returns (main loss, module loss).

    ``channels_last``: None (default) trains in :func:`training_memory_format` for ``x``'s device: channels-last
    on CUDA, (N, C, H, W) on CPU. The model's conv weights are put in that format too (a conv runs channels-last
    when its input *or* its weight is), so a model left in channels-last by other code still trains safely.
    """
    from .models import conv_weights_to, in_memory_format
    from .padding_layers import padding_module_loss

    fmt = _check_channels_last(channels_last, x.device)
    if x.dim() == 4:
        x = in_memory_format(x, fmt)
    conv_weights_to(model, fmt)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    module_loss = padding_module_loss(model)
    total = loss if module_loss is None else loss + module_loss
    total.backward()
    optimizer.step()
    return loss.item(), module_loss.item() if module_loss is not None else 0.0


@torch.no_grad()
def predict_labels(model: nn.Module, images: torch.Tensor, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """Arg-max predictions of ``model`` (eval mode) for (N, C, H, W) images, in the training memory format."""
    from .models import in_memory_format

    was = model.training
    model.eval()
    fmt = training_memory_format(device) if images.dim() == 4 else torch.contiguous_format
    out = [model(in_memory_format(images[s:s + batch_size].to(device), fmt)).argmax(1).cpu()
           for s in range(0, len(images), batch_size)]
    model.train(was)
    return torch.cat(out)


def evaluate(model: nn.Module, data: ImageSet, target: str = "label", batch_size: int = 256, device="cpu") -> pd.DataFrame:
    """One row per test sample: its metadata, the target, the prediction and whether it is correct."""
    y = data.targets(target)
    pred = predict_labels(model, data.images, batch_size, device)
    df = data.meta.copy()
    df["target"], df["prediction"] = y.numpy(), pred.numpy()
    df["correct"] = df["target"] == df["prediction"]
    return df


@dataclass
class TrainResult:
    """A training run: the model, one history row per step (loss, module loss, seconds), evaluations."""

    model: nn.Module
    history: pd.DataFrame
    evaluations: pd.DataFrame

    @property
    def seconds_per_step(self) -> float:
        """Median wall time of a training step (the first step, which warms caches, excluded)."""
        s = self.history["seconds"].to_numpy()
        return float(np.median(s[1:] if len(s) > 1 else s))


def train(model: nn.Module, data: ImageSet, target: str = "label", epochs: float = 2, batch_size: int = 64,
          lr: float = 3e-3, seed: int = 0, device="cpu", progress: bool | str = True,
          eval_data: ImageSet | None = None, evals_per_epoch: int = 1) -> TrainResult:
    """Train ``model`` in place with Adam (cosine-decayed learning rate), deterministically for a given seed.

    The sample order depends only on ``seed``. ``epochs`` may be fractional. With ``eval_data`` the model is
    evaluated (accuracy on ``target``) before training and ``evals_per_epoch`` times per epoch.
    """
    from tqdm.auto import tqdm

    check_type("model", model, nn.Module)
    check_type("data", data, ImageSet)
    check_type("epochs", epochs, (int, float))
    check_type("batch_size", batch_size, int)
    if epochs <= 0 or batch_size < 1:
        raise PadlibError(f"epochs must be > 0 and batch_size >= 1, got {epochs} and {batch_size}")
    y_all = data.targets(target)
    n = len(data)
    steps_per_epoch = max(math.ceil(n / batch_size), 1)
    total_steps = max(int(round(epochs * steps_per_epoch)), 1)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / total_steps, 1))))
    eval_every = max(steps_per_epoch // max(evals_per_epoch, 1), 1)
    history, evals = [], []

    def run_eval(step):
        if eval_data is not None:
            acc = float(evaluate(model, eval_data, target, device=device)["correct"].mean())
            evals.append({"step": step, "epoch": step / steps_per_epoch, "accuracy": acc})

    run_eval(0)
    order = torch.randperm(n, generator=gen)
    pos = 0
    desc = progress if isinstance(progress, str) else "train"
    for step in tqdm(range(1, total_steps + 1), desc=desc, disable=not progress, leave=False):
        if pos + batch_size > n and pos > 0:
            order, pos = torch.randperm(n, generator=gen), 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        x, y = data.images[idx].to(device), y_all[idx].to(device)
        t0 = time.perf_counter()
        loss, module_loss = training_step(model, opt, x, y)
        seconds = time.perf_counter() - t0
        sched.step()
        history.append({"step": step, "epoch": step / steps_per_epoch, "loss": loss, "module_loss": module_loss,
                        "seconds": seconds})
        if step % eval_every == 0 or step == total_steps:
            run_eval(step)
    model.eval()
    return TrainResult(model, pd.DataFrame(history), pd.DataFrame(evals, columns=["step", "epoch", "accuracy"]))


# ---------------------------------------------------------------------------------------------------------
# comparing padding schemes


@dataclass
class SchemeRun:
    """One (scheme, seed) training run; ``init_model`` is the same network before training."""

    scheme: str
    seed: int
    init_model: nn.Module
    model: nn.Module
    result: TrainResult


def _train_job(job: dict) -> SchemeRun:
    """One (scheme, seed) run of :func:`train_schemes`; a top-level function so that worker processes can run it."""
    from .padding import convert_padding

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    scheme, seed, data = job["scheme"], job["seed"], job["train_data"]
    base = small_model(job["model"], data, num_classes=job["num_classes"], seed=seed, **job["model_kwargs"])
    init = convert_padding(base, scheme)
    net = copy.deepcopy(init)
    result = train(net, data, job["target"], job["epochs"], job["batch_size"], job["lr"], seed, job["device"],
                   progress=False, eval_data=job["eval_data"], evals_per_epoch=job["evals_per_epoch"])
    return SchemeRun(scheme, seed, init.to(job["device"]).eval(), net, result)


def default_workers(device="cpu", threads: int | None = None, most: int = 4) -> int:
    """Worker processes for :func:`train_schemes`: on CPU one per ``threads`` of the cores this process may run
    on, at most ``most`` (each worker holds its own torch, a few hundred MB); on other devices 1."""
    if str(device) != "cpu":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))  # the cores allowed to this process, not the host's
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(min(cores // max(threads or torch.get_num_threads(), 1), most), 1)


def train_schemes(schemes, seeds, train_data: ImageSet, model: str = "vgg", model_kwargs: dict | None = None,
                  target: str = "label", epochs: float = 2, batch_size: int = 64, lr: float = 3e-3,
                  device="cpu", progress: bool = True, eval_data: ImageSet | None = None,
                  evals_per_epoch: int = 1, workers: int = 1) -> list[SchemeRun]:
    """Train one network per (scheme, seed): for a seed, every scheme starts from the same initial weights
    (the seeded base network converted with :func:`padlib.padding.convert_padding`) and sees the same batches.

    ``schemes`` may be one name or a list; ``seeds`` one int or a list. ``workers`` > 1 trains that many runs
    at a time in separate processes, each on this process's number of torch threads: the runs are
    independent and seeded, so the networks are the same as with ``workers=1``; only their step times then
    include the sharing of the machine (measure cost with :func:`interleaved_step_cost` instead).
    """
    from tqdm.auto import tqdm

    schemes = [schemes] if isinstance(schemes, str) else schemes
    seeds = [seeds] if isinstance(seeds, int) else seeds
    check_type("schemes", schemes, (list, tuple), "a scheme name or a list of them")
    check_type("seeds", seeds, (list, tuple, range), "a seed or a list of seeds")
    check_type("workers", workers, int)
    if not schemes or not len(seeds):
        raise PadlibError("train_schemes needs at least one scheme and one seed")
    if workers < 1:
        raise PadlibError(f"workers must be >= 1, got {workers}")
    check_type("train_data", train_data, ImageSet)
    num_classes = train_data.n_classes(target) if target != "label" else None
    common = dict(train_data=train_data, model=model, model_kwargs=dict(model_kwargs or {}), num_classes=num_classes,
                  target=target, epochs=epochs, batch_size=batch_size, lr=lr, device=str(device), eval_data=eval_data,
                  evals_per_epoch=evals_per_epoch, threads=torch.get_num_threads())
    jobs = [dict(common, scheme=s, seed=seed) for seed in seeds for s in schemes]
    desc = f"{target}: schemes x seeds"
    workers = min(workers, len(jobs))
    if workers == 1:
        return [_train_job(j) for j in tqdm(jobs, desc=desc, disable=not progress)]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawned, not forked: a fork of a process whose torch thread pools already ran can deadlock
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(_train_job, j) for j in jobs]
            for _ in tqdm(as_completed(futures), total=len(jobs), desc=f"{desc} ({workers} processes)",
                          disable=not progress):
                pass
            return [f.result() for f in futures]  # in job order
    except BrokenProcessPool as e:
        raise PadlibError(f"a training worker process died ({e}); out of memory? retry with workers=1") from None


def interleaved_step_cost(schemes, data: ImageSet, model: str = "vgg", model_kwargs: dict | None = None,
                          batch_size: int = 64, repeats: int = 12, seed: int = 0, channels_last: bool | None = None,
                          device="cpu") -> pd.DataFrame:
    """Training-step time (forward, backward, Adam step) per scheme on one batch of ``data``, and its ratio to
    zero padding (when zero is among the schemes), from ``repeats`` rounds after one warm-up round.

    Each round runs one step of every scheme back to back (in reversed order every other round, so that no
    scheme always follows the same one); a scheme's ratio is the median over rounds of its step time over zero
    padding's in the same round, so a slow spell of the machine moves both and cancels. The same network
    (``model``, seeded) converted to each scheme, in one process: the clean cost measure when the training
    runs themselves shared the machine."""
    from .padding import convert_padding

    schemes = [schemes] if isinstance(schemes, str) else list(schemes)
    check_type("data", data, ImageSet)
    check_type("repeats", repeats, int)
    if not schemes or repeats < 1:
        raise PadlibError("interleaved_step_cost needs at least one scheme and repeats >= 1")
    x, y = data.images[:batch_size].to(device), data.targets("label")[:batch_size].to(device)
    base = small_model(model, data, seed=seed, **dict(model_kwargs or {}))  # (seeds torch itself)
    nets = {s: convert_padding(base, s).to(device) for s in schemes}
    opts = {s: torch.optim.Adam(m.parameters(), lr=1e-3) for s, m in nets.items()}
    times = {s: [] for s in schemes}
    for rep in range(repeats + 1):
        for s in (schemes if rep % 2 else schemes[::-1]):
            t0 = time.perf_counter()
            training_step(nets[s], opts[s], x, y, channels_last=channels_last)
            if rep:  # the first round warms caches
                times[s].append(time.perf_counter() - t0)
    out = pd.DataFrame({"scheme": schemes, "seconds_per_step": [float(np.median(times[s])) for s in schemes]})
    if "zero" in times:
        zero = np.asarray(times["zero"])
        out["ratio_to_zero"] = [float(np.median(np.asarray(times[s]) / zero)) for s in schemes]
    return out


def runs_predictions(runs: list[SchemeRun], test: ImageSet, target: str = "label", device="cpu") -> pd.DataFrame:
    """Per test sample and run: metadata, prediction, correct; with ``scheme`` and ``seed`` columns."""
    frames = []
    for r in runs:
        df = evaluate(r.model, test, target, device=device)
        df.insert(0, "seed", r.seed)
        df.insert(0, "scheme", r.scheme)
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _t_interval(values, level: float = 0.95) -> tuple[float, float]:
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def accuracy_by_seed(predictions: pd.DataFrame, by: str | None = None, bins=None) -> pd.DataFrame:
    """Accuracy per (scheme, seed[, group]); ``bins`` cuts column ``by`` (e.g. border_distance) into ranges."""
    df = predictions
    keys = ["scheme", "seed"]
    if by is not None:
        df = df.copy()
        if bins is not None:
            df[by] = pd.cut(df[by], bins=bins, right=False)
        keys.append(by)
    return df.groupby(keys, observed=True, sort=False)["correct"].mean().rename("accuracy").reset_index()


def accuracy_summary(per_seed: pd.DataFrame, group: str | None = None) -> pd.DataFrame:
    """Mean, std and 95% t-interval of accuracy over seeds, per scheme (and group)."""
    keys = ["scheme"] + ([group] if group else [])
    rows = []
    for key, g in per_seed.groupby(keys, observed=True, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        lo, hi = _t_interval(g["accuracy"])
        rows.append({**dict(zip(keys, key)), "mean": g["accuracy"].mean(), "std": g["accuracy"].std(ddof=1),
                     "ci_low": lo, "ci_high": hi, "n_seeds": len(g)})
    return pd.DataFrame(rows)


def paired_comparison(per_seed: pd.DataFrame, value: str = "accuracy", baseline: str = "zero",
                      exclude=()) -> pd.DataFrame:
    """Per scheme: the per-seed difference to ``baseline`` (same seed = same init and batches), its mean,
    95% t-interval (and its half-width), the number of seeds it wins, a two-sided paired t-test p-value and
    ``p_holm``, Holm-adjusted across the schemes of this table (the family: every scheme compared with the
    baseline). Schemes in ``exclude`` (e.g. a noise twin) are left out of the table and of the family."""
    from scipy import stats

    wide = per_seed.pivot_table(index="seed", columns="scheme", values=value)
    if baseline not in wide.columns:
        raise PadlibError(f"baseline scheme '{baseline}' was not trained; schemes: {', '.join(wide.columns)}")
    rows = []
    for scheme in [s for s in per_seed["scheme"].unique() if s != baseline and s not in exclude]:
        d = (wide[scheme] - wide[baseline]).dropna().to_numpy()
        lo, hi = _t_interval(d)
        p = float(stats.ttest_1samp(d, 0.0).pvalue) if len(d) > 1 and d.std() > 0 else float("nan")
        rows.append({"scheme": scheme, f"mean_diff_vs_{baseline}": d.mean(), "ci_low": lo, "ci_high": hi,
                     "half_width": (hi - lo) / 2, "wins": int((d > 0).sum()), "losses": int((d < 0).sum()),
                     "n_seeds": len(d), "p_value": p})
    out = pd.DataFrame(rows)
    if len(out):
        out["p_holm"] = holm_adjust(out["p_value"])
    return out


def step_cost(runs: list[SchemeRun], baseline: str = "zero") -> pd.DataFrame:
    """Median seconds per training step per scheme and its ratio to ``baseline`` (paired by seed, then median),
    from the runs' own step times (runs trained in parallel processes shared the machine: see
    :func:`interleaved_step_cost`)."""
    df = pd.DataFrame([{"scheme": r.scheme, "seed": r.seed, "seconds_per_step": r.result.seconds_per_step}
                       for r in runs])
    if baseline not in set(df["scheme"]):
        raise PadlibError(f"step_cost needs the baseline scheme '{baseline}' among the runs; "
                          f"trained: {', '.join(dict.fromkeys(df['scheme']))}")
    base = df[df.scheme == baseline].set_index("seed")["seconds_per_step"]
    df["ratio"] = df["seconds_per_step"] / df["seed"].map(base)
    out = df.groupby("scheme", sort=False).agg(seconds_per_step=("seconds_per_step", "median"),
                                               ratio_to_zero=("ratio", "median")).reset_index()
    return out


def learning_curves(runs: list[SchemeRun]) -> pd.DataFrame:
    """The evaluations recorded during training, one row per (scheme, seed, evaluation)."""
    frames = []
    for r in runs:
        e = r.result.evaluations.copy()
        e.insert(0, "seed", r.seed)
        e.insert(0, "scheme", r.scheme)
        frames.append(e)
    return pd.concat(frames, ignore_index=True)


def curve_stats(curves: pd.DataFrame, last_fraction: float = 0.25) -> pd.DataFrame:
    """Per (scheme, seed) of :func:`learning_curves`: ``final`` (the last held-out accuracy), ``auc`` (the area
    under the learning curve over the epochs trained, divided by them: the mean held-out accuracy during
    training, which rewards learning fast) and ``late_gain`` (the least-squares slope of the accuracy over the
    last ``last_fraction`` of training times that span: how much the curve still rose at the end; about 0 once
    it is flat)."""
    check_type("last_fraction", last_fraction, float)
    if not 0 < last_fraction < 1:
        raise PadlibError(f"last_fraction must be between 0 and 1, got {last_fraction}")
    rows = []
    for (scheme, seed), g in curves.groupby(["scheme", "seed"], sort=False):
        g = g.sort_values("epoch")
        e, a = g["epoch"].to_numpy(float), g["accuracy"].to_numpy(float)
        span = e[-1] - e[0]
        auc = float(np.sum((a[1:] + a[:-1]) / 2 * np.diff(e)) / span) if span > 0 else float(a[-1])
        late = e >= e[-1] - last_fraction * span
        gain = (float(np.polyfit(e[late], a[late], 1)[0] * last_fraction * span)
                if late.sum() >= 2 and np.ptp(e[late]) > 0 else float("nan"))
        rows.append({"scheme": scheme, "seed": seed, "final": float(a[-1]), "auc": auc, "late_gain": gain,
                     "epochs": float(e[-1])})
    out = pd.DataFrame(rows)
    out.attrs["last_fraction"] = last_fraction
    return out


def convergence_table(stats: pd.DataFrame, tolerance: float, baseline: str | None = "zero") -> pd.DataFrame:
    """Are the learning curves flat at the end? Per scheme (and ``all`` runs pooled), from :func:`curve_stats`:
    the mean ``late_gain`` over seeds with its 95% t-interval, and ``flat`` when the interval's upper end is
    below ``tolerance`` (e.g. the smallest effect the comparison resolves: what the curves still gained at
    the end could not by itself make a resolvable effect). With a ``baseline`` scheme, also the late gain minus
    the baseline's at the same seed (``vs_baseline``, with its interval): a scheme still catching up with the
    baseline (or pulling away) at the end shows there, whatever the schedule does to both."""
    check_type("tolerance", tolerance, (int, float))
    rows = []
    groups = [(s, g) for s, g in stats.groupby("scheme", sort=False)] + [("all", stats)]
    wide = stats.pivot_table(index="seed", columns="scheme", values="late_gain")
    for scheme, g in groups:
        v = g["late_gain"].dropna().to_numpy()
        lo, hi = _t_interval(v)
        row = {"scheme": scheme, "late_gain": float(v.mean()) if len(v) else float("nan"), "ci_low": lo,
               "ci_high": hi, "n_runs": len(v), "flat": bool(np.isfinite(hi) and hi < tolerance)}
        if baseline in wide.columns and scheme in wide.columns and scheme != baseline:
            d = (wide[scheme] - wide[baseline]).dropna()
            dlo, dhi = _t_interval(d)
            row.update(vs_baseline=float(d.mean()), vs_ci_low=dlo, vs_ci_high=dhi)
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(tolerance=tolerance, last_fraction=stats.attrs.get("last_fraction"), baseline=baseline)
    return out


def convergence_lines(table: pd.DataFrame, what: str = "the tolerance") -> list[str]:
    """Printed lines of :func:`convergence_table` (``what``: what the tolerance is, in words)."""
    a = table.attrs
    share = a.get("last_fraction")
    base = a.get("baseline")
    lines = [f"gain of held-out accuracy over the last {share:.0%} of training (slope x span; flat: the 95% "
             f"interval's upper end below {a.get('tolerance'):.4f}, {what}):"
             if share else "late gain of held-out accuracy:"]
    for _, r in table.iterrows():
        vs = ""
        if "vs_baseline" in r and np.isfinite(r.get("vs_baseline", np.nan)):
            vs = f"; minus {base}'s at the same seed {r.vs_baseline:+.4f} ({r.vs_ci_low:+.4f} .. {r.vs_ci_high:+.4f})"
        lines.append(f"  {r.scheme:15s} {r.late_gain:+.4f} (95% CI {r.ci_low:+.4f} .. {r.ci_high:+.4f}, "
                     f"{r.n_runs} runs): {'flat at the end' if r.flat else 'NOT shown flat: may still be rising'}{vs}")
    return lines


def slowest_to_converge(stats: pd.DataFrame, exclude=()) -> str:
    """The slowest learner: the scheme with the smallest mean area under its learning curves (``auc`` of
    :func:`curve_stats`; schemes in ``exclude`` left out), the one most likely to be still short of its plateau
    and so the one to train longer as a convergence check. (Under a cosine schedule every curve flattens at
    the end, converged or not, so the late gain alone cannot pick it.)"""
    g = stats[~stats.scheme.isin(list(exclude))].groupby("scheme", sort=False)["auc"].mean().dropna()
    if not len(g):
        raise PadlibError("slowest_to_converge needs learning curves with at least two evaluations")
    return str(g.idxmin())


def run_clock() -> dict:
    """Wall time and CPU time (this process plus its finished child processes, e.g. training workers) now: the
    start of :func:`run_time_line`."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": time.perf_counter(), "cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime}


def run_time_line(start: dict, what: str = "chapter") -> str:
    """``<what>_seconds=...``: wall time since ``start`` (:func:`run_clock`), the CPU seconds spent meanwhile (by
    this process and its finished workers: what the run costs, whoever else used the machine) and the load
    averages. A run that keeps every core busy by itself holds the 5-minute load near the number of cores; well
    above it, other work shared the machine and the wall time is longer than the run alone would take."""
    now = run_clock()
    load = os.getloadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    shared = load[1] > cores + 0.5
    return (f"{what}_seconds={now['wall'] - start['wall']:.0f} (CPU seconds {now['cpu'] - start['cpu']:.0f}; load "
            f"average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} over 1 / 5 / 15 minutes on {cores} cores: "
            f"{'other work shared the machine' if shared else 'no sign of other work on the machine'})")


def longer_training_check(per_seed: pd.DataFrame, per_seed_longer: pd.DataFrame, factor: float = 2.0) -> pd.DataFrame:
    """Does training longer change the final accuracy? ``per_seed_longer`` holds runs trained ``factor`` times as
    many epochs (same schemes, seeds, data and schedule shape), ``per_seed`` the chapter's runs: per scheme the
    per-seed difference longer - chapter (paired by seed, :func:`paired_comparison` columns); an interval
    around 0 within the resolvable effect means the chapter's budget is at convergence for that scheme."""
    rows = []
    for scheme in dict.fromkeys(per_seed_longer["scheme"]):
        both = pd.concat([per_seed[per_seed.scheme == scheme].assign(scheme="budget"),
                          per_seed_longer[per_seed_longer.scheme == scheme].assign(scheme="longer")])
        pc = paired_comparison(both, baseline="budget")
        if len(pc):
            wide = both.pivot_table(index="seed", columns="scheme", values="accuracy")
            rows.append(pc.iloc[0].drop(["scheme", "p_holm"], errors="ignore").rename({"mean_diff_vs_budget": "gain"})
                        .to_dict() | {"scheme": scheme, "factor": factor,
                                      "per_seed": [round(float(v), 4) for v in (wide["longer"] - wide["budget"]).dropna()]})
    cols = ["scheme", "factor", "gain", "ci_low", "ci_high", "n_seeds", "p_value", "per_seed"]
    return pd.DataFrame(rows)[cols] if rows else pd.DataFrame(columns=cols)


def longer_training_lines(table: pd.DataFrame, tolerance: float | None = None) -> list[str]:
    """Printed lines of :func:`longer_training_check` (``tolerance``: the smallest resolvable effect)."""
    out = []
    for _, r in table.iterrows():
        within = ""
        if tolerance is not None and np.isfinite(r.ci_high):
            within = (": within the resolvable effect, converged" if max(abs(r.ci_low), abs(r.ci_high)) < tolerance
                      else ": more training may still change it" if r.ci_low > 0 else
                      ": interval wider than the resolvable effect")
        out.append(f"{r.scheme:15s} trained {r.factor:g}x as long: final accuracy {r.gain:+.4f} (95% CI {r.ci_low:+.4f} .. "
                   f"{r.ci_high:+.4f}; per seed {', '.join(f'{v:+.4f}' for v in r.per_seed)}){within}")
    return out


def noise_band(per_seed: pd.DataFrame, twin=("symmetric", "replicate"), value: str = "accuracy") -> dict | None:
    """How far apart two schemes that compute the same function end up: the per-seed difference ``twin[0]`` -
    ``twin[1]`` (same initial weights, same batches; symmetric and replicate write the same single ring of
    padding, so only floating-point rounding, amplified by training, separates them). Returns its mean,
    95% t-interval, largest |difference| and ``floor``: the largest mean difference the twins' interval allows
    (max(|low|, |high|)); a scheme's mean effect below it is within what identical networks show. None when
    a twin was not trained."""
    wide = per_seed.pivot_table(index="seed", columns="scheme", values=value)
    a, b = twin
    if a not in wide.columns or b not in wide.columns:
        return None
    d = (wide[a] - wide[b]).dropna().to_numpy()
    lo, hi = _t_interval(d)
    floor = max(abs(lo), abs(hi)) if np.isfinite(lo) else float(np.abs(d).max())
    return {"a": a, "b": b, "value": value, "mean": float(d.mean()), "ci_low": lo, "ci_high": hi,
            "sd": float(d.std(ddof=1)) if len(d) > 1 else float("nan"), "max_abs": float(np.abs(d).max()),
            "floor": float(floor), "n_seeds": len(d)}


def noise_band_line(band: dict | None) -> str:
    """One printed line on :func:`noise_band`."""
    if band is None:
        return "no noise twin trained: the noise floor is the seed-to-seed spread alone"
    return (f"noise band ({band['a']} - {band['b']}, the same function): {band['value']} {band['mean']:+.4f} "
            f"(95% CI {band['ci_low']:+.4f} .. {band['ci_high']:+.4f}, largest |difference| at one seed "
            f"{band['max_abs']:.4f}, {band['n_seeds']} seeds); noise floor {band['floor']:.4f}")


def resolvable_effect(paired: pd.DataFrame, per_seed: pd.DataFrame, value: str = "accuracy",
                      baseline: str = "zero", alpha: float = 0.05, power: float = 0.8) -> dict:
    """The smallest effect this budget resolves, from the seed-to-seed spread of the paired differences.

    ``sd``: the pooled within-scheme standard deviation of the per-seed differences to the baseline (each
    scheme's own mean removed); ``half_width``: the 95% interval half-width a paired mean of ``n`` seeds
    gets from it; ``mde``: the minimum detectable effect at ``power`` for a two-sided paired t-test at the
    first Holm step (alpha / number of schemes compared): (t_{1-alpha/2m} + t_{power}) * sd / sqrt(n).
    """
    from scipy import stats

    check_type("paired", paired, pd.DataFrame)
    wide = per_seed.pivot_table(index="seed", columns="scheme", values=value)
    schemes = [s for s in paired["scheme"] if s in wide.columns]
    if baseline not in wide.columns or not schemes:
        raise PadlibError("resolvable_effect needs the baseline and at least one compared scheme in per_seed")
    diffs = [(wide[s] - wide[baseline]).dropna() for s in schemes]
    resid = np.concatenate([(d - d.mean()).to_numpy() for d in diffs])
    n = int(min(len(d) for d in diffs))
    dof = max(len(resid) - len(diffs), 1)
    sd = float(np.sqrt((resid ** 2).sum() / dof))
    m = len(schemes)
    half = float(stats.t.ppf(0.975, max(n - 1, 1)) * sd / np.sqrt(n))
    mde = float((stats.t.ppf(1 - alpha / (2 * m), max(n - 1, 1)) + stats.t.ppf(power, max(n - 1, 1))) * sd / np.sqrt(n))
    return {"value": value, "sd": sd, "n_seeds": n, "n_schemes": m, "half_width": half, "mde": mde,
            "alpha": alpha, "power": power}


def resolvable_line(res: dict) -> str:
    """One printed line on :func:`resolvable_effect`."""
    return (f"smallest resolvable effect on {res['value']}: seed-to-seed SD of a paired difference {res['sd']:.4f}; "
            f"with {res['n_seeds']} seeds a 95% interval is +-{res['half_width']:.4f}, and an effect of "
            f"{res['mde']:.4f} is detected with {res['power']:.0%} power after Holm's correction over "
            f"{res['n_schemes']} schemes")


def pan_counts(runs: list[SchemeRun], images: torch.Tensor, fpr: float = 0.01, states=("init", "trained"),
               progress: bool = True) -> pd.DataFrame:
    """Padding-caused channels found by chapter 1's scanner (:func:`padlib.pans.find_pans`, circular null at
    ``fpr``, ``reference=None``: each run's own initialisation is the random-init control here, state "init")
    in every run's network, at initialisation and after training: one row per (scheme, seed, state)."""
    from tqdm.auto import tqdm

    from .pans import find_pans

    rows = []
    for r in tqdm(runs, desc="PAN scans", disable=not progress):
        for state in states:
            model = r.init_model if state == "init" else r.model
            table = find_pans(model, images, fpr=fpr, progress=False, reference=None)
            rows.append({"scheme": r.scheme, "seed": r.seed, "state": state, "filters": len(table),
                         "pans": int(table["is_pan"].sum()), "share_pct": 100.0 * table["is_pan"].mean(),
                         "tau": table.attrs.get("tau", float("nan"))})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------
# findings: the chapter's data-dependent conclusions, printed from the tables


def _interval_verdict(lo: float, hi: float, mean: float, up: str, down: str, flat: str) -> str:
    """``up`` when a 95% interval lies above 0, ``down`` below, ``flat`` when it straddles 0 (or is unknown)."""
    if np.isfinite(lo) and np.isfinite(hi):
        if lo > 0 or (lo == hi and mean > 0):
            return up
        if hi < 0 or (lo == hi and mean < 0):
            return down
    return flat


CH5_SECTIONS = {"accuracy": "final-accuracy-and-learning-speed-against-zero-padding",
                "convergence": "are-the-networks-trained-to-convergence",
                "cost": "what-the-padding-module-costs-and-what-it-buys",
                "ppp": "position-information-ppp-formed-by-training-whatever-the-padding"}

# What the papers report (quoted in the book's notes on the papers; never measured here)
PAPER_NUMBERS = {
    "padding_module": "the Padding Module paper reports +1.23% (arXiv; +1.49% in the journal) for VGG16 and +0.44% for "
                      "ResNet50 over zero padding, data set not available to us",
    "partial": "Liu et al. report ImageNet top-1 (mean of 5 runs) ResNet50 76.13 zero vs 76.61 partial and VGG16-BN "
               "73.68 vs 74.00",
}


def scheme_verdict(row, baseline: str = "zero", floor: float = 0.0, alpha: float = 0.05) -> str:
    """The verdict on one row of :func:`paired_comparison`: "better/worse than the baseline" when the 95% interval
    excludes 0, the Holm-adjusted p (when the table has one) is below ``alpha`` and the mean difference reaches
    the noise ``floor``; "below the noise floor" when it is resolved but smaller than the floor; else "not
    distinguishable" (at this budget and number of seeds)."""
    col = f"mean_diff_vs_{baseline}"
    mean = row[col]
    direction = _interval_verdict(row["ci_low"], row["ci_high"], mean, "up", "down", "flat")
    holm = row.get("p_holm", np.nan)
    if direction == "flat" or (np.isfinite(holm) and holm >= alpha):
        return f"not distinguishable from {baseline}"
    if abs(mean) < floor:
        return "below the noise floor"
    return f"better than {baseline}" if direction == "up" else f"worse than {baseline}"


def chapter_findings_box(paired: pd.DataFrame | None, ppp_verdict: pd.DataFrame | None,
                         baseline: str = "zero", control: str = "circular", floor: float = 0.0,
                         resolvable: dict | None = None, ceiled=(), sections: dict | None = None,
                         longer: pd.DataFrame | None = None, cut: pd.DataFrame | None = None) -> list:
    """Chapter 5's findings, one :class:`padlib.findings.Finding` per paper claim: the Padding Module and partial
    padding against zero padding (final test accuracy paired over seeds, 95% intervals, Holm-adjusted across the
    schemes compared, a difference counted only above the noise ``floor``; ``resolvable`` from
    :func:`resolvable_effect` states the smallest effect the budget resolves; the papers' own numbers quoted as
    theirs), and PPP's "position information forms during training whatever the padding", per measure (measures
    in ``ceiled``, at their ceiling for every scheme, are left out). ``longer`` (:func:`longer_training_check`):
    a claimed scheme that still gained when trained longer is said to be short of convergence, with that gain.
    ``cut``: the same paired comparison on the digits cut by the border only (where extrapolating can pay),
    quoted beside the main number with its own Holm-adjusted p."""
    from .findings import Finding

    sections = {**CH5_SECTIONS, **dict(sections or {})}
    out = []
    col = f"mean_diff_vs_{baseline}"
    if paired is not None and len(paired):
        for scheme, claim in (("padding_module", "A learned Padding Module beats zero padding"),
                              ("partial", "Partial-convolution padding beats zero padding")):
            r = paired[paired.scheme == scheme]
            if not len(r):
                continue
            r = r.iloc[0]
            verdict = scheme_verdict(r, baseline, floor)
            holm = (f", Holm-adjusted p {r.p_holm:.3g} over {len(paired)} schemes" if "p_holm" in r and
                    np.isfinite(r.p_holm) else "")
            smallest = (f"; this budget resolves {resolvable['mde']:.3f} (80% power)" if resolvable else "")
            if cut is not None and scheme in set(cut["scheme"]):
                c = cut[cut.scheme == scheme].iloc[0]
                smallest += (f"; on the digits cut by the border {c[col]:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
                             + (f", Holm-adjusted p {c.p_holm:.3g}" if "p_holm" in c and np.isfinite(c.p_holm) else ""))
            if longer is not None and scheme in set(longer["scheme"]):
                lg = longer[longer.scheme == scheme].iloc[0]
                if lg.ci_low > 0 or min(lg.per_seed) > 0:
                    smallest += (f"; NOT converged: trained {lg.factor:g}x as long it gained {lg.gain:+.3f} more "
                                 f"(per seed {', '.join(f'{v:+.3f}' for v in lg.per_seed)})")
            out.append(Finding(
                "holds" if verdict.startswith("better") else "not here", claim,
                f"final test accuracy {r[col]:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}] vs {baseline} over "
                f"{int(r.n_seeds)} seeds{holm}: {verdict}; noise floor {floor:.3f}{smallest}. Not a test of the "
                f"papers' ImageNet numbers: {PAPER_NUMBERS[scheme]}", sections["accuracy"]))
    if ppp_verdict is not None and len(ppp_verdict):
        v = ppp_verdict[(ppp_verdict.scheme != control) & ~ppp_verdict.measure.isin(list(ceiled))]
        rises, falls = v[v.training == "rises"], v[v.training == "falls"]
        above = v[v.at_init == "above control"]
        verdict = ("holds" if len(v) and len(rises) == len(v) else "partly" if len(rises) else "not here")
        text = (f"rises with training (beyond the {control} control's change and the measure's floor) in {len(rises)} "
                f"of {len(v)} measure-scheme pairs")
        if len(rises):
            text += ": " + "; ".join(f"{r.scheme} {r.measure} {r.change:+.3g} [{r.change_ci_low:+.3g}, "
                                     f"{r.change_ci_high:+.3g}]" for r in rises.itertuples())
        if len(falls):
            text += f"; falls in {len(falls)} ({', '.join(f'{r.scheme} {r.measure}' for r in falls.itertuples())})"
        if len(above):
            top = above.loc[above.init_minus_control.idxmax()]
            text += (f"; above the control already at initialisation, from the padding alone, in {len(above)} "
                     f"(largest: {top.scheme} {top.measure} {top.init_minus_control:+.3g})")
        if len(ceiled):
            text += f"; left out, at their ceiling for every scheme: {', '.join(ceiled)}"
        out.append(Finding(verdict, "Position information forms during training, whatever the padding (PPP)",
                           text, sections["ppp"]))
    return out


def paired_verdicts(paired: pd.DataFrame, baseline: str = "zero", floor: float = 0.0) -> pd.DataFrame:
    """Adds ``verdict`` to :func:`paired_comparison` (see :func:`scheme_verdict`: the 95% interval, the
    Holm-adjusted p when the table has one, and the noise ``floor``)."""
    out = paired.copy()
    out["verdict"] = [scheme_verdict(r, baseline, floor) for _, r in paired.iterrows()]
    return out


def paired_lines(paired: pd.DataFrame, baseline: str = "zero", what: str = "", floor: float = 0.0) -> list[str]:
    """One printed line per scheme of :func:`paired_verdicts`."""
    col = f"mean_diff_vs_{baseline}"
    return [f"{r.scheme:15s} {r[col]:+.4f} (95% CI {r.ci_low:+.4f} .. {r.ci_high:+.4f}, wins {r.wins}/{r.n_seeds}"
            + (f", Holm p {r.p_holm:.3g}" if "p_holm" in r and np.isfinite(r.p_holm) else "")
            + f"){' ' + what if what else ''}: {r.verdict}"
            for _, r in paired_verdicts(paired, baseline, floor).iterrows()]


def cost_benefit(cost: pd.DataFrame, paired: pd.DataFrame, baseline: str = "zero", floor: float = 0.0) -> pd.DataFrame:
    """Per scheme: its training-step time relative to the baseline (:func:`interleaved_step_cost`) next to what
    it buys, its paired accuracy effect with the 95% interval and verdict (:func:`paired_verdicts`)."""
    col = f"mean_diff_vs_{baseline}"
    if "ratio_to_zero" not in cost.columns:
        raise PadlibError("cost_benefit needs step times relative to zero padding (interleaved_step_cost with 'zero')")
    v = paired_verdicts(paired, baseline, floor).set_index("scheme")
    c = cost.set_index("scheme")
    rows = [{"scheme": s, "step_ratio": float(c.loc[s, "ratio_to_zero"]), "seconds_per_step": float(c.loc[s, "seconds_per_step"]),
             "accuracy_effect": float(v.loc[s, col]), "ci_low": float(v.loc[s, "ci_low"]),
             "ci_high": float(v.loc[s, "ci_high"]), "verdict": v.loc[s, "verdict"]}
            for s in c.index if s in v.index]
    return pd.DataFrame(rows)


def cost_benefit_lines(table: pd.DataFrame, baseline: str = "zero") -> list[str]:
    """Printed lines of :func:`cost_benefit`."""
    return [f"{r.scheme:15s} a training step costs {r.step_ratio:.2f}x {baseline} padding's; it buys "
            f"{r.accuracy_effect:+.4f} accuracy (95% CI {r.ci_low:+.4f} .. {r.ci_high:+.4f}): {r.verdict}"
            for _, r in table.iterrows()]


def scheme_gap(per_seed: pd.DataFrame, a: str = "symmetric", b: str = "replicate") -> dict | None:
    """Mean and max over seeds of |accuracy(a) - accuracy(b)| at the same seed, or None when either is missing.

    For schemes that compute the same function (symmetric and replicate with one ring of padding) this is
    the floor of "differences" from floating-point rounding amplified by training.
    """
    wide = per_seed.pivot_table(index="seed", columns="scheme", values="accuracy")
    if a not in wide.columns or b not in wide.columns:
        return None
    gap = (wide[a] - wide[b]).abs().dropna()
    return {"a": a, "b": b, "mean_gap": float(gap.mean()), "max_gap": float(gap.max()), "n_seeds": len(gap)}


def border_split(predictions: pd.DataFrame, bins, by: str = "border_distance"):
    """Accuracy per seed in distance-to-border bins, its summary over seeds, and the per-seed accuracy of the
    first bin (the digits touching the border when ``bins`` starts [0, 1)): (by_bin, summary, touching)."""
    by_bin = accuracy_by_seed(predictions, by, bins=bins)
    by_bin = by_bin.sort_values(by, kind="stable").reset_index(drop=True)  # bins in order, schemes as given
    summary = accuracy_summary(by_bin, by)
    first = by_bin[by].cat.categories[0]
    return by_bin, summary, by_bin[by_bin[by] == first].drop(columns=by).reset_index(drop=True)


def border_table(summary: pd.DataFrame, group: str = "border_distance", schemes=None) -> pd.DataFrame:
    """Scheme x bin table of "mean ± std over seeds" (and the number of test digits is in the bin counts)."""
    s = summary.copy()
    s["cell"] = [f"{m:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{m:.3f}" for m, sd in zip(s["mean"], s["std"])]
    t = s.pivot_table(index="scheme", columns=group, values="cell", aggfunc="first", observed=True, sort=False)
    order = [x for x in (schemes or list(dict.fromkeys(s["scheme"]))) if x in t.index]
    return t.reindex(index=order, columns=pd.Index(t.columns).sort_values())


def border_concentration(predictions: pd.DataFrame, baseline: str = "zero", by: str = "border_distance",
                         near_max: float = 0, exclude=()) -> pd.DataFrame:
    """Is a scheme's gain over the baseline concentrated on digits at the border?

    Per seed: gain on the digits at the border (``by`` <= ``near_max``: touching it, or cut by it when the
    distance is negative) minus gain on the others, both paired with the baseline at that seed. Columns:
    overall, touching (at the border) and rest gains (means over seeds), ``touching_minus_rest`` with
    its 95% t-interval across seeds, and ``verdict`` (concentrated at the border only if the interval is
    above 0). Padding acts only at the border, so a padding effect should show there first. Schemes in
    ``exclude`` (a noise twin) are left out.
    """
    df = predictions.assign(touching=predictions[by] <= near_max)
    acc = df.groupby(["scheme", "seed", "touching"], sort=False)["correct"].mean().unstack("touching")
    overall = df.groupby(["scheme", "seed"], sort=False)["correct"].mean()
    if baseline not in acc.index.get_level_values("scheme"):
        raise PadlibError(f"baseline scheme '{baseline}' is not among the predictions")
    if True not in acc.columns or False not in acc.columns:
        raise PadlibError("border_concentration needs test digits both at the border and away from it")
    rows = []
    base, base_all = acc.xs(baseline, level="scheme"), overall.xs(baseline, level="scheme")
    for scheme in [s for s in dict.fromkeys(df["scheme"]) if s != baseline and s not in exclude]:
        a = acc.xs(scheme, level="scheme")
        g_touch, g_rest = (a[True] - base[True]).dropna(), (a[False] - base[False]).dropna()
        g_all = (overall.xs(scheme, level="scheme") - base_all).dropna()
        d = (g_touch - g_rest).dropna()
        lo, hi = _t_interval(d)
        rows.append({"scheme": scheme, "gain_overall": g_all.mean(), "gain_touching": g_touch.mean(),
                     "gain_rest": g_rest.mean(), "touching_minus_rest": d.mean(), "ci_low": lo, "ci_high": hi,
                     "n_seeds": len(d),
                     "verdict": _interval_verdict(lo, hi, d.mean(), "concentrated at the border",
                                                  "larger away from the border",
                                                  "not concentrated at the border (border - rest straddles 0)")})
    return pd.DataFrame(rows)


def border_concentration_lines(table: pd.DataFrame, baseline: str = "zero") -> list[str]:
    """Printed lines of :func:`border_concentration`."""
    return [f"{r.scheme:15s} gain vs {baseline}: {r.gain_touching:+.3f} on digits at the border, {r.gain_rest:+.3f} on "
            f"the rest, {r.gain_overall:+.3f} overall; border - rest {r.touching_minus_rest:+.3f} "
            f"(95% CI {r.ci_low:+.3f} .. {r.ci_high:+.3f}): {r.verdict}" for _, r in table.iterrows()]


def position_task_summary(curves: pd.DataFrame, n_eval: int, chance: float, early_fraction: float = 0.5
                          ) -> pd.DataFrame:
    """Per scheme, from :func:`learning_curves`: final held-out accuracy (mean, min, max over seeds), its
    pooled binomial 95% interval (``n_eval`` canvases per seed), whether it is above ``chance``, how far it
    got from chance towards the best scheme (0 = chance, 1 = best), and the best accuracy within the first
    ``early_fraction`` of training (mean and std over seeds; how fast position is picked up)."""
    last = curves[curves.step == curves.groupby(["scheme", "seed"])["step"].transform("max")]
    final = last.groupby("scheme", sort=False)["accuracy"]
    total_epochs = curves["epoch"].max()
    early = (curves[curves.epoch <= early_fraction * total_epochs].groupby(["scheme", "seed"], sort=False)
             ["accuracy"].max())
    out = final.agg(["mean", "min", "max", "count"]).rename(columns={"mean": "final_mean", "min": "final_min",
                                                                      "max": "final_max", "count": "n_seeds"})
    n = out["n_seeds"] * n_eval
    half = 1.96 * np.sqrt(out["final_mean"] * (1 - out["final_mean"]) / n)
    out["final_ci_low"], out["final_ci_high"] = out["final_mean"] - half, out["final_mean"] + half
    out["above_chance"] = out["final_ci_low"] > chance
    best = out["final_mean"].max()
    out["share_of_best"] = (out["final_mean"] - chance) / (best - chance) if best > chance else np.nan
    out["early_best_mean"] = early.groupby("scheme", sort=False).mean()
    out["early_best_std"] = early.groupby("scheme", sort=False).std(ddof=1)
    out.attrs.update(chance=chance, early_epochs=early_fraction * total_epochs, total_epochs=total_epochs,
                     n_eval=n_eval)
    return out.reset_index()


def position_early_by_seed(curves: pd.DataFrame, early_fraction: float = 0.5) -> pd.DataFrame:
    """Best held-out accuracy per (scheme, seed) within the first ``early_fraction`` of training, in the
    per-seed layout of :func:`accuracy_by_seed` (so :func:`paired_comparison` applies)."""
    total_epochs = curves["epoch"].max()
    return (curves[curves.epoch <= early_fraction * total_epochs].groupby(["scheme", "seed"], sort=False)
            ["accuracy"].max().reset_index())


def position_findings(summary: pd.DataFrame, early_paired: pd.DataFrame | None = None,
                      baseline: str = "zero", learned_share: float = 0.5) -> list[str]:
    """Printed lines: which schemes are above chance (final accuracy's binomial interval), how close to the
    best scheme (grouped at ``learned_share`` of the way from chance to the best: a description of where
    each scheme ended, not a test), and how fast (best accuracy in the first part of training, paired
    against the baseline across seeds when ``early_paired`` from :func:`paired_comparison` is given)."""
    a = summary.attrs
    lines = [f"final held-out accuracy ({a.get('n_eval')} canvases per seed; chance {a.get('chance'):.2f}):"]
    for _, r in summary.iterrows():
        where = ("above chance" if r.above_chance else "not above chance")
        share = (f", {100 * r.share_of_best:.0f}% of the way from chance to the best scheme"
                 if np.isfinite(r.share_of_best) else "")
        lines.append(f"  {r.scheme:15s} {r.final_mean:.3f} (95% CI {r.final_ci_low:.3f} .. {r.final_ci_high:.3f}, "
                     f"seeds {r.final_min:.3f} .. {r.final_max:.3f}): {where}{share}")
    if summary.share_of_best.notna().any():
        near_chance = summary[summary.share_of_best < learned_share].scheme.tolist()
        learn = summary[summary.share_of_best >= learned_share].scheme.tolist()
        lines.append(f"learn the quadrant (more than {learned_share:.0%} of the way from chance to the best scheme): "
                     f"{', '.join(learn) or 'none'}; stay close to chance: {', '.join(near_chance) or 'none'}")
    else:
        lines.append("no scheme is above chance at the end of training: this budget does not learn the quadrant")
    order = summary.sort_values("early_best_mean", ascending=False)
    lines.append(f"how fast: best accuracy within the first {a.get('early_epochs'):.3g} of {a.get('total_epochs'):.3g} "
                 "epochs, mean over seeds: "
                 + ", ".join(f"{r.scheme} {r.early_best_mean:.3f}" for _, r in order.iterrows()))
    if early_paired is not None and len(early_paired):
        for line in paired_lines(early_paired, baseline, "early"):
            lines.append("  " + line)
    return lines


PAN_BY_CONSTRUCTION = {
    "replicate": "the scanner's causal effect is measured against replicate padding, so it is 0 by construction",
    "symmetric": "with one ring of padding symmetric writes what replicate writes, so its effect is 0 as for "
                 "replicate",
    "circular": "the threshold is calibrated on the network's circular copy, i.e. on itself: at most about the "
                "false-positive rate of its filters can pass",
}


def pan_findings(pans: pd.DataFrame, one_ring: bool = True) -> list[str]:
    """Printed lines on :func:`pan_counts`: which counts are fixed by construction and what the others show.

    Replicate (and symmetric with ``one_ring`` padding) are the scanner's reference, circular is its own null,
    and an untrained Padding Module is initialised to replicate: their counts say nothing about the networks.
    For every other scheme and state: mean PANs and share of filters, and whether training lowered or raised
    the count in every seed.
    """
    lines = []
    mean = pans.groupby(["scheme", "state"], sort=False)[["pans", "share_pct", "filters"]].mean()
    wide = pans.pivot_table(index=["scheme", "seed"], columns="state", values="pans")
    for scheme in dict.fromkeys(pans["scheme"]):
        m = mean.loc[scheme]
        counts = ", ".join(f"{st} {m.loc[st, 'pans']:.1f} ({m.loc[st, 'share_pct']:.0f}% of "
                           f"{m.loc[st, 'filters']:.0f} filters)" for st in m.index)
        reason = PAN_BY_CONSTRUCTION.get(scheme) if (scheme != "symmetric" or one_ring) else None
        if reason:
            lines.append(f"{scheme:15s} {counts}: by construction ({reason})")
            continue
        note = ""
        if {"init", "trained"} <= set(wide.columns):
            d = (wide.loc[scheme, "trained"] - wide.loc[scheme, "init"]).dropna()
            if len(d):
                trend = ("fewer after training" if (d < 0).all() else "more after training" if (d > 0).all()
                         else "no consistent change")
                note = f"; trained - init per seed {', '.join(f'{v:+.0f}' for v in d)}: {trend}"
        if scheme == "padding_module":
            trained = m.loc["trained", "pans"] if "trained" in m.index else float("nan")
            lines.append(f"{scheme:15s} {counts}{note}; untrained it pads exactly as replicate, so its init count is 0 "
                         "by construction; trained, the learned padding differs from replicate, so the trained count "
                         "is a measurement: " + ("no filter's border response is caused by the learned padding "
                                                 "beyond the threshold" if trained == 0 else
                                                 "some filters respond to the learned border"))
        else:
            lines.append(f"{scheme:15s} {counts}{note}")
    measured = [s for s in dict.fromkeys(pans["scheme"]) if not (PAN_BY_CONSTRUCTION.get(s) and (s != "symmetric" or one_ring))]
    if "init" in set(pans["state"]):
        init_counts = {s: mean.loc[(s, "init"), "pans"] for s in measured if s != "padding_module"}
        listed = ", ".join(f"{s} {v:.1f}" for s, v in init_counts.items() if v > 0)
        lines.append("PANs before any training (random weights: a property of the padding, not learned): "
                     + (listed or "none"))
    if {"init", "trained"} <= set(wide.columns):
        d = (wide["trained"] - wide["init"]).groupby(level="scheme")
        fewer = [s for s in measured if (d.get_group(s) < 0).all()]
        more = [s for s in measured if (d.get_group(s) > 0).all()]
        lines.append(f"training lowered the count in every seed for: {', '.join(fewer) or 'none'}; "
                     f"raised it in every seed for: {', '.join(more) or 'none'}")
    return lines
