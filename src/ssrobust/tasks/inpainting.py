"""Inpainting (Pathak et al. 2016 in the form of Kim et al. 2019, Sec. 3, A.1).

The centred ``patch_size`` x ``patch_size`` square of each image is replaced by a constant colour
and a small transposed-conv decoder (sigmoid output) predicts the missing square from the pooled
features of the masked image; the loss is the MSE on the square only. Defaults follow Kim's code:
an 8x8 hole in a 32x32 image (rows/cols 12..19) and Kim's inpainting head (1 -> 4 -> 8 with one
64-channel hidden layer). The fill defaults to the CIFAR-10 mean colour -- zero after the model's
input normalization -- where Kim's code used 0.9999 (white); pass ``fill=0.9999`` for that.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..models.base import CIFAR_MEAN
from .base import TASKS, PretextTask, TaskBatch, mean_per_image
from .decoder import TransposedConvDecoder, at_least_float32


def centre_box(h: int, w: int, size: int) -> tuple[slice, slice]:
    """Row and column slices of the centred ``size`` x ``size`` square."""
    if size > min(h, w):
        raise ValueError(f"inpainting patch {size} is larger than the image {h}x{w}")
    top, left = (h - size) // 2, (w - size) // 2
    return slice(top, top + size), slice(left, left + size)


def mask_centre(x: torch.Tensor, size: int, fill: Sequence[float]) -> torch.Tensor:
    """``[B, C, H, W]`` -> copy with the centred square set to ``fill`` (one value per channel)."""
    rows, cols = centre_box(x.shape[-2], x.shape[-1], size)
    out = x.clone()
    out[:, :, rows, cols] = torch.tensor(fill, dtype=x.dtype, device=x.device)[None, :, None, None]
    return out


@TASKS.register("inpainting")
class Inpainting(PretextTask):
    """Options: ``patch_size`` (8), ``fill`` (CIFAR mean colour, or one float for all channels),
    ``channels`` ((64,), Kim's inpainting head), ``mse_scale`` (1.0; Kim's code uses 30)."""

    name = "inpainting"

    def __init__(self, num_features: int, patch_size: int = 8,
                 fill: float | Sequence[float] = CIFAR_MEAN, channels: tuple[int, ...] = (64,),
                 mse_scale: float = 1.0) -> None:
        super().__init__(num_features)
        fill_rgb = [float(fill)] * 3 if isinstance(fill, (int, float)) else [float(v) for v in fill]
        if len(fill_rgb) != 3 or not all(0.0 <= v <= 1.0 for v in fill_rgb):
            raise ValueError(f"inpainting fill must be one value or three values in [0, 1], got {fill}")
        self.patch_size = patch_size
        self.fill = tuple(fill_rgb)
        self.mse_scale = mse_scale
        self.decoder = TransposedConvDecoder(num_features, 3, patch_size, channels, sigmoid=True)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        rows, cols = centre_box(x.shape[-2], x.shape[-1], self.patch_size)
        target = x[:, :, rows, cols].detach().clone()
        return TaskBatch(mask_centre(x, self.patch_size, self.fill), target)

    def loss(self, features, clean_features, batch):
        pred = at_least_float32(self.decoder(features))
        return self.mse_scale * F.mse_loss(pred, batch.targets.to(pred.dtype))

    def per_sample_loss(self, features, clean_features, batch):
        pred = at_least_float32(self.decoder(features))
        err = F.mse_loss(pred, batch.targets.to(pred.dtype), reduction="none")
        return self.mse_scale * mean_per_image(err, clean_features.shape[0])
