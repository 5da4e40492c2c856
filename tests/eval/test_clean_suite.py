"""The ``clean`` suite: accuracy by hand, and no accuracy on no images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ssrobust.eval.clean  # noqa: F401  (registration)
from ssrobust.errors import ConfigError
from ssrobust.eval.base import SUITES, EvalContext


class Brightest(nn.Module):
    """Predicts the channel with the largest mean."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def context(n: int) -> EvalContext:
    images = torch.zeros(n, 4, 4, 3, dtype=torch.uint8)
    labels = torch.arange(n) % 3
    images[torch.arange(n), :, :, labels] = 200
    labels[:1] = (labels[:1] + 1) % 3  # one wrong label
    return EvalContext(model=Brightest(), images=images, labels=labels, class_names=["r", "g", "b"],
                       batch_size=4, progress=False)


def test_accuracy_by_hand():
    record = SUITES.get("clean")(context(6))
    assert record["n"] == 6 and record["accuracy"] == pytest.approx(5 / 6)


def test_no_images_is_an_error_not_accuracy_zero():
    with pytest.raises(ConfigError, match="clean suite: the test set has no images"):
        SUITES.get("clean")(context(0))
