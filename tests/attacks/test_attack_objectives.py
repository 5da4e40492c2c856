"""Objectives against hand-computed values, per-sample shapes, and the registry."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from attack_helpers import Linear
from ssrobust.attacks import (OBJECTIVES, PGD, CrossEntropy, FeatureDistance, Margin, TradesKL)
from ssrobust.tasks import RotationPrediction, rotate_batch
from ssrobust.tasks.objectives import CrossEntropyPlusTasks, SelfSupervisedLoss


def two_pixel_model() -> Linear:
    """Logits z = W x on 2-"pixel" inputs (shape [B, 1, 1, 2]): z0 = x0, z1 = x1, z2 = x0 + x1."""
    return Linear(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.zeros(3))


def px(*rows: tuple[float, float]) -> torch.Tensor:
    return torch.tensor(rows).view(len(rows), 1, 1, 2)


def test_registry_names():
    assert OBJECTIVES.names() == sorted(["cross_entropy", "margin", "cross_entropy_plus_tasks",
                                         "self_supervised", "trades_kl", "feature_distance"])


def test_cross_entropy_hand_value():
    model, x = two_pixel_model(), px((0.2, 0.6))
    # z = (0.2, 0.6, 0.8); CE for y = 0 is log(e^.2 + e^.6 + e^.8) - 0.2
    expected = math.log(math.exp(0.2) + math.exp(0.6) + math.exp(0.8)) - 0.2
    got = CrossEntropy()(model, x, x, torch.tensor([0]))
    assert got.shape == (1,) and got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_margin_hand_value():
    model, x = two_pixel_model(), px((0.2, 0.6), (0.5, 0.1))
    # sample 0: z = (.2, .6, .8), y = 2 -> max(.2, .6) - .8 = -0.2 (correct, margin 0.2)
    # sample 1: z = (.5, .1, .6), y = 1 -> max(.5, .6) - .1 = 0.5 (misclassified)
    got = Margin()(model, x, x, torch.tensor([2, 1]))
    torch.testing.assert_close(got, torch.tensor([-0.2, 0.5]), rtol=0, atol=1e-6)


def test_trades_kl_hand_value_and_zero_at_the_clean_point():
    model = two_pixel_model()
    clean, adv = px((0.0, 0.0)), px((1.0, 0.0))
    p = torch.softmax(torch.tensor([0.0, 0.0, 0.0]), 0)
    q = torch.softmax(torch.tensor([1.0, 0.0, 1.0]), 0)
    expected = float((p * (p / q).log()).sum())
    y = torch.tensor([0])
    assert TradesKL()(model, adv, clean, y).item() == pytest.approx(expected, abs=1e-6)
    assert TradesKL()(model, clean, clean, y).item() == pytest.approx(0.0, abs=1e-7)


def test_feature_distance_l2_and_cosine_hand_values():
    model = two_pixel_model()  # forward_features = the flattened pixels
    clean, adv = px((1.0, 0.0)), px((1.0, 1.0))
    y = torch.tensor([0])
    assert FeatureDistance("l2")(model, adv, clean, y).item() == pytest.approx(1.0, abs=1e-6)
    # cos((1,1), (1,0)) = 1/sqrt(2)
    expected = 1 - 1 / math.sqrt(2)
    assert FeatureDistance("cosine")(model, adv, clean, y).item() == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError):
        FeatureDistance("l1")  # type: ignore[arg-type]


def rotation_loss_by_hand(model, task, x: torch.Tensor) -> torch.Tensor:
    """``[B]``: each image's rotation loss, the mean CE over its own four rotations."""
    imgs, labels = rotate_batch(x)
    ce = F.cross_entropy(task.head(model.forward_features(imgs)), labels, reduction="none")
    return ce.view(4, x.shape[0]).mean(0)


def test_cross_entropy_plus_tasks_is_ce_plus_weighted_rotation_loss(tiny, batch):
    x, y = batch
    task = RotationPrediction(tiny.num_features)
    objective = CrossEntropyPlusTasks({"rotation": task}, weight=0.5)
    with torch.no_grad():
        got = objective(tiny, x, x, y)
        ce = F.cross_entropy(tiny(x), y, reduction="none")
        rot = rotation_loss_by_hand(tiny, task, x)
    assert got.shape == (x.shape[0],)
    assert float(rot.std()) > 0  # images differ in their rotation loss: per sample is testable
    torch.testing.assert_close(got, ce + 0.5 * rot, rtol=1e-5, atol=1e-5)
    # The summed objective (what the gradient follows) is sum_i CE_i + 0.5 * B * batch rotation loss.
    with torch.no_grad():
        total = float(got.sum())
    assert total == pytest.approx(float(ce.sum() + 0.5 * x.shape[0] * rot.mean()), rel=1e-5)


def test_task_term_of_a_sample_does_not_depend_on_the_rest_of_the_batch(tiny, batch):
    """Sample 0's value is the same in the batch and alone (it used to be its CE plus the batch
    mean of the rotation loss, which moved with the other samples)."""
    x, y = batch
    task = RotationPrediction(tiny.num_features)
    objective = CrossEntropyPlusTasks({"rotation": task}, weight=0.5)
    with torch.no_grad():
        full = objective(tiny, x, x, y)
        alone = objective(tiny, x[:1], x[:1], y[:1])
    torch.testing.assert_close(full[:1], alone, rtol=1e-5, atol=1e-6)


def test_task_weights_per_task_and_missing_weights(tiny, batch):
    x, y = batch
    task = RotationPrediction(tiny.num_features)
    with torch.no_grad():
        a = SelfSupervisedLoss({"rotation": task}, weight={"rotation": 2.0})(tiny, x, x, y)
        rot = rotation_loss_by_hand(tiny, task, x)
    torch.testing.assert_close(a, 2.0 * rot, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="rotation"):
        SelfSupervisedLoss({"rotation": task}, weight={})(tiny, x, x, y)


def test_gradient_of_the_task_objective_is_per_sample(tiny, batch):
    # In eval mode the gradient for sample i must not depend on the other samples of the batch
    # (float64, so that batch-size-dependent float32 kernel rounding does not blur the comparison).
    x, y = batch
    x = x.double()
    task = RotationPrediction(tiny.num_features).double()
    objective = CrossEntropyPlusTasks({"rotation": task}, weight=0.5)
    tiny.double().eval()

    def grad(xs, ys):
        xs = xs.clone().requires_grad_(True)
        objective(tiny, xs, xs.detach(), ys).sum().backward()
        return xs.grad

    full = grad(x, y)
    alone = grad(x[:1], y[:1])
    torch.testing.assert_close(full[:1], alone, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("objective", [TradesKL(), FeatureDistance("l2"), FeatureDistance("cosine")],
                         ids=["trades_kl", "feature_l2", "feature_cosine"])
def test_pgd_increases_label_free_objectives(objective, tiny, batch):
    x, y = batch
    with torch.no_grad():
        start = objective(tiny, x, x, y)
    x_adv = PGD(eps=8 / 255, step_size=2 / 255, steps=5, objective=objective)(
        tiny, x, y, torch.Generator().manual_seed(0))
    with torch.no_grad():
        after = objective(tiny, x_adv, x, y)
        rand = objective(tiny, (x + (torch.rand_like(x) * 2 - 1) * 8 / 255).clamp(0, 1), x, y)
    assert bool((start.abs() < 1e-5).all())
    assert bool((after > rand).all())
