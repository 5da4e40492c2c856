"""The ``adversarial`` suite: robust accuracy that checks its own trustworthiness.

Measures, on the first ``max_images`` test images, the robust accuracy under ℓ∞ PGD-20 (step 2/255)
and PGD-100 (step 0.3/255) at ε = 8/255 (the evaluation of Hendrycks et al. 2019, Sec. 3.1), under
AutoAttack (standard version, from the ``pyautoattack`` package only; recorded as skipped with the
reason when it is not installed), and ε sweeps in ℓ∞ and ℓ2. Then it runs the sanity checks of
Carlini et al. (2019, "On evaluating adversarial robustness") that can be automated:

* ``eps0_is_clean_*``: at ε = 0 the attacked accuracy equals the clean accuracy exactly;
* ``monotone_eps_*`` / ``monotone_steps``: accuracy does not rise with ε or with more steps, up
  to ``monotone_tolerance`` samples (an exact worst-case oracle would be monotone because the balls
  are nested; PGD is a randomized local search, so one point may survive a larger ball by the
  luck of its start — more than that between neighbouring settings means the attack is failing);
* ``in_ball_and_range``: every adversarial example of every attack lies in its ε-ball and [0, 1];
* ``gradient_masking_spsa`` / ``gradient_masking_square``: a gradient-free attack must not break
  (more than ``masking_tolerance`` of the subset) points that survive every white-box attack —
  otherwise the gradients are masked and the white-box numbers overstate robustness.

Every attack gets its own generator seeded from ``ctx.seed`` and the attack's name.
"""

from __future__ import annotations

import math
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from tqdm.auto import tqdm

from ..attacks import PGD, SPSA, AutoAttack, Margin, autoattack_available
from ..attacks.autoattack import AutoAttackWarning
from ..attacks.base import BALL_ATOL, Attack, ball_excess, ball_tolerance
from ..errors import ConfigError
from ..typedconfig import check_number, from_dict
from .base import SUITES, EvalContext, predict

LINF_SWEEP = tuple(v / 255 for v in (0, 1, 2, 4, 6, 8, 10, 12, 16))
L2_SWEEP = (0.0, 0.125, 0.25, 0.5, 0.75, 1.0)


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
    autoattack_version: Literal["standard", "plus"] = "standard"
    gradient_free_images: int = 100
    spsa: bool = True
    spsa_steps: int = 20
    spsa_samples: int = 32
    spsa_step_size: float = 0.01
    spsa_delta: float = 0.01
    square: bool = True
    square_queries: int = 5000
    masking_tolerance: float = 0.01
    monotone_tolerance: int = 1
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
        check_number("adversarial.spsa_delta", self.spsa_delta, low=0, low_open=True)
        check_number("adversarial.masking_tolerance", self.masking_tolerance, 0, 1)
        check_number("adversarial.eps", self.eps, 0, 1)  # the suite's ε is ℓ∞
        for i, eps in enumerate(self.sweep_linf):
            check_number(f"adversarial.sweep_linf[{i}]", eps, 0, 1)
        for i, eps in enumerate(self.sweep_l2):
            check_number(f"adversarial.sweep_l2[{i}]", eps, low=0)


@dataclass
class _Outcome:
    """Per-sample robust flags (CPU bool ``[n]``) of one attack and its ε-ball audit."""

    robust: torch.Tensor
    violations: int
    max_excess: float
    seconds: float

    @property
    def accuracy(self) -> float | None:
        n = int(self.robust.numel())
        return int(self.robust.sum()) / n if n else None


def _generator(ctx: EvalContext, name: str) -> torch.Generator:
    seed = (ctx.seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)
    return torch.Generator(device=ctx.device).manual_seed(seed)


def _attack_set(ctx: EvalContext, attack: Attack | None, name: str, n: int, eps: float,
                norm: str) -> _Outcome:
    """Attack the first ``n`` images batch by batch (``attack=None``: clean) and audit the results."""
    start = time.perf_counter()
    gen = _generator(ctx, name)
    robust, violations, max_excess = [], 0, float("-inf")
    batches = ctx.batches(ctx.images[:n], ctx.labels[:n])
    for x, y in tqdm(batches, desc=f"adversarial: {name}", total=math.ceil(n / ctx.batch_size),
                     disable=not ctx.progress, leave=False):
        x_adv = x if attack is None else attack(ctx.model, x, y, gen)
        excess = ball_excess(x_adv, x, eps, norm)
        violations += int((excess > ball_tolerance(eps, norm, x[0].numel())).sum())
        max_excess = max(max_excess, float(excess.max()))
        robust.append((predict(ctx.model, x_adv, ctx.autocast).argmax(1) == y).cpu())
    flags = torch.cat(robust) if robust else torch.zeros(0, dtype=torch.bool)
    return _Outcome(flags, violations, max_excess, time.perf_counter() - start)


def _summary(out: _Outcome, **params: Any) -> dict:
    return {"robust_accuracy": out.accuracy, "n": int(out.robust.numel()),
            "seconds": round(out.seconds, 3), **params}


def _sweep(ctx: EvalContext, opts: AdversarialOptions, norm: str, eps_list: list[float], n: int,
           audits: dict[str, _Outcome]) -> dict:
    counts = []
    for eps in eps_list:
        attack = PGD(eps=eps, step_size=opts.sweep_step_factor * eps, steps=opts.sweep_steps,
                     norm=norm, bn_mode=opts.bn_mode, autocast=ctx.autocast)
        name = f"sweep_{norm}_{eps:.6g}"
        audits[name] = out = _attack_set(ctx, attack, name, n, eps, norm)
        counts.append(int(out.robust.sum()))
    return {"eps": list(eps_list), "robust_accuracy": [c / max(n, 1) for c in counts],
            "robust_count": counts, "n": n, "steps": opts.sweep_steps,
            "step_factor": opts.sweep_step_factor}


def _run_autoattack(ctx: EvalContext, opts: AdversarialOptions, n: int,
                    audits: dict[str, _Outcome], notes: list[str]) -> dict:
    available, why = autoattack_available()
    if not opts.autoattack:
        return {"skipped": True, "reason": "disabled by the option autoattack=false"}
    if not available:
        return {"skipped": True, "reason": why}
    attack = _Tally(AutoAttack(eps=opts.eps, norm="linf", version=opts.autoattack_version,
                               batch_size=ctx.batch_size, bn_mode=opts.bn_mode, autocast=ctx.autocast))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AutoAttackWarning)
        audits["autoattack"] = out = _attack_set(ctx, attack, "autoattack", n, opts.eps, "linf")
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


def _gradient_free(ctx: EvalContext, opts: AdversarialOptions, m: int, whitebox: torch.Tensor,
                   audits: dict[str, _Outcome], checks: list[dict]) -> dict:
    """SPSA (and Square when the package is there) on the first ``m`` images, each compared with the
    per-sample white-box result on the same images.

    The white-box side also gets PGD on the margin loss (the loss SPSA and Square optimize): CE-PGD
    alone is not the strongest white-box attack on multi-class models, and a gradient-free attack
    on a better loss would otherwise "beat" it without any gradient masking.
    """
    attacks: dict[str, Attack] = {}
    record: dict[str, Any] = {}
    if m == 0 or not (opts.spsa or opts.square):
        return record
    margin_pgd = PGD(eps=opts.eps, step_size=opts.pgd20_step_size, steps=opts.pgd20_steps,
                     norm="linf", objective=Margin(), bn_mode=opts.bn_mode, autocast=ctx.autocast)
    audits["pgd_margin"] = ref = _attack_set(ctx, margin_pgd, "pgd_margin", m, opts.eps, "linf")
    whitebox = whitebox[:m] & ref.robust
    record["pgd_margin"] = _summary(ref, eps=opts.eps, norm="linf", steps=opts.pgd20_steps,
                                    step_size=opts.pgd20_step_size)
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
        record["square"] = {"skipped": True, "reason": why}
    for name, attack in attacks.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AutoAttackWarning)  # judged by our own check below
            audits[name] = out = _attack_set(ctx, attack, name, m, opts.eps, "linf")
        check = masking_check(name, whitebox, out.robust, opts.masking_tolerance)
        checks.append(check)
        record[name] = _summary(out, whitebox_robust_accuracy=float(whitebox.float().mean()),
                                broken_only_by_this=check["broken_only_by_gradient_free"])
    return record


def masking_check(name: str, whitebox_robust: torch.Tensor, gradient_free_robust: torch.Tensor,
                  tolerance: float) -> dict:
    """Gradient-masking check: points robust to every white-box attack (bool ``[m]``) but broken by
    the gradient-free attack ``name`` (bool ``[m]``) must be at most ``floor(tolerance * m)``."""
    m = int(whitebox_robust.numel())
    only = int((whitebox_robust & ~gradient_free_robust).sum())
    allowed = math.floor(tolerance * m)
    passed = only <= allowed
    detail = (f"{only} of {m} points survive every white-box attack but not {name} (allowed "
              f"{allowed}); robust accuracy white-box {whitebox_robust.float().mean():.3f}, "
              f"{name} {gradient_free_robust.float().mean():.3f}")
    if not passed:
        detail = "possible gradient masking: " + detail
    return {"name": f"gradient_masking_{name}", "passed": passed, "detail": detail,
            "broken_only_by_gradient_free": only}


def monotone_check(name: str, labels: list[str], counts: list[int], tolerance: int) -> dict:
    """Robust counts along a sequence of ever stronger attacks may rise by at most ``tolerance``."""
    rises = [f"{labels[i]} -> {labels[i + 1]}: +{counts[i + 1] - counts[i]}"
             for i in range(len(counts) - 1) if counts[i + 1] - counts[i] > tolerance]
    detail = ("robust counts " + ", ".join(f"{a}: {c}" for a, c in zip(labels, counts))
              + (f"; rises above {tolerance} sample(s): " + "; ".join(rises) if rises else ""))
    return {"name": name, "passed": not rises, "detail": detail}


def _eps0_check(norm: str, sweep: dict, clean: _Outcome, n: int) -> dict | None:
    if 0.0 not in sweep["eps"]:
        return None
    count = sweep["robust_count"][sweep["eps"].index(0.0)]
    expected = int(clean.robust[:n].sum())
    return {"name": f"eps0_is_clean_{norm}", "passed": count == expected,
            "detail": f"{count} correct at eps=0 vs {expected} clean on the same {n} images"}


def _ball_check(audits: dict[str, _Outcome]) -> dict:
    bad = {k: v for k, v in audits.items() if v.violations}
    worst = max((v.max_excess for v in audits.values()), default=0.0)
    detail = (f"{len(audits)} attack runs audited; largest distance beyond the eps-ball or [0, 1]: "
              f"{max(worst, 0.0):.3g} (float32 rounding tolerance {BALL_ATOL:g} per coordinate)"
              + ("; violations: " + ", ".join(f"{k}: {v.violations}" for k, v in bad.items())
                 if bad else ""))
    return {"name": "in_ball_and_range", "passed": not bad, "detail": detail}


def _eps_label(eps: float, norm: str) -> str:
    return f"{eps * 255:.3g}/255" if norm == "linf" else f"{eps:.4g}"


def _sanity_checks(opts: AdversarialOptions, clean: _Outcome, pgd20: _Outcome, pgd100: _Outcome,
                   sweeps: dict[str, dict]) -> list[dict]:
    checks: list[dict] = []
    for norm, sweep in sweeps.items():
        eps0 = _eps0_check(norm, sweep, clean, sweep["n"])
        if eps0 is not None:
            checks.append(eps0)
        order = sorted(range(len(sweep["eps"])), key=lambda i: sweep["eps"][i])
        checks.append(monotone_check(
            f"monotone_eps_{norm}", [_eps_label(sweep["eps"][i], norm) for i in order],
            [sweep["robust_count"][i] for i in order], opts.monotone_tolerance))
    checks.append(monotone_check(
        "monotone_steps", [f"PGD-{opts.pgd20_steps}", f"PGD-{opts.pgd100_steps}"],
        [int(pgd20.robust.sum()), int(pgd100.robust.sum())], opts.monotone_tolerance))
    return checks


def _pgd_at_eps(ctx: EvalContext, opts: AdversarialOptions, n: int,
                audits: dict[str, _Outcome]) -> dict[str, dict]:
    """PGD-20 and PGD-100 at ε (Hendrycks et al. 2019 evaluation), outcomes stored in ``audits``."""
    record = {}
    for key, steps, step in (("pgd20", opts.pgd20_steps, opts.pgd20_step_size),
                             ("pgd100", opts.pgd100_steps, opts.pgd100_step_size)):
        attack = PGD(eps=opts.eps, step_size=step, steps=steps, norm="linf",
                     bn_mode=opts.bn_mode, autocast=ctx.autocast)
        audits[key] = out = _attack_set(ctx, attack, key, n, opts.eps, "linf")
        record[key] = _summary(out, eps=opts.eps, norm="linf", steps=steps, step_size=step)
    return record


@SUITES.register("adversarial")
def adversarial_suite(ctx: EvalContext, **options: Any) -> dict:
    """Robust accuracy under PGD-20/PGD-100/AutoAttack, ε sweeps and sanity checks (JSON-safe).

    The model is attacked in ``bn_mode`` and evaluated in eval mode; every module's train/eval
    flag is restored afterwards.
    """
    opts = from_dict(AdversarialOptions, options, "adversarial")
    n = min(opts.max_images, len(ctx.labels))
    if n == 0:
        raise ConfigError("adversarial suite: the test set has no images to attack")
    n_sweep = min(opts.sweep_images or n, n)
    saved_modes = [(mod, mod.training) for mod in ctx.model.modules()]
    ctx.model.eval()
    audits: dict[str, _Outcome] = {}
    notes: list[str] = []
    try:
        clean = _attack_set(ctx, None, "clean", n, 0.0, "linf")
        attacks = _pgd_at_eps(ctx, opts, n, audits)
        attacks["autoattack"] = _run_autoattack(ctx, opts, n, audits, notes)
        sweeps = {norm: _sweep(ctx, opts, norm, eps_list, n_sweep, audits)
                  for norm, eps_list in (("linf", opts.sweep_linf), ("l2", opts.sweep_l2))
                  if eps_list}
        checks = _sanity_checks(opts, clean, audits["pgd20"], audits["pgd100"], sweeps)
        whitebox = audits["pgd20"].robust & audits["pgd100"].robust
        gradient_free = _gradient_free(ctx, opts, min(opts.gradient_free_images, n), whitebox,
                                       audits, checks)
        checks.append(_ball_check(audits))
    finally:
        for mod, flag in saved_modes:
            mod.training = flag
    worst_of = ["pgd20", "pgd100"] + (["autoattack"] if "autoattack" in audits else [])
    worst = whitebox & audits["autoattack"].robust if "autoattack" in audits else whitebox
    notes += [c["detail"] for c in checks if not c["passed"]]
    return {
        "n": n, "eps": opts.eps, "norm": "linf",
        "clean_accuracy": clean.accuracy,
        "attacks": attacks,
        # per sample: robust only if it survives every attack at ε listed in worst_case_of
        "worst_case_robust_accuracy": float(worst.float().mean()) if n else None,
        "worst_case_of": worst_of,
        "sweeps": sweeps,
        "gradient_free": gradient_free,
        "sanity_checks": checks,
        "warnings": notes,
        "options": asdict(opts),
    }
