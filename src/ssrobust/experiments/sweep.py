"""``ssrobust sweep SPEC.yaml``: launch the runs of a spec (local or Slurm), then summarize them.

The spec (:mod:`.sweep_spec`) expands into arms x seeds; each run is one job
(:mod:`.sweep_jobs`). The summary (``<out>/summary.json``, ``summary.md``,
``summary_error_bars.png``) pools each arm's seeds: mean, sd, 95% t-interval, n, and the paired
difference against the spec's baseline arm (:mod:`ssrobust.report.seeds`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..atomic import write_text_atomic
from ..errors import ConfigError
from ..locking import DirLock
from ..paths import make_dir
from .sweep_jobs import EXECUTORS, Job, Outcome, run_local, run_state, stored_config, submit_slurm
from .sweep_spec import SweepSpec

SUMMARY_JSON, SUMMARY_MD, SUMMARY_FIG = "summary.json", "summary.md", "summary_error_bars.png"


@dataclass
class Planned:
    """A run of the sweep and its state before launching (``done``, ``partial``, ``new``, ``conflict``)."""

    job: Job
    state: str


def threads_per_job(parallel: int) -> int:
    """Cores of this machine divided among ``parallel`` jobs (at least one thread each)."""
    from ..train.recipe import usable_cores

    return max(1, usable_cores() // parallel)


def job_threads(spec: SweepSpec, executor: str, parallel: int) -> int | None:
    """Torch threads of each job: local ``cores // parallel``; Slurm the ``cpus_per_task`` it asks
    for; debug (in this process) PyTorch's default."""
    if executor == "local":
        return threads_per_job(parallel)
    return spec.slurm.cpus_per_task if executor == "slurm" else None


def plan(spec: SweepSpec, threads: int | None) -> list[Planned]:
    """Every run with its state; a run's config uses ``threads`` unless it started with others."""
    out = []
    for run in spec.runs():
        job = Job(run, spec.out, threads)
        out.append(Planned(job, run_state(stored_config(run.config(spec.out, threads)))))
    return out


def dry_run_lines(planned: list[Planned]) -> list[str]:
    """One line per run: its state and folder, then the counts."""
    lines = [f"{p.state:8s} {p.job.out / p.job.run.name}" for p in planned]
    counts = {s: sum(p.state == s for p in planned) for s in ("done", "partial", "new", "conflict")}
    return lines + [", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(planned)} runs"]


def run_sweep(spec: SweepSpec, executor: str = "local", parallel: int = 1,
              echo: Callable[[str], None] = print) -> list[Outcome]:
    """Launch the unfinished runs of ``spec``; local and debug wait for them and write the
    summary, Slurm submits one array and returns (rerun with ``--summary-only`` when it is done).
    A failed job is reported with its log and does not stop the others."""
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if parallel < 1:
        raise ConfigError(f"--parallel must be >= 1, got {parallel}")
    threads = job_threads(spec, executor, parallel)
    make_dir(spec.out, "sweep folder")
    with DirLock(spec.out, "sweep folder"):
        planned = plan(spec, threads)
        todo = [p.job for p in planned if p.state != "done"]
        echo(f"{len(planned) - len(todo)} of {len(planned)} runs already done; launching {len(todo)}")
        if executor == "slurm":
            jobs = submit_slurm(todo, spec.out, spec.slurm, spec.name) if todo else []
            for job, j in zip(todo, jobs):
                echo(f"submitted {job.run.name}: Slurm job {j.job_id}, log {j.paths.stderr}")
            return [Outcome(j.run.name, "submitted") for j in todo]
        outcomes = run_local(todo, spec.out, parallel if executor == "local" else 1,
                             executor=_debug_executor(spec.out) if executor == "debug" else None,
                             on_end=lambda o: echo(_outcome_line(o)))
        write_summary(spec)
    return outcomes


def _debug_executor(out: Path):
    import submitit

    return submitit.DebugExecutor(folder=str(out / "jobs" / "%j"))


def _outcome_line(o: Outcome) -> str:
    if o.status == "failed":
        return f"FAILED {o.name}: {o.error} (log: {o.log})"
    return f"{o.status} {o.name}"


def _results(spec: SweepSpec) -> dict[str, list[dict]]:
    """``{arm: [results.json of each finished seed]}`` (unfinished runs are left out)."""
    from ..runfiles import RESULTS, read_json

    groups: dict[str, list[dict]] = {a.name: [] for a in spec.arms}
    for run in spec.runs():
        path = spec.out / run.name / RESULTS
        if path.is_file():
            groups[run.arm].append(read_json(path))
    return groups


def summarize(spec: SweepSpec) -> dict:
    """:func:`write_summary` under the sweep folder's lock (no sweep may be writing it)."""
    if not spec.out.is_dir():
        raise ConfigError(f"sweep folder {spec.out} does not exist; run the sweep first")
    with DirLock(spec.out, "sweep folder"):
        return write_summary(spec)


def write_summary(spec: SweepSpec) -> dict:
    """Pool the finished runs of each arm into ``summary.json`` / ``.md`` and an error-bar plot."""
    from ..report.base import Table
    from ..report.seeds import aggregate, error_bar_figure, tables

    groups = _results(spec)
    agg = aggregate(groups, spec.metrics, spec.baseline)
    done = {arm: len(rs) for arm, rs in groups.items()}
    summary = {"format": "ssrobust-sweep/1", "spec": str(spec.path), "seeds": spec.seeds,
               "baseline": spec.baseline, "metrics": spec.metrics, "runs_done": done, "arms": agg}
    fig = error_bar_figure(agg, spec.out / SUMMARY_FIG)
    counts = Table(["arm", "runs done"], [[a, f"{n} of {len(spec.seeds)}"] for a, n in done.items()])
    parts = [f"# Sweep {spec.name}", "", f"Spec: `{spec.path}`; seeds {spec.seeds}.", "", counts.markdown(), ""]
    parts += [p for t in tables(agg, spec.baseline) for p in (t.markdown(), "")]
    if fig is not None:
        parts += [f"![error bars]({SUMMARY_FIG})", ""]
    write_text_atomic(spec.out / SUMMARY_JSON, json.dumps(summary, indent=1) + "\n")
    write_text_atomic(spec.out / SUMMARY_MD, "\n".join(parts))
    return summary
