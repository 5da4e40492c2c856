"""Cheaper rotation prediction: one random rotation per image, and the task on a fraction of the batch."""

import pytest
import torch
import torch.nn.functional as F
from _helpers import counting_model

from ssrobust.errors import ConfigError
from ssrobust.tasks import build_task, forward_with_tasks, rotate_batch


def test_one_rotation_per_image_shares_the_clean_forward_for_zero_degrees():
    model, features, seen = counting_model()
    task = build_task("rotation", model.num_features, rotations="one").eval()
    x = torch.rand(16, 3, 16, 16)
    batch = task.prepare(x, torch.Generator().manual_seed(3))
    ks = torch.randint(0, 4, (16,), generator=torch.Generator().manual_seed(3))
    zero, turned = (ks == 0).nonzero().flatten(), (ks != 0).nonzero().flatten()
    assert 0 < len(zero) < 16
    # the forwarded views are the non-zero draws, each turned by its own label
    assert batch.inputs.shape == (len(turned), 3, 16, 16)
    assert batch.targets.tolist() == [0] * len(zero) + ks[turned].tolist()
    for view, i in zip(batch.inputs, turned.tolist()):
        assert torch.equal(view, torch.rot90(x[i], int(ks[i]), dims=(1, 2)))
    # one joint forward of B + (#non-zero) images, and the loss of every image's own rotation
    _, losses = forward_with_tasks(model, x, {"rotation": task}, torch.Generator().manual_seed(3))
    assert seen == [16 + len(turned)]
    own = torch.stack([torch.rot90(x[i], int(ks[i]), dims=(1, 2)) for i in range(16)])
    expected = F.cross_entropy(task.head(features(own)), ks)
    assert torch.allclose(losses["rotation"], expected, atol=1e-5)


def test_one_rotation_is_deterministic_given_the_generator():
    task = build_task("rotation", 8, rotations="one")
    x = torch.rand(12, 3, 8, 8)
    a, b = (task.prepare(x, torch.Generator().manual_seed(7)) for _ in range(2))
    c = task.prepare(x, torch.Generator().manual_seed(8))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.targets, c.targets)


def test_one_rotation_with_separate_clean_forwards_every_image_once_more():
    model, _, seen = counting_model()
    task = build_task("rotation", model.num_features, rotations="one", separate_clean=True)
    x = torch.rand(6, 3, 16, 16)
    batch = task.prepare(x, torch.Generator().manual_seed(0))
    assert batch.inputs.shape == x.shape and batch.targets.shape == (6,)
    forward_with_tasks(model, x, {"rotation": task}, torch.Generator().manual_seed(0))
    assert seen == [12]


@pytest.mark.parametrize("separate_clean", [False, True])
def test_fraction_applies_the_four_rotations_to_the_first_images_only(separate_clean):
    model, features, seen = counting_model()
    task = build_task("rotation", model.num_features, fraction=0.25, separate_clean=separate_clean).eval()
    x = torch.rand(8, 3, 16, 16)
    _, losses = forward_with_tasks(model, x, {"rotation": task})
    assert seen == [8 + (4 if separate_clean else 3) * 2]  # round(0.25 * 8) = 2 images
    imgs, labels = rotate_batch(x[:2])
    expected = F.cross_entropy(task.head(features(imgs)), labels)
    assert torch.allclose(losses["rotation"], expected, atol=1e-5)
    assert task.subset_size(3) == 1 and task.subset_size(1) == 1  # never empty


def test_cheap_variants_combine_and_bad_options_fail():
    task = build_task("rotation", 8, rotations="one", fraction=0.5)
    batch = task.prepare(torch.rand(10, 3, 8, 8), torch.Generator().manual_seed(1))
    assert batch.targets.shape == (5,)
    with pytest.raises(ConfigError, match="rotations must be one of all, one"):
        build_task("rotation", 8, rotations="two")
    with pytest.raises(ConfigError, match="fraction must lie in"):
        build_task("rotation", 8, fraction=0.0)


def test_a_batch_that_draws_only_zero_degrees_forwards_no_extra_view():
    model, _, seen = counting_model()
    task = build_task("rotation", model.num_features, rotations="one")
    seed = next(s for s in range(100)
                if int(torch.randint(0, 4, (1,), generator=torch.Generator().manual_seed(s))) == 0)
    x = torch.rand(1, 3, 16, 16)
    _, losses = forward_with_tasks(model, x, {"rotation": task}, torch.Generator().manual_seed(seed))
    assert seen == [1] and torch.isfinite(losses["rotation"])
