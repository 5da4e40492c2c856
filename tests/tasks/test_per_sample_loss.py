"""Every registered task's per-sample loss: one value per clean image, averaging to the batch loss,
and each value independent of the other images of the batch (what attack objectives rely on)."""

from __future__ import annotations

import pytest
import torch
from task_helpers import SMALL_OPTIONS, all_task_names, structured_images

from ssrobust.models import create_model
from ssrobust.tasks import build_task, forward_with_tasks


def _setup(name: str):
    torch.manual_seed(0)
    model = create_model("tiny", 10, width=8).double().eval()
    task = build_task(name, model.num_features, **SMALL_OPTIONS.get(name, {})).double().eval()
    return model, task


@pytest.mark.parametrize("name", all_task_names())
def test_per_sample_losses_average_to_the_batch_loss(name: str):
    model, task = _setup(name)
    x = structured_images(3, seed=4).double()
    with torch.no_grad():
        _, batch = forward_with_tasks(model, x, {name: task}, torch.Generator().manual_seed(0))
        _, each = forward_with_tasks(model, x, {name: task}, torch.Generator().manual_seed(0),
                                     per_sample=True)
    assert each[name].shape == (3,)
    # float32 rounding at most: rotation_translation computes its heads' losses in float32
    torch.testing.assert_close(each[name].mean(), batch[name], rtol=1e-6, atol=1e-7)
    assert float(each[name].std()) > 0  # three different images: three different values


@pytest.mark.parametrize("name", all_task_names())
def test_a_samples_loss_does_not_depend_on_the_rest_of_the_batch(name: str):
    """Replacing images 1 and 2 leaves image 0's value unchanged (BatchNorm in eval mode, same
    generator seed and batch size, so the random views are drawn alike)."""
    model, task = _setup(name)
    x = structured_images(3, seed=5).double()
    other = x.clone()
    other[1:] = structured_images(2, seed=6).double()
    with torch.no_grad():
        a = forward_with_tasks(model, x, {name: task}, torch.Generator().manual_seed(1),
                               per_sample=True)[1][name]
        b = forward_with_tasks(model, other, {name: task}, torch.Generator().manual_seed(1),
                               per_sample=True)[1][name]
    torch.testing.assert_close(a[0], b[0], rtol=1e-10, atol=1e-12)
    assert not torch.allclose(a[1:], b[1:])  # the replaced images did change their own values


@pytest.mark.parametrize("options", [{"rotations": "one"}, {"rotations": "one", "separate_clean": True},
                                     {"fraction": 0.5}, {"rotations": "one", "fraction": 0.5}])
def test_cheaper_rotation_variants_have_per_sample_losses_averaging_to_the_batch_loss(options):
    """One rotation per image and the task on part of the batch: each image's value is its own
    predictions' mean CE (0 outside the subset, the subset scaled by B/m), averaging to the loss."""
    torch.manual_seed(0)
    model = create_model("tiny", 10, width=8).double().eval()
    task = build_task("rotation", model.num_features, **options).double().eval()
    x = structured_images(6, seed=4).double()
    with torch.no_grad():
        _, batch = forward_with_tasks(model, x, {"rotation": task}, torch.Generator().manual_seed(2))
        _, each = forward_with_tasks(model, x, {"rotation": task}, torch.Generator().manual_seed(2),
                                     per_sample=True)
    each = each["rotation"]
    assert each.shape == (6,)
    torch.testing.assert_close(each.mean(), batch["rotation"], rtol=1e-10, atol=1e-12)
    if options.get("fraction") == 0.5:
        assert torch.all(each[3:] == 0) and torch.all(each[:3] > 0)
