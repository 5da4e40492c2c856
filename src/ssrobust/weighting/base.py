"""How the main loss and the pretext-task losses are combined into one training loss.

A weighting is an ``nn.Module`` (so learned weights can be parameters the optimizer updates, and
its state goes into checkpoints). The training loop calls, every step,

1. ``before_step(ctx)`` with a :class:`StepContext` (a hook for weightings that adapt from data,
   such as Kim et al.'s meta weighting; the default does nothing), then
2. ``combine(main_loss, aux_losses)`` to get the scalar it back-propagates, and
3. ``weights()`` for logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..registry import Registry

WEIGHTINGS: Registry = Registry("task weighting")


@dataclass
class StepContext:
    """What the loop knows at one step, for weightings that look beyond the losses."""

    model: nn.Module
    tasks: dict[str, nn.Module]
    x: torch.Tensor                    # the training batch the losses were computed on
    y: torch.Tensor
    main_loss: torch.Tensor            # with graph
    aux_losses: dict[str, torch.Tensor]  # with graph
    lr: float                          # the learning rate of this step
    epoch: int
    step: int
    optimizer: torch.optim.Optimizer | None = None
    # Returns a held-out minibatch (x, y) from the training data's validation pool (never test data).
    validation_batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]] | None = None
    autocast: Callable[[], Any] | None = None


class Weighting(nn.Module):
    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__()
        self.task_names = list(weights)

    def weights(self) -> dict[str, float]:
        raise NotImplementedError

    def combine(self, main_loss: torch.Tensor, aux_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def before_step(self, ctx: StepContext) -> None:
        return None

    def prepare_validation(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """The held-out validation pool (uint8 ``[N, 3, H, W]``) as this weighting's
        ``StepContext.validation_batch`` should see it; called once per run. Default: unchanged."""
        return images

    def wants_separate_views(self) -> bool:
        """Whether this weighting takes one gradient per task loss, which is cheaper when each task's
        views have their own trunk forward (``task_forward: auto`` follows this)."""
        return False


@WEIGHTINGS.register("fixed")
class FixedWeighting(Weighting):
    """total = main + sum_i lambda_i * L_i with constant lambda_i."""

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__(weights)
        for name, w in weights.items():
            if w < 0:
                raise ValueError(f"task weight for {name!r} must be >= 0, got {w}")
        self.register_buffer("lam", torch.tensor([float(weights[n]) for n in self.task_names]))

    def weights(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.task_names, self.lam.tolist())}

    def combine(self, main_loss, aux_losses):
        total = main_loss
        for i, n in enumerate(self.task_names):
            total = total + self.lam[i] * aux_losses[n]
        return total


def build_weighting(name: str, weights: dict[str, float], **options: Any) -> Weighting:
    """A registered weighting of the tasks' ``weights`` (``WEIGHTINGS.build``)."""
    return WEIGHTINGS.build(name, weights, **options)
