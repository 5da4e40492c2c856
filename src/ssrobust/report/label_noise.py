"""Report section for label-corruption sweeps (Hendrycks et al. 2019, Table 2 and Fig. 4).

Each run's ``label_noise`` record is ``{"method": str, "points": [{"strength": s, "test_error":
e, "realized_noise": r}, ...]}`` with ``e`` and ``r`` fractions in [0, 1]. The section renders the
mean error over strengths per method (Table 2), the error at every strength, and the error-vs-
strength curves of all methods overlaid (Fig. 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..label_noise.sweep import mean_error_table
from .base import SECTIONS, Section, Table, pct

FIGURE_NAME = "label_noise_error_vs_strength.png"


def _curves(runs: Sequence[tuple[str, dict]]) -> dict[str, list[dict]]:
    """``label -> points sorted by strength``; the label is the method, plus the run name when two
    runs report the same method."""
    methods = [str(rec.get("method") or name) for name, rec in runs]
    curves: dict[str, list[dict]] = {}
    for (name, rec), method in zip(runs, methods):
        label = method if methods.count(method) == 1 else f"{method} ({name})"
        points = rec.get("points")
        if not isinstance(points, list) or not points:
            raise ValueError(f"label_noise record of run {name!r} has no 'points' list")
        for p in points:
            if "strength" not in p or "test_error" not in p:
                raise ValueError(f"label_noise point of run {name!r} lacks 'strength' or "
                                 f"'test_error': {p!r}")
        curves[label] = sorted(points, key=lambda p: float(p["strength"]))
    return curves


def _plot(curves: dict[str, list[dict]], path: Path) -> Path:
    # The object API with an explicit Agg canvas: no pyplot state, no global backend switch.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.6))
    FigureCanvasAgg(fig)
    ax_err, ax_noise = fig.subplots(1, 2)
    for label, points in curves.items():
        s = [float(p["strength"]) for p in points]
        ax_err.plot(s, [100.0 * float(p["test_error"]) for p in points], marker="o", label=label)
        noisy = [(x, p["realized_noise"]) for x, p in zip(s, points)
                 if p.get("realized_noise") is not None]
        if noisy:
            ax_noise.plot([x for x, _ in noisy], [100.0 * float(r) for _, r in noisy],
                          marker="o", label=label)
    ax_err.set(xlabel="corruption strength s", ylabel="test error (%)", xlim=(-0.02, 1.02),
               title="Test error vs corruption strength")
    ax_noise.set(xlabel="corruption strength s", ylabel="labels changed (%)", xlim=(-0.02, 1.02),
                 title="Realized label noise (untrusted part)")
    for ax in (ax_err, ax_noise):
        ax.grid(alpha=0.3)
    ax_err.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


@SECTIONS.register("label_noise")
def label_noise_section(runs: Sequence[tuple[str, dict]], fig_dir: Path) -> Section:
    """Mean error per method (Table 2), error per strength, and the overlaid curves (Fig. 4)."""
    curves = _curves(runs)
    by_method = {label: {float(p["strength"]): float(p["test_error"]) for p in points}
                 for label, points in curves.items()}
    all_s = sorted({s for errs in by_method.values() for s in errs})
    table = mean_error_table(by_method, require=all_s)
    mean_rows = [[label, pct(row.mean_error), len(row.strengths),
                  ", ".join(f"{s:g}" for s in row.missing) or "–"]
                 for label, row in table.items()]
    grid_rows = [[label] + [pct(errs.get(s)) for s in all_s] for label, errs in by_method.items()]
    text = ("Test error (%) under label corruption, one model per corruption strength. The mean "
            "is taken with equal weight over the strengths a method was run at (Hendrycks et al. "
            "2019 average 11 strengths, 0 to 1 in steps of 0.1); means over different strength "
            "sets are not comparable, see the 'missing' column.")
    tables = [
        Table(["method", "mean error (%)", "strengths", "missing"], mean_rows,
              caption="Mean test error over corruption strengths (Table 2)"),
        Table(["method"] + [f"s={s:g}" for s in all_s], grid_rows,
              caption="Test error (%) per corruption strength"),
    ]
    figure = _plot(curves, Path(fig_dir) / FIGURE_NAME)
    return Section(title="Label corruption", text=text, tables=tables, figures=[figure])
