"""The figure of :func:`padlib.border_reach`: tiled-prediction error against the distance from the tile's edge."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt

from .style import PRETRAINED, colour_name, scheme_colour


def padding_colour(padding: str) -> str:
    """The model as given in the book's colour for trained weights (near-black); a swap in its scheme's colour."""
    return PRETRAINED if padding == "model" else scheme_colour(padding)


def border_reach_colours(result) -> str:
    """The figure's colours in words, for the sentence under it ("near-black: the model's own padding; blue:
    reflect ...")."""
    return "; ".join(f"{colour_name(padding_colour(p))}: " + ("the model's own padding" if p == "model" else
                                                               f"{p} swapped in")
                     for p in dict.fromkeys(result.table["padding"]))


def border_reach_figure(result, ax=None, width: float = 6.0, height: float = 3.2):
    """Normalised error (mean |tile - whole| / spread of the whole-image output) against the distance from the
    nearest inner tile edge, one line per padding measured (the model's own solid near-black, swaps dashed in
    their scheme's colour), the tolerance as a grey line and each margin as a dot on it. The y axis is linear
    below a tenth of the tolerance, so an error of exactly 0 shows."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(width, height))
    else:
        fig = ax.figure
    for padding, rows in result.table.groupby("padding", sort=False):
        scheme = result.schemes[result.schemes.padding == padding].iloc[0]
        label = padding + " (swapped in)" if padding != "model" else "the model's padding"
        colour = padding_colour(padding)
        ax.plot(rows.distance, rows.error, "-" if not scheme.swap else "--", marker=".", color=colour, label=label)
        if math.isfinite(scheme.margin):  # infinite: beyond the tile
            ax.plot([scheme.margin], [result.tolerance], "o", color=colour, ms=6)
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
