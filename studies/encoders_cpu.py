"""CPU-scale cross-task encoder study (issue 15; a slow study, not a test).

Per seed, four fastnet (32/64/64) encoders trained on the built-in scenes:

* ``supervised``: ``configs/cpu/encoders_study_supervised.yaml`` (the quickstart's fast recipe);
* ``rotation``: ``configs/cpu/encoders_study_rotation.yaml`` (+ rotation prediction, 0.5);
* ``simclr``: ``configs/cpu/encoders_study_simclr.yaml`` (contrastive strategy, SimCLR mode);
* ``advft``: ``configs/cpu/encoders_study_advft.yaml``, the supervised encoder adversarially
  finetuned without labels (DeACL, as the layer6 benchmark);

then ``ssrobust encoders`` on the four (``configs/cpu/encoders_eval.yaml``) into
``<out>/seed<k>/eval``. A finished run or evaluation is reused, so seeds can run in separate
processes and a last call with every seed only summarizes.

Output: ``studies/results/encoders_cpu.{json,md}`` and ``encoders_cpu_heatmap.png`` (the report's
heatmap of the means): per encoder x task x condition the mean over
seeds with its 95 % t-interval, and the paired (by seed) difference advft - supervised with its
95 % t-interval (``ssrobust.stats``).

Usage: ``OMP_NUM_THREADS=1 python studies/encoders_cpu.py [--seeds 0 1 2] [--out runs/encoders_cpu]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ssrobust.stats import interval, paired_difference  # noqa: E402

TRAIN = ["progress=false"]
EVAL_PRESET = "configs/cpu/encoders_eval.yaml"
EVAL: list[str] = []  # the preset as it is (2000/500 scenes, 10-step attacks at 8/255)
ENCODERS = {"supervised": "configs/cpu/encoders_study_supervised.yaml",
            "rotation": "configs/cpu/encoders_study_rotation.yaml",
            "simclr": "configs/cpu/encoders_study_simclr.yaml"}
FINETUNED = ("advft", "configs/cpu/encoders_study_advft.yaml", "supervised")
CONDITIONS = ("clean", "embedding_attack", "task_attack")
PAIR = ("advft", "supervised")


def _run(args: list[str]) -> dict[str, float]:
    """Run ``ssrobust args``; returns its wall and CPU (user + system) time in seconds."""
    print("+ ssrobust", " ".join(args), flush=True)
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "ssrobust", *args], cwd=ROOT, check=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": time.perf_counter() - t0, "cpu": r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime}


def _train(preset: str, runs: Path, name: str, seed: int, extra: list[str]) -> dict[str, float] | None:
    if (runs / name / "model.pt").exists() and (runs / name / "results.json").exists():
        return None  # finished earlier (its time is in the times.json of that call)
    return _run(["train", preset, f"name={name}", f"seed={seed}", f"out_dir={runs}", *extra, *TRAIN])


def run_seed(seed: int, out: Path) -> dict[str, Any]:
    """Train the four encoders of ``seed`` and evaluate them; returns the ``encoders`` suite."""
    runs = out / f"seed{seed}"
    times = {name: _train(preset, runs, name, seed, []) for name, preset in ENCODERS.items()}
    name, preset, parent = FINETUNED
    times[name] = _train(preset, runs, name, seed, [f"init_from={runs / parent}"])
    result = runs / "eval" / "results.json"
    if not result.exists():
        names = [*ENCODERS, name]
        times["eval"] = _run(["encoders", *(str(runs / n) for n in names), "--preset", EVAL_PRESET,
                              "--out", str(runs / "eval"), f"seed={seed}", f"data_seed={seed}", *EVAL])
        old = json.loads((runs / "times.json").read_text()) if (runs / "times.json").exists() else {}
        (runs / "times.json").write_text(json.dumps({**old, **{k: v for k, v in times.items() if v}}, indent=1) + "\n")
    return json.loads(result.read_text())["suites"]["encoders"]


def _cells(per_seed: Mapping[int, dict]) -> dict[tuple[str, str, str], dict[str, dict[int, float]]]:
    """``{(encoder, task, metric): {condition: {seed: value}}}`` from each seed's table."""
    cells: dict[tuple[str, str, str], dict[str, dict[int, float]]] = {}
    for seed, suite in per_seed.items():
        for r in suite["table"]:
            cell = cells.setdefault((r["encoder"], r["task"], r["metric"]), {})
            for c in CONDITIONS:
                cell.setdefault(c, {})[seed] = float(r[c])
    return cells


def _fmt(iv: Any) -> str:
    """``mean [low, high]`` in percent (no interval for one seed)."""
    if iv is None:
        return "n/a"
    if iv.low is None:
        return f"{100 * iv.mean:.1f}"
    return f"{100 * iv.mean:.1f} [{100 * iv.low:.1f}, {100 * iv.high:.1f}]"


def summarize(per_seed: Mapping[int, dict]) -> tuple[dict[str, list[dict]], str]:
    """Mean with 95 % t-interval per encoder x task x condition, and the paired difference
    ``advft - supervised`` per task x condition; returns ``({"rows", "paired"}, markdown)``."""
    cells = _cells(per_seed)
    rows, lines = [], ["| encoder | task | metric | " + " | ".join(CONDITIONS) + " |", "|---|---|---|---|---|---|"]
    for (enc, task, metric), vals in cells.items():
        ivs = {c: interval(list(v.values())) for c, v in vals.items()}
        rows.append({"encoder": enc, "task": task, "metric": metric, "values": vals,
                     "interval": {c: iv.as_dict() for c, iv in ivs.items()}})
        lines.append(f"| {enc} | {task} | {metric} | " + " | ".join(_fmt(ivs[c]) for c in CONDITIONS) + " |")
    paired, plines = [], [f"| task | metric | {PAIR[0]} − {PAIR[1]}: " + " | ".join(CONDITIONS) + " |",
                          "|---|---|---|---|---|"]
    for (enc, task, metric), vals in cells.items():
        base = cells.get((PAIR[1], task, metric))
        if enc != PAIR[0] or base is None:
            continue
        diffs = {c: paired_difference(vals[c], base[c]) for c in CONDITIONS}
        paired.append({"task": task, "metric": metric, "arm": PAIR[0], "baseline": PAIR[1],
                       "difference": {c: d.as_dict() if d else None for c, d in diffs.items()}})
        plines.append(f"| {task} | {metric} | " + " | ".join(_fmt(diffs[c]) for c in CONDITIONS) + " |")
    md = "\n".join(lines) + "\n\nPaired by seed (percentage points):\n\n" + "\n".join(plines)
    return {"rows": rows, "paired": paired}, md


def write_heatmap(summary: dict[str, list[dict]], out: Path, png: Path) -> None:
    """Render the mean table with the report's ``encoders`` section into ``png`` (via a
    ``results.json`` of means in ``out/mean``, read by ``ssrobust report``)."""
    table = [{"encoder": r["encoder"], "task": r["task"], "metric": r["metric"],
              **{c: r["interval"][c]["mean"] for c in CONDITIONS}} for r in summary["rows"]]
    mean = out / "mean"
    mean.mkdir(parents=True, exist_ok=True)
    (mean / "results.json").write_text(json.dumps({"run": "encoders", "suites": {"encoders": {
        "tasks": sorted({r["task"] for r in table}), "conditions": list(CONDITIONS), "table": table}}}))
    _run(["report", str(mean), "--out", str(mean / "report")])
    shutil.copyfile(mean / "report" / "figures" / "encoders_heatmap.png", png)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "encoders_cpu")
    p.add_argument("--results", type=Path, default=ROOT / "studies" / "results" / "encoders_cpu")
    a = p.parse_args()
    out = a.out.resolve()
    per_seed = {s: run_seed(s, out) for s in a.seeds}
    summary, md = summarize(per_seed)
    times = {s: json.loads((out / f"seed{s}" / "times.json").read_text())
             for s in a.seeds if (out / f"seed{s}" / "times.json").exists()}
    meta = {"seeds": a.seeds, "train": TRAIN, "eval_preset": EVAL_PRESET, "eval": EVAL,
            "encoders": {**ENCODERS, FINETUNED[0]: FINETUNED[1]}, "machine": platform.processor() or
            platform.machine(), "seconds": times}
    a.results.with_suffix(".json").write_text(json.dumps({**meta, **summary}, indent=1) + "\n")
    head = (f"Headline metric (%), mean over seeds {a.seeds} [95 % t-interval]; "
            f"`python studies/encoders_cpu.py --seeds {' '.join(map(str, a.seeds))}`.\n\n")
    a.results.with_suffix(".md").write_text(head + md + "\n")
    write_heatmap(summary, out, a.results.parent / f"{a.results.name}_heatmap.png")
    print(md)


if __name__ == "__main__":
    main()
