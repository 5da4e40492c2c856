"""GLC and forward correction: matrix estimators and losses against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssrobust.label_noise import (
    LABEL_LOSSES,
    ForwardCorrection,
    GoldLossCorrection,
    NoCorrection,
    corrupt_labels,
    estimate_corruption_matrix,
    estimate_forward_matrix,
    flip_matrix,
    forward_corrected_loss,
    glc_loss,
    uniform_matrix,
)

LOGITS = [[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]
C3 = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]


def _random_stochastic(k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(2 * torch.randn(k, k, generator=g), dim=1)


def test_glc_estimate_is_exact_when_model_outputs_noisy_posterior() -> None:
    k = 6
    c = _random_stochastic(k, 0)
    labels = torch.arange(300) % k
    c_hat = estimate_corruption_matrix(c[labels], labels, k)  # model's p(ỹ|x) = C[y]
    assert torch.allclose(c_hat, c, atol=1e-6)


def test_glc_estimate_from_sampled_noisy_labels_within_binomial_error() -> None:
    k, n = 5, 20_000
    c = flip_matrix(k, 0.4, seed=1, dtype=torch.float64)
    labels = torch.arange(n) % k
    noisy = corrupt_labels(labels, c, seed=0)
    # A "model" that outputs the one-hot noisy label: Ĉ becomes the empirical transition matrix.
    c_hat = estimate_corruption_matrix(F.one_hot(noisy, k).float(), labels, k).double()
    sigma = (c * (1 - c) / (n / k)).sqrt()
    assert ((c_hat - c).abs() <= 4 * sigma + 1e-6).all()


def test_glc_estimate_class_without_trusted_example_gets_identity_row() -> None:
    probs = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.4, 0.5, 0.1]])
    labels = torch.tensor([0, 2, 0])
    c_hat = estimate_corruption_matrix(probs, labels, 3)
    assert torch.allclose(c_hat[0], torch.tensor([0.5, 0.4, 0.1]))
    assert torch.equal(c_hat[1], torch.tensor([0.0, 1.0, 0.0]))
    assert torch.allclose(c_hat[2], probs[1])
    with pytest.raises(ValueError, match="labels"):
        estimate_corruption_matrix(probs, torch.tensor([0, 3, 1]), 3)
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        estimate_corruption_matrix(probs, labels, 4)


def _anchor_problem(c: torch.Tensor, anchors_per_class: int, seed: int) -> torch.Tensor:
    """Noisy posteriors p(ỹ|x) = q(x)ᵀ C for random clean posteriors q plus perfect anchors."""
    k = c.shape[0]
    g = torch.Generator().manual_seed(seed)
    q = torch.softmax(torch.randn(100, k, generator=g), dim=1)
    q = torch.cat([q, torch.eye(k).repeat(anchors_per_class, 1)])
    return (q.double() @ c.double()).float()


def test_forward_estimate_recovers_c_from_anchor_points() -> None:
    k = 4
    c = flip_matrix(k, 0.3, seed=0)  # column-dominant: max p(i|x) is attained at class-i anchors
    probs = _anchor_problem(c, anchors_per_class=5, seed=0)  # N = 120
    assert torch.allclose(estimate_forward_matrix(probs, k, quantile=1.0), c, atol=1e-6)
    # floor(0.97 * 119) = 115 -> 5th largest value of each column: still an anchor.
    assert torch.allclose(estimate_forward_matrix(probs, k, quantile=0.97), c, atol=1e-6)


def test_forward_estimate_quantile_skips_an_outlier() -> None:
    k = 4
    c = uniform_matrix(k, 0.5)
    probs = _anchor_problem(c, anchors_per_class=5, seed=1)
    outlier = torch.tensor([[1.0, 0.0, 0.0, 0.0]])  # overconfident: impossible under C
    probs = torch.cat([probs, outlier])  # N = 121, position floor(0.97 * 120) = 116
    assert torch.equal(estimate_forward_matrix(probs, k, quantile=1.0)[0], outlier[0])
    assert torch.allclose(estimate_forward_matrix(probs, k, quantile=0.97), c, atol=1e-6)


def test_glc_loss_hand_computed() -> None:
    logits = torch.tensor(LOGITS)
    noisy = torch.tensor([2, 0])
    trusted = torch.tensor([True, False])
    # Example 0 is trusted: CE of label 2.
    ce0 = math.log(math.exp(1.0) + math.exp(2.0) + math.exp(0.5)) - 0.5
    # Example 1 is untrusted: -log Σ_j p(j|x) Ĉ[j, 0].
    z1 = math.exp(0.0) + math.exp(-1.0) + math.exp(3.0)
    mix1 = (math.exp(0.0) * 0.7 + math.exp(-1.0) * 0.1 + math.exp(3.0) * 0.3) / z1
    expected = (ce0 - math.log(mix1)) / 2
    got = glc_loss(logits, noisy, torch.tensor(C3), trusted)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    per = glc_loss(logits, noisy, torch.tensor(C3), trusted, reduction="none")
    assert per.tolist() == pytest.approx([ce0, -math.log(mix1)], rel=1e-6)
    module = GoldLossCorrection(C3)
    assert module(logits, noisy, trusted).item() == pytest.approx(expected, rel=1e-6)


def test_glc_true_labels_override_trusted_targets() -> None:
    logits = torch.tensor(LOGITS)
    per = glc_loss(logits, torch.tensor([2, 0]), torch.tensor(C3), torch.tensor([True, False]),
                   true_labels=torch.tensor([1, 2]), reduction="none")
    assert per[0].item() == pytest.approx(
        math.log(math.exp(1.0) + math.exp(2.0) + math.exp(0.5)) - 2.0, rel=1e-6)


def test_forward_corrected_loss_hand_computed() -> None:
    logits = torch.tensor(LOGITS)
    noisy = torch.tensor([2, 0])
    z0 = math.exp(1.0) + math.exp(2.0) + math.exp(0.5)
    mix0 = (math.exp(1.0) * 0.1 + math.exp(2.0) * 0.1 + math.exp(0.5) * 0.4) / z0
    z1 = math.exp(0.0) + math.exp(-1.0) + math.exp(3.0)
    mix1 = (math.exp(0.0) * 0.7 + math.exp(-1.0) * 0.1 + math.exp(3.0) * 0.3) / z1
    expected = -(math.log(mix0) + math.log(mix1)) / 2
    assert forward_corrected_loss(logits, noisy, torch.tensor(C3)).item() == pytest.approx(
        expected, rel=1e-6)
    assert ForwardCorrection(C3)(logits, noisy).item() == pytest.approx(expected, rel=1e-6)
    assert forward_corrected_loss(logits, noisy, torch.tensor(C3), reduction="sum").item() == \
        pytest.approx(2 * expected, rel=1e-6)


def test_identity_matrix_gives_plain_cross_entropy() -> None:
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(32, 10, generator=g)
    labels = torch.randint(0, 10, (32,), generator=g)
    mask = torch.rand(32, generator=g) < 0.3
    ce = F.cross_entropy(logits, labels)
    eye = torch.eye(10)
    assert torch.allclose(glc_loss(logits, labels, eye), ce, atol=1e-6)
    assert torch.allclose(glc_loss(logits, labels, eye, mask), ce, atol=1e-6)
    assert torch.allclose(ForwardCorrection(eye)(logits, labels), ce, atol=1e-6)
    assert torch.allclose(NoCorrection()(logits, labels, mask), ce)


def test_corrected_loss_is_stable_for_extreme_logits() -> None:
    logits = torch.tensor([[200.0, -200.0, 0.0]])
    loss = forward_corrected_loss(logits, torch.tensor([1]), torch.tensor(C3))
    assert torch.isfinite(loss) and loss.item() == pytest.approx(-math.log(0.2), rel=1e-6)


def test_gradients_match_finite_differences_and_flow() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 4, (6,), generator=g)
    mask = torch.tensor([True, False, False, True, False, False])
    c = flip_matrix(4, 0.3, seed=0, dtype=torch.float64) * 0.9 + 0.025  # strictly positive
    assert torch.autograd.gradcheck(lambda z: glc_loss(z, labels, c, mask), (logits,))
    assert torch.autograd.gradcheck(lambda z: forward_corrected_loss(z, labels, c), (logits,))
    # A matrix with zeros (log C = -inf) must still give finite, non-zero gradients.
    weights = torch.zeros(3, 5, requires_grad=True)
    x = torch.randn(6, 3, generator=g)
    loss = GoldLossCorrection(flip_matrix(5, 0.4, seed=2))(x @ weights, labels, mask)
    loss.backward()
    assert torch.isfinite(weights.grad).all() and weights.grad.abs().sum() > 0


def test_registry_and_input_checks() -> None:
    assert LABEL_LOSSES.names() == ["ce", "forward", "glc"]
    assert LABEL_LOSSES.get("glc") is GoldLossCorrection
    with pytest.raises(ValueError, match="rows must sum to 1"):
        GoldLossCorrection(np.full((3, 3), 0.5))
    with pytest.raises(ValueError, match="must be 4x4 for 4 logits"):
        glc_loss(torch.zeros(2, 4), torch.tensor([0, 1]), torch.eye(3))
    with pytest.raises(ValueError, match="trusted_mask"):
        glc_loss(torch.zeros(2, 3), torch.tensor([0, 1]), torch.eye(3), torch.tensor([True]))
    with pytest.raises(ValueError, match="reduction"):
        ForwardCorrection(torch.eye(3), reduction="avg")


def test_loss_module_moves_matrix_with_to() -> None:
    module = GoldLossCorrection(uniform_matrix(3, 0.2)).to(torch.float64)
    assert module.matrix.dtype == torch.float64 and "matrix" in dict(module.named_buffers())
