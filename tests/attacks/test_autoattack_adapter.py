"""The AutoAttack adapter (needs the optional ``pyautoattack`` package; those tests skip without it)."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from attack_helpers import QuantizedLinear, predicted_labels
from ssrobust.attacks import AutoAttack, AutoAttackWarning, autoattack_available
from ssrobust.attacks import autoattack as adapter
from ssrobust.attacks.base import ball_excess, ball_tolerance

needs_package = pytest.mark.skipif(not autoattack_available()[0],
                                   reason="optional package pyautoattack is not installed")


def linear_case(eps: float, n: int = 16):
    model = QuantizedLinear(3 * 8 * 8, quantize=False)
    x = eps + (1 - 2 * eps) * torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return model, x, predicted_labels(model, x)


def exact_robust(model: QuantizedLinear, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Closed-form ℓ∞ robustness of a linear model (box not binding): min_j m_j - eps ||w_y - w_j||_1 > 0."""
    w = model.weight.detach().double()
    with torch.no_grad():
        z = model(x).double()
    m = z.gather(1, y[:, None]) - z
    l1 = (w[y][:, None, :] - w[None]).abs().sum(dim=2)
    return (m - eps * l1).scatter(1, y[:, None], float("inf")).min(dim=1).values > 0


@needs_package
def test_standard_version_result_is_valid_and_leaves_global_state_alone():
    eps = 8 / 255
    model, x, y = linear_case(eps, n=8)
    model.train()
    rng = torch.get_rng_state()
    x_adv = AutoAttack(eps=eps)(model, x, y)
    assert torch.equal(torch.get_rng_state(), rng)  # the package reseeds the global RNG
    assert model.training
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(ball_excess(x_adv, x, eps, "linf").max()) <= ball_tolerance(eps, "linf", 1)
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert bool((predicted_labels(model, x_adv) == y).sum() <= exact_robust(model, x, y, eps).sum())


@needs_package
def test_apgd_reaches_the_exact_robust_accuracy_of_a_linear_model():
    eps = 4 / 255
    model, x, y = linear_case(eps)
    exact = exact_robust(model, x, y, eps)
    assert 0 < int(exact.sum()) < len(y)  # a non-trivial case
    x_adv = AutoAttack(eps=eps, version="custom", attacks=("apgd-ce", "apgd-t"))(
        model, x, y, torch.Generator().manual_seed(0))
    assert torch.equal(predicted_labels(model, x_adv) == y, exact)


class Probabilities(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(dim=1)


@needs_package
def test_the_packages_own_flags_become_python_warnings():
    eps = 8 / 255
    model, x, y = linear_case(eps, n=4)
    with pytest.warns(AutoAttackWarning, match="probability"):
        AutoAttack(eps=eps, version="custom", attacks=("apgd-ce",))(Probabilities(model), x, y)


def test_custom_version_needs_a_list_of_attacks():
    with pytest.raises(ValueError, match="custom"):
        AutoAttack(version="custom")
    with pytest.raises(ValueError, match="custom"):
        AutoAttack(attacks=("square",))


def test_missing_package_gives_a_reason_and_a_clear_error(monkeypatch):
    real = importlib.import_module

    def fake(name, *args, **kwargs):
        if name == adapter.PACKAGE:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(adapter.importlib, "import_module", fake)
    ok, reason = autoattack_available()
    assert not ok and "pyautoattack" in reason and "pip install pyautoattack==0.2.0" in reason
    model, x, y = linear_case(8 / 255, n=2)
    with pytest.raises(ImportError, match="pyautoattack"):
        AutoAttack()(model, x, y)


class Saturated(nn.Module):
    """A linear model with logits x 10^4: cross-entropy and its gradient are exactly 0, so APGD-CE
    leaves every point to the DLR members."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = QuantizedLinear(3 * 8 * 8, quantize=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 1e4


@needs_package
def test_channels_last_images_reach_the_dlr_members_without_a_crash():
    # Images converted from [N, H, W, 3] arrays (as the evaluation suites do) are not contiguous;
    # the package's zero-gradient check calls .view() on the gradient and used to crash there.
    model = Saturated()
    images = torch.randint(0, 256, (8, 8, 8, 3), generator=torch.Generator().manual_seed(0),
                           dtype=torch.uint8)
    x = images.permute(0, 3, 1, 2).float().div(255)
    assert not x.is_contiguous()
    y = predicted_labels(model, x)
    x_adv, counts = AutoAttack(eps=8 / 255, version="custom", attacks=("apgd-ce", "apgd-t")).run(
        model, x, y, torch.Generator().manual_seed(0))
    assert counts["clean"] == 8 and counts["apgd-ce"] > 0  # CE leaves points to the DLR member...
    assert counts["apgd-t"] < counts["apgd-ce"]  # ... which ran and broke some of them
    assert int((predicted_labels(model, x_adv) != y).sum()) == 8 - counts["apgd-t"]


@needs_package
def test_targeted_members_are_capped_to_the_available_classes():
    # The package targets a fixed 9 classes; with 4 classes that would index past the logits.
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 4))
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(4, 48, generator=g))
    eps = 2 / 255
    x = torch.rand(6, 3, 4, 4, generator=g)
    y = predicted_labels(model, x)
    x_adv = AutoAttack(eps=eps, version="custom", attacks=("apgd-t",))(model, x, y)
    assert float(ball_excess(x_adv, x, eps, "linf").max()) <= ball_tolerance(eps, "linf", 1)
    three = nn.Sequential(nn.Flatten(), nn.Linear(48, 3))
    with pytest.raises(ValueError, match="at least 4 classes"):
        AutoAttack(eps=eps)(three, x, y % 3)


@needs_package
def test_an_active_tracer_survives_the_packages_dynamic_defense_check():
    import sys

    def tracer(frame, event, arg):
        return None

    model, x, y = linear_case(8 / 255, n=2)
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        AutoAttack(version="custom", attacks=("apgd-ce",))(model, x, y)
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(previous)


def test_breakdown_is_parsed_from_the_progress_log():
    lines = ["using standard version including apgd-ce, apgd-t.", "initial accuracy: 75.00%",
             "apgd-ce - 1/1 - 2 out of 6 successfully perturbed",
             "robust accuracy after APGD-CE: 50.00% (total time 0.1 s)"]
    out = adapter.parse_breakdown(lines, ["apgd-ce", "apgd-t", "square"], 8)
    assert out == {"clean": 6, "apgd-ce": 4, "apgd-t": 4, "square": 4}  # later members: skipped
    # two decimals of a percent recover exact counts for n below 10,000
    n = 9999
    lines = [f"initial accuracy: {4321 / n:.2%}", f"robust accuracy after APGD-T: {1234 / n:.2%}"]
    assert adapter.parse_breakdown(lines, ["apgd-t"], n) == {"clean": 4321, "apgd-t": 1234}
    with pytest.raises(RuntimeError, match="initial accuracy"):
        adapter.parse_breakdown(["something else"], ["apgd-ce"], 4)


@needs_package
def test_run_returns_the_breakdown_and_keeps_the_log_out_of_the_application(caplog):
    import logging

    eps = 4 / 255
    model, x, y = linear_case(eps)
    logger = logging.getLogger(adapter._LOGGER)
    before = (logger.level, logger.propagate)
    with caplog.at_level(logging.DEBUG):
        x_adv, counts = AutoAttack(eps=eps, version="custom", attacks=("apgd-ce", "apgd-t")).run(
            model, x, y, torch.Generator().manual_seed(0))
    assert not [r for r in caplog.records if r.name == adapter._LOGGER]
    assert (logger.level, logger.propagate) == before
    assert list(counts) == ["clean", "apgd-ce", "apgd-t"]
    assert counts["clean"] == len(y)  # labels are the model's predictions
    assert counts["apgd-ce"] >= counts["apgd-t"] == int((predicted_labels(model, x_adv) == y).sum())


@needs_package
def test_an_unreadable_log_costs_the_breakdown_not_the_attack(monkeypatch):
    eps = 4 / 255
    model, x, y = linear_case(eps, n=4)

    def broken(*args, **kwargs):
        raise RuntimeError("log format changed")

    monkeypatch.setattr(adapter, "parse_breakdown", broken)
    with pytest.warns(RuntimeWarning, match="log format changed"):
        x_adv, counts = AutoAttack(eps=eps, version="custom", attacks=("apgd-ce",)).run(model, x, y)
    assert counts == {} and x_adv.shape == x.shape
