"""Kendall et al.'s uncertainty weighting: value, gradients and optimum in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.errors import ConfigError, DivergenceError
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.weighting import build_weighting
from ssrobust.weighting.uncertainty import UncertaintyWeighting


def test_combine_value_and_log_variance_gradient_in_closed_form():
    w = UncertaintyWeighting({"rotation": 0.5, "colorization": 2.0})
    assert w.weights() == pytest.approx({"rotation": 0.5, "colorization": 2.0})
    s = w.log_vars.detach().clone()
    assert s.tolist() == pytest.approx([math.log(2.0), -math.log(2.0)])
    main = torch.tensor(1.3)
    aux = {"rotation": torch.tensor(0.7), "colorization": torch.tensor(3.1)}
    total = w.combine(main, aux)
    expected = 1.3 + math.exp(-s[0]) * 0.7 + s[0] + math.exp(-s[1]) * 3.1 + s[1]
    assert total.item() == pytest.approx(float(expected), rel=1e-6)
    total.backward()
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L
    assert w.log_vars.grad.tolist() == pytest.approx([1 - 0.5 * 0.7, 1 - 2.0 * 3.1], rel=1e-6)


def test_optimum_weight_is_the_inverse_loss():
    w = UncertaintyWeighting({"a": 1.0, "b": 1.0})
    opt = torch.optim.SGD(w.parameters(), lr=0.05)
    losses = {"a": torch.tensor(0.25), "b": torch.tensor(4.0)}
    for _ in range(3000):
        opt.zero_grad()
        w.combine(torch.tensor(0.0), losses).backward()
        opt.step()
    assert w.weights() == pytest.approx({"a": 4.0, "b": 0.25}, rel=1e-3)


def test_task_losses_get_the_learned_weight_and_main_weight_one():
    w = UncertaintyWeighting({"a": 0.5})
    main = torch.tensor(2.0, requires_grad=True)
    la = torch.tensor(1.0, requires_grad=True)
    w.combine(main, {"a": la}).backward()
    assert float(main.grad) == 1.0 and float(la.grad) == pytest.approx(0.5)


def test_registry_no_weight_decay_and_invalid_weights():
    w = build_weighting("uncertainty", {"a": 0.5})
    names = dict(w.named_parameters())
    assert w.no_weight_decay() == ["log_vars"] and set(w.no_weight_decay()) <= set(names)
    assert "log_vars" in w.state_dict()
    with pytest.raises(ConfigError):
        UncertaintyWeighting({"a": 0.0})
    for bad in (float("inf"), float("nan")):  # -log(inf) = -inf would overflow in weights()
        with pytest.raises(ConfigError, match="finite and > 0"):
            UncertaintyWeighting({"a": bad})


def test_weights_of_a_huge_negative_log_variance_are_inf_not_overflow():
    w = UncertaintyWeighting({"a": 1.0, "b": 1.0})
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([-1000.0, 2.0]))  # exp(1000) overflows a double
    weights = w.weights()
    assert weights["a"] == math.inf and weights["b"] == pytest.approx(math.exp(-2.0))


def test_a_diverging_run_stops_with_the_step_error_not_overflow(tmp_path):
    # lr 1e6 drives log_vars to about -1e6 in the first step: exp(-s) is then inf.
    cfg = make_config(tiny_run_config(tmp_path, epochs=1, tasks=["rotation"], optim={"lr": 1e6},
                                      weighting={"name": "uncertainty"}))
    with pytest.raises(DivergenceError, match=r"loss became (inf|nan) at epoch 0 step 1; no checkpoint"):
        fit(cfg)
