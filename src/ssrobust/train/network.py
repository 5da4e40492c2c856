"""The module the optimizer trains: a backbone plus its pretext-task heads.

Wrapping both in one module lets DDP synchronize the task heads' gradients with the trunk's and
makes a checkpoint one state dict. ``joint_views`` chooses between one concatenated trunk forward
for the clean batch and all task views (default) and one forward per view group (see
:func:`~ssrobust.tasks.base.forward_with_tasks`); the loop sets it from ``RunConfig.task_forward``,
and ``label_smoothing`` (of the default classifier loss) from ``optim.label_smoothing``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..tasks.base import forward_with_tasks

MainLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Network(nn.Module):
    def __init__(self, model: nn.Module, tasks: dict[str, nn.Module], joint_views: bool = True) -> None:
        super().__init__()
        self.model = model
        self.tasks = nn.ModuleDict(tasks)
        self.joint_views = joint_views
        self.label_smoothing = 0.0

    def forward(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                main_loss: MainLoss | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Returns ``(logits [B, K] float32, main loss, {task: loss})`` from the trunk forward(s).

        ``main_loss(logits, y)`` defaults to :meth:`classification_loss`; strategies such as GLC
        pass their own.
        """
        feats, aux = forward_with_tasks(self.model, x, dict(self.tasks.items()), generator,
                                       joint=self.joint_views)
        logits = self.model.forward_head(feats).float()
        loss = self.classification_loss(logits, y) if main_loss is None else main_loss(logits, y)
        return logits, loss, {k: v.float() for k, v in aux.items()}

    def classification_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of logits ``[B, K]`` and labels ``[B]``, with the run's label smoothing."""
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
