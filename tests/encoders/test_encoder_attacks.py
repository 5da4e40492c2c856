"""Attacks on encoders: embedding space, SegPGD and PGD on the depth loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import ssrobust.encoders.attacks as enc_attacks
from encoder_helpers import FakeTimmCNN, sequential_encoder, square_scenes
from ssrobust.attacks import PGD, ball_excess, ball_tolerance
from ssrobust.encoders import (EmbeddingDistance, HeadTrainConfig, SegPGD, TaskModel, as_encoder,
                               attack_embeddings, build_head, embedding_distance, embedding_pgd,
                               evaluate_head, probe, segpgd_loss, task_pgd, train_head)

EPS = 8 / 255


def _in_ball(x_adv: torch.Tensor, x: torch.Tensor) -> bool:
    return bool((ball_excess(x_adv, x, EPS, "linf") <= ball_tolerance(EPS, "linf", x[0].numel())).all())


def test_defaults_are_the_benchmark_setting():
    attack = embedding_pgd()
    assert (attack.eps, attack.step_size, attack.steps, attack.norm, attack.random_start) == \
        (8 / 255, 2 / 255, 20, "linf", True)
    assert attack.objective == EmbeddingDistance("l2", "pooled")
    seg = SegPGD()
    assert (seg.eps, seg.step_size, seg.steps, seg.random_start) == (8 / 255, 2 / 255, 20, True)


def test_embedding_distance_by_hand():
    a, b = torch.tensor([[1.0, 0.0], [2.0, 2.0]]), torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    torch.testing.assert_close(embedding_distance(a, b, "l2"), torch.tensor([2.0, 2.0]))
    torch.testing.assert_close(embedding_distance(a, b, "cosine"), torch.tensor([1.0, 0.0]))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("kind", ["pooled", "spatial"])
def test_embedding_attack_increases_the_distance_inside_the_ball(metric, kind):
    enc = as_encoder(FakeTimmCNN(), method="forward_features")
    x, _, _, _ = square_scenes(8)
    g = torch.Generator().manual_seed(0)
    x_adv = attack_embeddings(enc, x, embedding_pgd(metric, steps=10, features=kind), g)
    noise = (x + (2 * torch.rand(x.shape, generator=g) - 1) * EPS).clamp(0, 1)
    with torch.no_grad():
        clean = enc.features(x, kind)
        d_adv = embedding_distance(enc.features(x_adv, kind), clean, metric)
        d_noise = embedding_distance(enc.features(noise, kind), clean, metric)
    assert (d_adv > 2 * d_noise).all()
    assert _in_ball(x_adv, x) and x_adv.min() >= 0 and x_adv.max() <= 1


def test_clean_embedding_is_computed_once_per_batch():
    model = FakeTimmCNN()
    enc = as_encoder(model, method="forward_features")
    calls = []
    model.stem.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    attack_embeddings(enc, torch.rand(4, 3, 16, 16), embedding_pgd(steps=3))
    assert len(calls) == 1 + 3  # one clean pass at bind, one per step


def test_reference_encoder_gives_the_clean_target():
    student, teacher = FakeTimmCNN(seed=0), FakeTimmCNN(seed=1)
    s = as_encoder(student, method="forward_features")
    t = as_encoder(teacher, method="forward_features")
    x = torch.rand(2, 3, 16, 16)
    got = EmbeddingDistance("l2", reference=t)(s, x, x, torch.zeros(2, dtype=torch.long))
    torch.testing.assert_close(got, (s.pooled(x) - t.pooled(x)).pow(2).sum(dim=1))
    assert EmbeddingDistance(reference=t).modules() == [t]
    with pytest.raises(ValueError, match="metric must be one of l2, cosine"):
        EmbeddingDistance("l1")


def test_segpgd_loss_by_hand():
    # pixel A: target 0, predicted 0 (correct); pixel B: target 1, predicted 0 (wrong); C: void
    logits = torch.tensor([[2.0, 0.0], [1.0, 0.0], [5.0, -5.0]]).T.reshape(1, 2, 1, 3)
    target = torch.tensor([[[0, 1, 255]]])
    ce_a = math.log(1 + math.exp(-2.0))
    ce_b = math.log(1 + math.exp(1.0))
    got = segpgd_loss(logits, target, lam=0.25)
    assert got.item() == pytest.approx((0.75 * ce_a + 0.25 * ce_b) / 2, abs=1e-6)
    assert segpgd_loss(logits, target, lam=0.0).item() == pytest.approx(ce_a / 2, abs=1e-6)


def test_segpgd_schedules_lambda_over_the_steps(monkeypatch):
    seen = []

    def spy(logits, target, lam, void=255):
        seen.append(lam)
        return logits.float().mean(dim=(1, 2, 3))

    monkeypatch.setattr(enc_attacks, "segpgd_loss", spy)
    enc = as_encoder(sequential_encoder(), layer="5")
    model = TaskModel(enc, build_head("seg", probe(enc, (16, 16)), num_classes=2))
    x, _, masks, _ = square_scenes(2)
    SegPGD(steps=4)(model, x, masks)
    assert seen == [0.0, 1 / 8, 2 / 8, 3 / 8]  # (t - 1) / 2T for t = 1..4


@pytest.fixture(scope="module")
def trained():
    """A frozen user encoder with a segmentation head and a depth head trained on square scenes."""
    torch.manual_seed(0)  # the heads' initialization
    enc = as_encoder(sequential_encoder(), layer="5")
    x, _, masks, depth = square_scenes(128)
    shapes = probe(enc, (16, 16))
    seg = build_head("seg", shapes, num_classes=2)
    train_head(enc, seg, x, masks, HeadTrainConfig(epochs=40, lr=3e-2))
    dep = build_head("depth", shapes, min_depth=0.1, max_depth=1.0, num_bins=16)
    train_head(enc, dep, x, depth, HeadTrainConfig(epochs=40, lr=3e-2))
    return enc, seg, dep, square_scenes(64, seed=1)


def test_segpgd_lowers_miou_and_leaves_the_model_alone(trained):
    enc, seg, _, (x, _, masks, _) = trained
    model = TaskModel(enc, seg)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    x_adv = SegPGD(steps=10)(model, x, masks, g)
    noise = (x + (2 * torch.rand(x.shape, generator=g) - 1) * EPS).clamp(0, 1)
    clean = evaluate_head(enc, seg, x, masks)["miou"]
    assert clean > 0.6
    assert evaluate_head(enc, seg, noise, masks)["miou"] > clean - 0.05
    assert evaluate_head(enc, seg, x_adv, masks)["miou"] < clean - 0.25
    assert _in_ball(x_adv, x) and x_adv.min() >= 0 and x_adv.max() <= 1
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_segpgd_refuses_masks_of_another_shape(trained):
    enc, seg, _, (x, labels, masks, _) = trained
    with pytest.raises(ValueError, match="integer masks"):
        SegPGD(steps=1)(TaskModel(enc, seg), x, labels)
    with pytest.raises(ValueError, match="integer masks"):
        SegPGD(steps=1)(TaskModel(enc, seg), x, masks.float())


def test_pgd_on_the_depth_loss_raises_it(trained):
    enc, _, dep, (x, _, _, depth) = trained
    model = TaskModel(enc, dep)
    x_adv = task_pgd(dep.loss, steps=10)(model, x, depth, torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert dep.loss(model(x_adv), depth).mean() > 1.5 * dep.loss(model(x), depth).mean()
    assert evaluate_head(enc, dep, x_adv, depth)["rmse"] > evaluate_head(enc, dep, x, depth)["rmse"]
    assert _in_ball(x_adv, x)


def test_plain_pgd_objectives_still_work_on_task_model_logits(trained):
    enc, seg, _, (x, _, masks, _) = trained
    model = TaskModel(enc, seg)
    x_adv = PGD(steps=3, objective=enc_attacks.TaskLoss(seg.loss))(model, x[:4], masks[:4])
    with torch.no_grad():
        before = F.cross_entropy(model(x[:4]), masks[:4], ignore_index=255)
        after = F.cross_entropy(model(x_adv), masks[:4], ignore_index=255)
    assert after > before
