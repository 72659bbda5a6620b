"""Preprocessing that travels with a model (resize, crop, mean/std) and image conversion, below models and data."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


def to_pil(image) -> Image.Image:
    """PIL image, HxW or HxWxC array (uint8 or float in [0, 1]) -> RGB PIL image."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    return Image.fromarray(arr).convert("RGB")


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its images: resize the shorter side, centre-crop, scale to [0, 1], normalise."""

    input_size: int = 224
    resize_size: int = 256
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    interpolation: str = "bilinear"

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (N, 3, H, W) or (3, H, W) -> the model's normalised input."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return (x - mean) / std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize`, for display."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return x * std + mean

    def __call__(self, image) -> torch.Tensor:
        """A PIL image or HxWxC array -> normalised (3, input_size, input_size) tensor (resize + centre crop)."""

        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as F

        img = to_pil(image)
        mode = InterpolationMode(self.interpolation)
        img = F.resize(img, self.resize_size, interpolation=mode, antialias=True)
        img = F.center_crop(img, self.input_size)
        return self.normalize(F.to_tensor(img))

