"""Blurred-image reconstruction ("BIR", Kim et al. 2019, Sec. 3): restore the sharp image from a
blurred copy.

Each image gets its own Gaussian blur width ``sigma ~ U(sigma_min, sigma_max)`` pixels (default
0.5..2.0), applied to every colour channel separately (a depthwise 2-D blur with reflect borders,
kernel ``2 * ceil(3 * sigma_max) + 1`` wide). Kim's public code called
``scipy.ndimage.gaussian_filter`` with sigma 7/255 over the whole (B, H, W, C) array: a blur of
about 0.03 px mixing the batch and channel axes, i.e. no blur at all, which made the task plain
reconstruction of a second copy. The decoder reads the features of the blurred view and the loss is
the MSE to the clean image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from .base import TASKS, PretextTask, TaskBatch, mean_per_image
from .decoder import KIM_DECODER_CHANNELS, TransposedConvDecoder, at_least_float32, check_image_size


def blur_batch(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian-blur image ``b`` with std ``sigma[b]`` px in both directions, channels separately.

    Args:
        x: ``[B, C, H, W]``; sigma: ``[B]`` positive.
    Returns:
        ``[B, C, H, W]`` (reflect borders; kernel covers +-3 sigma of the widest blur).
    """
    size = 2 * math.ceil(3.0 * float(sigma.max())) + 1
    size = min(size, 2 * (min(x.shape[-2:]) - 1) - 1)  # reflect padding must stay inside the image
    size = max(size, 3)
    s = sigma.to(dtype=x.dtype, device=x.device)[:, None].expand(-1, 2)
    return gaussian_blur2d(x, (size, size), s, border_type="reflect")


@TASKS.register("deblurring")
class BlurredImageReconstruction(PretextTask):
    """Options: ``sigma_min``/``sigma_max`` (px, 0.5/2.0), ``image_size`` (32), ``channels``,
    ``mse_scale`` (1.0; Kim's code uses 30)."""

    name = "deblurring"

    def __init__(self, num_features: int, sigma_min: float = 0.5, sigma_max: float = 2.0,
                 image_size: int = 32, channels: tuple[int, ...] = KIM_DECODER_CHANNELS,
                 mse_scale: float = 1.0) -> None:
        super().__init__(num_features)
        if not 0 < sigma_min <= sigma_max:
            raise ValueError(f"deblurring needs 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.image_size = image_size
        self.mse_scale = mse_scale
        self.decoder = TransposedConvDecoder(num_features, 3, image_size, channels, sigmoid=True)

    def sample_sigma(self, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """``[n]`` blur widths in pixels, uniform on ``[sigma_min, sigma_max]``."""
        u = torch.rand(n, generator=generator, device=device)
        return self.sigma_min + (self.sigma_max - self.sigma_min) * u

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        check_image_size(self.name, x, self.image_size)
        sigma = self.sample_sigma(x.shape[0], generator, x.device)
        return TaskBatch(blur_batch(x, sigma), x.detach(), {"sigma": sigma})

    def loss(self, features, clean_features, batch):
        recon = at_least_float32(self.decoder(features))
        return self.mse_scale * F.mse_loss(recon, batch.targets.to(recon.dtype))

    def per_sample_loss(self, features, clean_features, batch):
        recon = at_least_float32(self.decoder(features))
        err = F.mse_loss(recon, batch.targets.to(recon.dtype), reduction="none")
        return self.mse_scale * mean_per_image(err, clean_features.shape[0])
