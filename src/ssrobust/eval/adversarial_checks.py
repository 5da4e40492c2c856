"""Sanity checks of the ``adversarial`` suite (Carlini et al. 2019, "On evaluating adversarial
robustness", the ones that can be automated). Each returns ``{"name", "passed", "detail"}`` (some
add numbers); a failed check adds its detail to the record's warnings.

Pure functions of per-sample flags and counts, so each can be tested on hand-made inputs.
"""

from __future__ import annotations

import math

import torch

from ..attacks.base import BALL_ATOL
from .adversarial_runs import Outcome

# Uesato et al. (2018), "Adversarial risk and the dangers of evaluating against weak attacks": SPSA
# with 8192 function evaluations per step (4096 +/- direction pairs, our `samples`) for 100 steps.
UESATO_SPSA_DIRECTIONS = 4096
UESATO_SPSA_STEPS = 100
# Relative change of the logits between two passes above which a model counts as random at
# inference (float32 kernels are deterministic on CPU; GPU reductions differ far below this).
RANDOMNESS_RTOL = 1e-5


def _survivors_of_only_one(survive: torch.Tensor, broken_by: torch.Tensor, tolerance: float
                           ) -> tuple[int, int, int, bool]:
    """``(n, only, allowed, passed)``: of ``n`` points, ``only`` survive the first attack (bool
    ``[n]``) but not the second; the check passes with at most ``floor(tolerance * n)``."""
    n = int(survive.numel())
    only = int((survive & ~broken_by).sum())
    allowed = math.floor(tolerance * n)
    return n, only, allowed, only <= allowed


def masking_check(name: str, whitebox_robust: torch.Tensor, gradient_free_robust: torch.Tensor,
                  tolerance: float, budget: str = "") -> dict:
    """Gradient-masking check: points robust to every white-box attack (bool ``[m]``) but broken by
    the gradient-free attack ``name`` (bool ``[m]``) must be at most ``floor(tolerance * m)``.
    ``budget`` (e.g. "SPSA 20 steps x 32 directions") is stated in the detail: a pass only means
    something up to the power of the attack that was run."""
    m, only, allowed, passed = _survivors_of_only_one(whitebox_robust, gradient_free_robust, tolerance)
    detail = (f"{only} of {m} points survive every white-box attack but not {name} (allowed "
              f"{allowed}); robust accuracy white-box {whitebox_robust.float().mean():.3f}, "
              f"{name} {gradient_free_robust.float().mean():.3f}"
              + (f"; budget: {budget}" if budget else ""))
    if not passed:
        detail = "possible gradient masking: " + detail
    return {"name": f"gradient_masking_{name}", "passed": passed, "detail": detail,
            "broken_only_by_gradient_free": only}


def loss_agreement_check(ce_robust: torch.Tensor, margin_robust: torch.Tensor,
                         tolerance: float) -> dict:
    """CE-loss PGD against margin-loss PGD on the same points (bool ``[n]`` each): at most
    ``floor(tolerance * n)`` points may survive CE-PGD but fall to margin-PGD.

    The sign of the margin's gradient does not change when the logits are scaled, while the
    cross-entropy of a saturated softmax is exactly 0 with a 0 gradient: a large disagreement means
    the CE numbers come from a flat loss, not from robustness."""
    n, only, allowed, passed = _survivors_of_only_one(ce_robust, margin_robust, tolerance)
    detail = (f"{only} of {n} points survive CE-loss PGD but not margin-loss PGD (allowed "
              f"{allowed}); robust accuracy CE {ce_robust.float().mean():.3f}, margin "
              f"{margin_robust.float().mean():.3f}")
    if not passed:
        detail = ("possible gradient masking (saturated softmax or scaled logits): " + detail)
    return {"name": "ce_vs_margin_loss", "passed": passed, "detail": detail,
            "broken_only_by_margin": only}


def unbounded_check(out: Outcome, tolerance: float) -> dict:
    """At a radius that allows any image, a working attack leaves (almost) no point correct:
    at most ``floor(tolerance * n)``. Otherwise the attack cannot move the model's decision at
    all (zero or useless gradients)."""
    n, left = out.n, int(out.robust.sum())
    allowed = math.floor(tolerance * n)
    passed = left <= allowed
    detail = (f"{left} of {n} points still correct at eps = {out.eps:g} ({out.norm}; allowed "
              f"{allowed})")
    if not passed:
        detail = "possible gradient masking: the attack cannot reach 0% even unbounded: " + detail
    return {"name": "unbounded_eps_breaks_all", "passed": passed, "detail": detail}


def randomness_check(variation: float, eot_samples: int, reruns: int) -> dict:
    """Outputs that change between passes on the same images make one-pass gradients and one-pass
    predictions unreliable; the check passes for such a model only when it is evaluated with
    expectation over transformation (``eot_samples > 1``) and re-run predictions (``reruns > 1``)."""
    random = variation > RANDOMNESS_RTOL
    handled = eot_samples > 1 and reruns > 1
    if not random:
        detail = f"outputs identical in two passes (relative change {variation:.2g})"
    elif handled:
        detail = (f"randomized model (logits change by {variation:.2g} of their scale between "
                  f"passes), evaluated with EOT over {eot_samples} passes and {reruns} reruns")
    else:
        detail = (f"randomized model: logits change by {variation:.2g} of their scale between two "
                  f"passes on the same images; one-pass gradients can overstate robustness: set "
                  f"eot_samples (e.g. 20) and reruns (e.g. 5), and autoattack_version: rand")
    return {"name": "randomness_accounted_for", "passed": not random or handled, "detail": detail,
            "output_variation": variation}


def monotone_check(name: str, labels: list[str], counts: list[int], tolerance: int) -> dict:
    """Robust counts along a sequence of ever stronger attacks may rise by at most ``tolerance``."""
    rises = [f"{labels[i]} -> {labels[i + 1]}: +{counts[i + 1] - counts[i]}"
             for i in range(len(counts) - 1) if counts[i + 1] - counts[i] > tolerance]
    detail = ("robust counts " + ", ".join(f"{a}: {c}" for a, c in zip(labels, counts))
              + (f"; rises above {tolerance} sample(s): " + "; ".join(rises) if rises else ""))
    return {"name": name, "passed": not rises, "detail": detail}


def eps0_check(norm: str, sweep: dict, clean: Outcome) -> dict | None:
    """The ε = 0 point of a sweep equals the clean result on the same images exactly."""
    if 0.0 not in sweep["eps"]:
        return None
    count = sweep["robust_count"][sweep["eps"].index(0.0)]
    expected = int(clean.robust[:sweep["n"]].sum())
    return {"name": f"eps0_is_clean_{norm}", "passed": count == expected,
            "detail": f"{count} correct at eps=0 vs {expected} clean on the same {sweep['n']} images"}


def ball_check(outcomes: dict[str, Outcome]) -> dict:
    """Every adversarial example of every run lies in its ε-ball and in [0, 1]."""
    bad = {k: v for k, v in outcomes.items() if v.violations}
    worst = max((v.max_excess for v in outcomes.values()), default=0.0)
    detail = (f"{len(outcomes)} attack runs audited; largest distance beyond the eps-ball or "
              f"[0, 1]: {max(worst, 0.0):.3g} (float32 rounding tolerance {BALL_ATOL:g} per "
              "coordinate)" + ("; violations: " + ", ".join(f"{k}: {v.violations}"
                                                           for k, v in bad.items()) if bad else ""))
    return {"name": "in_ball_and_range", "passed": not bad, "detail": detail}
