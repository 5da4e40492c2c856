"""Experiments: the only layer that trains, then evaluates, then reports.

* :mod:`.run` — :func:`train_and_evaluate` (``ssrobust train``) and :func:`ensure_run` (resumable sweeps).
* :mod:`.quickstart` — the two-run synthetic demo (``ssrobust quickstart``).
* :mod:`.label_noise` — the label-corruption sweep (``ssrobust noise-sweep``).
* :mod:`.one_class` — the one-class OOD sweep (``ssrobust one-class``).
* :mod:`.sweep`, :mod:`.sweep_spec`, :mod:`.sweep_jobs` — spec-driven sweeps on submitit, local or
  Slurm, seeds pooled into intervals (``ssrobust sweep``, docs/sweeps.md).
"""

from .run import ensure_run, train_and_evaluate

__all__ = ["ensure_run", "train_and_evaluate"]
