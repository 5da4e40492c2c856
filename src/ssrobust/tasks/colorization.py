"""Colorization as classification (Zhang et al. 2016) in the form Kim et al. 2019 use (Sec. 3, A.1).

The trunk sees a grayscale copy of each image and a transposed-conv decoder predicts, per pixel,
the CIELAB a* and b* values, each quantized into ``bins`` (32) classes. The loss is
``1/(2 N_pixel) sum_pixel sum_{c in a,b} CE`` (the mean over pixels and the two channels).

Colour space: :func:`kornia.color.rgb_to_lab` (sRGB -> linear -> XYZ, D65, 2 deg observer), which
documents a*, b* in [-128, 127]. The bins are uniform on ``ab_range = [-128, 128)``: width 8, bin
``k`` covers ``[-128 + 8k, -120 + 8k)``, i.e. ``k = floor((v + 128) / 8)`` clipped to 0..31 -- the
same edges as Kim's code (``(lab + 128) // 8``, up to its truncation toward zero of negatives).
Colours of the sRGB gamut occupy only a* in [-86.2, 98.2] and b* in [-107.9, 94.5] (bins 5..28
and 2..27). The grayscale input is the colour with the same L* and a* = b* = 0, converted back to
sRGB, so it carries exactly the lightness information and nothing of the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.color import lab_to_rgb, rgb_to_lab

from .base import TASKS, PretextTask, TaskBatch
from .decoder import KIM_DECODER_CHANNELS, TransposedConvDecoder, at_least_float32, check_image_size


def quantize_ab(lab: torch.Tensor, bins: int = 32,
                ab_range: tuple[float, float] = (-128.0, 128.0)) -> torch.Tensor:
    """``lab [B, 3, H, W]`` -> int64 bin labels ``[B, 2, H, W]`` in ``0..bins-1`` for (a*, b*)."""
    lo, hi = ab_range
    idx = torch.floor((lab[:, 1:] - lo) * (bins / (hi - lo)))
    return idx.clamp_(0, bins - 1).long()


def gray_from_lab(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB ``[B, 3, H, W]`` -> grayscale sRGB (3 equal channels) with the same L*, a* = b* = 0."""
    return lab_to_rgb(torch.cat([lab[:, :1], torch.zeros_like(lab[:, 1:])], dim=1))


@TASKS.register("colorization")
class Colorization(PretextTask):
    """Options: ``bins`` (32), ``ab_range`` ((-128, 128)), ``image_size`` (32), ``channels``."""

    name = "colorization"

    def __init__(self, num_features: int, bins: int = 32,
                 ab_range: tuple[float, float] = (-128.0, 128.0), image_size: int = 32,
                 channels: tuple[int, ...] = KIM_DECODER_CHANNELS) -> None:
        super().__init__(num_features)
        if bins < 2 or ab_range[1] <= ab_range[0]:
            raise ValueError(f"colorization needs bins >= 2 and an increasing ab_range, "
                             f"got bins={bins}, ab_range={ab_range}")
        self.bins = bins
        self.ab_range = (float(ab_range[0]), float(ab_range[1]))
        self.image_size = image_size
        self.decoder = TransposedConvDecoder(num_features, 2 * bins, image_size, channels,
                                             sigmoid=False)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        check_image_size(self.name, x, self.image_size)
        lab = rgb_to_lab(x)
        targets = quantize_ab(lab.detach(), self.bins, self.ab_range)
        return TaskBatch(gray_from_lab(lab), targets)

    def loss(self, features, clean_features, batch):
        logits = at_least_float32(self.decoder(features))
        b, _, h, w = logits.shape
        # Channels 0..bins-1 are the a* classes, bins..2*bins-1 the b* classes (Kim, Fig. 3).
        logits = logits.view(b, 2, self.bins, h, w).flatten(0, 1)  # [2B, bins, H, W]
        return F.cross_entropy(logits, batch.targets.flatten(0, 1))

    def per_sample_loss(self, features, clean_features, batch):
        logits = at_least_float32(self.decoder(features))
        b, _, h, w = logits.shape
        logits = logits.view(b, 2, self.bins, h, w).flatten(0, 1)  # [2B, bins, H, W], image-major
        ce = F.cross_entropy(logits, batch.targets.flatten(0, 1), reduction="none")
        return ce.reshape(b, -1).mean(dim=1)
