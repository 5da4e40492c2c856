"""Seed statistics: mean, standard deviation and Student-t intervals, plain and paired.

Core layer (no numpy, no scipy: scipy is only a dev extra). Used by the sweeps
(:mod:`ssrobust.experiments.sweep_summary`) and by ``ssrobust report`` (:mod:`ssrobust.report.seeds`).
The t quantile comes from the regularized incomplete beta function (Numerical Recipes' continued
fraction) inverted by bisection; tests check it against ``scipy.stats.t``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Interval:
    """``mean`` of ``n`` values, their sample ``sd`` and the two-sided ``level`` t-interval
    ``[low, high]`` of the mean (``sd``, ``low``, ``high`` are None when ``n < 2``)."""

    mean: float
    sd: float | None
    low: float | None
    high: float | None
    n: int
    level: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for x in [0, 1]."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):  # the fraction converges fast on this side
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` > 0 degrees of freedom (bisection to 1e-12)."""
    if not (0.0 < p < 1.0) or not df > 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # heavy tails at df=1: the bracket grows geometrically
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """Mean, sample sd and the ``level`` t-interval of the mean of ``values`` (n >= 1)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("interval needs at least one value")
    mean = statistics.fmean(vals)
    if len(vals) < 2:
        return Interval(mean, None, None, None, 1, level)
    sd = statistics.stdev(vals)
    half = t_quantile(0.5 + level / 2.0, len(vals) - 1) * sd / math.sqrt(len(vals))
    return Interval(mean, sd, mean - half, mean + half, len(vals), level)


def paired_difference(arm: Mapping[int, float], baseline: Mapping[int, float],
                      level: float = 0.95) -> Interval | None:
    """The interval of ``arm - baseline`` over the seeds both have (paired by seed); None when
    they share no seed."""
    seeds = sorted(set(arm) & set(baseline))
    if not seeds:
        return None
    return interval([arm[s] - baseline[s] for s in seeds], level)
