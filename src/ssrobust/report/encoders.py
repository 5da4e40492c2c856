"""Report section for the cross-task encoder evaluation (``ssrobust encoders``).

An ``encoders`` record is the suite written by :mod:`ssrobust.experiments.encoders`:
``{"tasks", "conditions", "headline": {task: metric}, "table": [{"encoder", "task", "metric",
"clean", "embedding_attack", "task_attack"}], "encoders": {encoder: {task: {condition: metrics}}}}``.
The section shows the headline metric of every encoder x task x condition as a table and a heatmap
(rows: encoders; columns: task / condition). All headline metrics are fractions, higher = better.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import plots
from .base import SECTIONS, Section, Table, pct

FIGURE_NAME = "encoders_heatmap.png"
CONDITION_LABELS = {"clean": "clean", "embedding_attack": "emb. attack", "task_attack": "task attack",
                    "autoattack": "AutoAttack"}


def _rows(runs: Sequence[tuple[str, dict]]) -> list[dict[str, Any]]:
    """The headline rows of every run (encoder names prefixed by the run when there are several)."""
    rows = []
    for run, rec in runs:
        table = rec.get("table")
        if not isinstance(table, list):
            raise ValueError(f"encoders record of run {run!r} has no 'table' list")
        for r in table:
            name = str(r.get("encoder")) if len(runs) == 1 else f"{run}: {r.get('encoder')}"
            rows.append({**r, "encoder": name})
    return rows


def _conditions(rows: list[dict[str, Any]]) -> list[str]:
    present = {k for r in rows for k in r if k in CONDITION_LABELS}
    return [c for c in CONDITION_LABELS if c in present]


@SECTIONS.register("encoders")
def encoders_section(runs: Sequence[tuple[str, dict]], fig_dir: Path) -> Section:
    """Headline metric (%) per encoder, task and condition: a table and a heatmap."""
    rows = _rows(runs)
    conds = _conditions(rows)
    table = Table(["encoder", "task", "metric"] + [CONDITION_LABELS[c] for c in conds],
                  [[r["encoder"], r["task"], r.get("metric", "–")] + [pct(r.get(c)) for c in conds]
                   for r in rows],
                  caption="Headline metric (%) of a head trained on the frozen encoder; higher is better")
    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    cols = [(t, c) for t in tasks for c in conds]
    by_key = {(r["encoder"], r["task"]): r for r in rows}
    grid = [[by_key.get((e, t), {}).get(c) for t, c in cols] for e in encoders]
    figure = plots.heatmap(grid, encoders, [f"{t} / {CONDITION_LABELS[c]}" for t, c in cols],
                           Path(fig_dir) / FIGURE_NAME, "Encoders x tasks x conditions", "metric (%)")
    text = ("Encoder robustness across downstream tasks (layer6 benchmark): heads trained on each "
            "frozen encoder (cls: accuracy, seg: mIoU, depth: δ<1.25), scored on clean test images, "
            "under the task-agnostic embedding attack (one attacked set for every head) and under "
            "each task's own attack (CE PGD, SegPGD, PGD on the depth loss).")
    return Section(title="Encoders across tasks", text=text, tables=[table],
                   figures=[figure] if figure is not None else [])
