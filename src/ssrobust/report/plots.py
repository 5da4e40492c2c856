"""Matplotlib figures shared by report sections (Agg backend; files written as PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def grouped_bars(values: dict[str, dict[str, float | None]], ylabel: str, path: Path, title: str,
                 scale: float = 100.0) -> Path | None:
    """One group per category, one bar per run. ``values[run][category]`` are fractions."""
    runs = list(values)
    cats = list(dict.fromkeys(c for v in values.values() for c in v))
    if not runs or not cats:
        return None
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(cats) * max(1, len(runs) / 2)), 3.6))
    xs = np.arange(len(cats))
    for i, run in enumerate(runs):
        ys = [np.nan if values[run].get(c) is None else scale * values[run][c] for c in cats]
        ax.bar(xs + (i - (len(runs) - 1) / 2) * width, ys, width, label=run)
    ax.set_xticks(xs, cats, rotation=45 if len(cats) > 6 else 0, ha="right" if len(cats) > 6 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def lines(series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
          path: Path, title: str) -> Path | None:
    """Overlaid curves: ``series[label] = (xs, ys)``."""
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", markersize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def error_bars(series: dict[str, dict[str, dict]], path: Path, title: str) -> Path | None:
    """One panel per metric: each arm's ``mean`` with its ``[low, high]`` interval as error bars
    (no bar when the interval is unknown, n = 1). ``series[metric][arm] = {mean, low, high, n}``."""
    series = {m: arms for m, arms in series.items() if arms}
    if not series:
        return None
    fig, axes = plt.subplots(len(series), 1, figsize=(6, 2.6 * len(series)), squeeze=False)
    for ax, (metric, arms) in zip(axes[:, 0], series.items()):
        names = list(arms)
        means = [arms[a]["mean"] for a in names]
        err = [[0.0 if arms[a]["low"] is None else arms[a]["mean"] - arms[a]["low"] for a in names],
               [0.0 if arms[a]["high"] is None else arms[a]["high"] - arms[a]["mean"] for a in names]]
        ax.errorbar(np.arange(len(names)), means, yerr=err, fmt="o", capsize=4)
        ax.set_xticks(np.arange(len(names)), [f"{a} (n={arms[a]['n']})" for a in names],
                      rotation=30 if len(names) > 4 else 0, ha="right" if len(names) > 4 else "center")
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_title(title)
    return _save(fig, path)


def training_curves(results: list[dict], names: list[str], path: Path) -> Path | None:
    """Validation accuracy and training loss per epoch, from each run's metrics.jsonl."""
    from ..runfiles import read_metrics

    data = {}
    for n, r in zip(names, results):
        run_dir = r.get("run_dir")
        recs = [m for m in read_metrics(Path(run_dir)) if m.get("kind") == "epoch"] if run_dir else []
        if recs:
            data[n] = recs
    if not data:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for n, recs in data.items():
        ep = [m["epoch"] + 1 for m in recs]
        axes[0].plot(ep, [m["loss"] for m in recs], label=n)
        if all("val_acc" in m for m in recs):
            axes[1].plot(ep, [100 * m["val_acc"] for m in recs], label=n)
    axes[0].set(xlabel="epoch", ylabel="training loss (total)", title="Training loss")
    axes[1].set(xlabel="epoch", ylabel="validation accuracy (%)", title="Validation accuracy")
    if not axes[1].lines:  # data.val_size: 0 everywhere: say so instead of an empty legend
        axes[1].text(0.5, 0.5, "no validation split (data.val_size: 0)", ha="center",
                     va="center", transform=axes[1].transAxes)
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def heatmap(values: Sequence[Sequence[float | None]], rows: Sequence[str], cols: Sequence[str], path: Path,
            title: str, label: str, scale: float = 100.0) -> Path | None:
    """A ``rows x cols`` grid of fractions (shown as ``scale`` x value, blank where None), annotated."""
    if not rows or not cols:
        return None
    grid = np.array([[np.nan if v is None else scale * v for v in r] for r in values], dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(cols) + 2), max(2.2, 0.45 * len(rows) + 1.4)))
    im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", aspect="auto", vmin=0, vmax=scale)
    ax.set_xticks(np.arange(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(np.arange(len(rows)), rows)
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7,
                    color="white" if v < 0.6 * scale else "black")
    fig.colorbar(im, ax=ax, label=label)
    ax.set_title(title)
    return _save(fig, path)
