"""End-to-end tests of the ``adversarial`` evaluation suite and its report section (tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ssrobust.eval.adversarial as adversarial  # noqa: E402  (registers the suite)
import ssrobust.report.adversarial  # noqa: E402,F401  (registers the section)
from ssrobust.attacks import autoattack_available  # noqa: E402
from ssrobust.errors import ConfigError  # noqa: E402
from ssrobust.eval.base import SUITES, EvalContext  # noqa: E402
from ssrobust.report.base import SECTIONS  # noqa: E402

SMALL = dict(max_images=32, pgd20_steps=10, pgd100_steps=20, pgd100_step_size=1 / 255,
             sweep_linf=[0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255], sweep_l2=[0.0, 0.1, 0.25, 0.5],
             sweep_steps=10, gradient_free_images=32, spsa_steps=10, spsa_samples=16,
             autoattack=False, square=False)


class QuantizedLinear(nn.Module):
    """``W (q(x) - 1/2)``; with ``quantize=True`` q(x) = round(4x)/4 has zero gradient (masking)."""

    def __init__(self, quantize: bool, dim: int = 3 * 8 * 8, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(10, dim, generator=g) / dim ** 0.5)
        self.quantize = quantize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.round(x * 4) / 4 if self.quantize else x
        return (q.flatten(1) - 0.5) @ self.weight.T


def context(model: nn.Module, n: int = 32, seed: int = 0) -> EvalContext:
    """uint8 [n, 8, 8, 3] images; labels = the model's predictions except 4 flipped ones."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 8, 8, 3), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        labels = model(images.permute(0, 3, 1, 2).float() / 255).argmax(1)
    labels[:4] = (labels[:4] + 1) % 10
    return EvalContext(model=model, images=images, labels=labels,
                       class_names=[str(i) for i in range(10)], batch_size=16, progress=False)


def run(model: nn.Module, **over) -> dict:
    return SUITES.get("adversarial")(context(model), **{**SMALL, **over})


@pytest.fixture(scope="module")
def ordinary() -> dict:
    return run(QuantizedLinear(quantize=False))


@pytest.fixture(scope="module")
def masked() -> dict:
    return run(QuantizedLinear(quantize=True))


def checks(record: dict) -> dict[str, dict]:
    return {c["name"]: c for c in record["sanity_checks"]}


def test_record_is_json_safe_and_consistent(ordinary):
    json.dumps(ordinary, allow_nan=False)
    assert ordinary["n"] == 32
    assert ordinary["clean_accuracy"] == pytest.approx(28 / 32)
    pgd20 = ordinary["attacks"]["pgd20"]["robust_accuracy"]
    pgd100 = ordinary["attacks"]["pgd100"]["robust_accuracy"]
    assert pgd20 < ordinary["clean_accuracy"] and pgd100 < ordinary["clean_accuracy"]
    assert ordinary["worst_case_robust_accuracy"] <= min(pgd20, pgd100)
    for norm in ("linf", "l2"):
        sweep = ordinary["sweeps"][norm]
        assert sweep["robust_accuracy"][0] == ordinary["clean_accuracy"]
        assert sweep["robust_accuracy"][-1] < sweep["robust_accuracy"][1]
    assert ordinary["attacks"]["autoattack"] == {"skipped": True,
                                                 "reason": "disabled by the option autoattack=false"}


def test_all_sanity_checks_pass_on_an_ordinary_model(ordinary):
    found = checks(ordinary)
    assert set(found) == {"eps0_is_clean_linf", "eps0_is_clean_l2", "monotone_eps_linf",
                          "monotone_eps_l2", "monotone_steps", "in_ball_and_range",
                          "gradient_masking_spsa", "ce_vs_margin_loss", "unbounded_eps_breaks_all",
                          "randomness_accounted_for"}
    assert all(c["passed"] for c in found.values()), found
    assert all(set(c) >= {"name", "passed", "detail"} for c in found.values())
    assert ordinary["warnings"] == []


def test_gradient_masking_is_flagged_for_a_zero_gradient_quantizer(masked):
    check = checks(masked)["gradient_masking_spsa"]
    assert not check["passed"]
    assert check["broken_only_by_gradient_free"] > 0.3 * 32
    assert any("gradient masking" in w for w in masked["warnings"])
    # and the white-box numbers are what made it look robust
    assert masked["attacks"]["pgd20"]["robust_accuracy"] > masked["gradient_free"]["spsa"]["robust_accuracy"]


def test_deterministic_given_ctx_seed(ordinary):
    again = run(QuantizedLinear(quantize=False), spsa=False)

    def strip(record: dict) -> dict:
        out = json.loads(json.dumps(record))
        for entry in out["attacks"].values():
            entry.pop("seconds", None)
        return {k: out[k] for k in ("attacks", "sweeps", "clean_accuracy")}

    assert strip(again) == strip(ordinary)


def test_model_modes_restored_and_eval_used():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(192, 10))
    model.train()
    model[1].eval()
    record = SUITES.get("adversarial")(context(model), **{**SMALL, "spsa": False})
    assert model.training and not model[1].training and model[2].training
    # dropout 0.9 in train mode would make the eps=0 point differ from the clean pass
    assert checks(record)["eps0_is_clean_linf"]["passed"]


def test_autoattack_skipped_with_reason_when_package_missing(monkeypatch):
    monkeypatch.setattr(adversarial, "autoattack_available", lambda: (False, "no package here"))
    with pytest.warns(UserWarning, match="AutoAttack was not run: no package here"):
        record = run(QuantizedLinear(quantize=False), autoattack=True, square=True, spsa=False)
    assert record["attacks"]["autoattack"] == {"skipped": True, "reason": "no package here",
                                               "missing": True}
    square = record["gradient_free"]["square"]
    assert square["skipped"] and square["reason"] == "no package here"
    assert "autoattack" not in record["worst_case_of"] and "square" not in record["worst_case_of"]
    # the first warning says so, before any other
    assert record["warnings"][0].startswith("AutoAttack was not run: no package here")


@pytest.mark.skipif(not autoattack_available()[0], reason="optional package pyautoattack is not installed")
def test_autoattack_and_square_run_when_installed(tmp_path):
    record = run(QuantizedLinear(quantize=False), autoattack=True, square=True, square_queries=50,
                 spsa=False)
    aa = record["attacks"]["autoattack"]
    assert aa["skipped"] is False and aa["package"].startswith("pyautoattack")
    assert aa["robust_accuracy"] <= record["attacks"]["pgd20"]["robust_accuracy"]
    assert "autoattack" in record["worst_case_of"]
    # per-member breakdown over all batches: the standard members in order, non-increasing, from
    # the clean accuracy down to the final robust accuracy
    after = aa["robust_accuracy_after"]
    assert list(after) == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    values = list(after.values())
    assert values == sorted(values, reverse=True)
    assert after["clean"] == pytest.approx(record["clean_accuracy"], abs=1e-9)
    assert after["square"] == pytest.approx(aa["robust_accuracy"], abs=1e-9)
    section = SECTIONS.get("adversarial")([("aa", record)], tmp_path)
    assert any("each member" in t.caption for t in section.tables)
    assert checks(record)["gradient_masking_square"]["passed"]
    assert checks(record)["in_ball_and_range"]["passed"]


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="max_imgs"):
        SUITES.get("adversarial")(context(QuantizedLinear(quantize=False)), max_imgs=10)


@pytest.mark.parametrize("options, message", [
    ({"eps": 8}, r"adversarial.eps must be a finite number in \[0, 1\], got 8"),
    ({"eps": float("nan")}, "adversarial.eps must be a finite number"),
    ({"sweep_linf": [0.0, 2.0]}, r"adversarial.sweep_linf\[1\] must be a finite number in \[0, 1\]"),
    ({"sweep_l2": [0.5, -1.0]}, r"adversarial.sweep_l2\[1\] must be a finite number >= 0"),
    ({"max_images": 0}, "adversarial.max_images must be a finite number >= 1, got 0"),
    ({"pgd20_step_size": float("inf")}, "adversarial.pgd20_step_size must be a finite number >= 0"),
    ({"spsa_delta": 0.0}, "adversarial.spsa_delta must be a finite number > 0"),
    ({"masking_tolerance": 2.0}, r"adversarial.masking_tolerance must be a finite number in \[0, 1\]"),
])
def test_bad_values_are_refused_before_any_attack_runs(options, message, monkeypatch):
    def no_attacks(*args, **kwargs):
        raise AssertionError("an attack ran before the options were validated")

    monkeypatch.setattr(adversarial.AttackRunner, "run", no_attacks)  # where attacks run
    with pytest.raises(ConfigError, match=message):
        SUITES.get("adversarial")(context(QuantizedLinear(quantize=False)), **{**SMALL, **options})


def test_an_empty_test_set_is_an_error_not_accuracy_none():
    ctx = context(QuantizedLinear(quantize=False))
    ctx.images, ctx.labels = ctx.images[:0], ctx.labels[:0]
    with pytest.raises(ConfigError, match="no images"):
        SUITES.get("adversarial")(ctx, **SMALL)


def test_monotone_check_allows_one_sample_and_no_more():
    ok = adversarial.monotone_check("m", ["a", "b", "c"], [10, 11, 3], tolerance=1)
    bad = adversarial.monotone_check("m", ["a", "b", "c"], [10, 8, 10], tolerance=1)
    assert ok["passed"] and not bad["passed"] and "b -> c: +2" in bad["detail"]


def test_report_section(ordinary, masked, tmp_path: Path):
    section = SECTIONS.get("adversarial")([("ordinary", ordinary), ("masked", masked)], tmp_path)
    assert [p.name for p in section.figures] == ["adversarial_sweep_linf.png", "adversarial_sweep_l2.png"]
    assert all(p.exists() and p.stat().st_size > 0 for p in section.figures)
    summary, gradient_free, sanity = section.tables
    assert [r[0] for r in summary.rows] == ["ordinary", "masked"]
    assert summary.headers[6] == "AutoAttack" and summary.rows[0][6] == "skipped"
    assert [r[:2] for r in gradient_free.rows] == [["ordinary", "spsa"], ["masked", "spsa"]]
    assert gradient_free.rows[1][-1] == "FAILED" and "10 steps x 32 evaluations" in gradient_free.rows[1][3]
    assert ["masked", "gradient_masking_spsa", "FAILED"] in [r[:3] for r in sanity.rows]
    assert ("masked: failed sanity checks: unbounded_eps_breaks_all, gradient_masking_spsa"
            in section.text)
    assert len(section.alerts) == 1 and section.alerts[0].startswith("masked: adversarial sanity")
    assert "| ordinary |" in summary.markdown() and "<table>" in sanity.html()


def test_failed_checks_are_counted_and_sweep_points_have_metric_paths(ordinary, masked):
    """``sanity_checks_failed`` and ``sweeps.<norm>.by_eps.<label>`` are single numbers, so a sweep
    spec can name them (``adversarial.sanity_checks_failed``, ``adversarial.sweeps.linf.by_eps.8``)."""
    assert ordinary["sanity_checks_failed"] == 0
    assert masked["sanity_checks_failed"] == sum(not c["passed"] for c in masked["sanity_checks"]) >= 1
    for record in (ordinary, masked):
        for norm in ("linf", "l2"):
            sweep = record["sweeps"][norm]
            assert list(sweep["by_eps"].values()) == sweep["robust_accuracy"]
            assert not any("." in label for label in sweep["by_eps"])
    assert ordinary["sweeps"]["linf"]["by_eps"]["8"] == ordinary["sweeps"]["linf"]["robust_accuracy"][
        ordinary["sweeps"]["linf"]["eps"].index(8 / 255)]
    assert list(ordinary["sweeps"]["l2"]["by_eps"])[:3] == ["0", "0p1", "0p25"]


def test_steps_check_only_when_the_long_attack_has_more_steps():
    """pgd100_steps=0 (off, as studies/advcl_cpu.py runs it) is not "PGD-0 beats PGD-20": no
    monotone_steps check, so no false alarm; with more steps the check stays."""
    off = run(QuantizedLinear(quantize=False), pgd100_steps=0, sweep_linf=[], sweep_l2=[],
              gradient_free_images=0)
    assert "monotone_steps" not in checks(off)
    assert off["sanity_checks_failed"] == 0 and off["warnings"] == []
    # switched off is recorded as skipped, not as a "PGD-0" robust accuracy equal to clean accuracy
    assert off["attacks"]["pgd100"]["skipped"] is True and "robust_accuracy" not in off["attacks"]["pgd100"]
    assert "pgd100" not in off["worst_case_of"] and "ce_vs_margin_loss" in checks(off)
    on = run(QuantizedLinear(quantize=False), sweep_linf=[], sweep_l2=[], gradient_free_images=0)
    assert checks(on)["monotone_steps"]["passed"]
