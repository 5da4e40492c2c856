"""The two AdvCL attacks as objectives for the package's attacks (``PGD``, ``FGSM``).

AdvCL (Fan et al. 2021) attacks the "original" view twice per step (ℓ∞ PGD, ε 8/255, step 2/255,
5 steps): once maximizing the contrastive loss of the attacked view against the other views
(:class:`ContrastiveObjective`), once maximizing the mean pseudo-label CE over the K-means heads
(:class:`PseudoLabelObjective`).

The views that are not attacked do not depend on the perturbation, so their projections are
computed **once** per training step (:func:`encode_views`, no gradient) and passed in; every
attack step then encodes only the attacked view. The AdvCL code re-encodes all four views at
every attack step; the loss and its input gradient are the same (up to float rounding).

An objective is bound to one batch: it carries that batch's context (the other views'
projections, the pseudo-labels), so build a new one per step and run it with
:func:`attack_with` (which copies the attack with that objective; attacks are never mutated).
Labels passed to the attack are unused.

Per-sample values (attacks keep each sample's worst case across restarts): the mean over its
views of the anchor losses of image ``i``. They sum to ``B ×`` the batch loss, so the ascent
direction is that of the batch loss; only the restart bookkeeping treats them as independent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
from torch import nn

from ..attacks.objectives import Objective
from .batchnorm import use_branch
from .heads import PseudoLabelHeads
from .losses import ContrastiveLoss, NTXentLoss


def encode_views(model: nn.Module, head: nn.Module, views: Sequence[torch.Tensor],
                 branch: str | None = None) -> torch.Tensor:
    """Projections of ``V`` views, each ``[B, 3, H, W]``, -> ``[B, V, P]`` without gradient.

    Runs in the modules' current train/eval mode (set it as the attack will, e.g. eval), with
    BatchNorm branch ``branch`` (see :mod:`.batchnorm`) if given.
    """
    if not views:
        raise ValueError("encode_views needs at least one view")
    with torch.no_grad(), use_branch([model, head], branch):
        return torch.stack([head(model.forward_features(v)).float() for v in views], dim=1)


@dataclass(frozen=True, eq=False)
class ContrastiveObjective(Objective):
    """Contrastive loss of the attacked view against fixed other views -> ``[B]``.

    Args:
        head: the projection head (on ``model.forward_features``).
        others: ``[B, V - 1, P]`` projections of the views that are not attacked (detached).
        criterion: a contrastive loss module (default NT-Xent, τ 0.5); the attacked view is view 0.
        labels: ``[B]`` for a supervised-contrastive criterion, else ``None``.
        branch: BatchNorm branch used for the attacked view (e.g. ``"adv"``), ``None`` = as is.
    """

    head: nn.Module
    others: torch.Tensor
    criterion: ContrastiveLoss = field(default_factory=NTXentLoss)
    labels: torch.Tensor | None = None
    branch: str | None = None

    def __post_init__(self) -> None:
        if self.others.dim() != 3 or self.others.shape[1] < 1:
            raise ValueError(f"other views' projections must be [B, V - 1, P] with at least one "
                             f"view, got shape {tuple(self.others.shape)}")

    def modules(self) -> list[nn.Module]:
        return [self.head]

    def bind(self, model, x_clean, y):
        if self.others.shape[0] != x_clean.shape[0]:
            raise ValueError(f"projections of {self.others.shape[0]} images for a batch of {x_clean.shape[0]}")
        others = self.others.detach().float()

        def loss(x_adv: torch.Tensor) -> torch.Tensor:
            with use_branch([model, self.head], self.branch):
                attacked = self.head(model.forward_features(x_adv)).float()
            z = torch.cat([attacked[:, None], others], dim=1)
            return self.criterion(z, self.labels, reduction="none").mean(dim=1)

        return loss


@dataclass(frozen=True, eq=False)
class PseudoLabelObjective(Objective):
    """Mean CE over the pseudo-label heads of ``model.forward_features(x_adv)`` -> ``[B]``.

    Args:
        heads: one linear head per K (:class:`~ssrobust.contrastive.heads.PseudoLabelHeads`).
        labels: ``{K: cluster ids [B]}`` of this batch's images.
        branch: BatchNorm branch for the attacked view (AdvCL: its own, ``pgd_ce``).
    """

    heads: PseudoLabelHeads
    labels: Mapping[int, torch.Tensor]
    branch: str | None = None

    def modules(self) -> list[nn.Module]:
        return [self.heads]

    def bind(self, model, x_clean, y):
        def loss(x_adv: torch.Tensor) -> torch.Tensor:
            with use_branch([model, self.heads], self.branch):
                return self.heads.per_sample_loss(model.forward_features(x_adv), self.labels)

        return loss


def attack_with(attack: object, objective: Objective, model: nn.Module, x: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Run ``attack`` (a dataclass attack with an ``objective`` field, e.g. ``PGD``) with
    ``objective`` on ``x [B, 3, H, W]`` in [0, 1] -> ``x_adv``. Labels are not needed."""
    if not dataclasses.is_dataclass(attack) or "objective" not in {f.name for f in dataclasses.fields(attack)}:
        raise TypeError(f"{type(attack).__name__} has no objective field; expected an attack such as PGD or FGSM")
    bound = dataclasses.replace(attack, objective=objective)
    unused = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    return bound(model, x, unused, generator)
