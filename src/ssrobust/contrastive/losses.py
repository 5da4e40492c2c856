"""Contrastive losses on several views per image: NT-Xent (SimCLR) and supervised contrastive.

Both take embeddings ``z [B, V, D]``: ``B`` images, ``V >= 2`` views of each (AdvCL uses 4: the
attacked original view, two SimCLR views and the high-frequency view), ``D`` dims. Embeddings are
ℓ2-normalized here, so similarities are cosines. Every one of the ``N = B·V`` embeddings is an
anchor ``a``; with ``s(a, c) = cos(z_a, z_c) / τ`` and ``P(a)`` its positives,

    ℓ_a = -(τ / τ_base) · 1/|P(a)| · Σ_{p ∈ P(a)} log( exp s(a, p) / Σ_{c ≠ a} exp s(a, c) )

and the loss is the mean of ``ℓ_a`` over anchors.

* NT-Xent (Chen et al. 2020, SimCLR): ``P(a)`` = the other views of the same image. With ``V = 2``
  this is the usual 2N-view NT-Xent; with more views it is the multi-view form AdvCL trains with
  (Fan et al. 2021, through the SupCon code without labels).
* Supervised contrastive (Khosla et al. 2020, ``L^sup_out``): ``P(a)`` = every other embedding
  whose image has the same label (so the other views of the same image too).

``τ_base`` (``base_temperature``) only rescales the loss: ``None`` means ``τ_base = τ`` (scale 1).
Khosla's code, which AdvCL uses, sets ``τ_base = 0.07``, i.e. multiplies the loss by ``τ / 0.07``
(≈ 7.1 at AdvCL's τ = 0.5), which matters against AdvCL's pseudo-label CE weight of 0.2.

``gather_distributed=True`` uses the embeddings of all ranks as the contrast set (see
:mod:`.distributed`); each rank's loss covers its own anchors. Without a process group it changes
nothing.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import rank
from ..registry import Registry
from .distributed import gather_no_grad, gather_with_grad

Reduction = Literal["mean", "none"]
CONTRASTIVE_LOSSES: Registry = Registry("contrastive loss")


def _check(z: torch.Tensor, temperature: float, reduction: str) -> None:
    if z.dim() != 3 or z.shape[1] < 2 or z.shape[0] < 1:
        raise ValueError(f"contrastive embeddings must be [B, V, D] with V >= 2 views per image, "
                         f"got shape {tuple(z.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction {reduction!r} is not one of 'mean', 'none'")


def _contrast(z: torch.Tensor, groups: torch.Tensor, temperature: float, scale: float,
              reduction: str, gather_distributed: bool) -> torch.Tensor:
    """Shared core: ``z [b, V, D]``, ``groups [b]`` (anchors with equal group ids are positives).

    Returns the mean of ``ℓ_a`` (scalar) or ``ℓ_a`` as ``[b, V]``.
    """
    b, v, _ = z.shape
    dtype = torch.promote_types(z.dtype, torch.float32)                        # float32, or float64
    anchors = F.normalize(z.to(dtype), dim=-1).reshape(b * v, -1)              # [b·V, D], image-major
    anchor_groups = groups.repeat_interleave(v)                                # [b·V]
    contrast, contrast_groups, offset = anchors, anchor_groups, 0
    if gather_distributed:
        contrast = gather_with_grad(anchors)                                   # [world·b·V, D]
        contrast_groups = gather_no_grad(anchor_groups)
        offset = rank() * b * v
    sim = anchors @ contrast.T / temperature                                   # [b·V, M]
    idx = torch.arange(b * v, device=z.device)
    is_self = torch.zeros_like(sim, dtype=torch.bool)
    is_self[idx, idx + offset] = True
    log_prob = sim - sim.masked_fill(is_self, float("-inf")).logsumexp(dim=1, keepdim=True)
    positive = (anchor_groups[:, None] == contrast_groups[None, :]) & ~is_self
    # where(), not multiplication: the masked self-similarities must not contribute 0·(-inf).
    mean_pos = torch.where(positive, log_prob, 0.0).sum(dim=1) / positive.sum(dim=1)
    per_anchor = -scale * mean_pos.reshape(b, v)
    return per_anchor.mean() if reduction == "mean" else per_anchor


def nt_xent(z: torch.Tensor, temperature: float = 0.5, *, base_temperature: float | None = None,
            reduction: Reduction = "mean", gather_distributed: bool = False) -> torch.Tensor:
    """NT-Xent over ``V >= 2`` views: ``z [B, V, D]`` -> scalar (``"mean"``) or ``[B, V]``
    (``"none"``: the loss of each anchor, image ``i``'s view ``v`` at ``[i, v]``).

    Positives of an anchor are the other views of its image; negatives are all views of the other
    images (of all ranks with ``gather_distributed``). Computed in float32 (float64 stays float64).
    """
    _check(z, temperature, reduction)
    b = z.shape[0]
    ids = torch.arange(b, device=z.device) + (rank() * b if gather_distributed else 0)
    scale = 1.0 if base_temperature is None else temperature / base_temperature
    return _contrast(z, ids, temperature, scale, reduction, gather_distributed)


def sup_con(z: torch.Tensor, labels: torch.Tensor, temperature: float = 0.5, *,
            base_temperature: float | None = None, reduction: Reduction = "mean",
            gather_distributed: bool = False) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, ``L^sup_out``): ``z [B, V, D]``, integer
    ``labels [B]`` -> scalar or ``[B, V]``. Positives of an anchor: every other view of every image
    with its label (its own other views included); with all labels distinct it equals
    :func:`nt_xent`.
    """
    _check(z, temperature, reduction)
    if labels.shape != z.shape[:1] or labels.is_floating_point():
        raise ValueError(f"sup_con labels must be integers of shape [{z.shape[0]}], got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    scale = 1.0 if base_temperature is None else temperature / base_temperature
    return _contrast(z, labels.to(z.device), temperature, scale, reduction, gather_distributed)


class ContrastiveLoss(nn.Module):
    """Common module surface: ``loss(z [B, V, D], labels [B] | None, reduction) -> scalar | [B, V]``."""

    def __init__(self, temperature: float = 0.5, base_temperature: float | None = None,
                 gather_distributed: bool = False) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        self.temperature = float(temperature)
        self.base_temperature = base_temperature
        self.gather_distributed = gather_distributed

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, base_temperature={self.base_temperature}"


@CONTRASTIVE_LOSSES.register("nt_xent")
class NTXentLoss(ContrastiveLoss):
    """:func:`nt_xent` as a module. Labels must be ``None`` (use ``sup_con`` for labels)."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                reduction: Reduction = "mean") -> torch.Tensor:
        if labels is not None:
            raise ValueError("nt_xent takes no labels; use the 'sup_con' loss for labelled positives")
        return nt_xent(z, self.temperature, base_temperature=self.base_temperature,
                       reduction=reduction, gather_distributed=self.gather_distributed)


@CONTRASTIVE_LOSSES.register("sup_con")
class SupConLoss(ContrastiveLoss):
    """:func:`sup_con` as a module; ``labels`` are required."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                reduction: Reduction = "mean") -> torch.Tensor:
        if labels is None:
            raise ValueError("sup_con needs labels [B]; use the 'nt_xent' loss without labels")
        return sup_con(z, labels, self.temperature, base_temperature=self.base_temperature,
                       reduction=reduction, gather_distributed=self.gather_distributed)


def build_contrastive_loss(name: str, **options: object) -> ContrastiveLoss:
    """A registered loss by name (``nt_xent``, ``sup_con``); unknown names list the known ones."""
    return CONTRASTIVE_LOSSES.build(name, **options)
