"""Report section for the ``corruptions`` suite (Hendrycks & Dietterich 2019; Hendrycks et al. 2019).

Per-corruption grouped bars (accuracy averaged over severities, one bar per run, as in Hendrycks et
al. 2019, Fig. 3), accuracy against severity, and tables: summary (clean, mean over the 15 benchmark
corruptions and over all 19, mCE against the first run unless the records carry their own) and
per corruption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..corruptions import BENCHMARK, NAMES  # noqa: E402
from ..corruptions.mce import add_mce  # noqa: E402
from .base import SECTIONS, Section, Table, pct  # noqa: E402


def _names(records: Sequence[dict]) -> list[str]:
    present = set().union(*(r.get("mean_accuracy", {}) for r in records))
    return [n for n in NAMES if n in present] + sorted(present - set(NAMES))


def _bars(runs: Sequence[tuple[str, dict]], names: list[str], path: Path) -> Path:
    width = 0.8 / len(runs)
    fig, ax = plt.subplots(figsize=(max(7.0, 0.6 * len(names) + 1.5), 3.8))
    xs = np.arange(len(names))
    for i, (run, rec) in enumerate(runs):
        ys = [100 * rec["mean_accuracy"][n] if n in rec.get("mean_accuracy", {}) else np.nan for n in names]
        ax.bar(xs + (i - (len(runs) - 1) / 2) * width, ys, width, label=run)
    ax.set_xticks(xs, [n.replace("_", " ") for n in names], rotation=50, ha="right", fontsize=8)
    ax.set_ylabel("accuracy (%)\nmean over severities")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy per corruption")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.005, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _severity_curve(rec: dict, names: list[str]) -> tuple[list[int], list[float]]:
    """Clean accuracy at severity 0 (if known), then the mean over ``names`` per severity."""
    sev = sorted(int(s) for s in rec["mean_accuracy_by_severity"])
    use = [n for n in names if n in rec["accuracy"]]
    xs, ys = [], []
    if rec.get("clean_accuracy") is not None:
        xs, ys = [0], [100 * rec["clean_accuracy"]]
    for s in sev:
        xs.append(s)
        ys.append(100 * float(np.mean([rec["accuracy"][n][str(s)] for n in use])))
    return xs, ys


def _lines(runs: Sequence[tuple[str, dict]], names: list[str], path: Path, label: str) -> Path:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for run, rec in runs:
        xs, ys = _severity_curve(rec, names)
        ax.plot(xs, ys, marker="o", markersize=3, label=run)
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy vs severity (mean over {label})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _ratio(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


@SECTIONS.register("corruptions")
def corruptions_section(runs: Sequence[tuple[str, dict]], fig_dir: Path) -> Section:
    runs = list(runs)
    fig_dir = Path(fig_dir)
    fig_dir.mkdir(parents=True, exist_ok=True)
    names = _names([r for _, r in runs])
    base_name, base = runs[0]
    with_mce = [(run, rec if "mce" in rec or len(runs) == 1 else add_mce(rec, base, base_name))
                for run, rec in runs]
    summary = Table(
        ["run", "clean", "mean (15)", "mean (all)", "mCE (15)", "mCE (all)", "rel. mCE (all)", "images"],
        [[run, pct(rec.get("clean_accuracy")), pct(rec.get("mean_accuracy_benchmark")),
          pct(rec.get("mean_accuracy_all")), _ratio(rec.get("mce", {}).get("mce_benchmark")),
          _ratio(rec.get("mce", {}).get("mce_all")), _ratio(rec.get("mce", {}).get("relative_mce_all")),
          rec.get("n_images")] for run, rec in with_mce],
        caption="Accuracy (%) and corruption error (%, baseline = 100) "
                + (f"relative to {base_name}" if len(runs) > 1 else "(no baseline)"))
    per = Table(["corruption"] + [run for run, _ in runs],
                [[n + ("" if n in BENCHMARK else " (val.)")]
                 + [pct(rec["mean_accuracy"].get(n)) for _, rec in runs] for n in names],
                caption="Accuracy (%) per corruption, mean over severities")
    sev_keys = sorted({int(s) for _, r in runs for s in r.get("mean_accuracy_by_severity", {})})
    per_sev = Table(["severity"] + [run for run, _ in runs],
                    [[s] + [pct(rec.get("mean_accuracy_by_severity", {}).get(str(s))) for _, rec in runs]
                     for s in sev_keys],
                    caption="Accuracy (%) per severity, mean over the evaluated corruptions")
    curve_names = [n for n in BENCHMARK if n in names] or names
    label = "the 15 benchmark corruptions" if len(curve_names) == len(BENCHMARK) else "evaluated corruptions"
    figures = [_bars(runs, names, fig_dir / "corruptions_per_corruption.png"),
               _lines(runs, curve_names, fig_dir / "corruptions_vs_severity.png", label)]
    text = ("Accuracy under the common corruptions of Hendrycks & Dietterich (2019): 15 benchmark "
            "corruptions and 4 validation ones (val.), severities 1-5. mCE is the mean over corruptions "
            "of the summed errors divided by the baseline's; relative mCE subtracts clean errors first.")
    return Section(title="Common corruptions", text=text, tables=[summary, per, per_sev], figures=figures)
