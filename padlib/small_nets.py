"""The book's small networks (VGG-, ResNet-style and strided classifiers, chapter 4's ring detector), with input
standardisation inside the model.

They sit beside :mod:`padlib.models` so that a checkpoint written by ``padlib train`` or ``padlib train-detector``
loads by name (``vgg=PATH``, ``detector=PATH``) like any torchvision or timm architecture; the book's experiments
build them through :func:`padlib.experiments.smallnets.small_model` and
:func:`padlib.experiments.ch4_detection.detector_network`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import PadlibError


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


class SmallDetector(nn.Module):
    """Five stride-2 3x3 convs (widths ``width`` x 1, 2, 4, 4, 4), each followed by BatchNorm and ReLU, and a
    top-down path (nearest upsampling plus 1x1 laterals, as a feature pyramid) from the stride-32 map back to
    stride 8, where a 3x3 conv and a 1x1 conv give one logit per cell: "a ring is centred here"."""

    def __init__(self, width: int = 8, depth: int = 5, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        if depth < 4:
            raise PadlibError(f"the detector needs at least 4 stride-2 stages, got depth={depth}")
        self.norm = Standardize((mean,), (std,))
        widths = [width * 2 ** min(i, 2) for i in range(depth)]
        c_in, stages = 1, []
        for c in widths:
            stages.append(nn.Sequential(nn.Conv2d(c_in, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c),
                                        nn.ReLU(inplace=True)))
            c_in = c
        self.stages = nn.ModuleList(stages)
        top = widths[-1]
        self.laterals = nn.ModuleList([nn.Conv2d(c, top, 1) for c in widths[2:-1]])  # stride 8 .. 2**(depth-1)
        self.head = nn.Sequential(nn.Conv2d(top, top, 3, 1, 1, bias=False), nn.BatchNorm2d(top),
                                  nn.ReLU(inplace=True), nn.Conv2d(top, 1, 1))

    def forward(self, x):
        feats = []
        x = self.norm(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        y = feats[-1]
        for lateral, f in zip(reversed(self.laterals), reversed(feats[2:-1])):
            y = F.interpolate(y, size=f.shape[-2:], mode="nearest") + lateral(f)
        return self.head(y)[:, 0]


SMALL_MODELS = {"vgg": vgg_small, "resnet": resnet_small, "strided": strided_small}


SMALL_NET_NAMES = (*SMALL_MODELS, "detector")  # the names load_model takes with a padlib train checkpoint


def build_small_net(kind: str, in_channels: int, num_classes: int, mean=None, std=None, seed: int | None = None,
                    **kwargs) -> nn.Module:
    """A freshly initialised small network of ``kind`` (one of :data:`SMALL_NET_NAMES`; the ``detector`` takes one
    grey channel and gives one heat map), seeded when ``seed`` is given."""
    if kind not in SMALL_NET_NAMES:
        raise PadlibError(f"unknown small model '{kind}'; choose one of {', '.join(SMALL_MODELS)}")
    if seed is not None:
        torch.manual_seed(seed)
    if kind == "detector":
        return SmallDetector(mean=mean[0] if mean is not None else 0.0, std=std[0] if std is not None else 1.0,
                             **kwargs)
    return SMALL_MODELS[kind](in_channels=in_channels, num_classes=num_classes, mean=mean, std=std, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# checkpoints that say what they are

SMALL_NET_FORMAT = "padlib-small-net/1"
_ARCH_KEYS = ("kind", "in_channels", "num_classes", "scheme", "kwargs", "input_size")


def small_net_checkpoint(model: nn.Module, kind: str, in_channels: int, num_classes: int, scheme: str,
                         input_size: int, **kwargs) -> dict:
    """What ``padlib train`` saves: the weights under ``state_dict`` (so any reader of state dicts finds them)
    and, under ``padlib_small_net``, what rebuilds the architecture: the kind, its arguments and the padding
    scheme it was trained with (the weights alone would load into zero padding)."""
    header = {"format": SMALL_NET_FORMAT, "kind": kind, "in_channels": int(in_channels),
              "num_classes": int(num_classes), "scheme": scheme, "kwargs": dict(kwargs), "input_size": int(input_size)}
    return {"padlib_small_net": header, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}


def small_net_header(path: str) -> dict | None:
    """The ``padlib_small_net`` header of a checkpoint written by :func:`small_net_checkpoint`, else None (any
    other file, unreadable ones included: the caller's loader then reports those in its own words)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not ours to report here
        return None
    header = state.get("padlib_small_net") if isinstance(state, dict) else None
    if not isinstance(header, dict) or header.get("format") != SMALL_NET_FORMAT or set(_ARCH_KEYS) - set(header):
        return None
    return header


def build_from_header(header: dict) -> nn.Module:
    """The architecture a :func:`small_net_header` describes, at a random initialisation, with its
    padding scheme in place (load the checkpoint's state dict into it)."""
    from .layers.base import PADDING_SCHEMES, convert_padding

    model = build_small_net(header["kind"], header["in_channels"], header["num_classes"], **header["kwargs"])
    if header["scheme"] not in PADDING_SCHEMES:
        raise PadlibError(f"the network's padding '{header['scheme']}' is not a padding scheme padlib can rebuild "
                          "(chapter 4's noisy-top control is read by chapter 4 only)")
    return convert_padding(model, header["scheme"], inplace=True)
