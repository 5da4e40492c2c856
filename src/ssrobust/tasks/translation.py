"""Translation prediction (Hendrycks et al. 2019, one-class OOD section).

Each image is shifted by ``dy, dx in {-shift, 0, +shift}`` pixels (default 8), with reflect padding
so no constant border gives the shift away, and two linear 3-way heads on the pooled features
predict the vertical and the horizontal shift. One random shift pair per image (B extra images);
the loss is the mean of the two cross-entropies, so its scale matches the single-CE tasks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import TASKS, PretextTask, TaskBatch, TaskHead
from .decoder import at_least_float32


def translate_batch(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, pad: int) -> torch.Tensor:
    """Shift every image content by ``(dy[b], dx[b])`` pixels (positive = down / right).

    Args:
        x: ``[B, C, H, W]``.
        dy, dx: ``[B]`` integer shifts with ``|shift| <= pad``.
        pad: reflect padding width (``< H, W``).
    Returns:
        ``[B, C, H, W]`` with ``out[b, :, i, j] = reflect(x)[b, :, i - dy[b], j - dx[b]]``.
    """
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = torch.arange(h, device=x.device)[None, :] + pad - dy[:, None]  # [B, H]
    cols = torch.arange(w, device=x.device)[None, :] + pad - dx[:, None]  # [B, W]
    bidx = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indexing with the channel slice in the middle puts channels last: [B, H, W, C].
    out = padded.permute(0, 2, 3, 1)[bidx, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


@TASKS.register("translation")
class TranslationPrediction(PretextTask):
    """Options: ``shift`` (pixels, default 8)."""

    name = "translation"

    def __init__(self, num_features: int, shift: int = 8) -> None:
        super().__init__(num_features)
        if shift < 1:
            raise ValueError(f"translation shift must be >= 1 pixel, got {shift}")
        self.shift = shift
        self.head_y = TaskHead(num_features, 3)
        self.head_x = TaskHead(num_features, 3)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        if min(x.shape[-2:]) <= self.shift:
            raise ValueError(f"translation shift {self.shift} needs images larger than it, "
                             f"got {tuple(x.shape[-2:])}")
        labels = torch.randint(0, 3, (2, x.shape[0]), generator=generator, device=x.device)
        dy, dx = (labels - 1) * self.shift  # label 0 -> -shift, 1 -> 0, 2 -> +shift
        return TaskBatch(translate_batch(x, dy, dx, self.shift), labels)

    def loss(self, features, clean_features, batch):
        ly, lx = batch.targets
        return 0.5 * (F.cross_entropy(at_least_float32(self.head_y(features)), ly)
                      + F.cross_entropy(at_least_float32(self.head_x(features)), lx))

    def per_sample_loss(self, features, clean_features, batch):
        ly, lx = batch.targets
        return 0.5 * (F.cross_entropy(at_least_float32(self.head_y(features)), ly, reduction="none")
                      + F.cross_entropy(at_least_float32(self.head_x(features)), lx, reduction="none"))
