"""``fraction`` for every pretext task: the task sees only the first round(f * B) images of a batch."""

import math

import pytest
import torch
from _helpers import counting_model

from ssrobust.errors import ConfigError
from ssrobust.tasks import TASKS, build_task, forward_with_tasks

GENERIC = [name for name in TASKS.names() if not TASKS.get(name).applies_fraction]


def test_every_task_but_rotation_gets_fraction_from_the_base_class():
    assert "rotation" not in GENERIC
    assert {"colorization", "deblurring", "inpainting", "jigsaw", "rgb_permutation",
            "reconstruction"} <= set(GENERIC)


@pytest.mark.parametrize("name", GENERIC)
def test_fraction_forwards_and_scores_only_the_first_images(name):
    model, _, seen = counting_model(torch.float64)
    x = torch.rand(8, 3, 32, 32, dtype=torch.float64)
    torch.manual_seed(1)
    part = build_task(name, model.num_features, fraction=0.25).double().eval()
    full = build_task(name, model.num_features).double().eval()
    full.load_state_dict(part.state_dict())
    assert part.fraction == 0.25 and part.subset_size(8) == 2

    with torch.no_grad():
        _, small = forward_with_tasks(model, x, {name: part}, torch.Generator().manual_seed(5))
        views_small = seen[-1] - 8
        _, ref = forward_with_tasks(model, x[:2], {name: full}, torch.Generator().manual_seed(5))
        views_ref = seen[-1] - 2
        _, whole = forward_with_tasks(model, x, {name: full}, torch.Generator().manual_seed(5))
        views_whole = seen[-1] - 8
    # the same views as the full task on the first two images, a quarter of the full task's views
    assert views_small == views_ref and 4 * views_small == views_whole
    torch.testing.assert_close(small[name], ref[name], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(small[name], whole[name])


@pytest.mark.parametrize("name", GENERIC)
def test_fraction_per_sample_losses_are_zero_outside_and_average_to_the_loss(name):
    model, _, _ = counting_model(torch.float64)
    x = torch.rand(6, 3, 32, 32, dtype=torch.float64)
    task = build_task(name, model.num_features, fraction=0.5).double().eval()
    with torch.no_grad():
        _, scalar = forward_with_tasks(model, x, {name: task}, torch.Generator().manual_seed(2))
        _, each = forward_with_tasks(model, x, {name: task}, torch.Generator().manual_seed(2),
                                     per_sample=True)
    each = each[name]
    assert each.shape == (6,)
    assert torch.all(each[3:] == 0) and torch.all(each[:3] > 0)
    torch.testing.assert_close(each.mean(), scalar[name], rtol=1e-10, atol=1e-12)


def test_fraction_never_leaves_the_task_without_an_image():
    task = build_task("jigsaw", 8, fraction=0.01)
    assert task.subset_size(3) == 1 and task.subset_size(1) == 1 and task.subset_size(1000) == 10


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, math.nan, "half", None])
@pytest.mark.parametrize("name", ["colorization", "rotation"])
def test_bad_fractions_are_refused_naming_the_task(name, bad):
    with pytest.raises(ConfigError, match=rf"{name}: fraction must lie in \(0, 1\]"):
        build_task(name, 8, fraction=bad)


def test_fraction_is_not_part_of_the_state_dict():
    a = build_task("rgb_permutation", 8, fraction=0.5)
    b = build_task("rgb_permutation", 8)
    assert a.state_dict().keys() == b.state_dict().keys()


def test_a_run_config_passes_fraction_to_any_task():
    from ssrobust.runs.config import RunConfig
    from ssrobust.runs.network import build_network
    from ssrobust.typedconfig import from_dict

    cfg = from_dict(RunConfig, {"model": {"name": "tiny"}, "tasks": ["colorization:0.5", "rotation:0.5"],
                                "task_options": {"colorization": {"fraction": 0.25},
                                                 "rotation": {"fraction": 0.5, "rotations": "one"}}})
    net = build_network(cfg, num_classes=10)
    assert net.tasks["colorization"].fraction == 0.25
    assert net.tasks["rotation"].fraction == 0.5 and net.tasks["rotation"].rotations == "one"
