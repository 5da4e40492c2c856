"""Heads on a backbone's pooled features: the contrastive projection head and the pseudo-label
classifiers of AdvCL.

* :class:`ProjectionHead` — the SimCLR / AdvCL MLP ``Linear(D, H) → BatchNorm → ReLU → Linear(H, P)``
  on ``forward_features`` (``D = 512 → 512 → 128`` for ResNet-18; by default ``H = D`` and
  ``P = 128`` for any backbone). Its output is not normalized; the contrastive losses normalize.
* :class:`PseudoLabelHeads` — one linear classifier per K-means granularity ``K`` (AdvCL:
  ``K ∈ {2, 10, 50, 100, 500}``) on the same features; the loss is the mean CE over heads.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .batchnorm import MultiBatchNorm


class ProjectionHead(nn.Module):
    """``[B, in_dim] -> [B, out_dim]``.

    Args:
        in_dim: the backbone's feature width (``backbone.num_features``).
        hidden_dim: width of the hidden layer; ``None`` = ``in_dim`` (512 for ResNet-18).
        out_dim: projection width (128 in SimCLR and AdvCL).
        bn_branches: e.g. ``("clean", "adv")`` for a separate BatchNorm per branch, selected with
            :func:`~ssrobust.contrastive.batchnorm.use_branch`; ``None`` = one BatchNorm.
    """

    def __init__(self, in_dim: int, hidden_dim: int | None = None, out_dim: int = 128,
                 bn_branches: Sequence[str] | None = None) -> None:
        super().__init__()
        hidden = in_dim if hidden_dim is None else hidden_dim
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden), ("out_dim", out_dim)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"projection head {name} must be a positive integer, got {value!r}")
        bn: nn.Module = nn.BatchNorm1d(hidden)
        if bn_branches is not None:
            bn = MultiBatchNorm(bn, bn_branches)
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), bn, nn.ReLU(inplace=True),
                                 nn.Linear(hidden, out_dim))
        self.in_dim, self.out_dim = in_dim, out_dim

    @classmethod
    def for_backbone(cls, backbone: nn.Module, out_dim: int = 128,
                     bn_branches: Sequence[str] | None = None) -> "ProjectionHead":
        """Scaled to the backbone: ``num_features → num_features → out_dim``."""
        return cls(int(backbone.num_features), None, out_dim, bn_branches)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)


class PseudoLabelHeads(nn.Module):
    """One ``Linear(in_dim, K)`` per ``K`` in ``ks``: features ``[B, in_dim]`` -> ``{K: logits [B, K]}``."""

    def __init__(self, in_dim: int, ks: Sequence[int]) -> None:
        super().__init__()
        ks = tuple(int(k) for k in ks)
        if not ks or len(set(ks)) != len(ks) or min(ks) < 2:
            raise ValueError(f"pseudo-label heads need distinct cluster counts K >= 2, got {list(ks)}")
        self.ks = ks
        self.heads = nn.ModuleDict({f"k{k}": nn.Linear(in_dim, k) for k in ks})

    def forward(self, features: torch.Tensor) -> dict[int, torch.Tensor]:
        return {k: self.heads[f"k{k}"](features) for k in self.ks}

    def per_sample_loss(self, features: torch.Tensor, labels: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """``[B]``: the mean over heads of each sample's CE against its cluster id ``labels[K] [B]``."""
        missing = [k for k in self.ks if k not in labels]
        if missing:
            raise KeyError(f"pseudo-labels missing for K = {missing}; have K = {sorted(labels)}")
        logits = self(features)
        ce = [F.cross_entropy(logits[k].float(), labels[k].to(features.device).long(), reduction="none")
              for k in self.ks]
        return torch.stack(ce).mean(dim=0)

    def loss(self, features: torch.Tensor, labels: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """Scalar: the batch mean of :meth:`per_sample_loss` (AdvCL multiplies it by 0.2)."""
        return self.per_sample_loss(features, labels).mean()
