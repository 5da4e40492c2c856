"""Colour-channel guessing ("RGB guess", Kim et al. 2019, Sec. 3): which of the 3! = 6 channel
orders was applied.

Permutation ``p`` makes output channel ``c`` equal to input channel ``p[c]``; a linear 6-way head on
the pooled features predicts the index of ``p`` in :data:`RGB_PERMUTATIONS` (lexicographic order,
index 0 = identity, so one image in six on average is unchanged).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from .base import TASKS, PretextTask, TaskBatch, TaskHead
from .decoder import at_least_float32

RGB_PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(3)))


def permute_channels(x: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """``x [B, 3, H, W]``, ``perms [B, 3]`` -> ``out[b, c] = x[b, perms[b, c]]``."""
    b, c, h, w = x.shape
    idx = perms.to(x.device)[:, :, None, None].expand(b, c, h, w)
    return torch.gather(x, 1, idx)


@TASKS.register("rgb_permutation")
class ChannelPermutationPrediction(PretextTask):
    name = "rgb_permutation"

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.head = TaskHead(num_features, len(RGB_PERMUTATIONS))
        self.register_buffer("table", torch.tensor(RGB_PERMUTATIONS), persistent=False)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        if x.shape[1] != 3:
            raise ValueError(f"rgb_permutation needs 3-channel images, got {x.shape[1]}")
        labels = torch.randint(0, len(RGB_PERMUTATIONS), (x.shape[0],), generator=generator,
                               device=x.device)
        return TaskBatch(permute_channels(x, self.table.to(x.device)[labels]), labels)

    def loss(self, features, clean_features, batch):
        return F.cross_entropy(at_least_float32(self.head(features)), batch.targets)

    def per_sample_loss(self, features, clean_features, batch):
        return F.cross_entropy(at_least_float32(self.head(features)), batch.targets, reduction="none")
