"""TaskHead: pretext-task heads scaled like the backbone's classifier (fastnet's 1/9)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssrobust.models import create_model
from ssrobust.runs.config import RunConfig
from ssrobust.typedconfig import from_dict
from ssrobust.runs.network import build_network
from ssrobust.tasks import TaskHead, build_task
from ssrobust.tasks.base import forward_with_tasks

HEADED = ("rotation", "jigsaw", "rgb_permutation", "translation", "rotation_translation")


def test_task_head_is_a_scaled_linear_with_linear_state():
    torch.manual_seed(0)
    head, ref = TaskHead(5, 3), nn.Linear(5, 3)
    ref.load_state_dict(head.state_dict())          # same keys and shapes as nn.Linear
    x = torch.randn(4, 5)
    assert torch.equal(head(x), ref(x))             # scale 1: exactly nn.Linear
    head.scale = 0.25
    torch.testing.assert_close(head(x), 0.25 * ref(x))


@pytest.mark.parametrize("model,expected", [("fastnet", 1 / 9), ("tiny", 1.0)])
def test_build_network_scales_every_task_head_like_the_classifier(model, expected):
    kwargs = {"widths": [8, 8, 8], "whiten_images": 16} if model == "fastnet" else {}
    cfg = from_dict(RunConfig, {"model": {"name": model, "kwargs": kwargs}, "tasks": [f"{t}:0.5" for t in HEADED]})
    net = build_network(cfg, num_classes=10)
    heads = [m for t in net.tasks.values() for m in t.modules() if isinstance(m, TaskHead)]
    assert len(heads) == 1 + 1 + 1 + 2 + 3
    assert all(h.scale == pytest.approx(expected) for h in heads)


def test_match_backbone_rejects_a_bad_head_scale():
    task = build_task("rotation", 8)
    with pytest.raises(ValueError, match="head_scale"):
        task.match_backbone(type("B", (), {"head_scale": 0.0})())


def _rotation_losses(scale: float, steps: int = 12) -> list[float]:
    """Train fastnet + rotation at the fast recipe's SGD settings (lr 1.5, Nesterov 0.85) on one
    fixed batch of smooth images; the total loss after every step."""
    torch.manual_seed(0)
    model = create_model("fastnet", num_classes=4, widths=[16, 32, 32])
    x = F.interpolate(torch.rand(64, 3, 4, 4), size=32, mode="bilinear", align_corners=False)
    y = torch.randint(0, 4, (64,))
    model.init_from_data(x)
    task = build_task("rotation", model.num_features)
    task.match_backbone(model)
    for m in task.modules():
        if isinstance(m, TaskHead) and scale != 1 / 9:
            m.scale = scale
    params = [p for p in [*model.parameters(), *task.parameters()] if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1.5, momentum=0.85, nesterov=True)
    losses = []
    for _ in range(steps):
        feats, task_losses = forward_with_tasks(model, x, {"rotation": task})
        loss = F.cross_entropy(model.forward_head(feats), y) + 0.5 * task_losses["rotation"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_fastnet_rotation_trains_at_the_fast_recipes_learning_rate():
    losses = _rotation_losses(1 / 9)
    assert all(v == v for v in losses)  # no NaN
    assert losses[-1] < losses[0]
    assert max(losses) < 2 * losses[0]
