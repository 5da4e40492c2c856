"""2x2 jigsaw puzzle (Kim et al. 2019, Sec. 3): which of the 4! = 24 tile orders was applied.

The image is cut into a 2x2 grid of tiles (row-major positions 0..3); permutation ``p`` puts input
tile ``p[j]`` at position ``j``. A linear 24-way head on the pooled features predicts the index of
``p`` in :data:`JIGSAW_PERMUTATIONS` (lexicographic order, index 0 = identity).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from .base import TASKS, PretextTask, TaskBatch, TaskHead
from .decoder import at_least_float32

JIGSAW_PERMUTATIONS: tuple[tuple[int, ...], ...] = tuple(itertools.permutations(range(4)))


def permute_tiles(x: torch.Tensor, perms: torch.Tensor) -> torch.Tensor:
    """Rearrange the 2x2 tiles of every image.

    Args:
        x: ``[B, C, H, W]`` with even H and W.
        perms: ``[B, 4]`` int64; ``out`` tile ``j`` of image ``b`` is ``x`` tile ``perms[b, j]``.
    Returns:
        ``[B, C, H, W]``.
    """
    b, c, h, w = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"jigsaw needs even image sides, got {h}x{w}")
    th, tw = h // 2, w // 2
    tiles = x.reshape(b, c, 2, th, 2, tw).permute(0, 2, 4, 1, 3, 5).reshape(b, 4, c, th, tw)
    idx = perms.to(x.device)[:, :, None, None, None].expand(b, 4, c, th, tw)
    out = torch.gather(tiles, 1, idx)
    return out.reshape(b, 2, 2, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def inverse_permutations(perms: torch.Tensor) -> torch.Tensor:
    """``[N, k]`` permutations -> their inverses (``inv[p[j]] = j``)."""
    return torch.argsort(perms, dim=-1)


@TASKS.register("jigsaw")
class JigsawPuzzle(PretextTask):
    name = "jigsaw"

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.head = TaskHead(num_features, len(JIGSAW_PERMUTATIONS))
        self.register_buffer("table", torch.tensor(JIGSAW_PERMUTATIONS), persistent=False)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        labels = torch.randint(0, len(JIGSAW_PERMUTATIONS), (x.shape[0],), generator=generator,
                               device=x.device)
        return TaskBatch(permute_tiles(x, self.table.to(x.device)[labels]), labels)

    def loss(self, features, clean_features, batch):
        return F.cross_entropy(at_least_float32(self.head(features)), batch.targets)

    def per_sample_loss(self, features, clean_features, batch):
        return F.cross_entropy(at_least_float32(self.head(features)), batch.targets, reduction="none")
