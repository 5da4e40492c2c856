"""Sweep jobs and their executors (submitit): one job = one ``ssrobust train`` (+ eval) run.

A job is idempotent: a finished run (``results.json`` with the same config) is skipped, a killed
one resumes from its ``checkpoint.pt`` (the trainer does that), so a sweep is resumed by running it
again. ``threads`` is part of a run's config; a run that started with another thread count (another
``--parallel``) resumes with the count it started with rather than being refused.

* local: :class:`submitit.LocalExecutor`, at most ``parallel`` jobs at once, each its own process
  with ``threads = cores // parallel`` so that the machine is not oversubscribed.
* slurm: :class:`submitit.SlurmExecutor`, one job array for the runs not finished yet.
* debug: :class:`submitit.DebugExecutor`, in this process (tests, pdb).
* inline: :class:`InlineExecutor`, in this process without pdb (the ``noise-sweep`` and
  ``one-class`` aliases; a failed job is reported like a local one).

A run with prerequisites (``{run:ARM}``, :mod:`.sweep_stages`) starts after them: locally stage by
stage (a failed prerequisite skips its dependents), on Slurm with ``--dependency=afterok:<ids>``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from ..runs.config import RunConfig
from ..runs.rundir import CHECKPOINT, CONFIG, RESULTS, same_config
from .sweep_spec import SlurmResources, SweepRun

EXECUTORS = ("local", "slurm", "debug", "inline")
JOBS_DIR = "jobs"  # submitit's scripts, pickles and logs, inside the sweep folder


@dataclass(frozen=True)
class Job:
    """What a job process needs: the run and where the sweep lives (picklable, no torch)."""

    run: SweepRun
    out: Path
    threads: int | None


@dataclass
class Outcome:
    """How one job ended: ``done``, ``skipped`` (finished before), ``failed`` (with its log),
    ``blocked`` (not started: a prerequisite failed; ``error`` names it) or ``submitted``."""

    name: str
    status: str
    log: str | None = None
    error: str | None = None


def stored_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with the ``threads`` of an existing run directory when only that key differs (the
    run then resumes or is skipped as it started); otherwise ``cfg`` itself."""
    path = Path(cfg.out_dir) / cfg.name / CONFIG
    if not path.is_file():
        return cfg
    import yaml

    try:
        threads = (yaml.safe_load(path.read_text()) or {}).get("threads")
    except (OSError, yaml.YAMLError, AttributeError):
        return cfg
    adopted = replace(cfg, threads=threads) if threads is None or isinstance(threads, int) else cfg
    return adopted if same_config(path.read_text(), adopted) else cfg


def run_state(cfg: RunConfig) -> str:
    """``done``, ``partial`` (a checkpoint to resume), ``new``, or ``conflict`` (a finished or
    started run with another config in the place of this one)."""
    run_dir = Path(cfg.out_dir) / cfg.name
    if not (run_dir / CONFIG).is_file():
        return "new"
    if not same_config((run_dir / CONFIG).read_text(), stored_config(cfg)):
        return "conflict"
    if (run_dir / RESULTS).is_file():
        return "done"
    return "partial" if (run_dir / CHECKPOINT).is_file() else "new"


def run_job(job: Job) -> str:
    """The job body (runs in the job's process): train and evaluate unless already done; returns
    ``done`` or ``skipped``. A config conflict raises a one-line ConfigError."""
    from .run import train_and_evaluate

    cfg = stored_config(job.run.config(job.out, job.threads))
    state = run_state(cfg)
    if state == "done":
        return "skipped"
    if state == "conflict":
        raise ConfigError(f"{Path(cfg.out_dir) / cfg.name} holds a run with another config than "
                          f"arm {job.run.arm} seed {job.run.seed}; use another sweep folder or delete it")
    train_and_evaluate(cfg)
    return "done"


def _outcome(name: str, job: Any) -> Outcome:
    """The outcome of a finished submitit job (its exception is reported, not raised)."""
    try:
        return Outcome(name, job.result())
    except Exception as e:  # a failed job must not stop the others
        log = Path(job.paths.stderr) if hasattr(job, "paths") else None
        return Outcome(name, "failed", None if log is None else str(log), _last_error(log, e))


def _last_error(log: Path | None, e: Exception) -> str:
    """The job's own error line (the last line of its log: ``ssrobust.errors.DataError: ...``);
    submitit's exception (whose text ends with the log's path) when there is no log."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log else []
    except OSError:
        lines = []
    if lines:
        return lines[-1].strip()
    text = str(e).strip().splitlines()
    return text[-1].strip() if text else type(e).__name__


class _InlineJob:
    """A job that already ran in this process: its result, or the exception it raised."""

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self._result, self._error = None, None
        try:
            self._result = fn(*args)
        except Exception as e:  # reported as a failed job, like a job process's traceback
            self._error = e

    def done(self) -> bool:
        return True

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result


class InlineExecutor:
    """Runs each submitted job at once in this process (no pickling, no pdb, no job folder)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> _InlineJob:
        return _InlineJob(fn, args)


def local_executor(folder: Path, timeout_min: int = 7 * 24 * 60):
    import submitit

    ex = submitit.LocalExecutor(folder=str(folder / JOBS_DIR / "%j"))
    ex.update_parameters(timeout_min=timeout_min)  # submitit's default (2 min) would kill a run
    return ex


def run_local(jobs: Sequence[Job], folder: Path, parallel: int, executor: Any = None,
              on_end: Callable[[Outcome], None] = lambda o: None, poll_s: float = 0.2) -> list[Outcome]:
    """Run ``jobs`` at most ``parallel`` at a time through submitit's local (or the given)
    executor; every job runs, whatever the others do. Returns their outcomes in order."""
    ex = executor if executor is not None else local_executor(folder)
    pending = list(enumerate(jobs))
    running: list[tuple[int, Any]] = []
    outcomes: dict[int, Outcome] = {}
    while pending or running:
        while pending and len(running) < parallel:
            i, job = pending.pop(0)
            running.append((i, ex.submit(run_job, job)))
        still = []
        for i, sub in running:
            if sub.done():
                outcomes[i] = _outcome(jobs[i].run.name, sub)
                on_end(outcomes[i])
            else:
                still.append((i, sub))
        running = still
        if running:
            time.sleep(poll_s)
    return [outcomes[i] for i in range(len(jobs))]


def slurm_parameters(res: SlurmResources, name: str, dependency: str | None = None) -> dict[str, Any]:
    """SlurmExecutor parameters of the spec's resources (the names sbatch knows); ``dependency``
    (``afterok:ID:ID``) also asks Slurm to cancel the job if a prerequisite fails."""
    params: dict[str, Any] = {"job_name": name, "time": res.time_min, "cpus_per_task": res.cpus_per_task,
                              "array_parallelism": res.array_parallelism, "ntasks_per_node": 1,
                              "nodes": 1}
    if res.partition:
        params["partition"] = res.partition
    if res.gpus_per_node:
        params["gpus_per_node"] = res.gpus_per_node
    if res.mem_gb is not None:
        params["mem"] = f"{res.mem_gb:g}GB"
    if res.setup:
        params["setup"] = list(res.setup)
    additional = dict(res.additional)
    if dependency:
        params["dependency"] = dependency
        additional.setdefault("kill-on-invalid-dep", "yes")
    if additional:
        params["additional_parameters"] = additional
    return params


def submit_slurm(jobs: Sequence[Job], folder: Path, res: SlurmResources, name: str,
                 dependency: str | None = None) -> list[Any]:
    """Submit ``jobs`` as one Slurm job array (``%a`` logs under ``<folder>/jobs``), after the
    jobs of ``dependency`` (``afterok:ID:ID``) if given; returns the submitit jobs without waiting."""
    import submitit

    ex = submitit.SlurmExecutor(folder=str(folder / JOBS_DIR / "%j"))
    ex.update_parameters(**slurm_parameters(res, name, dependency))
    return ex.map_array(run_job, list(jobs))
