"""CPU-scale version of Kim et al.'s Table 1 and four-task weighting comparison (a slow study, not a test).

A thin alias of ``ssrobust sweep configs/sweeps/kim_cpu.yaml`` (the arms, presets and seeds are
in that spec): trains WRN-10-2 on the built-in synthetic data with each pretext task alone
(lambda = 0.5), with no task, and with Kim's four tasks under ``fixed`` (also ``task_forward:
joint``), ``meta`` (also with corrupted meta batches) and ``uncertainty`` weighting; evaluates
clean accuracy and accuracy under the 19 corruptions (first 500 test images).

Runs go to ``--out`` (default ``runs/kim_cpu``), ``--jobs`` at a time through the sweep's local
executor (cores // jobs threads each); a finished run is skipped and a killed one resumes, so the
script can simply be started again. The sweep summary (mean, sd, 95% interval and n per arm,
paired differences against ``single_none``) is copied to ``studies/results/kim_cpu.json`` and
``.md``, and ``ssrobust report`` renders all finished runs into ``<out>/report``.

Usage: ``python studies/kim_cpu.py [--only single|four] [--seeds 0 1 2] [--jobs 2]``
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "configs" / "sweeps" / "kim_cpu.yaml"


def main() -> None:
    from ssrobust.api import report
    from ssrobust.experiments.sweep import SUMMARY_JSON, SUMMARY_MD, run_sweep
    from ssrobust.experiments.sweep_spec import load_spec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["single", "four"])
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the spec's")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "kim_cpu")
    p.add_argument("--results", type=Path, default=ROOT / "studies" / "results" / "kim_cpu")
    args = p.parse_args()
    spec = load_spec(SPEC, args.out)
    if args.only:
        spec = replace(spec, arms=[a for a in spec.arms if a.name.startswith(args.only + "_")])
        spec.baseline = spec.baseline if spec.baseline in {a.name for a in spec.arms} else None
    if args.seeds:
        spec = replace(spec, seeds=list(args.seeds))
    outcomes = run_sweep(spec, "local", args.jobs)
    args.results.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(args.out / SUMMARY_JSON, args.results.with_suffix(".json"))
    shutil.copyfile(args.out / SUMMARY_MD, args.results.with_suffix(".md"))
    print((args.out / SUMMARY_MD).read_text())
    done = [args.out / r.name for r in spec.runs() if (args.out / r.name / "results.json").is_file()]
    if done:  # one report over every finished run: tables, seeds, corruption plots, task weights
        report(done, args.out / "report", "Kim et al. at CPU scale",
               baseline="single_none" if any(d.name.startswith("single_none_") for d in done) else None)
    failed = [f"{o.name} (log: {o.log})" for o in outcomes if o.status == "failed"]
    if failed:
        sys.exit("failed runs (the tables leave them out): " + ", ".join(failed))


if __name__ == "__main__":
    main()
