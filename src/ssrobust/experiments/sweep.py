"""``ssrobust sweep SPEC.yaml``: launch the runs of a spec (local or Slurm), then summarize them.

The spec (:mod:`.sweep_spec`) expands into arms x seeds; each run is one job
(:mod:`.sweep_jobs`). The summary (``<out>/summary.json``, ``summary.md``,
``summary_error_bars.png``) pools each arm's seeds: mean, sd, 95% t-interval, n, and the paired
difference against the spec's baseline arm (:mod:`ssrobust.report.seeds`). Runs with
prerequisites (:mod:`.sweep_stages`) go stage by stage (locally) or with ``afterok`` dependencies
(Slurm).
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
from .sweep_jobs import (EXECUTORS, InlineExecutor, Job, Outcome, run_local, run_state, stored_config,
                         submit_slurm)
from .sweep_spec import SweepSpec

SUMMARY_JSON, SUMMARY_MD, SUMMARY_FIG = "summary.json", "summary.md", "summary_error_bars.png"
LABEL_NOISE_REPORT = "label_noise_report"


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
    for; debug and inline (in this process) the base config's ``threads``."""
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
    """One line per run: its state and folder (and the runs it waits for), grouped by stage when
    the spec has stages, then the counts."""
    last = max((p.job.run.stage for p in planned), default=0)
    lines = []
    for stage in range(last + 1):
        if last:
            lines.append(f"stage {stage}:")
        lines += [f"{p.state:8s} {p.job.out / p.job.run.name}"
                  + (f"  after {', '.join(p.job.run.needs)}" if p.job.run.needs else "")
                  for p in planned if p.job.run.stage == stage]
    counts = {s: sum(p.state == s for p in planned) for s in ("done", "partial", "new", "conflict")}
    return lines + [", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(planned)} runs"]


def run_sweep(spec: SweepSpec, executor: str = "local", parallel: int = 1,
              echo: Callable[[str], None] = print, label_noise_report: bool = True) -> list[Outcome]:
    """Launch the unfinished runs of ``spec``; local and debug wait for them and write the
    summary (:func:`write_summary`), Slurm submits one array and returns (rerun with
    ``--summary-only`` when it is done). A failed job is reported with its log and does not stop
    the others."""
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
            submit_stages(todo, spec, echo)
            return [Outcome(j.run.name, "submitted") for j in todo]
        outcomes = run_stages(todo, spec.out, parallel if executor == "local" else 1,
                              _executor(spec.out, executor), echo)
        write_summary(spec, label_noise_report)
    return outcomes


def run_stages(todo: list[Job], out: Path, parallel: int, executor,
               echo: Callable[[str], None]) -> list[Outcome]:
    """Run ``todo`` stage by stage; a run whose prerequisite failed (or was itself skipped) is not
    started (``blocked``), the others go on. Outcomes in the order of ``todo``."""
    by_name: dict[str, Outcome] = {}
    for stage in sorted({j.run.stage for j in todo}):
        ready = []
        for job in (j for j in todo if j.run.stage == stage):
            bad = [n for n in job.run.needs if n in by_name and by_name[n].status in ("failed", "blocked")]
            if bad:
                by_name[job.run.name] = Outcome(job.run.name, "blocked", error=f"needs {', '.join(bad)}")
                echo(_outcome_line(by_name[job.run.name]))
            else:
                ready.append(job)
        for o in run_local(ready, out, parallel, executor=executor, on_end=lambda o: echo(_outcome_line(o))):
            by_name[o.name] = o
    return [by_name[j.run.name] for j in todo]


def submit_stages(todo: list[Job], spec: SweepSpec, echo: Callable[[str], None]) -> dict[str, str]:
    """Submit ``todo`` to Slurm, stage by stage: one array per stage and set of prerequisites, each
    with ``afterok`` on the job ids of its prerequisites submitted here (finished ones need no
    wait). Returns ``{run name: Slurm job id}``."""
    ids: dict[str, str] = {}
    for stage in sorted({j.run.stage for j in todo}):
        groups: dict[str, list[Job]] = {}
        for job in (j for j in todo if j.run.stage == stage):
            waits = [ids[n] for n in job.run.needs if n in ids]
            groups.setdefault(":".join(waits), []).append(job)
        for waits, jobs in groups.items():
            dependency = f"afterok:{waits}" if waits else None
            for job, j in zip(jobs, submit_slurm(jobs, spec.out, spec.slurm, spec.name, dependency)):
                ids[job.run.name] = str(j.job_id)
                echo(f"submitted {job.run.name}: Slurm job {j.job_id}"
                     + (f" ({dependency})" if dependency else "") + f", log {j.paths.stderr}")
    return ids


def _executor(out: Path, executor: str):
    """The executor object of ``debug`` and ``inline`` (``local``: :func:`run_local`'s own)."""
    if executor == "inline":
        return InlineExecutor()
    if executor != "debug":
        return None
    import submitit

    return submitit.DebugExecutor(folder=str(out / "jobs" / "%j"))


def _outcome_line(o: Outcome) -> str:
    if o.status == "failed":
        return f"FAILED {o.name}: {o.error}" + (f" (log: {o.log})" if o.log else "")
    if o.status == "blocked":
        return f"SKIPPED {o.name}: its prerequisite {o.error.removeprefix('needs ')} did not finish"
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


def write_summary(spec: SweepSpec, label_noise_report: bool = True) -> dict:
    """Pool the finished runs of each arm into ``summary.json`` / ``.md`` and an error-bar plot.

    A spec whose runs corrupt their labels (``data.label_noise``) also gets the Table 2 / Fig. 4
    report of :func:`ssrobust.experiments.label_noise_pooled.spec_report` in ``<out>/label_noise_report/``
    (seeds pooled) and its records under ``label_noise`` in ``summary.json``.
    """
    from ..report.base import Table
    from ..report.seeds import aggregate, error_bar_figure, tables
    from .label_noise_pooled import spec_records, spec_report

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
    records = spec_records(spec) if label_noise_report else []
    if records:
        summary["label_noise"] = records
        spec_report(spec, spec.out / LABEL_NOISE_REPORT, records)
        parts += [f"Label corruption (Table 2 / Fig. 4, seeds pooled): "
                  f"[{LABEL_NOISE_REPORT}/report.md]({LABEL_NOISE_REPORT}/report.md)", ""]
    write_text_atomic(spec.out / SUMMARY_JSON, json.dumps(summary, indent=1) + "\n")
    write_text_atomic(spec.out / SUMMARY_MD, "\n".join(parts))
    return summary
