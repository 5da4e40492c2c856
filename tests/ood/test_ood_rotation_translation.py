"""The rotation_translation pretext task, its OE loss, and one-class scoring after brief training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ood_toy import make_toy, to_uint8

from ssrobust.models import create_model
from ssrobust.ood import auroc_table, make_ood_set, one_class_metrics, one_class_scores
from ssrobust.ood.transforms import transform_per_sample, transform_table
from ssrobust.tasks import TASKS, build_task, forward_with_tasks
from ssrobust.tasks.rotation_translation import RotationTranslationPrediction, oe_uniform_loss


def _labels_to_t(r: torch.Tensor, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    return 9 * r + 3 * v + h


@pytest.mark.parametrize("mode,factor", [("rotations", 4), ("random", 1), ("all", 36)])
def test_prepare_images_match_labels(mode: str, factor: int) -> None:
    task = build_task("rotation_translation", 8, mode=mode, shift=4)
    assert isinstance(task, RotationTranslationPrediction) and "rotation_translation" in TASKS
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    batch = task.prepare(x, torch.Generator().manual_seed(1))
    r, v, h = batch.targets
    assert batch.inputs.shape == (3 * factor, 3, 16, 16) and r.shape == (3 * factor,)
    t = _labels_to_t(r, v, h)
    source = x.repeat(factor, 1, 1, 1)  # every mode lists copies of the batch in batch order
    assert torch.equal(batch.inputs, transform_per_sample(source, t, shift=4))
    if mode == "rotations":  # four rotations of the same translation pair per image
        assert torch.equal(r, torch.arange(4).repeat_interleave(3))
        assert torch.equal((3 * v + h).view(4, 3), (3 * v + h)[:3].repeat(4, 1))
    if mode == "all":
        assert torch.equal(t, torch.arange(36).repeat_interleave(3))


def test_prepare_is_reproducible_and_random() -> None:
    task = build_task("rotation_translation", 8, mode="random", shift=4)
    x = torch.rand(64, 3, 16, 16)
    a = task.prepare(x, torch.Generator().manual_seed(5))
    b = task.prepare(x, torch.Generator().manual_seed(5))
    c = task.prepare(x, torch.Generator().manual_seed(6))
    assert torch.equal(a.inputs, b.inputs)
    assert not torch.equal(_labels_to_t(*a.targets), _labels_to_t(*c.targets))
    assert len(torch.unique(_labels_to_t(*a.targets))) > 20  # 64 draws cover most of the 36


def test_bad_mode_raises() -> None:
    with pytest.raises(ValueError, match="mode"):
        build_task("rotation_translation", 8, mode="some")


def test_oe_uniform_loss() -> None:
    zeros = [torch.zeros(5, k) for k in (4, 3, 3)]
    minimum = (math.log(4) + 2 * math.log(3)) / 3
    assert float(oe_uniform_loss(*zeros)) == pytest.approx(minimum)
    peaked = [z.clone() for z in zeros]
    for z in peaked:
        z[:, 0] = 4.0
    assert float(oe_uniform_loss(*peaked)) > minimum + 0.5
    # Gradient descent on the logits moves them towards uniform (the loss decreases).
    z = [p.clone().requires_grad_(True) for p in peaked]
    before = float(oe_uniform_loss(*z).detach())
    oe_uniform_loss(*z).backward()
    with torch.no_grad():
        after = float(oe_uniform_loss(*[p - 1.0 * p.grad for p in z]))
    assert after < before


@pytest.fixture(scope="module")
def one_class_model():
    """Tiny trunk + rotation_translation (+ rotation) heads trained on class 0 toy images only.

    Returns the model, tasks, and the task losses on a fixed evaluation batch before and after.
    """
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = create_model("tiny", 1, width=8)
    tasks = {"rotation_translation": build_task("rotation_translation", model.num_features, shift=4),
             "rotation": build_task("rotation", model.num_features)}
    x_eval, y_eval = make_toy(64, 16, torch.Generator().manual_seed(99))
    x_eval = x_eval[y_eval == 0]

    def eval_loss() -> float:
        with torch.no_grad():
            model.eval()
            _, losses = forward_with_tasks(model, x_eval, tasks, torch.Generator().manual_seed(0))
            model.train()
        return float(losses["rotation_translation"])

    params = list(model.parameters()) + [p for t in tasks.values() for p in t.parameters()]
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    before = eval_loss()
    for _ in range(40):
        x, y = make_toy(32, 16, gen)
        _, losses = forward_with_tasks(model, x[y == 0], tasks, gen)
        loss = losses["rotation_translation"] + losses["rotation"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tasks, before, eval_loss()


def test_loss_decreases(one_class_model) -> None:
    _, _, before, after = one_class_model
    chance = (math.log(4) + 2 * math.log(3)) / 3
    assert before == pytest.approx(chance, abs=0.3)
    # Horizontal shifts of a left-right constant ramp are only visible at the reflected border, so
    # the loss cannot reach 0 quickly; rotation and vertical shift are learnt.
    assert after < 0.75 * before


def test_one_class_scores_separate_noise(one_class_model) -> None:
    model, tasks, _, _ = one_class_model
    x_in, y = make_toy(100, 16, torch.Generator().manual_seed(7))
    in_imgs = to_uint8(x_in[y == 0]).numpy()
    noise = make_ood_set("gaussian", len(in_imgs), (16, 16), seed=3)
    images = np.concatenate([in_imgs, noise])
    labels = np.r_[np.zeros(len(in_imgs), int), np.ones(len(noise), int)]
    res = one_class_metrics(model, images, labels, [0], tasks, batch_size=64)
    assert set(res) == {"rotation_translation", "rotnet"}
    for name, m in res.items():
        assert m["auroc_out_pos"] > 0.9, name
    s = one_class_scores(model, in_imgs[:5], tasks, ["rotation_translation"])
    # The score is minus a sum of 36 x 3 probabilities: within [-108, 0].
    assert s["rotation_translation"].shape == (5,)
    assert np.all((s["rotation_translation"] <= 0) & (s["rotation_translation"] >= -108))


def test_auroc_table() -> None:
    per_class = {
        "plane": {"ours": {"auroc_out_pos": 0.9, "fpr_at_95_tpr_in": 0.3}, "ocsvm": 0.6},
        "car": {"ours": {"auroc_out_pos": 0.7, "fpr_at_95_tpr_in": 0.5}},
    }
    tab = auroc_table(per_class)
    assert tab["methods"] == ["ours", "ocsvm"] and tab["classes"] == ["plane", "car"]
    assert tab["mean"] == {"ours": pytest.approx(0.8), "ocsvm": pytest.approx(0.6)}
    assert tab["headers"] == ["class", "ours", "ocsvm"]
    assert tab["rows"][1] == ["car", 0.7, None]
    assert tab["rows"][-1][0] == "mean"
    assert auroc_table(per_class, metric="fpr_at_95_tpr_in")["mean"]["ours"] == pytest.approx(0.4)
    with pytest.raises(ValueError, match="unknown metric 'fpr95'"):
        auroc_table(per_class, metric="fpr95")
    # Schema-1 records (keys auroc, fpr95) still tabulate; they hold no in-positive FPR95.
    old = {"plane": {"ours": {"auroc": 0.9, "fpr95": 0.3}}}
    assert auroc_table(old)["mean"]["ours"] == pytest.approx(0.9)
    assert auroc_table(old, metric="fpr_at_95_tpr_out")["mean"]["ours"] == pytest.approx(0.3)
    assert auroc_table(old, metric="fpr_at_95_tpr_in")["mean"]["ours"] is None


def test_transform_table_used_by_task_heads() -> None:
    task = build_task("rotation_translation", 6)
    r, v, h = task.logits(torch.zeros(2, 6))
    assert (r.shape, v.shape, h.shape) == ((2, 4), (2, 3), (2, 3))
    assert transform_table().shape == (36, 3)
