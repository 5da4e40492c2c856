"""The report's first lines say when AutoAttack could not run (an install without pyautoattack) and
when a run failed its adversarial sanity checks."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import ssrobust.eval.adversarial as adversarial  # noqa: E402
from ssrobust.eval.base import SUITES, EvalContext  # noqa: E402
from ssrobust.report import render_results  # noqa: E402

CHEAP = dict(max_images=16, pgd20_steps=10, pgd100_steps=20, pgd100_step_size=1 / 255,
             sweep_linf=[0.0], sweep_l2=[],
             gradient_free_images=8, spsa_steps=2, spsa_samples=4, square=False)


def _record(monkeypatch, quantize: bool) -> dict:
    """An adversarial record of a linear model, in an install whose pyautoattack import fails."""
    monkeypatch.setattr(adversarial, "autoattack_available",
                        lambda: (False, "No module named 'pyautoattack' (simulated)"))
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(10, 3 * 8 * 8, generator=g) / 8

    class Linear(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.round(x * 4) / 4 if quantize else x
            return (x.flatten(1) - 0.5) @ weight.T

    images = torch.randint(0, 256, (16, 8, 8, 3), generator=g, dtype=torch.uint8)
    labels = Linear()(images.permute(0, 3, 1, 2).float() / 255).argmax(1)
    ctx = EvalContext(model=Linear(), images=images, labels=labels, batch_size=8, progress=False,
                      class_names=[str(i) for i in range(10)])
    with pytest.warns(UserWarning, match="AutoAttack was not run"):
        return SUITES.get("adversarial")(ctx, **CHEAP)


def test_missing_autoattack_and_failed_checks_come_first(monkeypatch, tmp_path):
    results = [{"run": name, "suites": {"adversarial": _record(monkeypatch, quantize)}}
               for name, quantize in (("plain", False), ("quantized", True))]
    out = render_results(results, tmp_path / "report", title="T")
    lines = (out / "report.md").read_text().splitlines()
    top = [line for line in lines[:12] if line.startswith("**Warning:**")]
    assert lines[0] == "# T" and lines[2].startswith("**Warning:**")  # right under the title
    assert any("plain: AutoAttack was not run" in line and "pyautoattack" in line for line in top)
    assert any("quantized: AutoAttack was not run" in line for line in top)
    assert any("quantized: adversarial sanity checks failed" in line for line in top)
    assert not any("plain: adversarial sanity checks failed" in line for line in lines)
    html = (out / "report.html").read_text()
    assert html.index("AutoAttack was not run") < html.index("<h2>")


def test_records_from_before_the_budgets_still_render(tmp_path):
    """An older record: margin PGD under gradient_free, no budgets, no check_passed."""
    from ssrobust.report.base import SECTIONS

    old = {"n": 10, "eps": 8 / 255, "clean_accuracy": 0.9,
           "attacks": {"pgd20": {"robust_accuracy": 0.4, "steps": 20},
                       "pgd100": {"robust_accuracy": 0.4, "steps": 100},
                       "autoattack": {"skipped": True, "reason": "disabled"}},
           "worst_case_robust_accuracy": 0.4, "sweeps": {},
           "gradient_free": {"pgd_margin": {"robust_accuracy": 0.4},
                             "spsa": {"robust_accuracy": 0.5, "n": 10, "broken_only_by_this": 0}},
           "sanity_checks": [{"name": "gradient_masking_spsa", "passed": True, "detail": "d"}]}
    section = SECTIONS.get("adversarial")([("old", old)], tmp_path)
    table = next(t for t in section.tables if t.caption.startswith("Gradient-free"))
    assert table.rows == [["old", "spsa", 10, "–", "50.0", "–", 0, "–"]]
    assert section.alerts == []
