"""Properties every registered attack must have, for each norm (parametrized over ``ATTACKS``)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from ssrobust.attacks import ATTACKS, PGD, autoattack_available, build_attack
from ssrobust.attacks.base import ball_excess, ball_tolerance
from ssrobust.tasks import RotationPrediction
from ssrobust.tasks.objectives import CrossEntropyPlusTasks

HAVE_AA, _ = autoattack_available()

# Small budgets so the whole folder stays fast; every registered attack must appear here.
FAST = {
    "fgsm": {},
    "pgd": {"steps": 3, "step_size": 2 / 255},
    "spsa": {"steps": 2, "samples": 4},
    "autoattack": {"version": "custom", "attacks": ("apgd-ce",)},
}
EPS = {"linf": 8 / 255, "l2": 0.5}


def make(name: str, norm: str, **over) -> object:
    if name == "autoattack" and not HAVE_AA:
        pytest.skip("pyautoattack is not installed")
    opts = {"eps": EPS[norm], "norm": norm, **FAST[name], **over}
    return build_attack(name, **opts)


def test_every_registered_attack_has_a_fast_configuration():
    assert set(ATTACKS.names()) == set(FAST)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", sorted(FAST))
def test_result_inside_ball_and_box(name, norm, tiny, batch):
    x, y = batch
    attack = make(name, norm)
    x_adv = attack(tiny, x, y, torch.Generator().manual_seed(0))
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    tol = ball_tolerance(EPS[norm], norm, x[0].numel())
    assert float(ball_excess(x_adv, x, EPS[norm], norm).max()) <= tol
    if name != "autoattack":  # AutoAttack leaves already-misclassified points untouched
        assert not torch.equal(x_adv, x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", sorted(FAST))
def test_eps_zero_returns_the_input(name, norm, tiny, batch):
    x, y = batch
    x_adv = make(name, norm, eps=0.0)(tiny, x, y, torch.Generator().manual_seed(0))
    assert torch.equal(x_adv, x)


@pytest.mark.parametrize("name", ["pgd", "spsa"])
def test_zero_steps_returns_the_input(name, tiny, batch):
    x, y = batch
    x_adv = make(name, "linf", steps=0)(tiny, x, y, torch.Generator().manual_seed(0))
    assert torch.equal(x_adv, x)


class ModeProbe(nn.Module):
    """Wraps a model and records the ``training`` flag seen by every forward pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.model.training)
        return self.model(x)


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
@pytest.mark.parametrize("name", sorted(FAST))
def test_mode_used_during_attack_and_restored_per_module(name, bn_mode, tiny, batch):
    x, y = batch
    probe = ModeProbe(tiny)
    probe.train()
    tiny.body[0].eval()  # a deliberately mixed state must come back exactly
    before = [m.training for m in probe.modules()]
    make(name, "linf", bn_mode=bn_mode)(probe, x, y, torch.Generator().manual_seed(0))
    assert [m.training for m in probe.modules()] == before
    assert probe.seen and all(flag == (bn_mode == "train") for flag in probe.seen)


def test_bn_train_mode_updates_running_stats_and_eval_mode_does_not(tiny, batch):
    x, y = batch
    bn = tiny.body[0][1]
    start = bn.running_mean.clone()
    PGD(steps=2, bn_mode="eval")(tiny, x, y)
    assert torch.equal(bn.running_mean, start)
    PGD(steps=2, bn_mode="train")(tiny, x, y)  # the Hendrycks et al. code's behaviour
    assert not torch.equal(bn.running_mean, start)


def test_objective_modules_get_the_attack_mode_and_are_restored(tiny, batch):
    x, y = batch
    task = RotationPrediction(tiny.num_features)
    task.train()
    attack = PGD(steps=2, objective=CrossEntropyPlusTasks({"rotation": task}, weight=0.5))
    seen_head = []
    task.head.register_forward_pre_hook(lambda m, args: seen_head.append(m.training))
    attack(tiny, x, y)
    assert seen_head and not any(seen_head)
    assert task.head.training


@pytest.mark.parametrize("name", sorted(FAST))
def test_deterministic_given_a_generator(name, tiny, batch):
    x, y = batch
    attack = make(name, "linf")
    a = attack(tiny, x, y, torch.Generator().manual_seed(5))
    b = attack(tiny, x, y, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_random_start_depends_on_the_generator(tiny, batch):
    x, y = batch
    attack = PGD(steps=1, step_size=1 / 255)
    a = attack(tiny, x, y, torch.Generator().manual_seed(5))
    b = attack(tiny, x, y, torch.Generator().manual_seed(6))
    assert not torch.equal(a, b)


def test_attacks_are_frozen_and_validate_their_fields():
    attack = PGD()
    with pytest.raises(dataclasses.FrozenInstanceError):
        attack.eps = 0.1  # type: ignore[misc]
    with pytest.raises(ValueError, match="norm"):
        PGD(norm="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bn_mode"):
        PGD(bn_mode="frozen")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        PGD(eps=-0.1)
    with pytest.raises(KeyError, match="known"):
        build_attack("cw")


@pytest.mark.parametrize("name", sorted(FAST))
@pytest.mark.parametrize("eps", [8, 1.5, -0.1, float("nan"), float("inf")])
def test_linf_eps_outside_the_unit_interval_fails_at_construction(name, eps):
    # eps=8 is the classic typo for 8/255: beyond 1 the ℓ∞ ball holds the whole [0, 1] box.
    # (AutoAttack is constructed without its package; only calling it needs the package.)
    extra = {"version": "custom", "attacks": ("apgd-ce",)} if name == "autoattack" else {}
    with pytest.raises(ValueError, match=r"eps must be a finite number in \[0, 1\], got"):
        build_attack(name, eps=eps, norm="linf", **extra)


def test_l2_radius_may_exceed_one_but_not_be_negative_or_nan():
    assert PGD(eps=1.5, norm="l2").eps == 1.5  # the paper configs sweep ℓ2 radii up to 1.5
    for eps in (-0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="eps must be a finite number >= 0"):
            PGD(eps=eps, norm="l2")


@pytest.mark.parametrize("name, options, message", [
    ("pgd", {"step_size": float("nan")}, "step_size=nan"),
    ("pgd", {"step_size": float("inf")}, "step_size=inf"),
    ("pgd", {"steps": -1}, "steps=-1"),
    ("pgd", {"restarts": 0}, "restarts=0"),
    ("spsa", {"delta": float("nan")}, "delta=nan"),
    ("spsa", {"step_size": float("inf")}, "step_size=inf"),
    ("spsa", {"step_size": -0.01}, "step_size=-0.01"),
    ("autoattack", {"batch_size": 0}, "batch_size=0"),
    ("autoattack", {"square_queries": 0}, "square_queries=0"),
])
def test_step_settings_are_validated_at_construction(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_attack(name, **options)


def test_rejects_inputs_outside_the_unit_box(tiny, batch):
    x, y = batch
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PGD()(tiny, x * 2 - 0.5, y)


def test_no_parameter_gradients_are_left_behind(tiny, batch):
    x, y = batch
    PGD(steps=2)(tiny, x, y)
    assert all(p.grad is None for p in tiny.parameters())


def test_bf16_autocast_gives_float32_results_in_the_ball(tiny, batch):
    x, y = batch
    attack = PGD(steps=3, autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    x_adv = attack(tiny, x, y, torch.Generator().manual_seed(0))
    assert x_adv.dtype == torch.float32
    assert float(ball_excess(x_adv, x, attack.eps, "linf").max()) <= ball_tolerance(attack.eps, "linf", 1)
    assert not torch.equal(x_adv, x)
