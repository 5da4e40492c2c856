"""A tiny float64 multi-task problem for the meta-weighting tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssrobust.models import create_model
from ssrobust.tasks import (  # noqa: F401 (registration)
    build_task,
    colorization,
    forward_with_tasks,
    jigsaw,
    reconstruction,
)

# Tasks whose losses stay in float64 for a float64 model (rotation.py casts its logits to float32,
# which would put float32 round-off into the finite differences).
TASK_NAMES = ("jigsaw", "reconstruction", "colorization")


def images(n: int, seed: int, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g, dtype=torch.float64)
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


@dataclass
class Problem:
    model: torch.nn.Module
    tasks: dict[str, torch.nn.Module]
    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    joint: bool = True  # one concatenated trunk forward, or one per view group

    def losses(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Main CE and task losses of the training batch (same task views on every call)."""
        clean, aux = forward_with_tasks(self.model, self.x, self.tasks, torch.Generator().manual_seed(0),
                                        joint=self.joint)
        return F.cross_entropy(self.model.forward_head(clean), self.y), aux


def make_problem(train_mode: bool = True, seed: int = 0, joint: bool = True) -> Problem:
    torch.manual_seed(seed)
    model = create_model("tiny", 3, width=4).double()
    tasks = {
        "jigsaw": build_task("jigsaw", model.num_features),
        "reconstruction": build_task("reconstruction", model.num_features, image_size=16, channels=(8, 4)),
        "colorization": build_task("colorization", model.num_features, image_size=16, channels=(8, 4),
                                   bins=8),
    }
    for t in tasks.values():
        t.double().train(train_mode)
    model.train(train_mode)
    g = torch.Generator().manual_seed(seed + 1)
    return Problem(model, tasks, images(4, seed + 2), torch.randint(0, 3, (4,), generator=g),
                   images(5, seed + 3), torch.randint(0, 3, (5,), generator=g), joint)
