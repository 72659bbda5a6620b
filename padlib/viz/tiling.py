"""The figure of :func:`padlib.border_reach`: tiled-prediction error against the distance from the tile's edge."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt


def border_reach_figure(result, ax=None, width: float = 6.0, height: float = 3.2):
    """Normalised error (mean |tile - whole| / spread of the whole-image output) against the distance from the
    nearest inner tile edge, one line per padding measured (swaps dashed), the tolerance as a grey line and each
    margin as a dot on it. The y axis is linear below a tenth of the tolerance, so an error of exactly 0 shows."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(width, height))
    else:
        fig = ax.figure
    for i, (padding, rows) in enumerate(result.table.groupby("padding", sort=False)):
        scheme = result.schemes[result.schemes.padding == padding].iloc[0]
        label = padding if padding != "model" else "the model's padding"
        line, = ax.plot(rows.distance, rows.error, "-" if not scheme.swap else "--", marker=".", label=label)
        if math.isfinite(scheme.margin):  # infinite: beyond the tile
            ax.plot([scheme.margin], [result.tolerance], "o", color=line.get_color(), ms=6)
    ax.axhline(result.tolerance, color="0.5", lw=0.8)
    ax.text(ax.get_xlim()[1], result.tolerance, f" tolerance {result.tolerance * 100:g}%", va="bottom", ha="right",
            fontsize=8, color="0.4")
    ax.set_yscale("symlog", linthresh=result.tolerance / 10)
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"distance from the nearest inner tile edge (input px; stride {result.stride:g})")
    ax.set_ylabel("error / spread of whole output")
    ax.set_title(f"tiles of {result.tile} px: {result.n_tiles} tiles from {result.n_images} images", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
