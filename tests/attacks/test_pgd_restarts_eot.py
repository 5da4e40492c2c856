"""PGD restarts prefer a misclassifying iterate, and EOT averages gradients over forward passes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from attack_helpers import Linear
from ssrobust.attacks import PGD, Margin
from ssrobust.attacks.objectives import Objective


@dataclass(frozen=True)
class TrueLogit(Objective):
    """The logit of the true class: higher means *more* correctly classified, so the iterate with
    the highest objective value is never the misclassified one when both exist."""

    def bind(self, model, x_clean, y):
        return lambda x_adv: model(x_adv).float().gather(1, y[:, None]).squeeze(1)


def test_a_misclassifying_restart_beats_a_higher_loss_that_is_still_correct():
    # Two "pixels", logits z = x; x = (0.5, 0.47) is class 0 with a small margin. With step size 0
    # each restart returns its random start, so each restart's iterate is known exactly.
    model = Linear(torch.eye(2), torch.zeros(2))
    x = torch.tensor([0.5, 0.47]).repeat(16, 1).view(16, 1, 1, 2)
    y = torch.zeros(16, dtype=torch.long)
    attack = PGD(eps=0.05, step_size=0.0, steps=1, restarts=6, objective=TrueLogit())
    gen = torch.Generator().manual_seed(3)
    single = PGD(eps=0.05, step_size=0.0, steps=1, objective=TrueLogit())
    runs = torch.stack([single(model, x, y, gen) for _ in range(6)])  # the same draws, in order
    got = attack(model, x, y, torch.Generator().manual_seed(3))
    with torch.no_grad():
        fooled = torch.stack([model(r).argmax(1) != y for r in runs])  # [6, 16]
        value = torch.stack([model(r)[:, 0] for r in runs])
    # The expected pick: a misclassified restart if there is one, else the highest objective; among
    # misclassified ones the highest objective, too.
    key = value + 1e3 * fooled.float()
    expected = runs[key.argmax(0), torch.arange(16)]
    assert bool(fooled.any(0).any()) and bool((~fooled).any(0).all())  # both kinds occur per sample
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    with torch.no_grad():
        assert torch.equal(model(got).argmax(1) != y, fooled.any(0))


class CyclingLinear(nn.Module):
    """Logits ``z = <w_c, x> e_0`` where ``w_c`` cycles through fixed vectors at every forward
    pass: a model that is random at inference, made predictable for the test."""

    def __init__(self, weights: torch.Tensor) -> None:
        super().__init__()
        self.weights, self.calls = weights, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weights[self.calls % len(self.weights)]
        self.calls += 1
        z0 = x.flatten(1) @ w
        return torch.stack([z0, torch.zeros_like(z0)], dim=1)


def test_eot_steps_along_the_mean_gradient_over_passes():
    g = torch.Generator().manual_seed(0)
    weights = torch.randn(3, 12, generator=g)
    x = torch.full((1, 3, 2, 2), 0.5)
    y = torch.tensor([1])  # the margin z0 - z1 = <w_c, x>: its gradient in pass c is w_c exactly
    step = 0.01
    attack = PGD(eps=0.1, step_size=step, steps=1, random_start=False, objective=Margin(),
                 eot_samples=3)
    x_adv = attack(CyclingLinear(weights), x, y)
    expected = x + step * weights.mean(0).sign().view_as(x)
    torch.testing.assert_close(x_adv, expected, rtol=0, atol=1e-7)
    one_pass = PGD(eps=0.1, step_size=step, steps=1, random_start=False, objective=Margin())(
        CyclingLinear(weights), x, y)
    assert not torch.equal(one_pass, x_adv)  # a single pass follows w_0 only


def test_eot_samples_must_be_positive():
    with pytest.raises(ValueError, match="eot_samples"):
        PGD(eot_samples=0)
