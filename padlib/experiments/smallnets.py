"""Small networks trained from scratch in the book (VGG-, ResNet-style and strided), with input standardisation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PadlibError
from ..experiments.digits import ImageSet


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

