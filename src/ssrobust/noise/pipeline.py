"""Deprecated module (kept for one release): the label-noise sweep is
:mod:`ssrobust.experiments.label_noise`."""

from __future__ import annotations

import warnings

from ..experiments.label_noise import *  # noqa: F401,F403
from ..experiments.label_noise import SweepSettings, run_method, run_sweep, sweep_report  # noqa: F401

warnings.warn("ssrobust.noise.pipeline is deprecated and will be removed in the next release; use "
              "ssrobust.experiments.label_noise", DeprecationWarning, stacklevel=2)
