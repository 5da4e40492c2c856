"""CPU-scale version of Kim et al.'s Table 1 and four-task weighting comparison (a slow study, not a test).

Trains WRN-10-2 on the built-in synthetic data with each pretext task alone (lambda = 0.5), with no
task (baseline), and with the four tasks of Kim's multi-task run (rotation, deblurring,
colorization, reconstruction) under ``fixed``, ``meta`` (also with meta batches from the held-out
images passed through the 4 validation-only corruptions) and ``uncertainty`` weighting, then
evaluates clean accuracy and accuracy under the 19 corruptions (severities 1-5, first 500 test
images). The presets are ``configs/cpu/kim_single_task.yaml`` and ``configs/cpu/kim_four_task_*.yaml``;
all set ``task_forward: separate``, and ``fixed_joint`` isolates the forward mode. (Tables written
before the presets set it explicitly: ``four_fixed``, ``four_uncertainty`` and ``single_*`` ran
``joint``.)

Runs go to ``--out`` (default ``runs/kim_cpu``), two at a time with one thread each; a finished run
is skipped and a killed one resumes, so the script can simply be started again. A finished run
whose config differs from the current preset (e.g. one made before a preset changed) is reported
as failed, never reused. The table is written to ``studies/results/kim_cpu.json`` and ``.md``
(mean ± sd over seeds per setting, then every run), and ``ssrobust report`` renders all runs into
``<out>/report``.

Usage: ``python studies/kim_cpu.py [--only single|four] [--seeds 0 1] [--jobs 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SINGLE = ["none", "rotation", "translation", "jigsaw", "rgb_permutation", "colorization",
          "reconstruction", "deblurring", "inpainting"]
VAL_CORRUPTIONS = "weighting.options.val_corruptions=[speckle_noise,gaussian_blur,spatter,saturate]"
FOUR = {"fixed": ["configs/cpu/kim_four_task_fixed.yaml"],
        # every preset runs one trunk forward per view group (task_forward: separate); this
        # isolates what the forward mode alone does
        "fixed_joint": ["configs/cpu/kim_four_task_fixed.yaml", "task_forward=joint"],
        "meta": ["configs/cpu/kim_four_task_meta.yaml"],
        "meta_corrupted_val": ["configs/cpu/kim_four_task_meta.yaml", VAL_CORRUPTIONS],
        "uncertainty": ["configs/cpu/kim_four_task_uncertainty.yaml"]}


def plan(only: str | None, seeds: list[int], noise_seeds: list[int]) -> list[tuple[str, list[str]]]:
    """(run name, CLI arguments) for every run of the study."""
    runs = []
    if only in (None, "four"):  # the long runs first: two workers then finish close together
        for weighting, args in FOUR.items():
            for seed in seeds:
                runs.append((f"four_{weighting}_s{seed}", [*args, f"seed={seed}"]))
    if only in (None, "single"):
        for task in SINGLE:
            for seed in seeds + (noise_seeds if task in ("none", "rotation") else []):
                tasks = "[]" if task == "none" else f"[{task}:0.5]"
                runs.append((f"single_{task}_s{seed}",
                             ["configs/cpu/kim_single_task.yaml", f"tasks={tasks}", f"seed={seed}"]))
    return runs


def run_one(name: str, args: list[str], out: Path) -> tuple[str, float, int]:
    overrides = [*args[1:], f"out_dir={out}", f"name={name}", "progress=false"]
    if (out / name / "results.json").exists():
        if _same_config(out / name, args[0], overrides):
            return name, 0.0, 0
        print(f"{out / name} holds a finished run with another config than {' '.join(args)}; "
              f"delete it or use another --out", file=sys.stderr, flush=True)
        return name, 0.0, 2
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ssrobust", "train", args[0], *overrides]
    t0 = time.time()
    with open(out / f"{name}.log", "w") as log:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    return name, time.time() - t0, rc


def _same_config(run_dir: Path, preset: str, overrides: list[str]) -> bool:
    """Whether a finished run was trained with the preset and overrides as they resolve now."""
    from ssrobust.api import make_config
    from ssrobust.runs.rundir import same_config

    return same_config((run_dir / "config.yaml").read_text(), make_config(ROOT / preset, overrides))


def summarize(out: Path, names: list[str]) -> dict:
    rows = {}
    for name in names:
        path = out / name / "results.json"
        if not path.exists():
            continue
        r = json.loads(path.read_text())
        corr = r["suites"].get("corruptions", {})
        row = {"clean": r["suites"]["clean"]["accuracy"],
               "corruptions_mean": corr.get("mean_accuracy_all"),
               "corruptions_benchmark15": corr.get("mean_accuracy_benchmark"),
               "train_s": r["train"]["time_s"]}
        metrics = out / name / "metrics.jsonl"
        if metrics.exists():  # final task weights, as logged by the loop
            last = [json.loads(line) for line in metrics.read_text().splitlines() if '"weights"' in line]
            if last:
                row["final_weights"] = last[-1]["weights"]
        rows[name] = row
    return rows


def groups(rows: dict) -> dict[str, dict]:
    """Mean and sample standard deviation over the seeds of each setting (run name minus ``_s<seed>``)."""
    by: dict[str, list[dict]] = {}
    for name, r in rows.items():
        by.setdefault(re.sub(r"_s\d+$", "", name), []).append(r)
    out = {}
    for g, rs in by.items():
        rec: dict = {"seeds": len(rs)}
        for key in ("clean", "corruptions_mean"):
            vals = [r[key] for r in rs if r.get(key) is not None]
            if vals:
                rec[key] = statistics.fmean(vals)
                rec[key + "_sd"] = statistics.stdev(vals) if len(vals) > 1 else None
        out[g] = rec
    return out


def markdown(rows: dict) -> str:
    def cell(rec: dict, key: str) -> str:
        if key not in rec:
            return "-"
        sd = rec.get(key + "_sd")
        return f"{100 * rec[key]:.1f}%" + ("" if sd is None else f" ± {100 * sd:.1f}")

    lines = ["| setting | seeds | clean acc. | corruption acc. (19 x 5) | final task weights (last seed) |",
             "|---|---|---|---|---|"]
    for g, rec in groups(rows).items():
        last = [r for n, r in rows.items() if re.sub(r"_s\d+$", "", n) == g][-1]
        weights = last.get("final_weights") or {}
        moving = any(abs(v - 0.5) > 1e-6 for v in weights.values())  # all presets start at 0.5
        wtxt = ", ".join(f"{k} {v:.2f}" for k, v in weights.items()) if moving else ""
        lines.append(f"| {g} | {rec['seeds']} | {cell(rec, 'clean')} | {cell(rec, 'corruptions_mean')} | {wtxt} |")
    lines += ["", "| run | clean acc. | corruption acc. (19 x 5) | train time |", "|---|---|---|---|"]
    for name, r in rows.items():
        c = r["corruptions_mean"]
        lines.append(f"| {name} | {100 * r['clean']:.1f}% | "
                     f"{'-' if c is None else f'{100 * c:.1f}%'} | {r['train_s'] / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["single", "four"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--noise-seeds", type=int, nargs="*", default=[1, 2],
                   help="extra seeds for the baseline and rotation runs, to show run-to-run spread")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "kim_cpu")
    p.add_argument("--results", type=Path, default=ROOT / "studies" / "results" / "kim_cpu")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = plan(args.only, args.seeds, args.noise_seeds)
    failed = []
    with ThreadPoolExecutor(args.jobs) as pool:
        for name, secs, rc in pool.map(lambda r: run_one(r[0], r[1], args.out), runs):
            status = "skipped (done)" if secs == 0 and rc == 0 else f"rc={rc} in {secs / 60:.1f} min"
            print(f"{name}: {status}", flush=True)
            if rc:
                failed.append(f"{name} (log: {args.out / name}.log)")
    all_names = [n for n, _ in plan(None, args.seeds, args.noise_seeds)]
    rows = summarize(args.out, all_names)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    args.results.with_suffix(".md").write_text(markdown(rows))
    print(markdown(rows))
    done = [str(args.out / n) for n in rows]
    if done:  # one report over every finished run: tables, corruption plots, task-weight curves
        subprocess.call([sys.executable, "-m", "ssrobust", "report", "--out", str(args.out / "report"),
                         "--title", "Kim et al. at CPU scale", *done], cwd=ROOT)
    if failed:
        sys.exit("failed runs (the tables leave them out): " + ", ".join(failed))


if __name__ == "__main__":
    main()
