"""Plotting: figures for the chapters, kept apart from the computations that produce the DataFrames."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import torch


def image_grid(images, titles=None, ncols: int = 8, size: float = 1.6, cmap=None):
    """A grid of images: (3, H, W) tensors in [0, 1], (H, W) maps, or PIL images. Returns the figure."""
    images = list(images)
    n = len(images)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.3 if titles else 0)),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, im in enumerate(images):
        ax = axes.flat[i]
        if isinstance(im, torch.Tensor):
            im = im.detach().cpu()
            im = im.permute(1, 2, 0).clamp(0, 1).numpy() if im.dim() == 3 else im.numpy()
        ax.imshow(im, cmap=cmap)
        if titles:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


def probe_grid(probe, k: int = 16, ncols: int = 8):
    """The first ``k`` probe images, titled with their source photo."""
    k = min(k, len(probe))
    titles = [probe.source_names[probe.crop_box(i)[0]][:14] for i in range(k)]
    return image_grid([probe.image01(i) for i in range(k)], titles, ncols=ncols)


def stem_kernel_grid(model, k: int = 16, title: str = ""):
    """The first ``k`` kernels of a model's first convolution, each rescaled to [0, 1] as a colour patch."""
    from torch import nn

    stem = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if stem is None:
        raise ValueError("the model has no Conv2d layer")
    w = stem.weight.detach().cpu()[:k]
    lo = w.amin(dim=(1, 2, 3), keepdim=True)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - lo) / (hi - lo).clamp_min(1e-12)
    if w.shape[1] != 3:
        w = w.mean(1)
    fig = image_grid(list(w), ncols=k, size=0.7)
    if title:
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
    return fig
