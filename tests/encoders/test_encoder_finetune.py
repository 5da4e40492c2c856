"""Label-free adversarial finetuning: the loss by hand and one training step."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from encoder_helpers import FakeTimmCNN, square_scenes
from ssrobust.encoders import (FinetuneConfig, as_encoder, attack_embeddings, embedding_distance,
                               embedding_pgd, finetune_loss, finetune_step)
from ssrobust.errors import ConfigError

S_CLEAN, T_CLEAN, S_ADV = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, 1.0]])


def test_loss_by_hand_cosine_and_l2():
    # cosine: clean 1 - cos([1,0],[0,1]) = 1; adv vs student clean 1 - 2/sqrt(5), vs teacher 1 - 1/sqrt(5)
    loss, parts = finetune_loss(S_CLEAN, S_ADV, T_CLEAN, weight=2.0, metric="cosine", anchor="student")
    assert parts["clean"].item() == pytest.approx(1.0)
    assert parts["adv"].item() == pytest.approx(1 - 2 / math.sqrt(5))
    assert loss.item() == pytest.approx(1.0 + 2.0 * (1 - 2 / math.sqrt(5)))
    loss, _ = finetune_loss(S_CLEAN, S_ADV, T_CLEAN, weight=0.5, metric="cosine", anchor="teacher")
    assert loss.item() == pytest.approx(1.0 + 0.5 * (1 - 1 / math.sqrt(5)))
    # squared l2: clean |(1,-1)|^2 = 2; adv vs student |(1,1)|^2 = 2, vs teacher |(2,0)|^2 = 4
    assert finetune_loss(S_CLEAN, S_ADV, T_CLEAN, 3.0, "l2", "student")[0].item() == pytest.approx(2 + 3 * 2)
    assert finetune_loss(S_CLEAN, S_ADV, T_CLEAN, 3.0, "l2", "teacher")[0].item() == pytest.approx(2 + 3 * 4)


def test_gradient_reaches_both_student_terms():
    s_clean, s_adv = S_CLEAN.clone().requires_grad_(True), S_ADV.clone().requires_grad_(True)
    finetune_loss(s_clean, s_adv, T_CLEAN, metric="l2")[0].backward()
    # d/ds_clean [|s-t|^2 + 2|a-s|^2] = 2(s-t) - 4(a-s) = (2,-2) - (4,4); d/da = 4(a-s) = (4,4)
    torch.testing.assert_close(s_clean.grad, torch.tensor([[-2.0, -6.0]]))
    torch.testing.assert_close(s_adv.grad, torch.tensor([[4.0, 4.0]]))


def _pair(seed: int = 0):
    model = FakeTimmCNN(seed=seed)
    teacher = as_encoder(copy.deepcopy(model), method="forward_features")
    student = as_encoder(model, method="forward_features", frozen=False)
    return student, teacher


def _robust_distance(enc, x: torch.Tensor) -> float:
    x_adv = attack_embeddings(enc, x, embedding_pgd("cosine", steps=5), torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float(embedding_distance(enc.pooled(x_adv), enc.pooled(x), "cosine").mean())


def test_step_updates_only_the_student_and_makes_it_more_robust():
    student, teacher = _pair()
    x, _, _, _ = square_scenes(16)
    t_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    s_state = {k: v.clone() for k, v in student.module.state_dict().items()}
    student.eval()
    before = _robust_distance(student, x)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    logs = [finetune_step(student, teacher, x, opt, FinetuneConfig(steps=3), g) for _ in range(8)]
    assert set(logs[0]) == {"loss", "clean", "adv"} and all(math.isfinite(v) for v in logs[-1].values())
    assert logs[-1]["adv"] < logs[0]["adv"]
    assert not student.training  # the step's train mode is given back
    assert all(torch.equal(t_state[k], v) for k, v in teacher.state_dict().items())
    assert not any(p.requires_grad for p in teacher.parameters())
    changed = {k for k, v in student.module.state_dict().items() if not torch.equal(v, s_state[k])}
    assert {"stem.0.weight", "stem.1.weight", "stem.1.running_mean", "stages.0.weight"} <= changed
    assert not changed & {"head.weight", "head.bias"}  # not part of the features: no gradient
    assert _robust_distance(student, x) < 0.5 * before


def test_step_refuses_a_wrong_pair():
    student, teacher = _pair()
    x, opt = torch.rand(2, 3, 16, 16), torch.optim.SGD(student.parameters(), lr=0.1)
    with pytest.raises(ConfigError, match="student encoder is frozen"):
        finetune_step(teacher, teacher, x, opt)
    with pytest.raises(ConfigError, match="teacher encoder must be frozen"):
        finetune_step(student, student, x, opt)
    shared = as_encoder(student.module, method="forward_features")
    with pytest.raises(ConfigError, match="share parameters"):
        finetune_step(student, shared, x, opt)


@pytest.mark.parametrize("kwargs, match", [
    ({"metric": "l1"}, "metric must be one of"), ({"anchor": "both"}, "anchor one of"),
    ({"weight": -1.0}, "finetune.weight"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FinetuneConfig(**kwargs)
