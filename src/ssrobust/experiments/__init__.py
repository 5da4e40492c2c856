"""Experiments: the only layer that trains, then evaluates, then reports.

* :mod:`.run` — :func:`train_and_evaluate` (``ssrobust train``) and :func:`ensure_run` (resumable sweeps).
* :mod:`.quickstart` — the two-run synthetic demo (``ssrobust quickstart``).
* :mod:`.label_noise` — the label-corruption sweep (``ssrobust noise-sweep``, a sweep spec with stages);
  :mod:`.label_noise_pooled` — its Table 2 report for ``ssrobust sweep`` specs, seeds pooled.
* :mod:`.one_class` — the one-class OOD sweep (``ssrobust one-class``, a sweep spec + OC-SVM).
* :mod:`.sweep`, :mod:`.sweep_spec`, :mod:`.sweep_jobs`, :mod:`.sweep_stages` — spec-driven sweeps
  on submitit, local or Slurm, runs that need other runs (stages), seeds pooled into intervals
  (``ssrobust sweep``, docs/sweeps.md).
"""

from .run import ensure_run, train_and_evaluate

__all__ = ["ensure_run", "train_and_evaluate"]
