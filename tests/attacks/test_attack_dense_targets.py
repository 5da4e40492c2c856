"""Targets that are maps (masks, depth) pass the input check; labels-only attacks still refuse them."""

from __future__ import annotations

import pytest
import torch

from ssrobust.attacks import PGD, AutoAttack
from ssrobust.attacks.base import check_inputs
from ssrobust.attacks.objectives import Objective


class MapTarget(Objective):
    """Per image: mean squared difference between the image's first channel and a target map."""

    def bind(self, model, x_clean, y):
        return lambda x_adv: (model(x_adv)[:, 0] - y).pow(2).flatten(1).mean(dim=1)


def test_pgd_takes_one_target_map_per_image():
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    target = torch.full((3, 8, 8), 0.5)
    x_adv = PGD(eps=8 / 255, steps=3, objective=MapTarget())(torch.nn.Identity(), x, target)
    before = (x[:, 0] - target).pow(2).mean()
    assert (x_adv[:, 0] - target).pow(2).mean() > before


@pytest.mark.parametrize("shape", [(2, 8, 8), (3, 1), (3, 8, 8, 1), ()])
def test_targets_must_belong_to_the_batch(shape):
    with pytest.raises(ValueError, match="do not match a batch of 3"):
        check_inputs(torch.rand(3, 3, 8, 8), torch.zeros(shape))


def test_labels_only_attacks_refuse_maps():
    with pytest.raises(ValueError, match="do not match a batch of 3"):
        check_inputs(torch.rand(3, 3, 8, 8), torch.zeros(3, 8, 8), dense_targets=False)
    with pytest.raises(ValueError, match="do not match a batch of 3"):
        AutoAttack()(torch.nn.Identity(), torch.rand(3, 3, 8, 8), torch.zeros(3, 8, 8, dtype=torch.long))
