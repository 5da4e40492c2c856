"""Attacks on encoders: in embedding space (task-agnostic) and at a task head's output.

* :class:`EmbeddingDistance` is the objective of the layer6 benchmark's embedding attack:
  ``||f(x+δ) - f(x)||²`` or ``1 - cos(f(x+δ), f(x))`` on the pooled (or flattened spatial)
  features; the clean embedding is computed once per batch, by the attacked encoder or by a
  ``reference`` (a frozen teacher, as in adversarial finetuning). :func:`embedding_pgd` is the
  benchmark's setting (ℓ∞ ε 8/255, step 2/255, 20 steps, uniform random start). Labels are not
  used, so one attacked image set is scored by every head (:func:`attack_embeddings`).
* :class:`TaskLoss` maximizes a head's own per-image loss through a :class:`TaskModel`
  (``PGD(objective=TaskLoss(head.loss))``: PGD on the depth loss, or plain PGD on segmentation CE).
* :class:`SegPGD` (Gu et al. 2022) for segmentation.

All run on the existing machinery (:mod:`ssrobust.attacks`): inputs in [0, 1], ε-ball and box
projections, restored module modes, randomness only from the ``generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks.base import (AutocastFactory, BnMode, ascent_direction, attack_mode, check_attack_args,
                            check_inputs, into_box, is_identity, project, random_in_ball)
from ..attacks.objectives import BoundLoss, Objective
from ..attacks.pgd import PGD, loss_and_grad
from .encoder import FEATURE_KINDS, FeatureKind
from .heads import masked_mean

Metric = Literal["l2", "cosine"]
METRICS: tuple[str, ...] = ("l2", "cosine")
TargetLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def embedding_distance(a: torch.Tensor, b: torch.Tensor, metric: Metric) -> torch.Tensor:
    """``[B, ...]`` x2 -> ``[B]`` float32: squared ℓ2 distance or ``1 - cosine`` of the flattened rows."""
    a, b = a.flatten(1).float(), b.flatten(1).float()
    if metric == "l2":
        return (a - b).pow(2).sum(dim=1)
    return 1.0 - F.cosine_similarity(a, b, dim=1)


def embed(model: nn.Module, x: torch.Tensor, kind: FeatureKind) -> torch.Tensor:
    """``model.pooled`` / ``model.spatial`` of an Encoder; ``forward_features`` of a backbone (pooled)."""
    if callable(getattr(model, kind, None)):
        return getattr(model, kind)(x)
    if kind == "pooled" and callable(getattr(model, "forward_features", None)):
        return model.forward_features(x)
    raise TypeError(f"{type(model).__name__} has no {kind} features; wrap it with as_encoder()")


@dataclass(frozen=True)
class EmbeddingDistance(Objective):
    """Per-image distance between the embedding of ``x_adv`` and the clean embedding (labels unused).

    Zero with zero gradient at ``x_adv = x`` when ``reference`` is None: use a random start.
    """

    metric: Metric = "l2"
    features: FeatureKind = "pooled"
    reference: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.metric not in METRICS or self.features not in FEATURE_KINDS:
            raise ValueError(f"embedding distance: metric must be one of {', '.join(METRICS)} and "
                             f"features one of {', '.join(FEATURE_KINDS)}, got {self.metric!r}, "
                             f"{self.features!r}")

    def modules(self) -> list[nn.Module]:
        return [] if self.reference is None else [self.reference]

    def bind(self, model: nn.Module, x_clean: torch.Tensor, y: torch.Tensor) -> BoundLoss:
        with torch.no_grad():
            source = model if self.reference is None else self.reference
            clean = embed(source, x_clean, self.features).float()
        return lambda x_adv: embedding_distance(embed(model, x_adv, self.features), clean, self.metric)


def embedding_pgd(metric: Metric = "l2", *, eps: float = 8 / 255, step_size: float = 2 / 255,
                  steps: int = 20, features: FeatureKind = "pooled", reference: nn.Module | None = None,
                  **options: object) -> PGD:
    """The layer6 embedding attack: ℓ∞ PGD with a uniform random start on :class:`EmbeddingDistance`.
    ``options`` go to :class:`~ssrobust.attacks.PGD` (``restarts``, ``bn_mode``, ``autocast``)."""
    objective = EmbeddingDistance(metric, features, reference)
    return PGD(eps=eps, step_size=step_size, steps=steps, norm="linf", random_start=True,
               objective=objective, **options)  # type: ignore[arg-type]


def attack_embeddings(encoder: nn.Module, x: torch.Tensor, attack: PGD | None = None,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` ``[B, 3, H, W]`` in [0, 1] -> attacked images, by ``attack`` (default
    :func:`embedding_pgd`); no labels needed."""
    attack = attack or embedding_pgd()
    dummy = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    return attack(encoder, x, dummy, generator)


@dataclass(frozen=True)
class TaskLoss(Objective):
    """``loss(model(x_adv), y) -> [B]``: a head's own per-image loss at the task output; ``y`` is
    whatever the loss takes (class ids ``[B]``, masks or depth maps ``[B, H, W]``)."""

    loss: TargetLoss

    def bind(self, model: nn.Module, x_clean: torch.Tensor, y: torch.Tensor) -> BoundLoss:
        return lambda x_adv: self.loss(model(x_adv), y).float()


def segpgd_loss(logits: torch.Tensor, target: torch.Tensor, lam: float, void: int = 255) -> torch.Tensor:
    """SegPGD objective per image (Gu et al. 2022, Eq. 4): over its N non-void pixels,
    ``((1 - λ) Σ_correct CE + λ Σ_wrong CE) / N`` with "correct" judged by the current argmax.

    ``logits`` ``[B, K, H, W]``, ``target`` ``[B, H, W]`` -> ``[B]``.
    """
    keep = target != void
    safe = target.masked_fill(~keep, 0).long()
    ce = F.cross_entropy(logits.float(), safe, reduction="none")
    correct = logits.argmax(dim=1) == safe
    weight = torch.where(correct, 1.0 - lam, lam)
    return masked_mean(ce * weight, keep)


@dataclass(frozen=True)
class SegPGD:
    """SegPGD (Gu et al. 2022, "SegPGD: an effective and efficient adversarial attack for evaluating
    and boosting segmentation robustness"): ℓ∞ PGD on :func:`segpgd_loss` with ``λ_t = (t - 1) / (2T)``
    at step ``t = 1..T``. Early steps push the still-correct pixels over the boundary; later steps
    weigh the already-wrong pixels more, so they are not pulled back.

    Called as ``attack(model, x, masks, generator)`` with ``model`` returning ``[B, K, H, W]`` logits
    (a :class:`~ssrobust.encoders.heads.TaskModel` with a segmentation head) and ``masks``
    ``[B, H, W]`` (``void`` ignored). Returns the last iterate, like PGD.
    """

    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 20
    random_start: bool = True
    void: int = 255
    bn_mode: BnMode = "eval"
    autocast: AutocastFactory | None = None

    def __post_init__(self) -> None:
        check_attack_args(self.eps, "linf", self.bn_mode)
        if not (self.steps >= 0 and self.step_size >= 0 and math.isfinite(self.step_size)):
            raise ValueError(f"SegPGD needs steps >= 0 and a finite step_size >= 0, got "
                             f"steps={self.steps!r}, step_size={self.step_size!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` in [0, 1], masks ``[B, H, W]`` -> ``x_adv`` like ``x``."""
        check_inputs(x, y)
        if y.shape != (x.shape[0], *x.shape[2:]) or y.is_floating_point():
            raise ValueError(f"SegPGD needs integer masks [B, H, W] = {[x.shape[0], *x.shape[2:]]}, got "
                             f"{y.dtype} {list(y.shape)}")
        x = x.detach()
        if is_identity(self.eps, self.steps):
            return x.clone()
        delta = torch.zeros_like(x)
        if self.random_start:
            delta = into_box(x, random_in_ball(x, self.eps, "linf", generator))
        with attack_mode([model], self.bn_mode):
            for t in range(self.steps):
                lam = t / (2 * self.steps)  # (t - 1) / 2T for t counted from 1

                def loss_fn(x_adv: torch.Tensor, lam: float = lam) -> torch.Tensor:
                    return segpgd_loss(model(x_adv), y, lam, self.void)

                _, grad = loss_and_grad(loss_fn, x, delta, self.autocast)
                delta = project(delta + self.step_size * ascent_direction(grad, "linf"), self.eps, "linf")
                delta = into_box(x, delta)
        return (x + delta).clamp(0.0, 1.0).detach()


def task_pgd(loss: TargetLoss, *, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 20,
             **options: object) -> PGD:
    """ℓ∞ PGD maximizing a head's per-image ``loss`` (e.g. ``DepthHead.loss``: PGD on the depth loss);
    call it on a :class:`~ssrobust.encoders.heads.TaskModel` with the task's targets."""
    return PGD(eps=eps, step_size=step_size, steps=steps, norm="linf", random_start=True,
               objective=TaskLoss(loss), **options)  # type: ignore[arg-type]
