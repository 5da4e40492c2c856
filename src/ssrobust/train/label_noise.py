"""Training strategies for label noise (Hendrycks et al. 2019, §3.3).

* ``glc``: the second stage of Gold Loss Correction (Hendrycks et al. 2018): CE on the trusted
  images of the batch (``extras["trusted"]``) and ``-log Σ_j p(j|x) Ĉ[j, ỹ]`` on the others.
* ``forward``: forward correction (Patrini et al. 2017) with a fixed matrix on every image.
* ``ss_only``: self-supervised pretraining: the pretext-task losses alone (the classifier term
  is zero), e.g. the paper's 100 epochs of rotation-only pretraining before fine-tuning.

The matrices are strategy options (nested lists), so the run's ``config.yaml`` records the exact
``Ĉ`` it was trained with. The pretext-task losses still go through the run's weighting: the
strategies only replace the classifier's loss (``Network(..., main_loss=...)``).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..label_noise.correction import ForwardCorrection, GoldLossCorrection
from .strategies import STRATEGIES, StepOutput, Strategy, no_classifier_loss


@STRATEGIES.register("glc")
class GoldLossCorrectionStrategy(Strategy):
    """GLC stage 2 with the estimate ``matrix`` (``[K, K]``, rows sum to 1).

    Needs the per-image bool ``trusted`` mask from the training split (``data.label_noise`` with
    ``trusted_fraction > 0`` provides it). The batch loss is the GLC code's: the sum of the
    per-image losses divided by the batch size.
    """

    batch_extras = ("trusted",)

    def __init__(self, matrix: Sequence[Sequence[float]]) -> None:
        self.loss = GoldLossCorrection(matrix)

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None,
                 extras: dict[str, torch.Tensor] | None = None) -> StepOutput:
        if not extras or "trusted" not in extras:
            raise ConfigError("strategy 'glc' needs the per-image 'trusted' mask in the batch")
        trusted = extras["trusted"]
        logits, main, aux = net(x, y, generator,
                                main_loss=lambda z, labels: self.loss(z, labels, trusted))
        return StepOutput(logits, main, aux)


@STRATEGIES.register("forward")
class ForwardCorrectionStrategy(Strategy):
    """Forward-corrected loss ``-log (p(·|x)ᵀ C)[ỹ]`` on every image (Patrini et al. 2017).

    With ``use_trusted=True`` the images marked ``trusted`` get plain CE instead (their labels are
    clean); Patrini et al. have no trusted data, so the default is False.
    """

    def __init__(self, matrix: Sequence[Sequence[float]], use_trusted: bool = False) -> None:
        self.loss = ForwardCorrection(matrix)
        self.use_trusted = use_trusted
        self.batch_extras = ("trusted",) if use_trusted else ()

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None,
                 extras: dict[str, torch.Tensor] | None = None) -> StepOutput:
        trusted = extras.get("trusted") if (extras and self.use_trusted) else None
        if self.use_trusted and trusted is None:
            raise ConfigError("strategy 'forward' with use_trusted=true needs the 'trusted' mask")
        logits, main, aux = net(x, y, generator,
                                main_loss=lambda z, labels: self.loss(z, labels, trusted))
        return StepOutput(logits, main, aux)


@STRATEGIES.register("ss_only")
class SelfSupervisedOnly(Strategy):
    """Pretext-task losses only: the labels are ignored (rotation-only pretraining)."""

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None,
                 extras: dict[str, torch.Tensor] | None = None) -> StepOutput:
        logits, main, aux = net(x, y, generator, main_loss=no_classifier_loss)
        if not aux:
            raise ConfigError("strategy 'ss_only' needs at least one pretext task in tasks")
        return StepOutput(logits, main, aux)
