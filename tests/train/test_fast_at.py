"""fast_at (Wong et al. 2020): FGSM with random start at 1.25·ε, and the catastrophic-overfitting
check that stops training and keeps the last good epoch."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.attacks import ball_excess, ball_tolerance
from ssrobust.errors import ConfigError
from ssrobust.models import create_model
from ssrobust.experiments.run import train_and_evaluate as fit
from ssrobust.train import adversarial
from ssrobust.runs.network import Network
from ssrobust.train.strategies import build_strategy

EPS = 8 / 255


def test_fast_at_is_one_fgsm_step_of_1_25_eps_from_a_random_start():
    torch.manual_seed(0)
    model = create_model("tiny", 3, width=4)
    net = Network(model, {}).train()
    x, y = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    fast = build_strategy("fast_at", eps=EPS)
    assert fast.template.steps == 1 and fast.template.step_size == pytest.approx(1.25 * EPS)
    assert fast.template.random_start
    reference = build_strategy("pgd_at", eps=EPS, steps=1, step_size=1.25 * EPS)
    twin = copy.deepcopy(net)  # the training forward updates BatchNorm statistics
    a = fast(net, x, y, torch.Generator().manual_seed(4)).inputs
    b = reference(twin, x, y, torch.Generator().manual_seed(4)).inputs
    assert torch.equal(a, b)
    assert float(ball_excess(a, x, EPS, "linf").max()) <= ball_tolerance(EPS, "linf", x[0].numel())
    assert float((a - x).abs().max()) == pytest.approx(EPS, abs=1e-6)  # the step overshoots, then clips


class Constant(nn.Module):
    """Always predicts class 0 (whatever the input): robust to any attack."""

    def forward(self, x):
        return torch.stack([x.sum((1, 2, 3)) * 0 + 1.0, x.sum((1, 2, 3)) * 0], dim=1)


class Brittle(nn.Module):
    """Correct (class 0, margin 0.05) on the clean images, wrong once any pixel budget is spent:
    logit_1 = sum(x - x_clean) over all pixels, so a perturbation of 8/255 adds about 24."""

    def __init__(self, x_clean):
        super().__init__()
        self.register_buffer("x_clean", x_clean)

    def forward(self, x):
        d = (x - self.x_clean).sum((1, 2, 3))
        return torch.stack([torch.full_like(d, 0.05), d], dim=1)


def held_out(n=16):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(30, 220, (n, 3, 16, 16), generator=g, dtype=torch.uint8)
    return x, torch.zeros(n, dtype=torch.long)


def test_the_check_fires_on_a_constructed_collapse():
    data = held_out()
    fast = build_strategy("fast_at", eps=EPS, check_images=16, check_steps=3)
    autocast = lambda: torch.autocast("cpu", enabled=False)  # noqa: E731
    first = fast.end_of_epoch(Constant(), data, autocast)
    assert first.stop is None and first.metrics["overfit_check"]["pgd_accuracy"] == 1.0
    brittle = Brittle(data[0].float() / 255)
    with torch.no_grad():
        assert (brittle(data[0].float() / 255).argmax(1) == 0).all()  # clean accuracy 100%
    second = fast.end_of_epoch(brittle, data, autocast)
    assert second.metrics["overfit_check"] == {"pgd_accuracy": 0.0, "previous": 1.0, "images": 16}
    assert "catastrophic overfitting" in second.stop and "1.000 to 0.000" in second.stop
    assert fast.state_dict() == {"previous": 1.0}  # the collapsed epoch does not become the reference


def test_small_drops_do_not_stop_and_zero_images_switch_the_check_off(monkeypatch):
    fast = build_strategy("fast_at", check_drop=0.2)
    values = iter([0.6, 0.45, 0.5])
    monkeypatch.setattr(adversarial, "robust_accuracy", lambda *a: next(values))
    data = held_out()
    assert [fast.end_of_epoch(None, data, None).stop for _ in range(3)] == [None, None, None]
    assert build_strategy("fast_at", check_images=0).end_of_epoch(None, None, None) is None


def test_a_collapse_below_the_absolute_threshold_is_caught(monkeypatch):
    """Measured on real CIFAR-10 (2026-11-30, fastnet 32/64/128 + rotation, seed 1): PGD accuracy
    0.172 -> 0.053 -> 0.010 on 512 images. No fall exceeds the absolute 0.2, so the old
    check let the collapsed model finish; the relative criterion stops at the first fall."""
    fast = build_strategy("fast_at", check_images=512)
    values = iter([0.172, 0.053])
    monkeypatch.setattr(adversarial, "robust_accuracy", lambda *a: next(values))
    data = held_out(512)
    stops = [fast.end_of_epoch(None, data, None).stop for _ in range(2)]
    assert stops[0] is None and "0.172 to 0.053" in stops[1]
    assert adversarial.collapse(0.172, 0.053, 512, relative=1.0) is False  # the absolute rule alone misses it


@pytest.mark.parametrize("previous,current,n,expected", [
    (1.0, 0.0, 16, True),        # absolute fall > 0.2
    (0.6, 0.45, 512, False),     # 25% relative, 0.15 absolute: not a collapse
    (0.172, 0.053, 512, True),   # 69% relative and 0.12 > 3 standard errors (0.050)
    (0.02, 0.008, 512, False),   # 60% relative but 0.012 < 3 standard errors (0.019): noise
    (0.1, 0.04, 512, True),      # 60% relative, 0.06 > 0.040
    (0.1, 0.04, 64, False),      # the same on 64 images is within noise (3 SE = 0.11)
    (0.3, 0.16, 10000, False),   # 47% relative: below the relative threshold however precise
])
def test_collapse_rule(previous, current, n, expected):
    assert adversarial.collapse(previous, current, n) is expected


def test_bad_options_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="exactly one FGSM step"):
        build_strategy("fast_at", steps=3)
    with pytest.raises(ConfigError, match="random_start"):
        build_strategy("fast_at", random_start=False)
    with pytest.raises(ConfigError, match="check_drop"):
        build_strategy("fast_at", check_drop=0.0)
    with pytest.raises(ConfigError, match="check_drop_relative"):
        build_strategy("fast_at", check_drop_relative=1.5)
    cfg = make_config(tiny_run_config(tmp_path, data=dict(tiny_run_config(tmp_path)["data"], val_size=0),
                                      strategy={"name": "fast_at"}))
    with pytest.raises(ConfigError, match="set data.val_size > 0"):
        fit(cfg)


def test_the_loop_stops_early_keeps_the_last_good_epoch_and_records_it(tmp_path, monkeypatch):
    accuracies = iter([0.5, 0.55, 0.1])  # epoch 2 collapses
    monkeypatch.setattr(adversarial, "robust_accuracy", lambda *a: next(accuracies))
    cfg = make_config(tiny_run_config(tmp_path, epochs=5, strategy={"name": "fast_at",
                                                                      "options": {"check_images": 8}}))
    run = fit(cfg, stop_after=2)
    good = torch.load(run / "checkpoint.pt", weights_only=True)
    assert good["state"]["epoch"] == 2 and good["strategy"] == {"previous": 0.55}
    fit(cfg)  # resumes: epoch 2 collapses, the run ends with epoch 1's weights
    final = torch.load(run / "model.pt", weights_only=True)["network"]
    assert all(torch.equal(final[k], v) for k, v in good["network"].items())
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert [r["overfit_check"]["pgd_accuracy"] for r in epochs] == [0.5, 0.55, 0.1]
    stop = [r for r in recs if r["kind"] == "early_stop"]
    assert len(stop) == 1 and stop[0]["epoch"] == 2 and stop[0]["weights_of_epoch"] == 1
    res = json.loads((run / "results.json").read_text())
    early = res["train"]["early_stop"]
    assert early["weights_of_epoch"] == 1 and "catastrophic" in early["reason"]
    # rerunning the finished command trains nothing more
    fit(cfg)
    again = torch.load(run / "model.pt", weights_only=True)["network"]
    assert all(torch.equal(again[k], final[k]) for k in final)
    assert len([json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]) == len(recs)
