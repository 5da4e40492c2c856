"""Runs that differ only in their seed, aggregated: mean, sd, 95% t-interval, n per metric, and
paired differences (by seed) against a baseline arm; a figure with error bars.

Reads ``results.json`` contents only (config and suites). Used by ``ssrobust report`` (arms found
by config) and by ``ssrobust sweep`` (arms named by the spec).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..stats import interval, paired_difference
from .base import Section, Table, fmt

# Config keys that do not make two runs different experiments.
NOT_THE_EXPERIMENT = ("seed", "name", "out_dir", "threads", "progress", "log_every")
# Numbers of a suite record that are settings or bookkeeping, not results.
_SKIP_METRICS = {"n", "time_s", "loss", "schema_version", "eps", "unbounded_eps", "reruns", "max_images",
                 "seconds", "steps", "step_size", "seed"}


def metric_value(result: Mapping[str, Any], metric: str) -> float | None:
    """``suites.<metric>`` of a results dict (``clean.accuracy``), or None when absent/not a number."""
    node: Any = result.get("suites", {})
    for part in metric.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def default_metrics(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Top-level numbers of every suite record (accuracies, AUROCs, ...; not n, time, loss)."""
    out: dict[str, None] = {}
    for r in results:
        for suite, rec in r.get("suites", {}).items():
            for key, v in (rec.items() if isinstance(rec, dict) else []):
                if isinstance(v, (int, float)) and not isinstance(v, bool) and key not in _SKIP_METRICS:
                    out[f"{suite}.{key}"] = None
    return list(out)


def _experiment_key(result: Mapping[str, Any]) -> str:
    import json

    cfg = {k: v for k, v in result.get("config", {}).items() if k not in NOT_THE_EXPERIMENT}
    return json.dumps(cfg, sort_keys=True, default=str)


def seed_groups(results: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, list[Mapping]]:
    """Group results whose configs differ only in seed (and paths, threads); a group is labelled
    by its first run's name without a trailing ``_s<seed>`` / ``_seed<seed>``."""
    groups: dict[str, tuple[str, list[Mapping]]] = {}
    for name, r in zip(names, results):
        key = _experiment_key(r)
        if key not in groups:
            groups[key] = (re.sub(r"_s(eed)?\d+$", "", name) or name, [])
        groups[key][1].append(r)
    labels = [label for label, _ in groups.values()]
    return {(label if labels.count(label) == 1 else f"{label} ({i})"): runs
            for i, (label, runs) in enumerate(groups.values(), 1)}


def _by_seed(runs: Sequence[Mapping], metric: str) -> dict[int, float]:
    out = {}
    for r in runs:
        v = metric_value(r, metric)
        if v is not None:
            out[int(r.get("config", {}).get("seed", len(out)))] = v
    return out


def aggregate(groups: Mapping[str, Sequence[Mapping]], metrics: Sequence[str],
              baseline: str | None = None) -> dict[str, dict[str, dict]]:
    """``{arm: {metric: {mean, sd, low, high, n, level[, diff]}}}``; ``diff`` is the interval of
    ``arm - baseline`` over the seeds both have (absent for the baseline itself)."""
    out: dict[str, dict[str, dict]] = {}
    for arm, runs in groups.items():
        for metric in metrics:
            vals = _by_seed(runs, metric)
            if not vals:
                continue
            rec = interval(list(vals.values())).as_dict()
            if baseline is not None and arm != baseline and baseline in groups:
                diff = paired_difference(vals, _by_seed(groups[baseline], metric))
                rec["diff"] = diff.as_dict() if diff is not None else None
            out.setdefault(arm, {})[metric] = rec
    return out


def _ci(rec: Mapping | None) -> str:
    if not rec:
        return "–"
    if rec.get("low") is None:
        return f"{fmt(rec['mean'])} (n={rec['n']})"
    return f"{fmt(rec['mean'])} [{fmt(rec['low'])}, {fmt(rec['high'])}] (n={rec['n']})"


def tables(agg: Mapping[str, Mapping[str, dict]], baseline: str | None) -> list[Table]:
    """One table per metric: arm, n, mean, sd, 95% interval, and the paired difference."""
    out = []
    metrics = list(dict.fromkeys(m for per in agg.values() for m in per))
    for metric in metrics:
        rows = []
        for arm, per in agg.items():
            rec = per.get(metric)
            if rec is None:
                continue
            ci = "–" if rec["low"] is None else f"[{fmt(rec['low'])}, {fmt(rec['high'])}]"
            rows.append([arm, rec["n"], fmt(rec["mean"]), fmt(rec["sd"]), ci]
                        + ([_ci(rec.get("diff")) if arm != baseline else "baseline"] if baseline else []))
        headers = ["arm", "n", "mean", "sd", "95% interval"] + ([f"minus {baseline} (paired)"] if baseline else [])
        out.append(Table(headers, rows, f"{metric}: mean over seeds, t-interval of the mean"))
    return out


def error_bar_figure(agg: Mapping[str, Mapping[str, dict]], path: Path) -> Path | None:
    """Means with 95% interval error bars, one panel row per metric (arms on the x axis)."""
    from . import plots

    series = {m: {arm: per[m] for arm, per in agg.items() if m in per}
              for m in dict.fromkeys(m for per in agg.values() for m in per)}
    return plots.error_bars(series, path, "Mean over seeds with 95% t-interval")


def seeds_section(groups: Mapping[str, Sequence[Mapping]], fig_dir: Path, metrics: Sequence[str] | None = None,
                  baseline: str | None = None) -> Section | None:
    """The report section over seed groups; None when no group has two runs (nothing to pool)."""
    if not any(len(runs) > 1 for runs in groups.values()):
        return None
    all_runs = [r for runs in groups.values() for r in runs]
    agg = aggregate(groups, list(metrics) if metrics else default_metrics(all_runs), baseline)
    sec = Section("Seeds", "Runs that differ only in their seed, pooled: n runs, mean, sample sd "
                  "and the 95% Student-t interval of the mean" + (
                      f"; differences against {baseline} are paired by seed." if baseline else "."),
                  tables=tables(agg, baseline))
    fig = error_bar_figure(agg, fig_dir / "seeds_error_bars.png")
    if fig is not None:
        sec.figures.append(fig)
    return sec

