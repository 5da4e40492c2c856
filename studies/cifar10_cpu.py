"""Issue 17's headline claims on real CIFAR-10, at the scale of one session of a 2-core CPU (a slow
study, not a test).

Three sweep specs, one per claim, each 3 seeds per arm (``ssrobust sweep``; resumable: rerun the
same command after an interruption):

1. ``configs/sweeps/study_cpu_corruptions.yaml``: baseline vs + rotation (all four) vs + rotation on
   a quarter of each batch; clean accuracy, mean accuracy over the 15 benchmark corruptions x 5
   severities, per family, and the mCE of each arm against the baseline of its seed;
2. ``configs/sweeps/study_cpu_adversarial.yaml``: fast-AT vs fast-AT + rotation at 8/255; PGD-20,
   PGD-100, AutoAttack, the eps sweep and the suite's sanity checks;
3. ``configs/sweeps/study_cpu_ood.yaml``: CIFAR-10 classes 0-5 in, 6-9 near-OOD, synthetic far-OOD;
   MSP of the baseline vs KL + rotation of the rotation model (and MSP of the rotation model).

This script runs the sweeps (``--run``) and writes ``studies/results/cifar10_cpu.{json,md}`` and
``cifar10_cpu_diffs.png``: per arm and metric the mean over seeds with its 95 % t-interval, the
paired (by seed) difference against the claim's baseline with its 95 % t-interval, the paper's
effect next to it, a verdict per claim, and the compute each claim used (core-hours: every run
has one torch thread, so the recorded training and suite times are core time).

Verdict rule (per claim, on its primary metric, in the paper's direction):
``reproduced`` when the paired interval excludes 0 in the paper's direction; ``not reproduced``
when it excludes 0 in the other direction, or includes 0 but lies entirely below the paper's
effect (the paper's effect size is ruled out); ``unclear`` otherwise.

Usage: ``python studies/cifar10_cpu.py [--run] [--parallel 2] [--sweeps runs/sweeps]``
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ssrobust.atomic import write_text_atomic  # noqa: E402
from ssrobust.corruptions.base import BENCHMARK  # noqa: E402
from ssrobust.corruptions.mce import add_mce  # noqa: E402
from ssrobust.report.seeds import metric_value  # noqa: E402
from ssrobust.stats import interval, paired_difference  # noqa: E402

SEEDS = (0, 1, 2)

# One entry per claim: its sweep, baseline arm, the rows of its table and its primary comparison.
# A row is (metric path under results.json "suites", label, higher is better). ``paper`` is the
# paper's effect on the primary metric in points (arm - baseline), with where it comes from.
CLAIMS: list[dict[str, Any]] = [
    {"key": "corruptions", "title": "Claim 1: common corruptions",
     "spec": "configs/sweeps/study_cpu_corruptions.yaml", "sweep": "study_cpu_corruptions",
     "baseline": "baseline", "arms": ["baseline", "rotation", "rotation_quarter"],
     "rows": [("clean.accuracy", "clean accuracy", True),
              ("corruptions.mean_accuracy_benchmark", "mean corruption accuracy (15 x 5)", True),
              ("corruptions.mean_accuracy_by_family.noise", "noise", True),
              ("corruptions.mean_accuracy_by_family.blur", "blur", True),
              ("corruptions.mean_accuracy_by_family.weather", "weather", True),
              ("corruptions.mean_accuracy_by_family.digital", "digital", True),
              ("corruptions.mean_accuracy_by_severity.1", "severity 1", True),
              ("corruptions.mean_accuracy_by_severity.5", "severity 5", True),
              ("mce", "mCE vs the baseline of the seed (%)", False),
              ("relative_mce", "relative mCE vs the baseline of the seed (%)", False)],
     "primary": [("rotation", "corruptions.mean_accuracy_benchmark"),
                 ("rotation_quarter", "corruptions.mean_accuracy_benchmark")],
     "paper": {"effect": 4.6, "source": "Hendrycks et al. 2019, WRN-40-2: 72.3 -> 76.9 (all four rotations)"}},
    {"key": "adversarial", "title": "Claim 2: adversarial robustness (fast-AT, linf 8/255)",
     "spec": "configs/sweeps/study_cpu_adversarial.yaml", "sweep": "study_cpu_adversarial",
     "baseline": "fast_at", "arms": ["fast_at", "fast_at_rotation"],
     "rows": [("clean.accuracy", "clean accuracy (2,000 test images)", True),
              ("adversarial.clean_accuracy", "clean accuracy (attacked images)", True),
              ("adversarial.attacks.pgd20.robust_accuracy", "PGD-20", True),
              ("adversarial.attacks.pgd100.robust_accuracy", "PGD-100", True),
              ("adversarial.attacks.autoattack.robust_accuracy", "AutoAttack (standard)", True),
              ("adversarial.worst_case_robust_accuracy", "worst case over all attacks", True),
              ("adversarial.sweeps.linf.by_eps.2", "eps 2/255 (PGD-10)", True),
              ("adversarial.sweeps.linf.by_eps.4", "eps 4/255", True),
              ("adversarial.sweeps.linf.by_eps.8", "eps 8/255", True),
              ("adversarial.sweeps.linf.by_eps.12", "eps 12/255", True),
              ("adversarial.sweeps.linf.by_eps.16", "eps 16/255", True),
              ("adversarial.sanity_checks_failed", "failed sanity checks (count)", False)],
     "primary": [("fast_at_rotation", "adversarial.attacks.pgd20.robust_accuracy"),
                 ("fast_at_rotation", "adversarial.attacks.autoattack.robust_accuracy")],
     "paper": {"effect": 5.6, "source": "Hendrycks et al. 2019, Table 1 (PGD-AT, WRN): PGD-20 44.8 -> 50.4"}},
    {"key": "ood", "title": "Claim 3: multi-class OOD detection (classes 0-5 in-distribution)",
     "spec": "configs/sweeps/study_cpu_ood.yaml", "sweep": "study_cpu_ood",
     "baseline": "baseline", "arms": ["baseline", "rotation"],
     "rows": [("clean.accuracy", "clean accuracy (6 classes)", True),
              ("ood.detector.per_set.held_out.auroc_out_pos", "near-OOD AUROC, own detector", True),
              ("ood.detector.per_set.held_out.fpr_at_95_tpr_in", "near-OOD FPR95, own detector", False),
              ("ood.detector.mean_synthetic.auroc_out_pos", "far-OOD AUROC, own detector", True),
              ("ood.detector.mean_synthetic.fpr_at_95_tpr_in", "far-OOD FPR95, own detector", False),
              ("ood.scores.msp.per_set.held_out.auroc_out_pos", "near-OOD AUROC, MSP", True),
              ("ood.scores.msp.mean_synthetic.auroc_out_pos", "far-OOD AUROC, MSP", True)],
     "primary": [("rotation", "ood.detector.per_set.held_out.auroc_out_pos"),
                 ("rotation", "ood.detector.mean_synthetic.auroc_out_pos")],
     "paper": {"effect": 4.8, "source": "Hendrycks et al. 2019, multi-class OOD: mean AUROC 91.4 -> 96.2 "
                                          "(OpenOOD v1.5: near 88.0 -> 92.7, far 90.7 -> 96.6)"}},
]

# Metrics stored as fractions in results.json; shown in points (x 100). Counts stay as they are.
COUNTS = {"adversarial.sanity_checks_failed"}


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """``record["a"]["b"]...`` for the dotted ``path`` (keys may be numbers written as text)."""
    node: Any = record
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def load_runs(sweep_dir: Path, arms: Sequence[str], seeds: Sequence[int]) -> dict[str, dict[int, dict]]:
    """``{arm: {seed: results.json}}`` of the finished runs (``<arm>_s<seed>/results.json``)."""
    out: dict[str, dict[int, dict]] = {}
    for arm in arms:
        for seed in seeds:
            path = sweep_dir / f"{arm}_s{seed}" / "results.json"
            if path.is_file():
                out.setdefault(arm, {})[seed] = json.loads(path.read_text())
    return out


def corruption_mce(runs: Mapping[str, Mapping[int, dict]], baseline: str) -> dict[str, dict[int, dict]]:
    """Per arm and seed: mCE and relative mCE (%, over the 15 benchmark corruptions) of the run
    against the baseline run of the same seed (``ssrobust.corruptions.mce.add_mce``)."""
    out: dict[str, dict[int, dict]] = {}
    for arm, by_seed in runs.items():
        for seed, record in by_seed.items():
            base = runs.get(baseline, {}).get(seed)
            if base is None:
                continue
            mce = add_mce(record["suites"]["corruptions"], base["suites"]["corruptions"], baseline)["mce"]
            out.setdefault(arm, {})[seed] = {
                "mce": None if mce["mce_benchmark"] is None else 100 * mce["mce_benchmark"],
                "relative_mce": None if mce["relative_mce_benchmark"] is None else 100 * mce["relative_mce_benchmark"]}
    return out


def metric_values(claim: Mapping[str, Any], runs: Mapping[str, Mapping[int, dict]],
                  extra: Mapping[str, Mapping[int, dict]]) -> dict[str, dict[str, dict[int, float]]]:
    """``{metric path: {arm: {seed: value in points}}}`` for every row of the claim's table."""
    values: dict[str, dict[str, dict[int, float]]] = {}
    for path, _, _ in claim["rows"]:
        for arm, by_seed in runs.items():
            for seed, record in by_seed.items():
                raw = extra.get(arm, {}).get(seed, {}).get(path) if path in ("mce", "relative_mce") \
                    else metric_value(record, path)
                if isinstance(raw, (int, float)) and math.isfinite(raw):
                    v = float(raw) if path in COUNTS or path in ("mce", "relative_mce") else 100.0 * float(raw)
                    values.setdefault(path, {}).setdefault(arm, {})[seed] = v
    return values


def _iv(iv) -> dict[str, Any] | None:
    return None if iv is None else {"mean": iv.mean, "sd": iv.sd, "low": iv.low, "high": iv.high, "n": iv.n}


def verdict(diff: Mapping[str, Any] | None, paper_effect: float, higher_is_better: bool = True) -> str:
    """The rule of the module docstring, on a paired difference in points (arm - baseline)."""
    if diff is None or diff.get("low") is None:
        return "unclear (fewer than 2 paired seeds)"
    sign = 1.0 if higher_is_better else -1.0
    low, high = sorted((sign * diff["low"], sign * diff["high"]))
    if low > 0:
        return "reproduced"
    if high < 0:
        return "not reproduced (opposite direction)"
    if high < paper_effect:
        return "not reproduced (the paper's effect is outside the interval)"
    return "unclear"


def compute_core_hours(runs: Mapping[str, Mapping[int, dict]]) -> dict[str, float]:
    """Training and evaluation core-hours of a claim's runs (one torch thread per run)."""
    train = sum(float(lookup(r, "train.time_s") or 0.0) for by_seed in runs.values() for r in by_seed.values())
    evaluation = sum(float(s.get("time_s") or 0.0) for by_seed in runs.values() for r in by_seed.values()
                     for s in r.get("suites", {}).values() if isinstance(s, Mapping))
    threads = {int(lookup(r, "config.threads") or 1) for by_seed in runs.values() for r in by_seed.values()}
    factor = max(threads) if threads else 1
    return {"train": factor * train / 3600, "eval": factor * evaluation / 3600,
            "total": factor * (train + evaluation) / 3600, "threads_per_run": factor}


def summarize_claim(claim: Mapping[str, Any], sweeps: Path) -> dict[str, Any]:
    runs = load_runs(sweeps / claim["sweep"], claim["arms"], SEEDS)
    extra = corruption_mce(runs, claim["baseline"]) if claim["key"] == "corruptions" else {}
    values = metric_values(claim, runs, extra)
    base = claim["baseline"]
    table: dict[str, dict[str, Any]] = {}
    for path, label, higher in claim["rows"]:
        by_arm = values.get(path, {})
        row: dict[str, Any] = {"label": label, "higher_is_better": higher, "arms": {}}
        for arm in claim["arms"]:
            seeds = by_arm.get(arm, {})
            cell: dict[str, Any] = {"seeds": {str(s): v for s, v in sorted(seeds.items())},
                                    "interval": _iv(interval(list(seeds.values()))) if seeds else None}
            if arm != base and seeds and by_arm.get(base):
                cell["diff"] = _iv(paired_difference(seeds, by_arm[base]))
            row["arms"][arm] = cell
        table[path] = row
    verdicts = []
    for arm, path in claim["primary"]:
        diff = table.get(path, {}).get("arms", {}).get(arm, {}).get("diff")
        verdicts.append({"arm": arm, "metric": path, "label": table.get(path, {}).get("label", path),
                         "diff": diff, "paper_effect": claim["paper"]["effect"],
                         "verdict": verdict(diff, claim["paper"]["effect"])})
    finished = {arm: sorted(by_seed) for arm, by_seed in runs.items()}
    complete = all(sorted(finished.get(a, [])) == list(SEEDS) for a in claim["arms"])
    failed_checks = {f"{arm}_s{seed}": [c.get("name", "?") for c in (lookup(r, "suites.adversarial.sanity_checks") or [])
                                        if isinstance(c, Mapping) and c.get("passed") is False]
                     for arm, by_seed in runs.items() for seed, r in by_seed.items()} \
        if claim["key"] == "adversarial" else {}
    return {"key": claim["key"], "title": claim["title"], "spec": claim["spec"],
            "command": f"ssrobust sweep {claim['spec']} --parallel 2", "baseline": base,
            "finished": finished, "complete": complete, "table": table, "verdicts": verdicts,
            "paper": claim["paper"], "core_hours": compute_core_hours(runs),
            "failed_sanity_checks": {k: v for k, v in failed_checks.items() if v}}


def _fmt(iv: Mapping[str, Any] | None, digits: int = 1) -> str:
    if not iv:
        return "–"
    if iv.get("low") is None:
        return f"{iv['mean']:.{digits}f} (n={iv['n']})"
    return f"{iv['mean']:.{digits}f} [{iv['low']:.{digits}f}, {iv['high']:.{digits}f}]"


def _signed(iv: Mapping[str, Any] | None, digits: int = 1) -> str:
    if not iv:
        return "–"
    if iv.get("low") is None:
        return f"{iv['mean']:+.{digits}f} (n={iv['n']})"
    return f"{iv['mean']:+.{digits}f} [{iv['low']:+.{digits}f}, {iv['high']:+.{digits}f}]"


def render_markdown(summary: Mapping[str, Any]) -> str:
    lines = ["# Issue 17's claims on real CIFAR-10 at CPU-session scale", "",
             f"Generated by `{summary['command']}` on {summary['date']} ({summary['machine']}).",
             "Every number: mean over seeds [95% t-interval]; differences are paired by seed (arm − "
             "baseline) with their 95% t-interval; accuracies and AUROC in points, FPR95 in %.", ""]
    for claim in summary["claims"]:
        arms = list(next(iter(claim["table"].values()))["arms"]) if claim["table"] else []
        base = claim["baseline"]
        lines += [f"## {claim['title']}", "", f"Spec: `{claim['spec']}`; regenerate: `{claim['command']}`. "
                  f"Finished seeds: {', '.join(f'{a} {s}' for a, s in claim['finished'].items())}."
                  + ("" if claim["complete"] else " **Incomplete.**"), ""]
        head = ["metric"] + [f"{a}" for a in arms] + [f"{a} − {base}" for a in arms if a != base]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for path, row in claim["table"].items():
            digits = 2 if path in COUNTS else 1
            cells = [_fmt(row["arms"][a]["interval"], digits) for a in arms]
            cells += [_signed(row["arms"][a].get("diff"), digits) for a in arms if a != base]
            lines.append("| " + " | ".join([row["label"]] + cells) + " |")
        lines += ["", f"Paper: {claim['paper']['source']} (effect {claim['paper']['effect']:+.1f} points).", ""]
        for v in claim["verdicts"]:
            lines.append(f"- **{v['verdict']}**: {v['arm']} − {base}, {v['label']}: {_signed(v['diff'])} "
                         f"(paper {v['paper_effect']:+.1f})")
        ch = claim["core_hours"]
        lines += ["", f"Compute: {ch['total']:.2f} core-hours ({ch['train']:.2f} training, {ch['eval']:.2f} "
                  f"evaluation; {ch['threads_per_run']} thread per run).", ""]
        if claim.get("failed_sanity_checks"):
            lines += ["Failed sanity checks: " + "; ".join(f"{r}: {', '.join(c)}" for r, c in
                                                           claim["failed_sanity_checks"].items()), ""]
    total = sum(c["core_hours"]["total"] for c in summary["claims"])
    lines += [f"Total compute: {total:.2f} core-hours.", ""]
    return "\n".join(lines)


def plot_diffs(summary: Mapping[str, Any], path: Path) -> None:
    """One panel per claim: the paired differences of its primary metrics with their intervals,
    and the paper's effect as a marker."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims = summary["claims"]
    fig, axes = plt.subplots(1, len(claims), figsize=(4.2 * len(claims), 3.4), squeeze=False)
    for ax, claim in zip(axes[0], claims):
        labels, means, errs, papers = [], [], [], []
        for v in claim["verdicts"]:
            d = v["diff"]
            if not d:
                continue
            labels.append(f"{v['arm']}\n{v['label']}")
            means.append(d["mean"])
            half = 0.0 if d.get("low") is None else (d["high"] - d["low"]) / 2
            errs.append(half)
            papers.append(v["paper_effect"])
        y = list(range(len(labels)))
        ax.errorbar(means, y, xerr=errs, fmt="o", capsize=4, label="ours (95% CI)")
        ax.scatter(papers, y, marker="x", color="C3", label="paper")
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_title(claim["title"].split(":")[0] + ": " + claim["key"], fontsize=9)
        ax.set_xlabel("arm − baseline (points)")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_sweeps(parallel: int) -> None:
    for claim in CLAIMS:
        cmd = [sys.executable, "-m", "ssrobust", "sweep", claim["spec"], "--parallel", str(parallel)]
        print("+", " ".join(cmd[2:]), flush=True)
        subprocess.run(cmd, cwd=ROOT, check=False)  # a failed run is reported by the summary


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="store_true", help="run (or resume) the three sweeps first")
    p.add_argument("--parallel", type=int, default=2, help="sweep jobs at once (one core each)")
    p.add_argument("--sweeps", type=Path, default=ROOT / "runs" / "sweeps", help="where the sweeps write")
    p.add_argument("--out", type=Path, default=ROOT / "studies" / "results", help="where the write-up goes")
    args = p.parse_args(argv)
    if not args.sweeps.is_dir() and not args.run:
        print(f"error: --sweeps {args.sweeps} is not a folder (run the sweeps first: --run)", file=sys.stderr)
        return 2
    if args.run:
        run_sweeps(args.parallel)
    claims = [summarize_claim(c, args.sweeps) for c in CLAIMS]
    summary = {"issue": 17, "date": date.today().isoformat(),
               "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, {_cpu_name()}",
               "command": "python studies/cifar10_cpu.py" + (" --run" if args.run else ""),
               "seeds": list(SEEDS), "benchmark_corruptions": list(BENCHMARK), "claims": claims,
               "core_hours_total": sum(c["core_hours"]["total"] for c in claims)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "cifar10_cpu.json", json.dumps(summary, indent=1) + "\n")
    write_text_atomic(args.out / "cifar10_cpu.md", render_markdown(summary))
    plot_diffs(summary, args.out / "cifar10_cpu_diffs.png")
    print(render_markdown(summary))
    return 0 if all(c["complete"] for c in claims) else 1


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
