"""The headline worst case cannot be fooled by the three well-known kinds of gradient masking, with
or without the AutoAttack package: each masked model comes out broken (robust accuracy near the
ordinary model's) or flagged by a failed sanity check with a warning, in the record and in the
report's first lines."""

from __future__ import annotations

import contextlib

import pytest
import torch
from masking_models import KINDS, MaskedLinear, labelled_images

import ssrobust.eval.adversarial as adversarial
import ssrobust.report.adversarial  # noqa: F401  (registers the section)
from ssrobust.attacks import AutoAttack, autoattack_available
from ssrobust.eval.base import SUITES, EvalContext
from ssrobust.report.base import SECTIONS

OPTIONS = dict(max_images=32, pgd20_steps=10, pgd100_steps=20, pgd100_step_size=1 / 255,
               sweep_linf=[0.0, 4 / 255, 8 / 255], sweep_l2=[], sweep_steps=10,
               gradient_free_images=32, spsa_steps=10, spsa_samples=16, square_queries=100)
INSTALLS = [pytest.param(False, id="without_autoattack"),
            pytest.param(True, id="with_autoattack", marks=pytest.mark.skipif(
                not autoattack_available()[0], reason="pyautoattack is not installed"))]
# What each trick must trigger (in both installs); the quantizer is also caught by Square.
EXPECTED_FLAGS = {"saturated": {"ce_vs_margin_loss"},
                  "quantized": {"unbounded_eps_breaks_all", "gradient_masking_spsa"},
                  "randomized": {"randomness_accounted_for"}}


def quick_autoattack(**kwargs) -> AutoAttack:
    """The package's APGD-CE and APGD-T instead of the standard four members, and 100 Square
    queries: FAB-T and 5000-query Square take a minute per model on one core. What is tested is the
    suite around the package, which treats the headline AutoAttack like any other attack."""
    if kwargs.get("version") == "standard":
        kwargs.update(version="custom", attacks=("apgd-ce", "apgd-t"))
    return AutoAttack(**{**kwargs, "square_queries": 100})


def evaluate(model: torch.nn.Module, installed: bool, monkeypatch, **over) -> dict:
    if installed:
        monkeypatch.setattr(adversarial, "AutoAttack", quick_autoattack)
    else:  # an install without the package: its import fails
        monkeypatch.setattr(adversarial, "autoattack_available",
                            lambda: (False, "pyautoattack is not installed (simulated)"))
    images, labels = labelled_images(MaskedLinear(None))
    ctx = EvalContext(model=model, images=images, labels=labels, batch_size=16, progress=False,
                      class_names=[str(i) for i in range(10)])
    said = (contextlib.nullcontext() if installed
            else pytest.warns(UserWarning, match="AutoAttack was not run"))
    with torch.random.fork_rng(), said:
        torch.manual_seed(0)
        return SUITES.get("adversarial")(ctx, **{**OPTIONS, **over})


def failed(record: dict) -> set[str]:
    return {c["name"] for c in record["sanity_checks"] if not c["passed"]}


@pytest.fixture(scope="module")
def ordinary_worst() -> dict[bool, float]:
    """Worst-case robust accuracy of the model without any trick, per install."""
    out = {}
    for installed in (False, True):
        if installed and not autoattack_available()[0]:
            continue
        with pytest.MonkeyPatch.context() as mp:
            record = evaluate(MaskedLinear(None), installed, mp)
        assert failed(record) == set(), record["sanity_checks"]  # no false alarm
        out[installed] = record["worst_case_robust_accuracy"]
    return out


@pytest.mark.parametrize("installed", INSTALLS)
@pytest.mark.parametrize("kind", KINDS)
def test_masked_model_is_broken_or_flagged(kind: str, installed: bool, ordinary_worst, monkeypatch,
                                           tmp_path):
    record = evaluate(MaskedLinear(kind), installed, monkeypatch)
    worst = record["worst_case_robust_accuracy"]
    assert EXPECTED_FLAGS[kind] <= failed(record), record["sanity_checks"]
    for name in EXPECTED_FLAGS[kind]:
        detail = next(c["detail"] for c in record["sanity_checks"] if c["name"] == name)
        assert detail in record["warnings"]
    # the worst case is per sample over every attack at eps, gradient-free ones included
    for entry in list(record["attacks"].values()) + list(record["gradient_free"].values()):
        if not entry.get("skipped") and entry.get("eps", record["eps"]) == record["eps"]:
            assert worst <= entry["robust_accuracy"]
    assert set(record["worst_case_of"]) >= {"pgd20", "pgd100", "pgd_margin", "spsa"}
    assert ("autoattack" in record["worst_case_of"]) == installed
    section = SECTIONS.get("adversarial")([(kind, record)], tmp_path)
    assert any(a.startswith(f"{kind}: adversarial sanity checks failed") for a in section.alerts)
    if kind == "saturated":  # margin PGD sees through the flat cross-entropy: broken
        assert worst <= ordinary_worst[installed] + 2 / 32
        assert record["attacks"]["pgd20"]["robust_accuracy"] > 0.7  # what used to be reported


def test_randomized_model_is_broken_with_eot_and_reruns(ordinary_worst, monkeypatch):
    cheap = dict(spsa=False, square=False, sweep_linf=[])
    without = evaluate(MaskedLinear("randomized"), False, monkeypatch, **cheap)
    record = evaluate(MaskedLinear("randomized"), False, monkeypatch, eot_samples=16, reruns=3,
                      **cheap)
    assert "randomness_accounted_for" not in failed(record)
    assert record["options"]["eot_samples"] == 16 and record["options"]["reruns"] == 3
    # one-pass gradients leave points a 16-pass average breaks
    assert without["attacks"]["pgd20"]["robust_accuracy"] >= 0.4
    assert record["attacks"]["pgd20"]["robust_accuracy"] <= 0.2
    assert record["worst_case_robust_accuracy"] <= ordinary_worst[False] + 2 / 32
    # the clean number is the mean over the three passes; "every pass" is never above it
    assert record["clean_accuracy_every_pass"] <= record["clean_accuracy"]
    again = evaluate(MaskedLinear("randomized"), False, monkeypatch, **cheap)
    assert _strip(again) == _strip(without)  # randomized, yet replayable from ctx.seed


def _strip(record: dict) -> dict:
    """The record without wall-clock times."""
    attacks = {k: {f: v for f, v in e.items() if f != "seconds"} for k, e in record["attacks"].items()}
    return {"attacks": attacks, "worst": record["worst_case_robust_accuracy"],
            "clean": record["clean_accuracy"]}
