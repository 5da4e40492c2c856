"""Projected gradient descent (ascent) in ℓ∞ or ℓ2 (Madry et al. 2018).

Each restart starts from a uniform random point of the ε-ball (or from ``x`` with
``random_start=False``), takes ``steps`` steps of size ``step_size`` along the steepest-ascent
direction of the objective (sign of the gradient for ℓ∞, the normalized gradient for ℓ2), and
projects back onto the ball and the [0, 1] box after every step. The result of a restart is its
last iterate, as in Madry et al.; across restarts each sample keeps a misclassified iterate if any
restart found one, and otherwise the iterate with the highest objective value (its worst case: a
higher loss that is still classified correctly is not worse than a misclassification).

With ``eot_samples = k > 1`` every gradient is the mean over ``k`` forward/backward passes
(expectation over transformation, Athalye et al. 2018), for models that are random at inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .base import (ATTACKS, AutocastFactory, BnMode, Norm, ascent_direction, attack_mode,
                   autocast_or_null, check_attack_args, check_inputs, into_box, is_identity,
                   project, random_in_ball)
from .objectives import BoundLoss, CrossEntropy, Objective


def loss_and_grad(loss_fn: BoundLoss, x: torch.Tensor, delta: torch.Tensor,
                  autocast: AutocastFactory | None, samples: int = 1
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample loss ``[B]`` at ``x + delta`` and its gradient w.r.t. ``delta`` (float32, like x),
    both averaged over ``samples`` passes (EOT; one graph at a time, so memory does not grow).

    Only the gradient of the input is requested, so no parameter ``.grad`` is touched and autograd
    skips the weight-gradient kernels. Autocast covers the forward pass only; the leaf stays float32.
    """
    delta = delta.detach().requires_grad_(True)
    total_loss, total_grad = None, None
    for _ in range(samples):
        with torch.enable_grad():
            with autocast_or_null(autocast):
                loss = loss_fn(x + delta)
            (grad,) = torch.autograd.grad(loss.sum(), delta)
        total_loss = loss.detach() if total_loss is None else total_loss + loss.detach()
        total_grad = grad if total_grad is None else total_grad + grad
    return total_loss / samples, total_grad / samples


@ATTACKS.register("pgd")
@dataclass(frozen=True)
class PGD:
    """ℓ∞ / ℓ2 PGD with random start and restarts.

    Args:
        eps: radius of the ball on the [0, 1] pixel scale (e.g. 8/255 for ℓ∞, 0.5 for ℓ2).
        step_size: step length in the same units (Hendrycks et al. 2019: 2/255 for training
            and PGD-20 evaluation, 0.3/255 for PGD-100).
        steps: number of gradient steps per restart.
        norm: ``"linf"`` or ``"l2"``.
        random_start: start each restart at a uniform random point of the ball.
        restarts: independent runs; each sample keeps a misclassified result if any restart
            found one, else its highest-objective result.
        objective: what is maximized (default cross-entropy on the labels).
        bn_mode: ``"eval"`` (default) or ``"train"`` (the Hendrycks et al. code), see
            :func:`~ssrobust.attacks.base.attack_mode`.
        autocast: optional factory of an autocast context used around forward passes.
        eot_samples: forward/backward passes averaged per gradient (1: plain PGD; more for models
            that are random at inference).
    """

    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    norm: Norm = "linf"
    random_start: bool = True
    restarts: int = 1
    objective: Objective = field(default_factory=CrossEntropy)
    bn_mode: BnMode = "eval"
    autocast: AutocastFactory | None = None
    eot_samples: int = 1

    def __post_init__(self) -> None:
        check_attack_args(self.eps, self.norm, self.bn_mode)
        if not (self.steps >= 0 and self.restarts >= 1 and self.step_size >= 0 and math.isfinite(self.step_size)):
            raise ValueError(f"PGD needs steps >= 0, restarts >= 1 and a finite step_size >= 0, got "
                             f"steps={self.steps!r}, restarts={self.restarts!r}, step_size={self.step_size!r}")
        if self.eot_samples < 1:
            raise ValueError(f"PGD needs eot_samples >= 1, got {self.eot_samples!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` in [0, 1], ``y`` ``[B]`` -> ``x_adv`` like ``x``."""
        check_inputs(x, y)
        x = x.detach()
        if is_identity(self.eps, self.steps):
            return x.clone()
        with attack_mode([model, *self.objective.modules()], self.bn_mode):
            with autocast_or_null(self.autocast):
                loss_fn = self.objective.bind(model, x, y)
            if self.restarts == 1:
                return self._single_run(loss_fn, x, generator)
            return self._best_of_restarts(model, loss_fn, x, y, generator)

    def _best_of_restarts(self, model: nn.Module, loss_fn: BoundLoss, x: torch.Tensor,
                          y: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Per sample: a misclassified iterate first, then the highest objective value."""
        best_x, best_loss, best_fooled = x.clone(), None, None
        for _ in range(self.restarts):
            x_adv = self._single_run(loss_fn, x, generator)
            with torch.no_grad(), autocast_or_null(self.autocast):
                loss = loss_fn(x_adv).float()
                fooled = model(x_adv).argmax(dim=1) != y
            if best_loss is None:
                better = torch.ones_like(fooled)
            else:
                # Strictly better only: on ties the earlier restart wins, so with the same
                # generator the first restart reproduces a single-restart run.
                better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))
            best_x[better] = x_adv[better]
            best_loss = loss if best_loss is None else torch.where(better, loss, best_loss)
            best_fooled = fooled if best_fooled is None else best_fooled | fooled
        return best_x

    def _single_run(self, loss_fn: BoundLoss, x: torch.Tensor,
                    generator: torch.Generator | None) -> torch.Tensor:
        if self.random_start:
            delta = into_box(x, random_in_ball(x, self.eps, self.norm, generator))
        else:
            delta = torch.zeros_like(x)
        for _ in range(self.steps):
            _, grad = loss_and_grad(loss_fn, x, delta, self.autocast, self.eot_samples)
            delta = project(delta + self.step_size * ascent_direction(grad, self.norm),
                            self.eps, self.norm)
            delta = into_box(x, delta)
        return (x + delta).clamp(0.0, 1.0).detach()
