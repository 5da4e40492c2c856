"""Loss corrections for noisy labels: Gold Loss Correction and forward correction.

Both train the classifier's clean posterior ``p(y|x)`` through the noisy-label likelihood
``p(ỹ|x) = Σ_j p(j|x) C[j, ỹ]``; they differ in how ``C`` is estimated:

* GLC (Hendrycks et al., 2018, "Using Trusted Data to Train Deep Networks on Labels Corrupted by
  Severe Noise"; used in Hendrycks et al. 2019 §3.3): a model trained on the untrusted data is run
  on the trusted examples, and ``Ĉ[y] = mean softmax over trusted examples whose true label is y``.
  The corrected model is trained with CE on trusted examples and the corrected loss on the rest.
* Forward correction (Patrini et al., 2017, "Making Deep Neural Networks Robust to Label Noise: a
  Loss Correction Approach"): no trusted data; row ``i`` of ``C`` is the softmax at an anchor point
  of class ``i`` (an example with a very high ``p(i|x)``).

All losses take ``logits [B, K]`` and integer ``noisy_labels [B]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..registry import Registry
from .matrices import validate_matrix

LABEL_LOSSES: Registry[type[nn.Module]] = Registry("label-noise loss")
"""``"ce"`` (no correction), ``"glc"``, ``"forward"``: loss modules called as
``loss(logits, noisy_labels, trusted_mask=None) -> scalar``."""

_REDUCTIONS = ("mean", "sum", "none")


def _as_tensor(x: Any) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _check_probs(probs: torch.Tensor, num_classes: int) -> None:
    if probs.ndim != 2 or probs.shape[1] != num_classes:
        raise DataError(f"probs must be [N, {num_classes}], got {tuple(probs.shape)}")
    if not torch.isfinite(probs).all() or (probs < 0).any():
        raise DataError("probs must be finite and non-negative (softmax outputs)")


def estimate_corruption_matrix(probs_trusted: Any, labels_trusted: Any,
                               num_classes: int) -> torch.Tensor:
    """GLC estimate ``Ĉ[y, :] = mean of probs_trusted[i]`` over trusted ``i`` with true label ``y``.

    ``probs_trusted``: ``[N, K]`` softmax of a model trained on the *untrusted* (noisy) data,
    evaluated on the trusted examples; ``labels_trusted``: ``[N]`` their true labels. A class with
    no trusted example gets the identity row (assume its labels are clean), as in the GLC code.
    Returns ``[K, K]`` float32 on the device of ``probs_trusted``.
    """
    probs = _as_tensor(probs_trusted).detach().to(torch.float64)
    labels = _as_tensor(labels_trusted).to(probs.device, torch.long).reshape(-1)
    _check_probs(probs, num_classes)
    if labels.numel() != probs.shape[0]:
        raise DataError(f"{probs.shape[0]} probability rows but {labels.numel()} labels")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"trusted labels must lie in [0, {num_classes - 1}]")
    sums = torch.zeros(num_classes, num_classes, dtype=torch.float64, device=probs.device)
    sums.index_add_(0, labels, probs)
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)
    eye = torch.eye(num_classes, dtype=torch.float64, device=probs.device)
    c_hat = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1.0)[:, None], eye)
    return c_hat.to(torch.float32)


def estimate_forward_matrix(probs: Any, num_classes: int, quantile: float = 0.97) -> torch.Tensor:
    """Patrini et al. (2017) anchor-point estimate: row ``i`` = ``probs[anchor_i]``.

    ``probs``: ``[N, K]`` softmax of a model trained on the noisy labels (on training data).
    ``anchor_i`` is the example whose ``p(i|x)`` is the ``quantile`` order statistic of column
    ``i`` (sorted position ``floor(quantile * (N - 1))``); ``quantile=1`` takes the arg-max.
    The 97th percentile rather than the max discards outliers (Patrini's code keeps the largest
    value strictly below its 97th percentile, which differs by at most a few order statistics).
    Returns ``[K, K]`` float32 on the device of ``probs``.
    """
    if not 0.0 <= quantile <= 1.0:
        raise ConfigError(f"quantile must lie in [0, 1], got {quantile!r}")
    p = _as_tensor(probs).detach().to(torch.float64)
    _check_probs(p, num_classes)
    if p.shape[0] == 0:
        raise DataError("need at least one example to pick anchor points")
    position = int(np.floor(quantile * (p.shape[0] - 1)))
    order = torch.argsort(p, dim=0, stable=True)  # [N, K]: column i sorts p(i|x) ascending
    anchors = order[position]  # [K]
    return p[anchors].to(torch.float32)


def _check_inputs(logits: torch.Tensor, labels: torch.Tensor, matrix: torch.Tensor | None) -> None:
    if logits.ndim != 2:
        raise DataError(f"logits must be [B, K], got {tuple(logits.shape)}")
    if labels.shape != logits.shape[:1]:
        raise DataError(f"labels must be [B] = [{logits.shape[0]}], got {tuple(labels.shape)}")
    if matrix is not None and tuple(matrix.shape) != (logits.shape[1],) * 2:
        raise DataError(f"corruption matrix must be {logits.shape[1]}x{logits.shape[1]} for "
                        f"{logits.shape[1]} logits, got {tuple(matrix.shape)}")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def corrected_nll(logits: torch.Tensor, noisy_labels: torch.Tensor,
                  matrix: torch.Tensor) -> torch.Tensor:
    """Per-sample ``-log Σ_j p(j|x) C[j, ỹ]``, ``[B]``.

    Computed as ``-logsumexp_j(log_softmax(logits)_j + log C[j, ỹ])`` so that tiny probabilities
    do not underflow; zero entries of ``C`` give ``-inf`` terms that logsumexp ignores. A label
    that no class can produce (column ``ỹ`` of ``C`` all zero) has infinite loss.
    """
    _check_inputs(logits, noisy_labels, matrix)
    # float32 at least: under autocast the logits may be half precision.
    dtype = torch.promote_types(logits.dtype, torch.float32)
    log_c = matrix.to(logits.device, dtype).log()  # [K, K]
    log_p = F.log_softmax(logits.to(dtype), dim=1)  # [B, K]
    return -torch.logsumexp(log_p + log_c[:, noisy_labels].T, dim=1)


def glc_loss(logits: torch.Tensor, noisy_labels: torch.Tensor, c_hat: torch.Tensor,
             trusted_mask: torch.Tensor | None = None, true_labels: torch.Tensor | None = None,
             reduction: str = "mean") -> torch.Tensor:
    """Gold Loss Correction objective (Hendrycks et al. 2018, Algorithm 1, second stage).

    Per example: CE against the clean label where ``trusted_mask`` is True (the label is
    ``true_labels`` if given, else ``noisy_labels``, which holds the clean label at trusted
    positions), and ``-log Σ_j p(j|x) Ĉ[j, ỹ]`` elsewhere. ``logits [B, K]``, labels and mask
    ``[B]``, ``c_hat [K, K]``. ``mean`` divides the sum by ``B`` (trusted and untrusted alike),
    as the GLC code does.
    """
    per_sample = corrected_nll(logits, noisy_labels, c_hat)
    if trusted_mask is not None:
        mask = trusted_mask.to(logits.device, torch.bool)
        if mask.shape != per_sample.shape:
            raise DataError(f"trusted_mask must be [B] = [{logits.shape[0]}], "
                            f"got {tuple(mask.shape)}")
        clean = noisy_labels if true_labels is None else true_labels.to(noisy_labels.device)
        ce = F.cross_entropy(logits.to(per_sample.dtype), clean, reduction="none")
        per_sample = torch.where(mask, ce, per_sample)
    return _reduce(per_sample, reduction)


def forward_corrected_loss(logits: torch.Tensor, noisy_labels: torch.Tensor, c: torch.Tensor,
                           reduction: str = "mean") -> torch.Tensor:
    """Forward correction (Patrini et al. 2017): ``-log (p(·|x)ᵀ C)[ỹ]`` for every example."""
    return _reduce(corrected_nll(logits, noisy_labels, c), reduction)


class _MatrixLoss(nn.Module):
    """Holds a validated ``[K, K]`` matrix as a buffer, so ``.to(device)`` moves it."""

    matrix: torch.Tensor

    def __init__(self, matrix: Any, reduction: str = "mean") -> None:
        super().__init__()
        c = validate_matrix(matrix)
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.register_buffer("matrix", torch.as_tensor(c, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, noisy_labels: torch.Tensor,
                trusted_mask: torch.Tensor | None = None) -> torch.Tensor:
        """CE where ``trusted_mask`` is True, corrected NLL elsewhere (everywhere if None)."""
        return glc_loss(logits, noisy_labels, self.matrix, trusted_mask, reduction=self.reduction)


@LABEL_LOSSES.register("glc")
class GoldLossCorrection(_MatrixLoss):
    """GLC loss with a fixed estimate ``Ĉ`` (from :func:`estimate_corruption_matrix`)."""


@LABEL_LOSSES.register("forward")
class ForwardCorrection(_MatrixLoss):
    """Forward-corrected loss with matrix ``C`` (from :func:`estimate_forward_matrix` or known).

    Patrini et al. have no trusted data; if a ``trusted_mask`` is passed anyway, those examples
    carry clean labels and get plain CE (the corrected likelihood would be wrong for them).
    With a mask the two losses coincide; they differ only in how the matrix was estimated.
    """


@LABEL_LOSSES.register("ce")
class NoCorrection(nn.Module):
    """Plain cross-entropy on the labels as given ("No Correction" in Hendrycks et al. 2019)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ConfigError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, noisy_labels: torch.Tensor,
                trusted_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_inputs(logits, noisy_labels, None)
        return F.cross_entropy(logits, noisy_labels, reduction=self.reduction)
