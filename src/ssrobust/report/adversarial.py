"""Report section for the ``adversarial`` suite: robust-accuracy table, overlaid ε-sweep curves
(ℓ∞ and ℓ2), the gradient-free checks with their budgets, and the sanity checks of every run.

Alerts (shown in the report's first lines): runs evaluated without the AutoAttack package, and runs
with failed sanity checks."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure

from .base import SECTIONS, Section, Table, pct


def _attack_cell(record: dict, key: str) -> str:
    entry = record.get("attacks", {}).get(key)
    if not entry:
        return "–"
    if entry.get("skipped"):
        return "skipped"
    return pct(entry.get("robust_accuracy"))


def _summary_table(runs: Sequence[tuple[str, dict]]) -> Table:
    rows = []
    for name, rec in runs:
        steps = {k: rec.get("attacks", {}).get(k, {}).get("steps") for k in ("pgd20", "pgd100")}
        rows.append([name, rec.get("n"), pct(rec.get("clean_accuracy")),
                     _attack_cell(rec, "pgd20"), _attack_cell(rec, "pgd100"),
                     _attack_cell(rec, "pgd_margin"), _attack_cell(rec, "autoattack"),
                     pct(rec.get("worst_case_robust_accuracy")),
                     f"{steps['pgd20']}/{steps['pgd100']}"])
    eps = runs[0][1].get("eps") if runs else None
    caption = ("Accuracy (%) on the first n test images, clean and under ℓ∞ attacks"
               + (f" at ε = {eps * 255:.3g}/255" if eps is not None else "")
               + "; worst case = per image over every attack run at ε (SPSA and Square on the "
               "gradient-free subset).")
    return Table(["run", "n", "clean", "PGD-20", "PGD-100", "PGD-20 margin", "AutoAttack",
                  "worst case", "PGD steps"], rows, caption)


def _budget_cell(name: str, budget: dict | None) -> str:
    if not budget:
        return "–"
    if name == "spsa":
        return (f"{budget['steps']} steps x {budget['evaluations_per_step']} evaluations, "
                f"δ {budget['delta']:g} ({100 * budget['fraction_of_uesato2018']:.3g}% of "
                "Uesato et al.)")
    return f"{budget['queries']} queries"


def _gradient_free_table(runs: Sequence[tuple[str, dict]]) -> Table | None:
    """Each gradient-free check with the budget it ran with: a pass is only as strong as that."""
    rows = []
    for name, rec in runs:
        for attack, entry in rec.get("gradient_free", {}).items():
            if attack == "pgd_margin":  # records before the worst-case change kept it here
                continue
            budget = entry.get("budget")
            if entry.get("skipped"):
                rows.append([name, attack, budget.get("images") if budget else "–",
                             _budget_cell(attack, budget), "skipped", "–", "–", "–"])
                continue
            passed = entry.get("check_passed")
            verdict = "–" if passed is None else "passed" if passed else "FAILED"
            rows.append([name, attack, entry.get("n"), _budget_cell(attack, budget),
                         pct(entry.get("robust_accuracy")),
                         pct(entry.get("whitebox_robust_accuracy")),
                         entry.get("broken_only_by_this"), verdict])
    if not rows:
        return None
    return Table(["run", "attack", "images", "budget", "robust (%)", "white-box robust (%)",
                  "broken only by it", "masking check"], rows,
                 "Gradient-free checks and their budgets")


def _sweep_figure(runs: Sequence[tuple[str, dict]], norm: str, path: Path) -> Path | None:
    curves = [(name, rec["sweeps"][norm]) for name, rec in runs if norm in rec.get("sweeps", {})]
    if not curves:
        return None
    fig = Figure(figsize=(5.0, 3.5))
    ax = fig.add_subplot(1, 1, 1)
    scale = 255.0 if norm == "linf" else 1.0
    for name, sweep in curves:
        ax.plot([e * scale for e in sweep["eps"]], [100 * a for a in sweep["robust_accuracy"]],
                marker="o", label=name)
    ax.set_xlabel("ε (×1/255)" if norm == "linf" else "ε (ℓ2, [0,1] pixel scale)")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_title(f"PGD ε sweep, {'ℓ∞' if norm == 'linf' else 'ℓ2'}")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def _checks_table(runs: Sequence[tuple[str, dict]]) -> Table:
    rows = [[name, c["name"], "passed" if c["passed"] else "FAILED", c["detail"]]
            for name, rec in runs for c in rec.get("sanity_checks", [])]
    return Table(["run", "check", "result", "detail"], rows, "Automatic sanity checks")


def _autoattack_table(runs: Sequence[tuple[str, dict]]) -> Table | None:
    """Robust accuracy after each AutoAttack member (cumulative), when recorded."""
    recs = [(name, rec.get("attacks", {}).get("autoattack", {}).get("robust_accuracy_after"))
            for name, rec in runs]
    recs = [(name, after) for name, after in recs if after]
    if not recs:
        return None
    members = list(dict.fromkeys(k for _, after in recs for k in after))
    rows = [[name] + [pct(after.get(k)) for k in members] for name, after in recs]
    return Table(["run"] + [f"after {k}" if k != "clean" else "clean" for k in members], rows,
                 "AutoAttack: robust accuracy after each member (cumulative)")


@SECTIONS.register("adversarial")
def adversarial_section(runs: Sequence[tuple[str, dict]], fig_dir: Path) -> Section:
    """Robust accuracy per run, ε-sweep plots of all runs overlaid, sanity checks."""
    fig_dir = Path(fig_dir)
    figures = [p for p in (_sweep_figure(runs, "linf", fig_dir / "adversarial_sweep_linf.png"),
                           _sweep_figure(runs, "l2", fig_dir / "adversarial_sweep_l2.png"))
               if p is not None]
    notes, alerts = [], []
    for name, rec in runs:
        aa = rec.get("attacks", {}).get("autoattack", {})
        if aa.get("skipped"):
            notes.append(f"{name}: AutoAttack skipped ({aa.get('reason')}).")
        if aa.get("missing"):
            alerts.append(f"{name}: AutoAttack was not run because the pyautoattack package is "
                          "missing from this install; its robust accuracy comes from the suite's "
                          "own attacks only.")
        failed = [c["name"] for c in rec.get("sanity_checks", []) if not c["passed"]]
        if failed:
            notes.append(f"{name}: failed sanity checks: {', '.join(failed)} — treat its robust "
                         "accuracy as an upper bound.")
            alerts.append(f"{name}: adversarial sanity checks failed ({', '.join(failed)}); its "
                          "robust accuracy may be an upper bound (see Adversarial robustness).")
    text = " ".join(notes) if notes else "All sanity checks passed."
    tables = [_summary_table(runs), _autoattack_table(runs), _gradient_free_table(runs),
              _checks_table(runs)]
    return Section("Adversarial robustness", text, [t for t in tables if t is not None], figures,
                   alerts=alerts)
