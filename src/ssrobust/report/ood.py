"""Report section for the ``ood`` suite: one table per score (runs side by side) and ROC curves.

Column headers name the positive class of each metric ("ID+" = in-distribution positive, "OOD+" =
OOD positive). Records written before schema version 2 (keys ``auroc``, ``aupr_in``, ``aupr_out``,
``fpr95``) are read through :func:`~ssrobust.ood.metrics.upgrade_metrics`: their ``fpr95`` is the
OOD-positive FPR95, and the in-positive one, which they never held, shows as "–".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..ood.metrics import is_legacy, upgrade_metrics
from .base import SECTIONS, Section, Table, pct

# (key, column header); the headers say which class is positive.
METRIC_COLUMNS = (("auroc_out_pos", "AUROC (OOD+)"), ("aupr_in_pos", "AUPR-In (ID+)"),
                  ("aupr_out_pos", "AUPR-Out (OOD+)"), ("fpr_at_95_tpr_in", "FPR@95%TPR (ID+)"),
                  ("fpr_at_95_tpr_out", "FPR@95%TPR (OOD+)"))
CONVENTIONS = (
    "AUROC (OOD+) is the same with either class positive. AUPR-In (ID+) takes in-distribution "
    "images as positive (confidence = minus the score), AUPR-Out (OOD+) the OOD images. "
    "FPR@95%TPR (ID+) is the literature's FPR95 (ODIN, Outlier Exposure, energy-based OOD, "
    "OpenOOD): the fraction of OOD images accepted as in-distribution when 95% of the "
    "in-distribution images are. FPR@95%TPR (OOD+) is the fraction of in-distribution images "
    "flagged when 95% of the OOD images are (results before schema version 2 stored only this "
    "one, as fpr95).")


def _ordered_union(lists: Sequence[Sequence[str]]) -> list[str]:
    out: list[str] = []
    for items in lists:
        out += [x for x in items if x not in out]
    return out


def _score_table(score: str, runs: Sequence[tuple[str, dict]], sets: list[str]) -> Table:
    """Rows: OOD sets then ``mean``; columns: each run's :data:`METRIC_COLUMNS` (in %)."""
    headers = ["OOD set"] + [f"{run} {label}" if len(runs) > 1 else label
                             for run, _ in runs for _, label in METRIC_COLUMNS]
    rows = []
    for set_name in sets + ["mean"]:
        row: list[str] = [set_name]
        for _, rec in runs:
            s = rec.get("scores", {}).get(score)
            res = None if s is None else (s["mean"] if set_name == "mean"
                                          else s["per_set"].get(set_name))
            res = {} if res is None else upgrade_metrics(res)
            row += [pct(res.get(key)) for key, _ in METRIC_COLUMNS]
        rows.append(row)
    caption = (f"score {score}: AUROC / AUPR / FPR at 95% TPR in % (ID+ / OOD+: in-distribution / "
               f"OOD positive; higher is better except FPR)")
    return Table(headers=headers, rows=rows, caption=caption)


def _roc_figure(runs: Sequence[tuple[str, dict]], scores: list[str], sets: list[str],
                fig_dir: Path) -> Path:
    # The object-oriented Figure API renders with Agg and never touches pyplot's global backend.
    import matplotlib
    from matplotlib.figure import Figure

    ncols = min(3, len(scores))
    nrows = (len(scores) + ncols - 1) // ncols
    fig = Figure(figsize=(4.2 * ncols, 3.8 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    styles = ["-", "--", ":", "-."]
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, score in zip(axes.flat, scores):
        for r, (run, rec) in enumerate(runs):
            curves = rec.get("roc", {}).get(score, {})
            for j, set_name in enumerate(sets):
                if set_name not in curves:
                    continue
                label = f"{set_name}" if len(runs) == 1 else f"{run}: {set_name}"
                ax.plot(curves[set_name]["fpr"], curves[set_name]["tpr"], styles[r % len(styles)],
                        color=colors[j % len(colors)], label=label, linewidth=1.3)
        ax.plot([0, 1], [0, 1], color="0.7", linewidth=0.8)
        ax.set(title=score, xlabel="FPR (in-distribution flagged)", ylabel="TPR (OOD detected)",
               xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(scores):]:
        ax.axis("off")
    fig.tight_layout()
    fig_dir.mkdir(parents=True, exist_ok=True)
    path = fig_dir / "ood_roc.png"
    fig.savefig(path, dpi=110)
    return path


def legacy_note(runs: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """A sentence naming the runs whose records use the schema-1 metric keys, or ``""``."""
    old = [run for run, rec in runs
           if any(is_legacy(s.get("mean", {})) for s in rec.get("scores", {}).values())]
    if not old:
        return ""
    return (f" Recorded before schema version 2 (no FPR@95%TPR (ID+); their fpr95 is shown as "
            f"FPR@95%TPR (OOD+)): {', '.join(old)}; rerun `ssrobust eval RUN_DIR --suites ood` "
            f"for the full set.")


@SECTIONS.register("ood")
def ood_section(runs: Sequence[tuple[str, dict]], fig_dir: Path) -> Section:
    """Render ``ood`` suite records of one or more runs."""
    scores = _ordered_union([list(rec.get("scores", {})) for _, rec in runs])
    sets = _ordered_union([list(rec.get("ood_sets", {})) for _, rec in runs])
    n_in = ", ".join(f"{run}: {rec.get('n_in')}" for run, rec in runs)
    text = ("Out-of-distribution detection with the test set as in-distribution "
            f"(in-distribution images: {n_in}). Scores are anomaly scores (higher = more "
            "anomalous). " + CONVENTIONS + legacy_note(runs))
    tables = [_score_table(score, runs, sets) for score in scores]
    figures = [_roc_figure(runs, scores, sets, Path(fig_dir))] if scores and sets else []
    return Section(title="OOD detection", text=text, tables=tables, figures=figures)
