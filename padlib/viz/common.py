"""Figure helpers every chapter uses: image grids, panel grids, PNG export, plain log ticks, error bars."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
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


def figure_png(fig, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards), e.g. for ``ipywidgets.Image``."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _errorbar(ax, x, rows, **kw):
    v, lo, hi = (rows[c].to_numpy(dtype=float) for c in ("value", "ci_low", "ci_high"))
    yerr = np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
    return ax.errorbar(np.asarray(x, dtype=float), v, yerr=yerr, fmt="o", capsize=2, markersize=4, **kw)


def _plain_log_ticks(ax):
    """Log axes labelled 0.1, 0.2, 0.5, 1, 2, 5 ... in plain numbers (no '2x10^0'), minor ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis, lim in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if axis.get_scale() != "log":
            continue
        lo, hi = sorted(max(v, 1e-300) for v in lim)
        axis.set_major_locator(LogLocator(subs=(1.0,) if hi / lo > 10 ** 2.5 else (1.0, 2.0, 5.0), numticks=12))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _fig_png(fig, dpi: int = 72) -> bytes:
    """A figure as PNG bytes (closed afterwards), for widgets.Image."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _panel_grid(n: int, ncols: int = 2, width: float = 8.0, row_height: float = 2.7):
    """``n`` panels in rows of ``ncols`` at the site's width (flat list of axes, spares included)."""
    nrows = max(1, -(-n // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, row_height * nrows + 0.8), squeeze=False)
    return fig, list(axes.ravel())


def _finish_panel_grid(fig, axes, n: int, ncol: int = 3, top: float = 0.5, rename=None):
    """Hide a :func:`_panel_grid`'s spare panels and put the first panel's legend above the grid, ``top`` inches
    tall (``rename``: a function applied to each legend label)."""
    for ax in axes[n:]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    labels = [rename(lab) for lab in labels] if rename else labels
    fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - top / fig.get_figheight()))
    return fig


def message_figure(message: str, width: float = 6.6, height: float = 1.2):
    """A small figure that says why there is nothing to plot (e.g. no PANs were found to ablate), so a chapter run
    on a model without them shows the reason where the figure would be instead of stopping."""
    fig, ax = plt.subplots(figsize=(width, height))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    return fig
