"""Attack objectives through pretext-task heads (registered in
:data:`ssrobust.attacks.OBJECTIVES`): they live with the tasks so that attacks import no task.

``PGD(eps=8/255, steps=10, objective=CrossEntropyPlusTasks(tasks, weight=0.5))`` is the attack of
Hendrycks et al. (2019), Sec. 3.1 that maximizes CE + λ·L_SS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.objectives import OBJECTIVES, Objective
from ..errors import ConfigError
from .base import PretextTask, forward_with_tasks


def task_term(model: nn.Module, x_adv: torch.Tensor, tasks: Mapping[str, PretextTask],
               weights: Mapping[str, float], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One :func:`forward_with_tasks` pass: ``(clean-view features [B, D], Σ_t λ_t L_t [B])``, each
    sample's own task losses (:meth:`~ssrobust.tasks.base.PretextTask.per_sample_loss`).

    The task generator is re-seeded at every call so random pretext views (jigsaw permutations,
    crops) are the same at every attack step: the attack then maximizes one fixed function instead
    of chasing a new random objective each step.
    """
    gen = torch.Generator(device=x_adv.device).manual_seed(seed)
    feats, losses = forward_with_tasks(model, x_adv, dict(tasks), gen, per_sample=True)
    total = torch.zeros(x_adv.shape[0], device=x_adv.device, dtype=torch.float32)
    for name, loss in losses.items():
        total = total + weights.get(name, 0.0) * loss.float()
    return feats, total


def per_task_weights(tasks: Mapping[str, PretextTask], weight: float | Mapping[str, float],
                     what: str = "the attack objective") -> dict[str, float]:
    """``{task: λ}`` from one λ for all tasks or a ``{task: λ}`` mapping that must cover every task
    (``what`` names the setting in the error)."""
    if isinstance(weight, Mapping):
        missing = sorted(set(tasks) - set(weight))
        if missing:
            raise ConfigError(f"{what} has no weight for task(s) {', '.join(missing)}")
        return {k: float(weight[k]) for k in tasks}
    return {k: float(weight) for k in tasks}


@OBJECTIVES.register("cross_entropy_plus_tasks")
@dataclass(frozen=True)
class CrossEntropyPlusTasks(Objective):
    """CE + λ·L_SS through the tasks' heads (Hendrycks et al. 2019 Sec. 3.1; Kucer et al. 2021 "SS in
    the attack"). ``weight`` is one λ for all tasks or ``{task name: λ}``.

    Per-sample values: each sample's own CE plus λ times its own task loss (the mean over its views,
    :meth:`~ssrobust.tasks.base.PretextTask.per_sample_loss`), so with BatchNorm in eval mode a
    sample's value does not depend on the rest of the batch. The batch sum, and so the gradient,
    equals Σ_i CE_i + λ·B·L_SS with the tasks' batch-mean losses.
    """

    tasks: Mapping[str, PretextTask] = field(default_factory=dict)
    weight: float | Mapping[str, float] = 0.5
    seed: int = 0
    with_ce: ClassVar[bool] = True

    def modules(self) -> list[nn.Module]:
        return list(self.tasks.values())

    def bind(self, model, x_clean, y):
        weights = per_task_weights(self.tasks, self.weight)

        def loss(x_adv: torch.Tensor) -> torch.Tensor:
            feats, task_loss = task_term(model, x_adv, self.tasks, weights, self.seed)
            if not self.with_ce:
                return task_loss
            return F.cross_entropy(model.forward_head(feats).float(), y, reduction="none") + task_loss

        return loss


@OBJECTIVES.register("self_supervised")
@dataclass(frozen=True)
class SelfSupervisedLoss(CrossEntropyPlusTasks):
    """λ·L_SS alone (labels unused): attacks on the pretext tasks, e.g. for label-free adversarial
    pretraining (Kucer et al. 2021). Per-sample values, see :class:`CrossEntropyPlusTasks`."""

    weight: float | Mapping[str, float] = 1.0
    with_ce: ClassVar[bool] = False
