"""What an attack maximizes: per-sample objectives, registered under ``OBJECTIVES``.

An objective is called as ``objective(model, x_adv, x_clean, y) -> loss [B]`` (float32, one value
per sample, so that attacks can keep each sample's worst case across restarts). Attacks call
``objective.bind(model, x_clean, y)`` once per batch and then the returned ``loss(x_adv)`` at every
step: whatever depends only on the clean batch (the clean prediction for TRADES, the clean
features for feature-space attacks) is computed once there, without gradients.

Objectives may own modules (pretext-task heads); ``modules()`` lists them so attacks can put them in
the same train/eval mode as the model and restore them afterwards.

Attacks know no pretext task: the objectives through task heads (``cross_entropy_plus_tasks``,
``self_supervised``) live with the tasks, in :mod:`ssrobust.tasks.objectives`, and register here
when :mod:`ssrobust.tasks` is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

OBJECTIVES: Registry = Registry("attack objective")

BoundLoss = Callable[[torch.Tensor], torch.Tensor]


class Objective:
    """Base class. Subclasses implement ``bind``."""

    def bind(self, model: nn.Module, x_clean: torch.Tensor, y: torch.Tensor) -> BoundLoss:
        raise NotImplementedError

    def modules(self) -> list[nn.Module]:
        return []

    def __call__(self, model: nn.Module, x_adv: torch.Tensor, x_clean: torch.Tensor,
                 y: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` adversarial and clean images, labels ``[B]`` -> loss ``[B]``."""
        return self.bind(model, x_clean, y)(x_adv)


@OBJECTIVES.register("cross_entropy")
@dataclass(frozen=True)
class CrossEntropy(Objective):
    """CE(model(x_adv), y): the untargeted attack of Madry et al. (2018) and of the evaluations."""

    def bind(self, model, x_clean, y):
        return lambda x_adv: F.cross_entropy(model(x_adv).float(), y, reduction="none")


@OBJECTIVES.register("margin")
@dataclass(frozen=True)
class Margin(Objective):
    """max_{j != y} z_j - z_y (Carlini & Wagner 2017): positive exactly when x_adv is misclassified.
    The default objective of SPSA (Uesato et al. 2018), whose finite differences need a loss that
    does not saturate the way CE does on confidently classified points."""

    def bind(self, model, x_clean, y):
        def loss(x_adv: torch.Tensor) -> torch.Tensor:
            z = model(x_adv).float()
            true = z.gather(1, y[:, None]).squeeze(1)
            others = z.scatter(1, y[:, None], float("-inf"))
            return others.amax(dim=1) - true

        return loss


@OBJECTIVES.register("trades_kl")
@dataclass(frozen=True)
class TradesKL(Objective):
    """KL(p(x) || p(x_adv)) against the clean prediction (Zhang et al. 2019, TRADES), labels unused.

    Zero with zero gradient at x_adv = x: use a random start.
    """

    def bind(self, model, x_clean, y):
        with torch.no_grad():
            p_clean = F.softmax(model(x_clean).float(), dim=1)

        def loss(x_adv: torch.Tensor) -> torch.Tensor:
            log_q = F.log_softmax(model(x_adv).float(), dim=1)
            # kl_div(log q, p) = p (log p - log q), with 0 log 0 = 0.
            return F.kl_div(log_q, p_clean, reduction="none").sum(dim=1)

        return loss


@OBJECTIVES.register("feature_distance")
@dataclass(frozen=True)
class FeatureDistance(Objective):
    """Distance between ``model.forward_features`` of the adversarial and the clean image:
    ``"l2"``: ||f(x+δ) - f(x)||²; ``"cosine"``: 1 - cos(f(x+δ), f(x)). Labels unused. The embedding-space
    attack of the layer6 SSL-robustness benchmark, for encoders without a task head.

    Zero with zero gradient at x_adv = x: use a random start.
    """

    metric: Literal["l2", "cosine"] = "l2"

    def __post_init__(self) -> None:
        if self.metric not in ("l2", "cosine"):
            raise ValueError(f"metric {self.metric!r} is not one of 'l2', 'cosine'")

    def bind(self, model, x_clean, y):
        with torch.no_grad():
            f_clean = model.forward_features(x_clean).float()

        def loss(x_adv: torch.Tensor) -> torch.Tensor:
            f = model.forward_features(x_adv).float()
            if self.metric == "l2":
                return (f - f_clean).pow(2).sum(dim=1)
            return 1.0 - F.cosine_similarity(f, f_clean, dim=1)

        return loss
