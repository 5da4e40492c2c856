"""CPU-scale AdvCL comparison on real CIFAR-10 images (issue 14; a slow study, not a test).

Per seed, on a subset of an image folder (``--root``, e.g. the JPEG CIFAR-10 copy
``DIR/{train,test}/<class>/*.jpg``), with the ``fastnet`` backbone (``whiten_eps: 1.0``, see
``configs/cpu/cifar10_fast_at.yaml``):

1. pretraining: SimCLR, ACL-style adversarial contrastive, AdvCL (its pseudo-labels from the
   seed's SimCLR run): ``configs/cpu/advcl_{simclr,acl,advcl}.yaml`` with the overrides below;
2. finetuning of each: SLF, ALF, AFF (``configs/cpu/advcl_{slf,alf,aff}.yaml``, ``init_from`` the
   pretraining run);
3. evaluation of each finetuned run: clean accuracy on the test subset, then ``ssrobust eval``
   with the adversarial suite (ℓ∞ 8/255: PGD-20 step 2/255, and standard AutoAttack) on the first
   ``--adv-images`` test images (a fixed class-mixed sample: image folders are read in a fixed
   mixed order).

Runs go to ``<out>/seed<k>/<name>``; a finished step is skipped, so the script can simply be
started again (``ssrobust train`` resumes a killed run). The wall time and the CPU time of every
command that ran are kept in ``<out>/timings.json``. The summary (mean and 95% t-interval per
pretraining x finetuning cell, paired differences AdvCL - ACL, ACL - SimCLR and AdvCL - SimCLR
per seed, times) is written to ``studies/results/advcl_cpu.json`` and ``.md``.

Usage (one thread, low priority):
``OMP_NUM_THREADS=1 nice -n 19 python studies/advcl_cpu.py --root /tmp/cifar [--seeds 0 1]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAININGS = ("simclr", "acl", "advcl")
FINETUNINGS = ("slf", "alf", "aff")
METRICS = ("clean", "pgd20", "autoattack")
DIFFERENCES = (("advcl", "acl"), ("acl", "simclr"), ("advcl", "simclr"))
MACHINE = "2-core AMD EPYC (AVX2, no bf16), no GPU; 1 thread, nice 19, machine shared with other jobs"


def scale_overrides(a: argparse.Namespace, seed: int) -> list[str]:
    """Overrides shared by every run of a seed: data subset, backbone, seed."""
    return [f"seed={seed}", "progress=false", "data.source=imagefolder", f"data.root={a.root}",
            "data.classes=null", f"data.limit_train={a.train_images}",
            f"data.limit_test={a.test_images}", "data.val_size=0", f"data.batch_size={a.batch_size}",
            "model.name=fastnet",
            f"model.kwargs={{whiten_eps: 1.0, widths: [{', '.join(map(str, a.widths))}]}}"]


def adversarial_overrides(a: argparse.Namespace, autoattack: bool) -> list[str]:
    """``ssrobust eval`` options: PGD-20 (and standard AutoAttack) on the first ``adv_images``
    test images; the suite's other attacks are shrunk or off (time), as the results' ``options``
    record (the margin PGD-20 always runs)."""
    opts = (f"{{max_images: {a.adv_images}, pgd100_steps: {a.pgd100_steps}, sweep_linf: [], "
            f"sweep_l2: [], unbounded_eps: null, gradient_free_images: 0, "
            f"autoattack: {'true' if autoattack else 'false'}}}")
    return ["--suites", "adversarial", f"adversarial={opts}"]


class Runner:
    """Runs ``ssrobust`` commands, timing each (wall, CPU of the child) into ``timings.json``."""

    def __init__(self, out: Path) -> None:
        self.path = out / "timings.json"
        self.timings: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def run(self, key: str, args: list[str]) -> None:
        print("+ ssrobust", " ".join(args), flush=True)
        wall0, cpu0 = time.perf_counter(), _children_cpu()
        rc = subprocess.run([sys.executable, "-m", "ssrobust", *args], cwd=ROOT).returncode
        if rc:
            sys.exit(f"advcl_cpu: {key} failed (ssrobust {args[0]} exit status {rc}; its message is above)")
        self.timings[key] = {"wall_s": round(time.perf_counter() - wall0, 1),
                             "cpu_s": round(_children_cpu() - cpu0, 1)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.timings, indent=1) + "\n")


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pretrain(runner: Runner, a: argparse.Namespace, seed: int, runs: Path) -> None:
    """SimCLR first (AdvCL's pseudo-label encoder), then ACL and AdvCL."""
    for mode in PRETRAININGS:
        if (runs / mode / "model.pt").is_file():
            continue
        extra = [f"strategy.options.pseudo_label_run={runs / 'simclr'}"] if mode == "advcl" else []
        runner.run(f"seed{seed}/{mode}", ["train", f"configs/cpu/advcl_{mode}.yaml", f"name={mode}",
                                          f"out_dir={runs}", f"epochs={a.pretrain_epochs}",
                                          *scale_overrides(a, seed), *extra])


def finetune(runner: Runner, a: argparse.Namespace, seed: int, runs: Path) -> None:
    """SLF / ALF / AFF from each pretraining (clean accuracy), then the adversarial evaluation."""
    for mode in PRETRAININGS:
        for ft in FINETUNINGS:
            name = f"{mode}_{ft}"
            if not (runs / name / "model.pt").is_file():
                runner.run(f"seed{seed}/{name}", [
                    "train", f"configs/cpu/advcl_{ft}.yaml", f"name={name}", f"out_dir={runs}",
                    f"init_from={runs / mode}", f"epochs={a.finetune_epochs}",
                    *scale_overrides(a, seed), "eval.suites=[clean]"])
            if _adversarial(runs / name) is None:
                runner.run(f"seed{seed}/{name}/eval", ["eval", str(runs / name), *adversarial_overrides(a, False)])


def autoattack(runner: Runner, a: argparse.Namespace) -> None:
    """Last (it is the slow part): the adversarial suite again with AutoAttack, finetuning by
    finetuning in the order of ``a.autoattack_on``, every seed and pretraining of one finetuning
    before the next (the suite's record is replaced; its PGD-20 is rerun on the same images)."""
    for ft in a.autoattack_on:
        for seed in a.seeds:
            for mode in PRETRAININGS:
                run = a.out / f"seed{seed}" / f"{mode}_{ft}"
                record = _adversarial(run)
                if record is not None and record["attacks"]["autoattack"].get("skipped"):
                    runner.run(f"seed{seed}/{mode}_{ft}/autoattack",
                               ["eval", str(run), *adversarial_overrides(a, True)])


def _adversarial(run: Path) -> dict | None:
    """The adversarial suite's record of a run's ``results.json`` (None: no such record yet)."""
    path = run / "results.json"
    return json.loads(path.read_text()).get("suites", {}).get("adversarial") if path.is_file() else None


def read_cell(run: Path) -> dict[str, float] | None:
    """Clean, PGD-20 and AutoAttack accuracy of a finetuned run's ``results.json`` (None until
    the run has its adversarial record)."""
    if _adversarial(run) is None:
        return None
    suites = json.loads((run / "results.json").read_text())["suites"]
    attacks = suites["adversarial"]["attacks"]
    return {"clean": suites["clean"]["accuracy"], "pgd20": attacks["pgd20"]["robust_accuracy"],
            "autoattack": attacks["autoattack"].get("robust_accuracy"),
            "adv_clean": suites["adversarial"]["clean_accuracy"]}


def summarize(values: dict[int, dict[str, dict[str, float]]]) -> dict:
    """``values[seed]["<pretraining>_<finetuning>"][metric]`` -> cells (mean, 95% t-interval) and
    paired differences between pretrainings (per finetuning and metric, paired by seed)."""
    from ssrobust.stats import interval, paired_difference

    def by_seed(name: str, metric: str) -> dict[int, float]:
        return {s: v[name][metric] for s, v in values.items()
                if name in v and v[name].get(metric) is not None}

    cells, diffs = {}, {}
    for pre in PRETRAININGS:
        for ft in FINETUNINGS:
            name = f"{pre}_{ft}"
            cells[name] = {m: _interval_dict(interval(list(by_seed(name, m).values())))
                           for m in METRICS if by_seed(name, m)}
    for arm, base in DIFFERENCES:
        for ft in FINETUNINGS:
            for m in METRICS:
                d = paired_difference(by_seed(f"{arm}_{ft}", m), by_seed(f"{base}_{ft}", m))
                if d is not None:
                    diffs[f"{arm}-{base}/{ft}/{m}"] = _interval_dict(d)
    return {"cells": cells, "differences": diffs}


def _interval_dict(iv) -> dict:
    return {"mean": iv.mean, "sd": iv.sd, "low": iv.low, "high": iv.high, "n": iv.n}


def _pct(iv: dict, signed: bool = False) -> str:
    mean = f"{100 * iv['mean']:+.1f}" if signed else f"{100 * iv['mean']:.1f}"
    if iv["low"] is None:
        return f"{mean} (n={iv['n']})"
    return f"{mean} [{100 * iv['low']:.1f}, {100 * iv['high']:.1f}]"


def markdown(summary: dict, meta: dict) -> str:
    """The cells table and the paired-differences table (percent, 95% t-intervals)."""
    lines = [f"AdvCL CPU study ({meta['date']}): {meta['setting']}", "",
             f"Seeds {meta['seeds']}; mean [95% t-interval] over seeds, % of test images.", "",
             "| pretraining | finetuning | clean | PGD-20 | AutoAttack |", "|---|---|---|---|---|"]
    for name, cell in summary["cells"].items():
        pre, ft = name.split("_")
        lines.append(f"| {pre} | {ft.upper()} | " + " | ".join(
            _pct(cell[m]) if m in cell else "–" for m in METRICS) + " |")
    lines += ["", "Paired differences (same seed), percentage points:", "",
              "| difference | finetuning | clean | PGD-20 | AutoAttack |", "|---|---|---|---|---|"]
    for arm, base in DIFFERENCES:
        for ft in FINETUNINGS:
            row = [summary["differences"].get(f"{arm}-{base}/{ft}/{m}") for m in METRICS]
            lines.append(f"| {arm} − {base} | {ft.upper()} | " + " | ".join(
                _pct(d, signed=True) if d else "–" for d in row) + " |")
    t = meta["time"]
    lines += ["", f"Time: {t['wall_min']:.1f} min wall, {t['cpu_min']:.1f} core-minutes (CPU time of the "
              f"commands that ran; {meta['machine']}).", "", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, required=True, help="image folder with train/ and test/")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--train-images", type=int, default=2000)
    p.add_argument("--test-images", type=int, default=1000, help="clean accuracy on these")
    p.add_argument("--adv-images", type=int, default=200, help="PGD-20 and AutoAttack on these")
    p.add_argument("--autoattack-on", nargs="*", default=["aff", "alf", "slf"], choices=FINETUNINGS,
                   help="finetunings whose runs get AutoAttack, in this order, after everything else")
    p.add_argument("--pgd100-steps", type=int, default=0,
                   help="the suite's PGD-100 (0: not run, recorded equal to clean)")
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128],
                   help="fastnet's conv-group widths (its default 64 256 256 is ~5x slower per image)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--finetune-epochs", type=int, default=5)
    p.add_argument("--summarize-only", action="store_true",
                   help="run nothing; summarize the finished runs under --out")
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "advcl_cpu")
    p.add_argument("--results", type=Path, default=ROOT / "studies" / "results" / "advcl_cpu")
    return p.parse_args(argv)


def study_meta(a: argparse.Namespace, argv: list[str], values: dict, runner: Runner) -> dict:
    """Date, machine, the reproducing command and setting of the run ``a``, AutoAttack coverage
    and the timings of its seeds' commands."""
    wanted = [k for k in runner.timings if k.split("/")[0] in {f"seed{s}" for s in a.seeds}]
    return {
        "date": datetime.date.today().isoformat(), "seeds": a.seeds, "machine": MACHINE,
        "platform": platform.platform(),
        "command": "OMP_NUM_THREADS=1 nice -n 19 python " + " ".join(["studies/advcl_cpu.py", *argv]),
        "setting": (f"fastnet (whiten_eps 1.0, widths {a.widths}), {a.train_images} training / {a.test_images} test "
                    f"images, pretraining {a.pretrain_epochs} epochs, finetuning {a.finetune_epochs} "
                    f"epochs, batch {a.batch_size}; at 8/255 on the first {a.adv_images} test images: "
                    f"PGD-20 for every run, AutoAttack (standard) for the runs listed under autoattack_runs"),
        "autoattack_runs": [f"seed{s}/{n}" for s, v in values.items() for n, c in v.items()
                            if c["autoattack"] is not None],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
        "time": {"wall_min": sum(runner.timings[k]["wall_s"] for k in wanted) / 60,
                 "cpu_min": sum(runner.timings[k]["cpu_s"] for k in wanted) / 60},
        "timings": {k: runner.timings[k] for k in wanted},
    }


def study_args(a: argparse.Namespace, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The arguments of the study run under ``--out``: this one (recorded in
    ``<out>/study_args.json``), or with ``--summarize-only`` the recorded ones."""
    path = a.out / "study_args.json"
    if not a.summarize_only:
        if not ((a.root / "train").is_dir() and (a.root / "test").is_dir()):
            print(f"advcl_cpu: --root {a.root}: expected an image folder with train/ and test/", file=sys.stderr)
            sys.exit(2)
        a.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"argv": argv}) + "\n")
        return a, argv
    if not path.is_file():
        print(f"advcl_cpu: --out {a.out}: no study_args.json (no study was run there)", file=sys.stderr)
        sys.exit(2)
    run_argv = json.loads(path.read_text())["argv"]
    run = parse_args(run_argv)
    run.root, run.out = run.root.resolve(), a.out
    return run, run_argv


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    given = parse_args(argv)
    given.root, given.out = given.root.resolve(), given.out.resolve()
    a, run_argv = study_args(given, argv)
    runner = Runner(a.out)
    if not given.summarize_only:
        for seed in a.seeds:
            pretrain(runner, a, seed, a.out / f"seed{seed}")
            finetune(runner, a, seed, a.out / f"seed{seed}")
        autoattack(runner, a)
    values = {seed: {name: cell for name, cell in ((f"{p}_{f}", read_cell(a.out / f"seed{seed}" / f"{p}_{f}"))
                                                   for p in PRETRAININGS for f in FINETUNINGS) if cell}
              for seed in a.seeds}
    meta, summary = study_meta(a, run_argv, values, runner), summarize(values)
    given.results.parent.mkdir(parents=True, exist_ok=True)
    given.results.with_suffix(".json").write_text(json.dumps({**meta, **summary, "values": values}, indent=1) + "\n")
    text = markdown(summary, meta)
    given.results.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
