"""Contract every registered pretext task satisfies, and each task's loss going down when trained."""

from __future__ import annotations

import pytest
import torch
from task_helpers import KIM_TASKS, SMALL_OPTIONS, all_task_names, structured_images

from ssrobust.models import create_model
from ssrobust.tasks import TASKS, build_task, forward_with_tasks


def test_every_task_of_kim_and_translation_is_registered():
    assert set(KIM_TASKS) <= set(TASKS.names())


def _setup(name: str, seed: int = 0, small: bool = False):
    torch.manual_seed(seed)
    model = create_model("tiny", 10, width=8)
    return model, build_task(name, model.num_features, **(SMALL_OPTIONS.get(name, {}) if small else {}))


@pytest.mark.parametrize("name", all_task_names())
@pytest.mark.parametrize("batch_size", [1, 3])
def test_task_contract(name: str, batch_size: int):
    model, task = _setup(name)
    x = structured_images(batch_size, seed=batch_size)
    batch = task.prepare(x, torch.Generator().manual_seed(0))
    if batch.inputs is not None:
        assert batch.inputs.dim() == 4 and batch.inputs.shape[1:] == x.shape[1:]
        assert batch.inputs.shape[0] % batch_size == 0
        assert batch.inputs.dtype == x.dtype and batch.inputs.device == x.device
        assert float(batch.inputs.min()) >= -1e-6 and float(batch.inputs.max()) <= 1 + 1e-6
    clean, losses = forward_with_tasks(model, x, {name: task}, torch.Generator().manual_seed(0))
    assert clean.shape == (batch_size, model.num_features)
    loss = losses[name]
    assert loss.shape == () and loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    trunk = [p.grad for p in model.parameters() if p.grad is not None]
    assert trunk and all(torch.isfinite(g).all() for g in trunk)
    assert sum(float(g.abs().sum()) for g in trunk) > 0, "no gradient reaches the trunk"
    assert model.fc.weight.grad is None  # the task does not touch the main head
    head = [p.grad for p in task.parameters()]
    assert head and all(g is not None and torch.isfinite(g).all() for g in head)


@pytest.mark.parametrize("name", all_task_names())
def test_task_is_deterministic_given_the_generator(name: str):
    model, task = _setup(name)
    x = structured_images(3)
    runs = []
    for _ in range(2):
        b = task.prepare(x, torch.Generator().manual_seed(5))
        _, losses = forward_with_tasks(model, x, {name: task}, torch.Generator().manual_seed(5))
        runs.append((b, losses[name].detach()))
    (b1, l1), (b2, l2) = runs
    assert (b1.inputs is None) == (b2.inputs is None)
    if b1.inputs is not None:
        assert torch.equal(b1.inputs, b2.inputs)
    t1 = b1.targets if isinstance(b1.targets, (tuple, list)) else [b1.targets]
    t2 = b2.targets if isinstance(b2.targets, (tuple, list)) else [b2.targets]
    assert all(torch.equal(a, b) for a, b in zip(t1, t2))
    assert torch.equal(l1, l2)


@pytest.mark.parametrize("name", all_task_names())
def test_task_loss_decreases_when_trained(name: str):
    """A tiny trunk plus the task head fit one fixed batch of task views within 30 Adam steps."""
    model, task = _setup(name, seed=1, small=True)
    x = structured_images(8, seed=2)
    opt = torch.optim.Adam(list(model.parameters()) + list(task.parameters()), lr=1e-2)
    history = []
    for _ in range(30):
        # The same generator seed every step: the same views, so progress is measurable.
        _, losses = forward_with_tasks(model, x, {name: task}, torch.Generator().manual_seed(0))
        opt.zero_grad()
        losses[name].backward()
        opt.step()
        history.append(float(losses[name].detach()))
    first, last = sum(history[:3]) / 3, sum(history[-3:]) / 3
    assert last < 0.8 * first, f"{name}: loss {first:.4f} -> {last:.4f}"


def test_joint_and_separate_view_forwards():
    """BN in eval mode: both ways give the same losses. BN in train mode, separate views: a task's
    loss and gradient depend only on its own views (and the clean batch if it reads it), so adding
    another task changes nothing; in the joint forward it does (shared batch statistics)."""
    torch.manual_seed(0)
    model = create_model("tiny", 10, width=8)
    tasks = {n: build_task(n, model.num_features, **SMALL_OPTIONS.get(n, {}))
             for n in ("colorization", "rotation", "jigsaw")}
    x = structured_images(4, seed=1)
    model.eval()
    for t in tasks.values():
        t.eval()
    _, joint = forward_with_tasks(model, x, tasks, torch.Generator().manual_seed(0), joint=True)
    _, sep = forward_with_tasks(model, x, tasks, torch.Generator().manual_seed(0), joint=False)
    for n in tasks:
        torch.testing.assert_close(joint[n], sep[n], rtol=1e-5, atol=1e-6)

    model.train()
    for t in tasks.values():
        t.train()
    only = {"colorization": tasks["colorization"]}  # first in both dicts: same generator draws
    for joint_views, should_match in ((False, True), (True, False)):
        _, alone = forward_with_tasks(model, x, only, torch.Generator().manual_seed(0), joint=joint_views)
        _, withal = forward_with_tasks(model, x, tasks, torch.Generator().manual_seed(0), joint=joint_views)
        assert torch.allclose(alone["colorization"], withal["colorization"], rtol=1e-6) == should_match
    # Separate views: the clean features do not enter jigsaw's graph, but they do enter rotation's
    # (its 0-degree copy is the clean batch).
    clean, sep = forward_with_tasks(model, x, tasks, torch.Generator().manual_seed(0), joint=False)
    assert torch.autograd.grad(sep["jigsaw"], clean, retain_graph=True, allow_unused=True)[0] is None
    g_rot, = torch.autograd.grad(sep["rotation"], clean, retain_graph=True)
    assert g_rot.abs().sum() > 0


def test_separate_views_leave_running_statistics_to_the_clean_batch():
    """joint=False: BatchNorm running stats end as after a forward of the clean batch alone (the
    task views use their own batch statistics but do not update them); joint=True: all views do."""
    import copy

    torch.manual_seed(0)
    model = create_model("tiny", 10, width=8)
    tasks = {n: build_task(n, model.num_features, **SMALL_OPTIONS.get(n, {}))
             for n in ("colorization", "rotation")}
    x = structured_images(4, seed=2)
    alone = copy.deepcopy(model)
    alone.forward_features(x)
    expected = alone.state_dict()
    for joint, same in ((False, True), (True, False)):
        m = copy.deepcopy(model)
        forward_with_tasks(m, x, tasks, torch.Generator().manual_seed(0), joint=joint)
        got = m.state_dict()
        stats = [k for k in got if "running_" in k]
        assert stats
        assert all(torch.equal(got[k], expected[k]) for k in stats) == same
