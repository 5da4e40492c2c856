"""Image reconstruction ("IR", Kim et al. 2019, Sec. 3): an autoencoder on the shared trunk.

A transposed-conv decoder (:mod:`.decoder`, sigmoid output) maps the pooled features of the clean
batch back to the image; the loss is the mean squared error over pixels and channels. It needs no
extra trunk input: it decodes the clean features the classifier already computed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import TASKS, PretextTask, TaskBatch, mean_per_image
from .decoder import KIM_DECODER_CHANNELS, TransposedConvDecoder, at_least_float32, check_image_size


@TASKS.register("reconstruction")
class ImageReconstruction(PretextTask):
    """Options: ``image_size`` (32), ``channels`` (256, 128, 64), ``mse_scale`` (1.0; Kim's
    public code multiplies its MSE losses by 30)."""

    name = "reconstruction"

    def __init__(self, num_features: int, image_size: int = 32,
                 channels: tuple[int, ...] = KIM_DECODER_CHANNELS, mse_scale: float = 1.0) -> None:
        super().__init__(num_features)
        self.image_size = image_size
        self.mse_scale = mse_scale
        self.decoder = TransposedConvDecoder(num_features, 3, image_size, channels, sigmoid=True)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        check_image_size(self.name, x, self.image_size)
        return TaskBatch(None, x.detach())

    def loss(self, features, clean_features, batch):
        recon = at_least_float32(self.decoder(clean_features))
        return self.mse_scale * F.mse_loss(recon, batch.targets.to(recon.dtype))

    def per_sample_loss(self, features, clean_features, batch):
        recon = at_least_float32(self.decoder(clean_features))
        err = F.mse_loss(recon, batch.targets.to(recon.dtype), reduction="none")
        return self.mse_scale * mean_per_image(err, clean_features.shape[0])
