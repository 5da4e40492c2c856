"""Report section for one-class sweeps (Hendrycks et al. 2019, §4.2.1, Table 3).

A ``one_class`` record is the ``sweep.json`` of :func:`ssrobust.experiments.one_class.run_one_class_sweep`:
``{"records": [{"class": id, "name": str, "methods": {method: metrics dict}}, ...]}`` with metrics
as fractions (the :data:`~ssrobust.ood.metrics.METRIC_KEYS`; sweeps written before schema version 2
have ``auroc``, ``aupr_in``, ``aupr_out``, ``fpr95`` and are read through
:func:`~ssrobust.ood.metrics.upgrade_metrics`). The section renders the per-class AUROC table
(rows: classes and their mean; columns: methods), the mean of every metric per method, and the
per-class AUROC as grouped bars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..ood.metrics import upgrade_metrics
from ..ood.one_class import auroc_table
from . import plots
from .base import SECTIONS, Section, Table, pct
from .ood import CONVENTIONS, METRIC_COLUMNS

FIGURE_NAME = "one_class_auroc.png"
# Table 3's column order for the methods this library produces; others follow.
METHOD_ORDER = ("OC-SVM", "RotNet", "RotNet+OE", "ours", "ours+OE")


def collect(runs: Sequence[tuple[str, dict]]) -> dict[str, dict[str, Any]]:
    """``{class label: {method: metrics}}`` over all records; with several runs the method is
    prefixed by the run name. Methods are ordered as in Table 3; metrics dicts are in the current
    keys (schema-1 ones upgraded)."""
    per_class: dict[str, dict[str, Any]] = {}
    for run, rec in runs:
        records = rec.get("records")
        if not isinstance(records, list):
            raise ValueError(f"one_class record of run {run!r} has no 'records' list")
        for r in records:
            label = str(r.get("name", r.get("class")))
            for method, value in r.get("methods", {}).items():
                if isinstance(value, dict):
                    value = upgrade_metrics(value)
                per_class.setdefault(label, {})[method if len(runs) == 1 else f"{run}: {method}"] = value

    def rank(method: str) -> tuple[int, str]:
        base = method.split(": ")[-1]
        return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), method)

    methods = sorted({m for res in per_class.values() for m in res}, key=rank)
    return {c: {m: res[m] for m in methods if m in res} for c, res in per_class.items()}


def _mean_rows(per_class: dict[str, dict[str, Any]], methods: list[str]) -> list[list[Any]]:
    """Per method: the number of classes with a metrics dict and the mean of each metric over
    them ("–" unless every one of those classes has it: a mean over a subset would mislead)."""
    rows = []
    for m in methods:
        got = [res[m] for res in per_class.values() if isinstance(res.get(m), dict)]
        cells = []
        for k, _ in METRIC_COLUMNS:
            vals = [g.get(k) for g in got]
            ok = bool(vals) and all(v is not None for v in vals)
            cells.append(pct(sum(vals) / len(vals)) if ok else "–")
        rows.append([m, len(got)] + cells)
    return rows


@SECTIONS.register("one_class")
def one_class_section(runs: Sequence[tuple[str, dict]], fig_dir: Path) -> Section:
    """Per-class AUROC (Table 3), mean metrics per method, and a per-class bar chart."""
    per_class = collect(runs)
    table = auroc_table(per_class, "auroc_out_pos")
    methods = table["methods"]
    rows = [[r[0]] + [pct(v) for v in r[1:]] for r in table["rows"]]
    auroc = Table(["class"] + methods, rows,
                  caption="AUROC (%) per in-distribution class; OOD = the other classes' test images")
    means = Table(["method", "classes"] + [label for _, label in METRIC_COLUMNS],
                  _mean_rows(per_class, methods), caption="Mean over classes (%); ID+ / OOD+: in-distribution / OOD positive; "
                          "FPR lower is better; – where a class lacks the metric")
    bars = {m: table["values"][m] for m in methods}
    figure = plots.grouped_bars(bars, "AUROC (%)", Path(fig_dir) / FIGURE_NAME,
                                "One-class AUROC per class")
    text = ("One-class OOD detection (Hendrycks et al. 2019, §4.2): one network per class, trained "
            "on that class only; its test images are in-distribution and the test images of the "
            "other classes are OOD. 'ours' is the rotation + translation score, "
            "'+OE' adds Outlier Exposure, 'OC-SVM' is a one-class SVM on raw pixels. For "
            "reference, the paper's CIFAR-10 means are OC-SVM 58.8, RotNet 83.3, ours 90.1, "
            "ours+OE 95.6 (AUROC %). " + CONVENTIONS)
    return Section(title="One-class OOD detection", text=text, tables=[auroc, means],
                   figures=[figure] if figure is not None else [])
