"""Rotation prediction (Gidaris et al. 2018) as used by Hendrycks et al. 2019.

L_SS = 1/4 * sum_{r in 0,90,180,270} CE(r, head(R_r x)), a linear 4-way head on the pooled features.
By default the 0-degree copy is the clean batch the classifier already sees (4B images per step,
as in the OOD code); ``separate_clean=True`` forwards its own 0-degree copy (5B, the adversarial
code's variant).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import TASKS, PretextTask, TaskBatch, mean_per_image
from .decoder import at_least_float32


def rotate_batch(x: torch.Tensor, ks: tuple[int, ...] = (0, 1, 2, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``R_k x`` (k quarter turns counter-clockwise) for each k: returns ``[len(ks)*B, ...]``
    images and the matching labels ``k`` (``[len(ks)*B]`` int64), k-major."""
    imgs = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in ks])
    labels = torch.tensor(ks, device=x.device).repeat_interleave(x.shape[0])
    return imgs, labels


@TASKS.register("rotation")
class RotationPrediction(PretextTask):
    name = "rotation"

    def __init__(self, num_features: int, separate_clean: bool = False) -> None:
        super().__init__(num_features)
        self.separate_clean = separate_clean
        self.head = nn.Linear(num_features, 4)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        ks = (0, 1, 2, 3) if self.separate_clean else (1, 2, 3)
        imgs, labels = rotate_batch(x, ks)
        if not self.separate_clean:
            labels = torch.cat([torch.zeros(x.shape[0], dtype=torch.long, device=x.device), labels])
        return TaskBatch(imgs, labels)

    def loss(self, features, clean_features, batch):
        f = features if self.separate_clean else torch.cat([clean_features, features])
        # Mean over all 4B predictions == 1/4 sum over rotations of the per-rotation mean CE.
        return F.cross_entropy(at_least_float32(self.head(f)), batch.targets)

    def per_sample_loss(self, features, clean_features, batch):
        f = features if self.separate_clean else torch.cat([clean_features, features])
        ce = F.cross_entropy(at_least_float32(self.head(f)), batch.targets, reduction="none")
        return mean_per_image(ce, clean_features.shape[0])  # k-major: the 4 rotations of image i

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Rotation logits ``[N, 4]`` for pooled features (used by OOD scores)."""
        return self.head(features)
