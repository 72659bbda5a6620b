"""Small networks trained from scratch in the book, built for a data set (the architectures: :mod:`padlib.small_nets`)."""
from __future__ import annotations

from torch import nn

from ..experiments.digits import ImageSet
from ..small_nets import (SMALL_MODELS, BasicBlock, Standardize, build_small_net, resnet_small,  # noqa: F401
                          strided_small, vgg_small)


def small_model(kind: str, data: ImageSet, num_classes: int | None = None, seed: int = 0, **kwargs) -> nn.Module:
    """A freshly initialised ``vgg``/``resnet`` small model for ``data`` (channels, classes, mean/std), seeded."""
    n_cls = num_classes if num_classes is not None else max(data.n_classes(), len(data.classes))
    return build_small_net(kind, data.images.shape[1], n_cls, mean=data.mean, std=data.std, seed=seed, **kwargs)
