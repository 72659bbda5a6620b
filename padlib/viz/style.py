"""The book's colours (one per meaning, across all chapters) and figure style; applied by the chapters, not at import."""
from __future__ import annotations

import matplotlib as mpl

# The book's figure style, shared by every chapter. Okabe-Ito colours (distinguishable with the common forms
# of colour blindness); one colour per model and one per padding scheme, the same on every page.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
MODEL_COLOURS = {"mobilenet_v2": "#0072B2", "tf_efficientnet_lite0": "#E69F00", "tf_efficientnet_lite1": "#009E73",
                 "tf_efficientnet_lite2": "#D55E00"}  # the palette's order: figures that cycle colours agree


SCHEME_COLOURS = {"zero": "#000000", "reflect": "#0072B2", "replicate": "#56B4E9", "circular": "#E69F00",
                  "symmetric": "#009E73", "partial": "#CC79A7", "padding_module": "#D55E00",
                  "noisy top": "#882255"}  # chapter 4's positive control: noise padding on the top side (wine)


# One colour per role, on every page: prose names these colours ("dark grey", "mid grey", ...).
PRETRAINED = "#222222"    # trained weights (pretrained models, or networks trained here): near-black
RANDOM_INIT = "#999999"   # the same architecture at random initialisation: mid grey, everywhere
CONTROL = "#CCCCCC"       # nulls and random-channel controls: light grey
PAN_COLOUR = "#CC79A7"    # PANs (ablated, counted, marked): reddish purple, a colour no model and no side uses
ROLE_COLOURS = {"pretrained": PRETRAINED, "trained": PRETRAINED, "random init": RANDOM_INIT, "control": CONTROL,
                "null": CONTROL, "PANs": PAN_COLOUR}
COLOUR_NAMES = {PRETRAINED: "near-black", RANDOM_INIT: "mid grey", CONTROL: "light grey", PAN_COLOUR: "pink",
                "#0072B2": "blue", "#E69F00": "orange", "#009E73": "green", "#D55E00": "vermilion",
                "#56B4E9": "sky blue", "#F0E442": "yellow", "#000000": "black", "#882255": "wine"}


def colour_name(colour: str) -> str:
    """The word the prose uses for one of the book's colours (so a sentence can name what the figure shows)."""
    return COLOUR_NAMES.get(colour, colour)


BOOK_STYLE = {"axes.prop_cycle": mpl.cycler(color=list(OKABE_ITO)), "axes.titlesize": 10, "axes.labelsize": 9,
              "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8, "legend.framealpha": 0.85,
              "axes.spines.top": False, "axes.spines.right": False, "axes.formatter.min_exponent": 3}


def use_book_style() -> None:
    """Apply :data:`BOOK_STYLE` to matplotlib (the chapters call it; importing padlib never does)."""
    mpl.rcParams.update(BOOK_STYLE)


def model_colour(name: str, k: int = 0) -> str:
    """The book's colour for a model (:data:`MODEL_COLOURS`), else the k-th colour of the palette."""
    return MODEL_COLOURS.get(name, OKABE_ITO[k % len(OKABE_ITO)])


def scheme_colour(name: str, k: int = 0) -> str:
    """The book's colour for a padding scheme (:data:`SCHEME_COLOURS`), else the k-th colour of the palette."""
    return SCHEME_COLOURS.get(name, OKABE_ITO[k % len(OKABE_ITO)])


# ---------------------------------------------------------------------------------------------------------
# Chapter 2 (PAN kernel taxonomy)

_SIDE_NAMES = ("top", "bottom", "left", "right")


# ---------------------------------------------------------------------------------------------------------
# Chapter 5 (learned padding comparison)

SCHEME_ORDER = ("zero", "reflect", "replicate", "circular", "symmetric", "partial", "padding_module")


def _scheme_order(schemes):
    present = list(dict.fromkeys(schemes))
    return [s for s in SCHEME_ORDER if s in present] + [s for s in present if s not in SCHEME_ORDER]


# ---------------------------------------------------------------------------------------------------------
# Chapter 1 (Padding Aware Neurons)

_SIGN_COLORS = {1: "#c0392b", -1: "#2471a3"}  # fires at the border (dark red) / silenced there (dark blue)
