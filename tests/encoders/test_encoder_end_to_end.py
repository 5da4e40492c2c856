"""A user's module as an encoder, end to end on the built-in scenes: three heads, clean and attacked."""

from __future__ import annotations

import pytest
import torch

from encoder_helpers import FakeTimmCNN, sequential_encoder
from ssrobust.attacks import PGD
from ssrobust.data.dense import synthetic_dense
from ssrobust.encoders import (HeadTrainConfig, SegPGD, TaskModel, as_encoder, attack_embeddings,
                               build_head, embedding_pgd, evaluate_head, probe, task_pgd,
                               train_head)


@pytest.mark.parametrize("make, options", [(sequential_encoder, {"layer": "5"}),
                                           (FakeTimmCNN, {"method": "forward_features"})])
def test_user_encoder_on_every_task_clean_and_attacked_stays_bit_identical(make, options):
    torch.manual_seed(0)  # the heads' initialization
    data = synthetic_dense(48, seed=0, size=16, num_classes=2)
    x, targets = data.tensors()
    model = make()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    enc = as_encoder(model, **options)
    shapes = probe(enc, (16, 16))
    heads = {"cls": build_head("cls", shapes, num_classes=2),
             "seg": build_head("seg", shapes, num_classes=data.num_classes),
             "depth": build_head("depth", shapes, min_depth=0.05, max_depth=1.0, num_bins=16)}
    g = torch.Generator().manual_seed(0)
    x_emb = attack_embeddings(enc, x, embedding_pgd(steps=3), g)  # one attacked set for every head
    task_attacks = {"cls": PGD(steps=3), "seg": SegPGD(steps=3), "depth": task_pgd(heads["depth"].loss, steps=3)}
    results = {}
    for task, head in heads.items():
        train_head(enc, head, x, targets[task], HeadTrainConfig(epochs=3))
        x_task = task_attacks[task](TaskModel(enc, head), x, targets[task], g)
        results[task] = {name: evaluate_head(enc, head, images, targets[task])
                         for name, images in (("clean", x), ("embedding", x_emb), ("task", x_task))}
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(p.requires_grad for p in model.parameters())
    for setting in ("clean", "embedding", "task"):
        assert 0 <= results["cls"][setting]["accuracy"] <= 1
        assert 0 <= results["seg"][setting]["miou"] <= 1
        assert results["depth"][setting]["rmse"] > 0 and 0 <= results["depth"][setting]["delta1"] <= 1
    assert results["depth"]["task"]["rmse"] > results["depth"]["clean"]["rmse"]
