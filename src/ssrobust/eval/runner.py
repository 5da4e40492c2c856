"""Deprecated module (kept for one release): use :mod:`ssrobust.eval.evaluate`
(``ssrobust.evaluate_model`` for any classifier). Each name warns with a DeprecationWarning."""

from __future__ import annotations

import warnings
from typing import Any

from . import evaluate as _evaluate

_NAMES = ("evaluate_model", "evaluate_network", "evaluate_run", "run_suites", "RESULTS_SCHEMA_VERSION")


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(f"ssrobust.eval.runner.{name} is deprecated and will be removed in the next release; "
                  f"use ssrobust.eval.evaluate.{name}", DeprecationWarning, stacklevel=2)
    return getattr(_evaluate, name)
