"""Gradient-free checks state their power: budgets next to the verdicts, and the full-budget preset
matches Uesato et al. (2018)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import ssrobust.report.adversarial  # noqa: E402,F401  (registers the section)
from ssrobust.api import make_config  # noqa: E402
from ssrobust.eval.adversarial import AdversarialOptions, budget_text, gradient_free_budgets  # noqa: E402
from ssrobust.eval.base import SUITES, EvalContext  # noqa: E402
from ssrobust.report.base import SECTIONS  # noqa: E402
from ssrobust.typedconfig import from_dict  # noqa: E402

PRESET = Path(__file__).resolve().parents[2] / "configs/paper/eval/adversarial_full_budget.yaml"


def test_full_budget_preset_is_the_budget_of_uesato_et_al():
    options = make_config(PRESET).eval.options["adversarial"]
    opts = from_dict(AdversarialOptions, options, "adversarial")
    spsa = gradient_free_budgets(opts, opts.gradient_free_images)["spsa"]
    # 8192 function evaluations per step (4096 +/- pairs), 100 steps, delta 0.01, Adam lr 0.01
    assert spsa["evaluations_per_step"] == 8192 and spsa["directions_per_step"] == 4096
    assert (spsa["steps"], spsa["delta"], spsa["step_size"]) == (100, 0.01, 0.01)
    assert spsa["fraction_of_uesato2018"] == 1.0
    assert opts.square and opts.square_queries == 5000 and opts.autoattack
    assert "= 100% of Uesato et al. (2018)" in budget_text("spsa", spsa)


def test_budgets_are_recorded_next_to_the_verdicts(tmp_path):
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))
    images = torch.randint(0, 256, (12, 8, 8, 3), generator=g, dtype=torch.uint8)
    ctx = EvalContext(model=model, images=images, labels=torch.randint(0, 10, (12,), generator=g),
                      class_names=[str(i) for i in range(10)], batch_size=6, progress=False)
    record = SUITES.get("adversarial")(
        ctx, max_images=12, pgd20_steps=3, pgd100_steps=3, sweep_linf=[], sweep_l2=[],
        gradient_free_images=10, spsa_steps=3, spsa_samples=5, spsa_delta=0.02, autoattack=False,
        square=False)
    spsa = record["gradient_free"]["spsa"]
    assert spsa["budget"] == {"images": 10, "steps": 3, "directions_per_step": 5,
                              "evaluations_per_step": 10, "delta": 0.02, "step_size": 0.01,
                              "fraction_of_uesato2018": 15 / 409600}
    check = next(c for c in record["sanity_checks"] if c["name"] == "gradient_masking_spsa")
    assert check["budget"] == spsa["budget"] and spsa["check_passed"] == check["passed"]
    assert "budget: SPSA 3 steps x 10 evaluations (5 directions), delta 0.02" in check["detail"]
    table = next(t for t in SECTIONS.get("adversarial")([("r", record)], tmp_path).tables
                 if t.caption.startswith("Gradient-free"))
    assert table.rows[0][:4] == ["r", "spsa", 10, "3 steps x 10 evaluations, δ 0.02 (0.00366% of "
                                 "Uesato et al.)"]
