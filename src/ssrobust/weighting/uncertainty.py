"""Homoscedastic-uncertainty task weighting (Kendall, Gal & Cipolla, CVPR 2018).

Each pretext task i has a learned log-variance ``s_i = log sigma_i^2`` and

    total = L_main + sum_i ( exp(-s_i) * L_i + s_i )

i.e. the common form without Kendall et al.'s factor 1/2 (their Eq. 7 with ``s = log sigma^2``,
using the classification-style weight 1/sigma^2 for every task; the 1/2 only rescales both the
weights and the regularizer, which for a fixed optimizer is a different effective learning rate for
``s``). The main task keeps weight 1, so the scale of the classifier's loss is unchanged. For a
fixed L_i the optimum is ``exp(-s_i) = 1 / L_i``: tasks with a large loss are down-weighted.

``s_i`` are ``nn.Parameter``s trained by the loop's optimizer together with the model. They must
not be weight-decayed (decay would pull every weight towards exp(0) = 1): the loop should put the
names from :meth:`UncertaintyWeighting.no_weight_decay` in a parameter group with weight_decay=0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError
from .base import WEIGHTINGS, Weighting


@WEIGHTINGS.register("uncertainty")
class UncertaintyWeighting(Weighting):
    """``weights`` give the initial ``exp(-s_i)`` (must be > 0); :meth:`weights` reports exp(-s_i)."""

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__(weights)
        bad = {n: w for n, w in weights.items() if not (w > 0 and math.isfinite(w))}
        if bad:
            raise ConfigError(f"uncertainty weighting: initial task weights must be finite and > 0, got {bad}")
        init = [-math.log(float(weights[n])) for n in self.task_names]
        self.log_vars = nn.Parameter(torch.tensor(init, dtype=torch.float32))

    def weights(self) -> dict[str, float]:
        # torch.exp gives inf where math.exp raises OverflowError (s < -709 after a diverged
        # step); the loop then stops on the non-finite loss with a message naming the step.
        w = torch.exp(-self.log_vars.detach().double())
        return dict(zip(self.task_names, w.tolist()))

    def combine(self, main_loss: torch.Tensor, aux_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total = main_loss
        for i, n in enumerate(self.task_names):
            s = self.log_vars[i]
            total = total + torch.exp(-s) * aux_losses[n] + s
        return total

    def no_weight_decay(self) -> list[str]:
        """Names (relative to this module) of parameters to exclude from weight decay."""
        return ["log_vars"]
