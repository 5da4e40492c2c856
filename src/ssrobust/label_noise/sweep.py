"""Corruption-strength sweeps and their Table 2 aggregation (Hendrycks et al. 2019, §3.3).

The paper trains one model per strength ``s = 0, 0.1, ..., 1`` (11 runs) and reports the test
error averaged over the strengths, per method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..errors import ConfigError

_DECIMALS = 10  # strengths are rounded so that 0.1 * 3 compares equal to 0.3


def strengths(step: float = 0.1) -> list[float]:
    """``[0, step, 2 step, ..., 1]``; ``step`` must divide 1 (default: the paper's 11 values)."""
    if not 0.0 < step <= 1.0:
        raise ConfigError(f"step must lie in (0, 1], got {step!r}")
    n = round(1.0 / step)
    if abs(n * step - 1.0) > 1e-9:
        raise ConfigError(f"step must divide 1 exactly (e.g. 0.1, 0.25, 0.5), got {step!r}")
    return [round(i * step, _DECIMALS) for i in range(n + 1)]


@dataclass
class MeanError:
    """One row of Table 2: the mean test error of a method over the strengths it was run at."""

    method: str
    mean_error: float
    strengths: list[float]
    missing: list[float]  # strengths of ``require`` without a result


def mean_error_table(results: Mapping[str, Mapping[float, float]],
                     require: Sequence[float] | None = None) -> dict[str, MeanError]:
    """Average test error per method: ``{method: {strength: error}} -> {method: MeanError}``.

    Errors are averaged with equal weight per strength (Table 2). If ``require`` is given (e.g.
    ``strengths()``), the strengths each method lacks are listed in ``missing`` so that a partial
    sweep is never silently compared with a full one; the mean is still over what is available.
    Non-finite errors raise ``ValueError``.
    """
    required = sorted({round(float(s), _DECIMALS) for s in (require or [])})
    table: dict[str, MeanError] = {}
    for method, by_strength in results.items():
        if not by_strength:
            raise ConfigError(f"method {method!r} has no results")
        points = {round(float(s), _DECIMALS): float(e) for s, e in by_strength.items()}
        errors = np.array(list(points.values()))
        if not np.isfinite(errors).all():
            raise ConfigError(f"method {method!r} has a non-finite test error")
        table[method] = MeanError(method=method, mean_error=float(errors.mean()),
                                  strengths=sorted(points),
                                  missing=[s for s in required if s not in points])
    return table
