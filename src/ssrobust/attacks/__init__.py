"""Adversarial attacks: ``attack(model, x, y, generator=None) -> x_adv`` on [0, 1] images.

Registered under ``ATTACKS``: ``fgsm``, ``pgd``, ``spsa`` and ``autoattack`` (an adapter around
the authors' ``pyautoattack`` package, a dependency). What an attack maximizes is a pluggable
objective from ``OBJECTIVES`` (objectives through pretext-task heads, e.g.
``CrossEntropyPlusTasks``, are in :mod:`ssrobust.tasks.objectives`). See ``docs/attacks.md``.
"""

from . import autoattack, fgsm, pgd, spsa  # noqa: F401  (registration)
from .autoattack import AutoAttack, AutoAttackWarning, autoattack_available
from .base import (ATTACKS, BALL_ATOL, NORMS, Attack, attack_mode, ball_excess, ball_tolerance,
                   build_attack, per_sample_norm, project)
from .fgsm import FGSM
from .objectives import OBJECTIVES, CrossEntropy, FeatureDistance, Margin, Objective, TradesKL
from .pgd import PGD
from .spsa import SPSA

__all__ = [
    "ATTACKS", "OBJECTIVES", "NORMS", "BALL_ATOL", "Attack", "build_attack", "attack_mode",
    "ball_excess", "ball_tolerance", "per_sample_norm", "project",
    "FGSM", "PGD", "SPSA", "AutoAttack", "AutoAttackWarning", "autoattack_available",
    "Objective", "CrossEntropy", "Margin", "TradesKL", "FeatureDistance",
]
