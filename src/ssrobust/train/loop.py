"""Deprecated module (kept for one release): the loop is :mod:`ssrobust.train.trainer`.

``ssrobust.train.loop.fit`` trained *and evaluated*; it still does, through
:func:`ssrobust.experiments.run.train_and_evaluate`, with a :class:`DeprecationWarning`. Every
other name is forwarded to where it lives now, also with a warning."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

_MOVED = {
    "fit": ("ssrobust.experiments.run", "train_and_evaluate"),
    "ensure_run": ("ssrobust.experiments.run", "ensure_run"),
    "build_network": ("ssrobust.runs.network", "build_network"),
    "init_from_run": ("ssrobust.runs.network", "init_from_run"),
    "resolve_device": ("ssrobust.runs.device", "resolve_device"),
    "cosine_lr": ("ssrobust.train.trainer", "cosine_lr"),
    "accuracy_on": ("ssrobust.train.trainer", "accuracy_on"),
}


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _MOVED[name]
    warnings.warn(f"ssrobust.train.loop.{name} is deprecated and will be removed in the next release; "
                  f"use {module}.{attr}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attr)
