"""Planted ground truth: networks and probes whose answer is known by construction (PANs, blind bands, shifts)."""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import PadlibError
from ..experiments.digits import _upscaled_digits
from ..pans import PanScan
from ..preprocess import Preprocessing

# ---------------------------------------------------------------------------------------------------------
# Planted ground truth: a tiny network whose PANs are known by construction (tests and the chapter use it).

PLANTED_ROLES = [  # (channel role, expected sides, expected sign); "" / 0 for controls
    ("top detector", "top", 1), ("left detector", "left", 1), ("top-left corner detector", "top-left corner", 1),
    ("silenced at the top", "top", -1), ("silenced on the frame (Laplacian of the mean channel)", "frame", -1),
    ("top+left detector (diagonal)", "top+left", 1), ("top detector behind a negative BN gamma", "top", -1),
    ("Sobel x (content edges)", "", 0), ("Sobel y (content edges)", "", 0), ("Laplacian (content)", "", 0),
    ("constant response", "", 0),
] + [(f"random content kernel {i}", "", 0) for i in range(13)]


def planted_probe_images(n: int = 48, size: int = 24, seed: int = 0) -> torch.Tensor:
    """Stationary smooth noise; channel 0 has mean 1 (what a padding detector can use), channels 1, 2 mean 0."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.randn(n, 3, size + 4, size + 4, generator=g), 5, stride=1)
    x = x / x.std(dim=(0, 2, 3), keepdim=True) * 0.15
    x[:, 0] += 1.0
    return x


def planted_pan_network(padding_mode: str = "zeros", seed: int = 0) -> nn.Module:
    """conv(3->24) -> BN -> ReLU -> depthwise conv -> BN -> ReLU -> pool -> linear, first conv planted.

    Channels 0-6 are PANs by construction (see :data:`PLANTED_ROLES`): their kernels read the constant-mean
    input channel 0 only where zero padding removes it. Channels 7-23 are controls that must not be found:
    edge detectors and random kernels on the zero-mean channels, and a constant (bias-only) channel.
    """
    torch.manual_seed(seed)
    c = len(PLANTED_ROLES)
    conv = nn.Conv2d(3, c, 3, padding=1, padding_mode=padding_mode)
    w = torch.zeros(c, 3, 3, 3)
    w[0, 0, 0, :], w[0, 0, 1, :] = -1.0, 1.0  # row above the pixel minus the pixel row: columns sum to 0
    w[1, 0, :, 0], w[1, 0, :, 1] = -1.0, 1.0
    w[2, 0] = torch.tensor([[1.0, -1, 0], [-1, 1, 0], [0, 0, 0]])  # rows and columns sum to 0: corner only
    w[3] = -w[0]  # the pixel row minus the row above: drops at the top
    w[4, 0] = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])  # Laplacian of the mean channel: drops on every side
    w[5, 0, 0, 0], w[5, 0, 1, 1] = -1.0, 1.0  # diagonal neighbour: top and left
    w[6] = w[0]  # same kernel as channel 0; its BN gamma is negative below
    w[7, 1] = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    w[8, 2] = torch.tensor([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])
    w[9, 1] = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])
    w[11:, 1:] = torch.randn(c - 11, 2, 3, 3)
    conv.weight.data = w
    conv.bias.data = torch.zeros(c)
    conv.bias.data[10] = 0.5
    bn = nn.BatchNorm2d(c).eval()
    bn.weight.data[6] = -1.0
    dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False, padding_mode=padding_mode)
    net = nn.Sequential(conv, bn, nn.ReLU(), dw, nn.BatchNorm2d(c), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, 5))
    return net.eval()


CONTENT_SPREAD = 0.5  # std of the planted content, against the positive channel's mean of 1
SPECIALIST_NOISE = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)  # content mixed into the graded top detectors (channels 0-5)
SPECIALIST_ROLES = (
    [(f"top detector + {b:g} x content", "specialist" if b == 0 else "graded") for b in SPECIALIST_NOISE]
    + [("3x3 box smoother", "smoother"), ("3x3 binomial smoother", "smoother"), ("5-tap row smoother", "smoother")]
    + [("Sobel x (content)", "control"), ("Sobel y (content)", "control")]
    + [(f"random content kernel {i}", "control") for i in range(13)]
)


def planted_specialist_images(n: int = 64, size: int = 32, seed: int = 0) -> torch.Tensor:
    """Channel 0: positive content whose spread within an image is large (1 + 0.5 x smooth noise, floored at
    0.05), what a smoothing kernel loses a third of at the zero border; channels 1, 2: zero-mean content."""
    g = torch.Generator().manual_seed(seed)
    x = F.avg_pool2d(torch.randn(n, 3, size + 4, size + 4, generator=g), 5, stride=1)
    x = x / x.std(dim=(0, 2, 3), keepdim=True) * CONTENT_SPREAD
    x[:, 0] = (x[:, 0] + 1.0).clamp_min(0.05)
    return x


def planted_specialist_network(padding_mode: str = "zeros", seed: int = 0) -> nn.Module:
    """conv(3 -> 24) -> BN -> ReLU -> pool -> linear, first conv planted (see :data:`SPECIALIST_ROLES`).

    Channels 0-5: a zero-sum top detector on the positive channel (nothing on flat content, a step at the zero
    border; a negative bias so that after the ReLU it fires at the border only), mixed with increasing amounts
    of zero-mean content (:data:`SPECIALIST_NOISE`): selectivity falls from 1 towards chance, crossing the bar.
    Channels 6-8: smoothers on the positive channel (all taps positive): padding-caused, a third weaker at the
    border, but their border responses sit inside the spread of their interior's, so not specialists.
    Channels 9-23: content controls (edges, random kernels on the zero-mean channels)."""
    torch.manual_seed(seed)
    c = len(SPECIALIST_ROLES)
    conv = nn.Conv2d(3, c, 3, padding=1, padding_mode=padding_mode)
    w = torch.zeros(c, 3, 3, 3)
    mix = torch.randn(2, 3, 3)
    mix = mix / mix.norm()
    for i, b in enumerate(SPECIALIST_NOISE):
        w[i, 0, 0, :], w[i, 0, 1, :] = -1.0, 1.0
        w[i, 1:] = b * mix
    w[6, 0] = 1.0 / 9
    w[7, 0] = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    w[8, 0, 1] = 1.0 / 3
    w[9, 1] = torch.tensor([[1.0, 0, -1], [2, 0, -2], [1, 0, -1]])
    w[10, 2] = torch.tensor([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]])
    w[11:, 1:] = torch.randn(c - 11, 2, 3, 3)
    conv.weight.data = w
    conv.bias.data = torch.zeros(c)
    conv.bias.data[:6] = -0.5
    net = nn.Sequential(conv, nn.BatchNorm2d(c).eval(), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(c, 5))
    return net.eval()


def planted_check(scan: PanScan) -> pd.DataFrame:
    """The planted network's first layer: expected vs found sides and sign, per channel."""
    t = scan.table[scan.table.layer == "0"].set_index("channel")
    rows = []
    for ch, (role, sides, sign) in enumerate(PLANTED_ROLES):
        r = t.loc[ch]
        rows.append({"channel": ch, "role": role, "expected": f"{sides} {sign:+d}" if sides else "not a PAN",
                     "found": f"{r.sides} {int(r.sign):+d}" if r.is_pan else "not a PAN",
                     "score": round(float(max(r.score, r.corner_score)), 2)})
    out = pd.DataFrame(rows)
    out["correct"] = out["expected"] == out["found"]
    return out


# ---------------------------------------------------------------------------------------------------------
# The planted control: a translation-invariant classifier

class _ToyTranslationModel(nn.Module):
    def __init__(self, padding_mode: str, channels: int, classes: int, strides):
        super().__init__()
        layers, c_in = [], 3
        for i, s in enumerate(strides):
            layers += [nn.Conv2d(c_in, channels, 3, s, 1, padding_mode=padding_mode), nn.ReLU()]
            c_in = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, classes)

    def forward(self, x):
        return self.head(self.features(x).mean((-2, -1)))


def toy_translation_model(padding_mode: str = "circular", channels: int = 8, classes: int = 10,
                          strides=(1, 2, 1, 2), input_size: int = 32, seed: int = 0) -> nn.Module:
    """A small conv net + global average pooling. With circular padding it is exactly invariant to circular
    shifts by multiples of its total stride, so its blind-spot map on a constant background is flat (up to
    float rounding) when the grid stride is such a multiple; with zero padding it is not."""

    torch.manual_seed(seed)
    model = _ToyTranslationModel(padding_mode, channels, classes, strides).eval()
    model.padlib_preprocessing = Preprocessing(input_size, input_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    model.padlib_name = f"toy_{padding_mode}"
    return model


# ---------------------------------------------------------------------------------------------------------
# The planted case: a translation-invariant classifier, and the same with a blind band


class TemplateClassifier(nn.Module):
    """Class-mean templates correlated with the image at every position, best position per class: a classifier
    whose accuracy does not depend on where the digit is (no padding: 'valid' correlation)."""

    def __init__(self, templates: torch.Tensor):
        super().__init__()
        t = templates - templates.mean((1, 2, 3), keepdim=True)
        self.register_buffer("templates", t / t.flatten(1).norm(dim=1).view(-1, 1, 1, 1))

    def forward(self, x):
        x = x - x.mean((2, 3), keepdim=True)
        return F.conv2d(x, self.templates).amax((2, 3))


def template_classifier(digit_size: int = 12) -> TemplateClassifier:
    """:class:`TemplateClassifier` from the training digits' class means at ``digit_size`` pixels."""

    digits, targets, _ = _upscaled_digits(digit_size)
    ids = torch.arange(len(targets))
    train = ids % 5 != 0
    templates = torch.stack([digits[train & (targets == c)].mean(0) for c in range(10)])
    return TemplateClassifier(templates)


def _band_index(side: str, width: int) -> tuple:
    """The index of a ``width``-pixel band along one border of (..., H, W) images."""
    return {"top": (..., slice(0, width), slice(None)), "bottom": (..., slice(-width, None), slice(None)),
            "left": (..., slice(0, width)), "right": (..., slice(-width, None))}[side]


class MaskedBand(nn.Module):
    """``model`` that cannot see a band of ``width`` pixels along one border (filled with ``fill``): a planted
    blind spot."""

    def __init__(self, model: nn.Module, side: str, width: int, fill: float = 0.0):
        super().__init__()
        if side not in ("top", "bottom", "left", "right"):
            raise PadlibError(f"side must be top, bottom, left or right, got {side!r}")
        self.model, self.side, self.width, self.fill = model, side, int(width), float(fill)

    def forward(self, x):
        x = x.clone()
        x[_band_index(self.side, self.width)] = self.fill
        return self.model(x)


def masked_band(model: nn.Module, side: str = "top", width: int = 8, fill: float = 0.0) -> MaskedBand:
    """A planted blind spot: ``model`` blind to a ``width``-pixel band along ``side``."""
    return MaskedBand(model, side, width, fill)


class AttenuatedBand(nn.Module):
    """``model`` whose input is multiplied by ``factor`` over a band of ``width`` pixels along one border: a planted
    weak side for a pretrained model (the positive control of the chapter's position study). The model receives
    normalised input, so the band fades toward the dataset's mean colour. The wrapper carries the model's
    preprocessing, so padlib's methods prepare its input as they would the model's."""

    def __init__(self, model: nn.Module, side: str, width: int, factor: float = 0.3):
        super().__init__()
        if side not in ("top", "bottom", "left", "right"):
            raise PadlibError(f"side must be top, bottom, left or right, got {side!r}")
        if int(width) < 1 or not 0.0 <= float(factor) < 1.0:
            raise PadlibError(f"width must be >= 1 pixel and factor in [0, 1), got {width!r}, {factor!r}")
        self.model, self.side, self.width, self.factor = model, side, int(width), float(factor)
        if hasattr(model, "padlib_preprocessing"):
            self.padlib_preprocessing = model.padlib_preprocessing

    def forward(self, x):
        mask = torch.ones_like(x[:1, :1])
        mask[_band_index(self.side, self.width)] = self.factor
        return self.model(x * mask)


def attenuated_band(model: nn.Module, side: str, width: int, factor: float = 0.3) -> AttenuatedBand:
    """A planted weak side: ``model`` with a ``width``-pixel input band along ``side`` multiplied by ``factor``."""
    return AttenuatedBand(model, side, width, factor)



def specialist_check(scan: PanScan) -> pd.DataFrame:
    """The planted specialist network's first layer: each channel's role, what the planted design expects
    (a specialist, a smoother that is padding-caused but not a specialist, a graded detector, a control) and
    what the scan found."""
    t = scan.table[scan.table.layer == "0"].set_index("channel")
    rows = []
    for ch, (role, kind) in enumerate(SPECIALIST_ROLES):
        r = t.loc[ch]
        rows.append({"channel": ch, "role": role, "kind": kind, "padding_caused": bool(r.padding_caused),
                     "selectivity": round(float(r.selectivity), 3), "specialist": bool(r.specialist)})
    out = pd.DataFrame(rows)
    expected = {"specialist": True, "smoother": False, "control": False}
    out["correct"] = [expected[k] == f if k in expected else True for k, f in zip(out.kind, out.specialist)]
    out.loc[out.kind == "smoother", "correct"] &= out.loc[out.kind == "smoother", "padding_caused"]
    return out
