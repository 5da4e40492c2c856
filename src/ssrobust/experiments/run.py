"""Train, then evaluate: what ``ssrobust train`` and :func:`ssrobust.train` do.

The trainer (:mod:`ssrobust.train`) only trains and the suites (:mod:`ssrobust.eval`) only
evaluate; this module is where the two meet, as every experiment of this layer does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..data.base import DatasetSplits
from ..errors import ConfigError
from ..eval.evaluate import evaluate_network
from ..runs.config import RunConfig
from ..runs.rundir import CONFIG, RESULTS, same_config
from ..train.trainer import FitResult, fit_run


def train_and_evaluate(cfg: RunConfig, overwrite: bool = False, stop_after: int | None = None,
                       splits: DatasetSplits | None = None) -> Path:
    """Train ``cfg`` (resuming from its checkpoint if one exists), then run its ``eval.suites`` on
    the trained network into ``results.json``; returns the run directory. ``stop_after`` ends the
    call after that many epochs, without evaluating (as if the process had been killed).

    The evaluation runs on rank 0 while the trainer still holds the run directory's lock, so
    ``results.json`` is written by the process that trained (one writer per run directory)."""
    return fit_run(cfg, overwrite, stop_after, splits, on_finished=_evaluate_trained).run_dir


def _evaluate_trained(result: FitResult) -> None:
    """Evaluate the in-memory network of a finished run (``model.pt`` holds the same weights)."""
    evaluate_network(result.run_dir, result.cfg, result.net, result.splits, result.device,
                     result.precision, train_info=result.train_info)


def ensure_run(cfg: RunConfig, splits: DatasetSplits | None = None) -> dict[str, Any]:
    """Train and evaluate ``cfg`` unless its run directory already holds results; return
    ``results.json``.

    Sweeps use it to be resumable: an unfinished run resumes from its checkpoint; a finished one
    with another config raises rather than mixing two experiments.
    """
    run_dir = Path(cfg.out_dir) / cfg.name
    if (run_dir / RESULTS).is_file():
        if not same_config((run_dir / CONFIG).read_text(), cfg):
            raise ConfigError(f"{run_dir} holds a finished run with a different config; use "
                              f"another sweep folder (--out) or delete that run")
        return json.loads((run_dir / RESULTS).read_text())
    return json.loads((train_and_evaluate(cfg, splits=splits) / RESULTS).read_text())

