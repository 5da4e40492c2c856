"""The ``adversarial`` suite: robust accuracy that checks its own trustworthiness.

Measures, on the first ``max_images`` test images, the robust accuracy under ℓ∞ PGD-20 (step 2/255)
and PGD-100 (step 0.3/255) at ε = 8/255 (the evaluation of Hendrycks et al. 2019, Sec. 3.1), PGD-20
on the margin loss, AutoAttack (standard version, from the ``pyautoattack`` package; recorded as
skipped, first in the warnings, in an install without it), ε sweeps in ℓ∞ and ℓ2, and the
gradient-free SPSA and Square attacks on a subset.

The headline ``worst_case_robust_accuracy`` is per sample over *every* attack run at ε (clean point,
PGD-20, PGD-100, margin PGD, the sweep point at ε, AutoAttack, SPSA, Square): a point counts as
robust only if it survives all of them that ran on it. Sanity checks (Carlini et al. 2019) are in
:mod:`.adversarial_checks`; the guarantees of each attack run (frozen BatchNorm statistics,
replayable randomness, reruns) in :mod:`.adversarial_runs`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from ..attacks import PGD, SPSA, AutoAttack, CrossEntropy, Margin, autoattack_available
from ..attacks.autoattack import AutoAttackWarning
from ..attacks.base import Attack
from ..attacks.objectives import Objective
from ..errors import ConfigError
from ..modes import eval_mode
from ..typedconfig import check_number, from_dict
from .adversarial_checks import (UESATO_SPSA_DIRECTIONS, UESATO_SPSA_STEPS, ball_check, eps0_check,
                                 loss_agreement_check, masking_check, monotone_check,
                                 randomness_check, unbounded_check)
from .adversarial_runs import AttackRunner, Outcome
from .base import SUITES, EvalContext

__all__ = ["AdversarialOptions", "adversarial_suite", "masking_check", "monotone_check"]

LINF_SWEEP = tuple(v / 255 for v in (0, 1, 2, 4, 6, 8, 10, 12, 16))
L2_SWEEP = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)
WHITEBOX_AT_EPS = ("pgd20", "pgd100", "pgd_margin")


@dataclass
class AdversarialOptions:
    """Options of the suite (ε and step sizes on the [0, 1] pixel scale)."""

    max_images: int = 1000
    eps: float = 8 / 255
    pgd20_steps: int = 20
    pgd20_step_size: float = 2 / 255
    pgd100_steps: int = 100
    pgd100_step_size: float = 0.3 / 255
    sweep_linf: list[float] = field(default_factory=lambda: list(LINF_SWEEP))
    sweep_l2: list[float] = field(default_factory=lambda: list(L2_SWEEP))
    sweep_steps: int = 20
    sweep_step_factor: float = 0.25  # step = factor * ε: 2/255 at 8/255, as PGD-20
    sweep_images: int | None = None  # default: max_images
    autoattack: bool = True
    autoattack_version: Literal["standard", "plus", "rand"] = "standard"
    gradient_free_images: int = 100
    spsa: bool = True
    spsa_steps: int = 20
    spsa_samples: int = 32  # Rademacher directions per step, each 2 evaluations (Uesato: 4096)
    spsa_step_size: float = 0.01
    spsa_delta: float = 0.01
    square: bool = True
    square_queries: int = 5000
    masking_tolerance: float = 0.01
    loss_agreement_tolerance: float = 0.05
    unbounded_eps: float | None = 1.0  # ℓ∞ radius of the unbounded check (None: skip it)
    unbounded_steps: int = 20  # of size unbounded_eps / 10
    unbounded_tolerance: float = 0.01
    monotone_tolerance: int = 1
    eot_samples: int = 1  # gradients averaged over this many passes (randomized models)
    reruns: int = 1  # prediction passes per point (randomized models)
    bn_mode: Literal["eval", "train"] = "eval"

    def __post_init__(self) -> None:
        """Refuse bad values before any attack runs, naming the option (``adversarial.eps``)."""
        for key in ("max_images", "square_queries") + (("sweep_images",) if self.sweep_images is not None else ()):
            check_number(f"adversarial.{key}", getattr(self, key), low=1)  # n = 0 would record 0.0
        for key in ("pgd20_steps", "pgd100_steps", "sweep_steps", "gradient_free_images", "spsa_steps",
                    "monotone_tolerance", "pgd20_step_size", "pgd100_step_size", "sweep_step_factor",
                    "spsa_step_size"):
            check_number(f"adversarial.{key}", getattr(self, key), low=0)
        check_number("adversarial.spsa_samples", self.spsa_samples, low=1)
        check_number("adversarial.unbounded_steps", self.unbounded_steps, low=1)
        check_number("adversarial.spsa_delta", self.spsa_delta, low=0, low_open=True)
        for key in ("masking_tolerance", "loss_agreement_tolerance", "unbounded_tolerance"):
            check_number(f"adversarial.{key}", getattr(self, key), 0, 1)
        check_number("adversarial.eps", self.eps, 0, 1)  # the suite's ε is ℓ∞
        if self.unbounded_eps is not None:
            check_number("adversarial.unbounded_eps", self.unbounded_eps, 0, 1, low_open=True)
        for i, eps in enumerate(self.sweep_linf):
            check_number(f"adversarial.sweep_linf[{i}]", eps, 0, 1)
        for i, eps in enumerate(self.sweep_l2):
            check_number(f"adversarial.sweep_l2[{i}]", eps, low=0)
        for key in ("eot_samples", "reruns"):
            if getattr(self, key) < 1:
                raise ConfigError(f"adversarial.{key} must be an integer >= 1, "
                                  f"got {getattr(self, key)!r}")


def _pgd(ctx: EvalContext, opts: AdversarialOptions, eps: float, step: float, steps: int,
         norm: str = "linf", objective: Objective | None = None) -> PGD:
    return PGD(eps=eps, step_size=step, steps=steps, norm=norm, bn_mode=opts.bn_mode,
               objective=objective or CrossEntropy(), autocast=ctx.autocast,
               eot_samples=opts.eot_samples)


def _summary(out: Outcome, **params: Any) -> dict:
    return {"robust_accuracy": out.accuracy, "n": out.n, "seconds": round(out.seconds, 3), **params}


def _pgd_at_eps(runner: AttackRunner, opts: AdversarialOptions, n: int) -> dict[str, dict]:
    """PGD-20 and PGD-100 on CE (Hendrycks et al. 2019) and PGD-20 on the margin loss, at ε."""
    record = {}
    for key, steps, step, objective in (
            ("pgd20", opts.pgd20_steps, opts.pgd20_step_size, CrossEntropy()),
            ("pgd100", opts.pgd100_steps, opts.pgd100_step_size, CrossEntropy()),
            ("pgd_margin", opts.pgd20_steps, opts.pgd20_step_size, Margin())):
        if steps == 0:  # switched off (e.g. pgd100_steps=0): no record that reads like PGD-0 = clean
            record[key] = {"skipped": True, "reason": f"{key}_steps=0" if key != "pgd_margin" else "pgd20_steps=0",
                           "steps": 0, "eps": opts.eps, "norm": "linf"}
            continue
        attack = _pgd(runner.ctx, opts, opts.eps, step, steps, objective=objective)
        out = runner.run(key, attack, n, opts.eps, "linf")
        record[key] = _summary(out, eps=opts.eps, norm="linf", steps=steps, step_size=step,
                               loss="margin" if isinstance(objective, Margin) else "cross_entropy")
    return record


def _sweep(runner: AttackRunner, opts: AdversarialOptions, norm: str, eps_list: list[float],
           n: int) -> dict:
    counts = []
    for eps in eps_list:
        attack = _pgd(runner.ctx, opts, eps, opts.sweep_step_factor * eps, opts.sweep_steps, norm)
        counts.append(int(runner.run(f"sweep_{norm}_{eps:.6g}", attack, n, eps, norm).robust.sum()))
    acc = [c / max(n, 1) for c in counts]
    return {"eps": list(eps_list), "robust_accuracy": acc, "robust_count": counts, "n": n,
            "steps": opts.sweep_steps, "step_factor": opts.sweep_step_factor,
            # keyed by a dot-free label, so one point is a metric path (sweeps.linf.by_eps.8)
            "by_eps": {_eps_key(e, norm): a for e, a in zip(eps_list, acc)}}


def _eps_key(eps: float, norm: str) -> str:
    """ℓ∞: ε in 1/255 units (``8``, ``0.5`` -> ``0p5``); ℓ2: ε with ``p`` for the point (``0p25``)."""
    value = eps * 255 if norm == "linf" else eps
    return f"{round(value, 4):g}".replace(".", "p")


def _unbounded(runner: AttackRunner, opts: AdversarialOptions, n: int) -> dict | None:
    """Margin PGD at a radius that allows any image (ℓ∞ 1.0 by default), with its own steps: the
    evaluation's PGD settings may be few and large (10 steps of ε/4 left a trained tiny CNN at 5%
    at ε = 1, where 20 steps of ε/10 reach 0%)."""
    if opts.unbounded_eps is None:
        return None
    eps, step = opts.unbounded_eps, opts.unbounded_eps / 10
    attack = _pgd(runner.ctx, opts, eps, step, opts.unbounded_steps, objective=Margin())
    out = runner.run("unbounded", attack, n, eps, "linf")
    return _summary(out, eps=eps, norm="linf", steps=opts.unbounded_steps, step_size=step,
                    loss="margin")


def _run_autoattack(runner: AttackRunner, opts: AdversarialOptions, n: int,
                    notes: list[str]) -> dict:
    available, why = autoattack_available()
    if not opts.autoattack:
        return {"skipped": True, "reason": "disabled by the option autoattack=false"}
    if not available:
        message = (f"AutoAttack was not run: {why}. The worst case covers only the suite's own "
                   "attacks, not the field's standard evaluation.")
        warnings.warn(message, UserWarning, stacklevel=4)
        notes.insert(0, message)
        return {"skipped": True, "reason": why, "missing": True}
    attack = _Tally(AutoAttack(eps=opts.eps, norm="linf", version=opts.autoattack_version,
                               batch_size=runner.ctx.batch_size, bn_mode=opts.bn_mode,
                               autocast=runner.ctx.autocast))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AutoAttackWarning)
        out = runner.run("autoattack", attack, n, opts.eps, "linf")
    flags = list(dict.fromkeys(str(w.message) for w in caught
                               if issubclass(w.category, AutoAttackWarning)))
    notes.extend(flags)
    per_member = ({k: c / max(n, 1) for k, c in attack.counts.items()} if attack.complete else None)
    return _summary(out, skipped=False, package=why, version=opts.autoattack_version,
                    eps=opts.eps, norm="linf", package_flags=flags,
                    robust_accuracy_after=per_member)


class _Tally:
    """An AutoAttack that sums the per-member breakdown of every batch it attacks."""

    def __init__(self, attack: AutoAttack) -> None:
        self.attack = attack
        self.counts: dict[str, int] = {}
        self.complete = True  # False once a batch came back without its breakdown

    def __call__(self, model, x, y, generator=None):
        x_adv, counts = self.attack.run(model, x, y, generator)
        self.complete &= bool(counts) or x.shape[0] == 0 or self.attack.eps == 0
        for k, c in counts.items():
            self.counts[k] = self.counts.get(k, 0) + c
        return x_adv


def gradient_free_budgets(opts: AdversarialOptions, m: int) -> dict[str, dict]:
    """What the SPSA and Square checks could find: their query budgets on ``m`` images, SPSA's also
    as a fraction of the budget of Uesato et al. (2018): 4096 directions (8192 evaluations) x 100."""
    spsa = {"images": m, "steps": opts.spsa_steps, "directions_per_step": opts.spsa_samples,
            "evaluations_per_step": 2 * opts.spsa_samples, "delta": opts.spsa_delta,
            "step_size": opts.spsa_step_size,
            "fraction_of_uesato2018": (opts.spsa_steps * opts.spsa_samples)
            / (UESATO_SPSA_STEPS * UESATO_SPSA_DIRECTIONS)}
    return {"spsa": spsa, "square": {"images": m, "queries": opts.square_queries}}


def budget_text(name: str, budget: dict) -> str:
    """One line stating a gradient-free attack's budget (shown next to its verdict)."""
    if name == "spsa":
        return (f"SPSA {budget['steps']} steps x {budget['evaluations_per_step']} evaluations "
                f"({budget['directions_per_step']} directions), delta {budget['delta']:g}, lr "
                f"{budget['step_size']:g}, on {budget['images']} images = "
                f"{100 * budget['fraction_of_uesato2018']:.3g}% of Uesato et al. (2018)")
    return f"Square {budget['queries']} queries on {budget['images']} images"


def _all_robust(outcomes: dict[str, Outcome], names: list[str], m: int) -> torch.Tensor:
    """Per sample over the first ``m`` images: robust to every run in ``names`` that covered it."""
    flags = torch.ones(m, dtype=torch.bool)
    for name in names:
        r = outcomes[name].robust[:m]
        flags[: r.numel()] &= r
    return flags


def _gradient_free(runner: AttackRunner, opts: AdversarialOptions, m: int,
                   whitebox_names: list[str], checks: list[dict]) -> dict:
    """SPSA (and Square from the package) on the first ``m`` images, each compared per sample with
    every white-box PGD at ε (CE and margin loss: the margin is what SPSA and Square optimize, so CE
    alone would let them "beat" it without any masking)."""
    record: dict[str, Any] = {}
    if m == 0 or not (opts.spsa or opts.square):
        return record
    ctx, budgets = runner.ctx, gradient_free_budgets(opts, m)
    attacks: dict[str, Attack] = {}
    if opts.spsa:
        attacks["spsa"] = SPSA(eps=opts.eps, norm="linf", steps=opts.spsa_steps,
                               samples=opts.spsa_samples, step_size=opts.spsa_step_size,
                               delta=opts.spsa_delta, bn_mode=opts.bn_mode, autocast=ctx.autocast)
    available, why = autoattack_available()
    if opts.square and available:
        attacks["square"] = AutoAttack(eps=opts.eps, norm="linf", version="custom",
                                       attacks=("square",), square_queries=opts.square_queries,
                                       batch_size=ctx.batch_size, bn_mode=opts.bn_mode,
                                       autocast=ctx.autocast)
    elif opts.square:
        record["square"] = {"skipped": True, "reason": why, "budget": budgets["square"]}
    whitebox = _all_robust(runner.outcomes, whitebox_names, m)
    for name, attack in attacks.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AutoAttackWarning)  # judged by our own check below
            out = runner.run(name, attack, m, opts.eps, "linf")
        check = masking_check(name, whitebox, out.robust, opts.masking_tolerance,
                              budget_text(name, budgets[name]))
        check["budget"] = budgets[name]
        checks.append(check)
        record[name] = _summary(out, whitebox_robust_accuracy=int(whitebox.sum()) / m,
                                broken_only_by_this=check["broken_only_by_gradient_free"],
                                budget=budgets[name], check_passed=check["passed"])
    return record


def _at_eps(outcomes: dict[str, Outcome], eps: float) -> list[str]:
    """Names of the ℓ∞ attack runs at radius ``eps`` (the clean pass excluded)."""
    return [k for k, o in outcomes.items() if k != "clean" and o.norm == "linf"
            and math.isclose(o.eps, eps, rel_tol=1e-9, abs_tol=1e-12)]


def worst_case(outcomes: dict[str, Outcome], clean: Outcome, eps: float
               ) -> tuple[torch.Tensor, list[str], dict[str, int]]:
    """Per-sample worst case over the clean pass and every ℓ∞ run at ``eps``: ``(robust flags
    [n], the runs, {run: points only it broke})``. Runs on a subset count on their images only."""
    names = _at_eps(outcomes, eps)
    n = clean.n
    broken = torch.zeros(n, dtype=torch.long)
    for name in names:
        r = outcomes[name].robust[:n]
        broken[: r.numel()] += (~r).long()
    robust = clean.robust & (broken == 0)
    only = {}
    for name in names:
        r = outcomes[name].robust[:n]
        only[name] = int((clean.robust[: r.numel()] & ~r & (broken[: r.numel()] == 1)).sum())
    return robust, names, only


def _sanity_checks(opts: AdversarialOptions, runner: AttackRunner, clean: Outcome,
                   sweeps: dict[str, dict], n: int) -> list[dict]:
    """Checks that need no extra attack: ε = 0, monotonicity, CE vs margin, unbounded, randomness."""
    out = runner.outcomes
    checks: list[dict] = []
    for norm, sweep in sweeps.items():
        eps0 = eps0_check(norm, sweep, clean)
        if eps0 is not None:
            checks.append(eps0)
        order = sorted(range(len(sweep["eps"])), key=lambda i: sweep["eps"][i])
        checks.append(monotone_check(
            f"monotone_eps_{norm}", [_eps_label(sweep["eps"][i], norm) for i in order],
            [sweep["robust_count"][i] for i in order], opts.monotone_tolerance))
    if opts.pgd100_steps > opts.pgd20_steps:  # else "more steps" is not more (pgd100_steps=0: off)
        checks.append(monotone_check(
            "monotone_steps", [f"PGD-{opts.pgd20_steps}", f"PGD-{opts.pgd100_steps}"],
            [int(out["pgd20"].robust.sum()), int(out["pgd100"].robust.sum())], opts.monotone_tolerance))
    ce = [out[k].robust for k in ("pgd20", "pgd100") if k in out]
    if ce and "pgd_margin" in out:
        robust_ce = ce[0] if len(ce) == 1 else ce[0] & ce[1]
        checks.append(loss_agreement_check(robust_ce, out["pgd_margin"].robust, opts.loss_agreement_tolerance))
    if "unbounded" in out:
        checks.append(unbounded_check(out["unbounded"], opts.unbounded_tolerance))
    if n:
        checks.append(randomness_check(runner.output_variation(n), opts.eot_samples, opts.reruns))
    return checks


def _eps_label(eps: float, norm: str) -> str:
    return f"{eps * 255:.3g}/255" if norm == "linf" else f"{eps:.4g}"


def _run_all(runner: AttackRunner, opts: AdversarialOptions, n: int, notes: list[str]) -> dict:
    """Every attack run and check of the suite, in order; returns the record's middle part."""
    n_sweep = min(opts.sweep_images or n, n)
    clean = runner.run("clean", None, n, 0.0, "linf")
    attacks = _pgd_at_eps(runner, opts, n)
    attacks["autoattack"] = _run_autoattack(runner, opts, n, notes)
    sweeps = {norm: _sweep(runner, opts, norm, eps_list, n_sweep)
              for norm, eps_list in (("linf", opts.sweep_linf), ("l2", opts.sweep_l2)) if eps_list}
    unbounded = _unbounded(runner, opts, n)
    if unbounded is not None:
        attacks["unbounded"] = unbounded
    checks = _sanity_checks(opts, runner, clean, sweeps, n)
    whitebox = [k for k in _at_eps(runner.outcomes, opts.eps)
                if k in WHITEBOX_AT_EPS or k.startswith("sweep_")]
    gradient_free = _gradient_free(runner, opts, min(opts.gradient_free_images, n), whitebox,
                                   checks)
    checks.append(ball_check(runner.outcomes))
    return {"clean": clean, "attacks": attacks, "sweeps": sweeps, "gradient_free": gradient_free,
            "checks": checks}


@SUITES.register("adversarial")
def adversarial_suite(ctx: EvalContext, **options: Any) -> dict:
    """Robust accuracy under PGD-20/PGD-100/margin PGD/AutoAttack/SPSA/Square, the per-sample worst
    case over all of them at ε, ε sweeps and sanity checks (JSON-safe record, see docs/attacks.md).

    The model is attacked in ``bn_mode`` with running statistics frozen and evaluated in eval mode;
    its state and every module's train/eval flag are the same afterwards.
    """
    opts = from_dict(AdversarialOptions, options, "adversarial")
    n = min(opts.max_images, len(ctx.labels))
    if n == 0:
        raise ConfigError("adversarial suite: the test set has no images to attack")
    notes: list[str] = []
    runner = AttackRunner(ctx, opts.reruns)
    with eval_mode(ctx.model):
        parts = _run_all(runner, opts, n, notes)
    clean, checks = parts["clean"], parts["checks"]
    worst, worst_of, only = worst_case(runner.outcomes, clean, opts.eps)
    notes += [c["detail"] for c in checks if not c["passed"]]
    return {
        "n": n, "eps": opts.eps, "norm": "linf",
        "clean_accuracy": clean.mean_accuracy,  # averaged over the `reruns` passes
        "clean_accuracy_every_pass": clean.accuracy,
        "attacks": parts["attacks"],
        # per sample: robust only if it survives every attack at ε listed in worst_case_of
        "worst_case_robust_accuracy": float(worst.float().mean()) if n else None,
        "worst_case_of": worst_of,
        "worst_case_broken_only_by": only,
        "sweeps": parts["sweeps"],
        "gradient_free": parts["gradient_free"],
        "sanity_checks": checks,
        "sanity_checks_failed": sum(not c["passed"] for c in checks),  # a number per run: 0 = all passed
        "warnings": notes,
        "options": asdict(opts),
    }
