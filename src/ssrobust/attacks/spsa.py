"""SPSA: a gradient-free attack used to detect gradient masking (Uesato et al. 2018).

At every step the gradient of the objective is *estimated* from function values only:
``ĝ = mean_s [(L(x' + δ v_s) - L(x' - δ v_s)) / (2δ)] · v_s`` with Rademacher directions
``v_s ∈ {-1, +1}^d``; the perturbation follows an Adam ascent step on ``ĝ`` and is projected on the
ε-ball and [0, 1]. Because no backward pass is ever taken, a model whose gradients are useless
(zero, shattered or obfuscated) is attacked as effectively as an ordinary one; if SPSA breaks points
that PGD could not, the white-box numbers are not trustworthy.

Differences from the paper: probe points are clipped to [0, 1] (the model is only ever evaluated
on valid images); each sample keeps the iterate with the highest objective value instead of
stopping early; the default budget is far below the paper's (8192 probes x 100 steps) so it runs
on a CPU — raise ``samples``/``steps`` for final evaluations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .base import (ATTACKS, AutocastFactory, BnMode, Norm, attack_mode, autocast_or_null,
                   check_attack_args, check_inputs, into_box, is_identity, project)
from .objectives import BoundLoss, Margin, Objective


@ATTACKS.register("spsa")
@dataclass(frozen=True)
class SPSA:
    """Gradient-free attack with an SPSA gradient estimate and Adam updates.

    Args:
        eps, norm, objective, bn_mode, autocast: as in :class:`~ssrobust.attacks.pgd.PGD`
            (default objective: the margin loss, as in Uesato et al.).
        steps: Adam steps.
        step_size: Adam learning rate (paper: 0.01).
        samples: Rademacher directions per step (each costs two forward passes per image).
        delta: finite-difference probe size (paper: 0.01).
        max_batch: largest number of images in one forward pass.
    """

    eps: float = 8 / 255
    norm: Norm = "linf"
    steps: int = 20
    step_size: float = 0.01
    samples: int = 32
    delta: float = 0.01
    objective: Objective = field(default_factory=Margin)
    bn_mode: BnMode = "eval"
    autocast: AutocastFactory | None = None
    max_batch: int = 2048

    def __post_init__(self) -> None:
        check_attack_args(self.eps, self.norm, self.bn_mode)
        finite = math.isfinite(self.delta) and math.isfinite(self.step_size)
        if not (finite and self.steps >= 0 and self.samples >= 1 and self.delta > 0 and self.step_size >= 0
                and self.max_batch >= 2):
            raise ValueError(f"SPSA needs steps >= 0, samples >= 1, finite delta > 0 and step_size >= 0, "
                             f"max_batch >= 2, got steps={self.steps!r}, samples={self.samples!r}, "
                             f"delta={self.delta!r}, step_size={self.step_size!r}, max_batch={self.max_batch!r}")

    @torch.no_grad()
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` in [0, 1], ``y`` ``[B]`` -> ``x_adv`` like ``x``."""
        check_inputs(x, y)
        x = x.detach()
        if is_identity(self.eps, self.steps):
            return x.clone()
        with attack_mode([model, *self.objective.modules()], self.bn_mode):
            return self._run(model, x, y, generator)

    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
        with autocast_or_null(self.autocast):
            loss_at = self.objective.bind(model, x, y)
        tiled = _TiledLoss(self.objective, model, x, y, self.autocast)
        delta = torch.zeros_like(x)
        best_x, best_loss = x.clone(), self._loss(loss_at, x)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        beta1, beta2 = 0.9, 0.999
        for t in range(1, self.steps + 1):
            g = self._estimate_grad(tiled, x + delta, generator)
            m = beta1 * m + (1 - beta1) * g
            v = beta2 * v + (1 - beta2) * g * g
            step = (m / (1 - beta1 ** t)) / ((v / (1 - beta2 ** t)).sqrt() + 1e-8)
            delta = into_box(x, project(delta + self.step_size * step, self.eps, self.norm))
            x_adv = (x + delta).clamp(0.0, 1.0)
            loss = self._loss(loss_at, x_adv)
            better = loss > best_loss
            best_x[better] = x_adv[better]
            best_loss = torch.where(better, loss, best_loss)
        return best_x

    def _loss(self, loss_fn: BoundLoss, x_adv: torch.Tensor) -> torch.Tensor:
        with autocast_or_null(self.autocast):
            return loss_fn(x_adv).float()

    def _estimate_grad(self, tiled: "_TiledLoss", x_cur: torch.Tensor,
                       generator: torch.Generator | None) -> torch.Tensor:
        """SPSA estimate ``[B, ...]`` of the objective's gradient at ``x_cur``."""
        b = x_cur.shape[0]
        per_chunk = max(1, min(self.samples, self.max_batch // (2 * b)))
        g = torch.zeros_like(x_cur)
        done = 0
        while done < self.samples:
            s = min(per_chunk, self.samples - done)
            signs = torch.randint(0, 2, (s, *x_cur.shape), generator=generator,
                                  device=x_cur.device).to(x_cur.dtype).mul_(2).sub_(1)
            probes = torch.cat([x_cur + self.delta * signs, x_cur - self.delta * signs])
            losses = tiled(probes.clamp_(0.0, 1.0).flatten(0, 1), 2 * s).view(2, s, b)
            diff = (losses[0] - losses[1]) / (2 * self.delta)  # [s, B]
            g += (diff.view(s, b, *([1] * (x_cur.dim() - 1))) * signs).sum(dim=0)
            done += s
        return g / self.samples


class _TiledLoss:
    """The objective bound to ``k`` stacked copies of the clean batch, cached per ``k`` (at most two
    chunk sizes occur), so probes of many directions go through the model in one forward pass."""

    def __init__(self, objective: Objective, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 autocast: AutocastFactory | None) -> None:
        self.objective, self.model, self.x, self.y, self.autocast = objective, model, x, y, autocast
        self.bound: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {}

    def __call__(self, probes: torch.Tensor, k: int) -> torch.Tensor:
        with autocast_or_null(self.autocast):
            if k not in self.bound:
                xs = self.x.repeat(k, *([1] * (self.x.dim() - 1)))
                self.bound[k] = self.objective.bind(self.model, xs, self.y.repeat(k))
            return self.bound[k](probes).float()
