"""Command line: ``ssrobust {train,eval,report,quickstart,...}``. Thin: parses, calls the library.

Errors in user input (config keys, data folders, checkpoints, component names) are printed as one
line ``error: ...`` with exit status 2; set ``SSROBUST_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from .errors import SsrobustError

_USER_ERRORS = (SsrobustError, KeyError, TypeError, ValueError, FileNotFoundError)
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str):
    def deco(setup):
        def reg(run):
            COMMANDS[name] = (setup, run)
            return run
        return reg
    return deco


def _config_from_args(args: Sequence[str]):
    """The one parser of ``[CONFIG.yaml] key=value ...`` arguments (train and the sweeps): at most
    one YAML file, any number of dotted overrides, into a ``RunConfig``."""
    from .api import make_config

    cfg_path = [x for x in args if "=" not in x]
    if len(cfg_path) > 1:
        raise SsrobustError(f"expected at most one config file, got {', '.join(cfg_path)}")
    return make_config(cfg_path[0] if cfg_path else None, [x for x in args if "=" in x])


def _setup_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="*", metavar="[CONFIG.yaml] key=value",
                   help="a YAML preset (e.g. configs/cpu/rotation.yaml) and/or dotted overrides")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run with a different config")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


@command("train")(_setup_train)
def _train(a: argparse.Namespace) -> int:
    from .api import train_config
    from .runs.rundir import config_yaml

    cfg = _config_from_args(a.args)
    if a.print_config:
        print(config_yaml(cfg), end="")
        return 0
    run = train_config(cfg, overwrite=a.overwrite)
    if (run / "results.json").exists():
        print(f"run finished: {run} (results in {run / 'results.json'})")
    return 0


def _setup_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--suites", default=None, help="comma-separated suites (default: those in the run's config)")
    p.add_argument("options", nargs="*", default=[], metavar="suite.key=value",
                   help="suite options, e.g. corruptions.max_images=200")
    p.add_argument("--device", default=None)
    p.add_argument("--no-verify", action="store_true",
                   help="do not check a -C folder's files against the sha256 sums of its manifest.json")
    p.add_argument("--preset", type=Path, default=None,
                   help="a YAML preset whose eval.suites and eval.options to run, e.g. "
                        "configs/paper/eval/adversarial_full_budget.yaml (suite.key=value options win)")


@command("eval")(_setup_eval)
def _eval(a: argparse.Namespace) -> int:
    import json

    from .api import evaluate, make_config
    from .typedconfig import apply_overrides

    suites = [s for s in a.suites.split(",") if s] if a.suites else None
    preset = make_config(a.preset).eval if a.preset is not None else None
    base = {k: dict(v) for k, v in preset.options.items()} if preset is not None else {}
    options = apply_overrides(base, a.options) if (a.options or base) else None
    if suites is None and preset is not None:
        suites = list(preset.suites)
    if options is not None and suites is None:
        suites = list(options)
    res = evaluate(a.run_dir, suites, options, a.device, verify=not a.no_verify)
    brief = {k: v.get("accuracy") for k, v in res.get("suites", {}).items() if isinstance(v, dict) and "accuracy" in v}
    print(json.dumps(brief))
    print(f"results: {a.run_dir / 'results.json'}")
    return 0


def _setup_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--title", default="ssrobust report")
    p.add_argument("--baseline", default=None,
                   help="seed group (run name without _s<seed>) to pair differences against")


@command("report")(_setup_report)
def _report(a: argparse.Namespace) -> int:
    from .api import report

    out = report(a.run_dirs, a.out, a.title, baseline=a.baseline)
    print(f"report: {out / 'report.html'} and {out / 'report.md'}")
    return 0


def _setup_card(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path)
    p.add_argument("--threat-model", action="append", choices=("Linf", "L2", "corruptions"),
                   help="repeatable; default: all three")


@command("card")(_setup_card)
def _card(a: argparse.Namespace) -> int:
    """Print a run's RobustBench model_info fields (clean, AutoAttack, corruption acc.) as JSON."""
    import json

    from .api import model_card

    print(json.dumps(model_card(a.run_dir, a.threat_model), indent=1))
    return 0


def _setup_corrupt(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", nargs="*", metavar="key=value",
                   help="data config keys for the dataset to corrupt, e.g. source=cifar10 root=/data/cifar-10-batches-py")
    p.add_argument("--out", type=Path, required=True, help="output folder (official -C layout)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--names", default=None, help="comma-separated corruptions (default: all 19)")
    p.add_argument("--severities", default="1,2,3,4,5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--workers", type=int, default=2, help="CPU worker processes (identical output for any value)")
    p.add_argument("--param-set", default="auto", help="auto (by image size), cifar or imagenet")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--no-progress", action="store_true")


@command("corrupt")(_setup_corrupt)
def _corrupt(a: argparse.Namespace) -> int:
    """Write a dataset split in the official CIFAR-10-C layout with a checksum manifest."""
    from .corruptions import NAMES
    from .corruptions.writer import write_corrupted_dataset
    from .data.base import DataConfig
    from .runs.splits import load_splits
    from .paths import check_folder_path
    from .typedconfig import apply_overrides, from_dict

    check_folder_path(a.out, "--out")  # before the dataset is loaded
    cfg = from_dict(DataConfig, apply_overrides({"val_size": 0}, a.data), "data")
    splits = load_splits(cfg)
    part = splits.test if a.split == "test" else splits.train
    names = [n for n in a.names.split(",") if n] if a.names else list(NAMES)
    severities = [int(s) for s in a.severities.split(",") if s]
    write_corrupted_dataset(part.images, part.labels, a.out, names=names, severities=severities, seed=a.seed,
                            batch_size=a.batch_size, progress=not a.no_progress, param_set=a.param_set,
                            overwrite=a.overwrite, workers=a.workers)
    print(f"wrote {len(names)} corruptions x {len(severities)} severities of {len(part)} images to {a.out}")
    return 0


def _setup_quickstart(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("quickstart"))
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (e.g. 1 for a smoke test)")
    p.add_argument("--no-progress", action="store_true")


@command("quickstart")(_setup_quickstart)
def _quickstart(a: argparse.Namespace) -> int:
    from .experiments.quickstart import quickstart

    out = quickstart(a.out, epochs=a.epochs, progress=not a.no_progress)
    print(f"report: {out / 'report.html'} (also {out / 'report.md'}, {out / 'results.json'})")
    return 0


def _setup_noise_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="*", metavar="[CONFIG.yaml] key=value",
                   help="the base run (e.g. configs/cpu/label_noise.yaml) and/or dotted overrides")
    p.add_argument("--methods", default="none,glc",
                   help="comma-separated: none, rotation, glc, glc_rotation, forward, forward_rotation")
    p.add_argument("--strengths", default="all", help="comma-separated in [0, 1], or 'all' (0, 0.1, ..., 1)")
    p.add_argument("--out", type=Path, required=True, help="sweep folder (rerun to resume)")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="rotation-only pretraining before the rotation methods (paper: 100)")
    p.add_argument("--finetune-epochs", type=int, default=None,
                   help="epochs of runs that start from the pretraining (paper: 40)")
    _add_parallel(p)


def _add_parallel(p: argparse.ArgumentParser) -> None:
    p.add_argument("--parallel", type=int, default=1,
                   help="runs at once (submitit local jobs, cores // N threads each); 1: one by one "
                        "in this process")


def _alias_executor(parallel: int) -> str:
    """The sweep executor of ``noise-sweep`` / ``one-class``: this process, or N local jobs."""
    if parallel < 1:
        raise SsrobustError(f"--parallel must be >= 1, got {parallel}")
    return "inline" if parallel == 1 else "local"


def _alias_end(what: str, outcomes, sweep_file: Path, report: Path | None) -> int:
    """The last lines of a sweep alias; status 1 when a run failed (the others finished)."""
    from .experiments.label_noise import failure_message

    if report is not None:
        print(f"sweep: {sweep_file}; report: {report / 'report.html'} and {report / 'report.md'}")
    message = failure_message(what, outcomes)
    if message:
        print(message, file=sys.stderr)
        return 1
    return 0


@command("noise-sweep")(_setup_noise_sweep)
def _noise_sweep(a: argparse.Namespace) -> int:
    """Label-corruption sweep (a sweep spec with stages): one run per method and strength, then a report."""
    from .experiments.label_noise import SweepSettings, launch, sweep_report
    from .label_noise.sweep import strengths

    cfg = _config_from_args(a.args)
    values = strengths() if a.strengths == "all" else [float(s) for s in a.strengths.split(",") if s]
    settings = SweepSettings(pretrain_epochs=a.pretrain_epochs, finetune_epochs=a.finetune_epochs)
    sweep, outcomes = launch(cfg, [m for m in a.methods.split(",") if m], values, a.out, settings,
                             _alias_executor(a.parallel), a.parallel, echo=print)
    has_points = any(r["points"] for r in sweep["records"])
    out = sweep_report(sweep, a.out / "report", sweep_dir=a.out) if has_points else None
    return _alias_end("noise-sweep", outcomes, a.out / "sweep.json", out)


def _setup_one_class(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="*", metavar="[CONFIG.yaml] key=value",
                   help="the run template (e.g. configs/cpu/one_class.yaml) and/or dotted overrides")
    p.add_argument("--classes", default="all", help="comma-separated class ids, or 'all'")
    p.add_argument("--out", type=Path, required=True, help="sweep folder (rerun to resume)")
    p.add_argument("--oe", action=argparse.BooleanOptionalAction, default=None,
                   help="force Outlier Exposure on/off (default: on iff the config's strategy is "
                        "one_class_oe)")
    p.add_argument("--no-ocsvm", action="store_true", help="skip the one-class SVM baseline")
    _add_parallel(p)


@command("one-class")(_setup_one_class)
def _one_class(a: argparse.Namespace) -> int:
    """One-class OOD sweep (a sweep spec): one run per class, the per-class AUROC table and a report."""
    from .experiments.one_class import launch, one_class_report

    cfg = _config_from_args(a.args)
    classes = None if a.classes == "all" else [int(c) for c in a.classes.split(",") if c]
    sweep, outcomes = launch(cfg, classes, a.out, oe=a.oe, ocsvm=not a.no_ocsvm,
                             executor=_alias_executor(a.parallel), parallel=a.parallel, echo=print)
    if sweep["ocsvm"].get("skipped"):
        print(sweep["ocsvm"]["skipped"], file=sys.stderr)
    out = one_class_report(sweep, a.out / "report", sweep_dir=a.out) if sweep["records"] else None
    return _alias_end("one-class", outcomes, a.out / "sweep.json", out)


def _setup_encoders(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="+", metavar="RUN... [key=value]",
                   help="run directories (encoders) and evaluation options, e.g. head_epochs=5 steps=10")
    p.add_argument("--tasks", default=None,
                   help="comma-separated among cls, seg, depth (default: the preset's, else all three)")
    p.add_argument("--out", type=Path, required=True, help="output folder (results.json, report/)")
    p.add_argument("--preset", type=Path, default=None,
                   help="a YAML file of options, e.g. configs/cpu/encoders_eval.yaml (key=value wins)")
    p.add_argument("--no-report", action="store_true", help="write results.json only")


@command("encoders")(_setup_encoders)
def _encoders(a: argparse.Namespace) -> int:
    """Encoders across downstream tasks: heads on frozen encoders, clean and attacked."""
    from .api import evaluate_encoders

    runs = [x for x in a.args if "=" not in x]
    if not runs:
        raise SsrobustError("encoders: give at least one run directory")
    for r in runs:
        if not Path(r).is_dir():
            raise SsrobustError(f"encoder run directory {r} does not exist or is not a folder")
    tasks = [t for t in a.tasks.split(",") if t] if a.tasks is not None else None
    evaluate_encoders(runs, a.out, tasks, a.preset, [x for x in a.args if "=" in x], report=not a.no_report)
    print(f"results: {a.out / 'results.json'}" + ("" if a.no_report else f"; report: {a.out / 'report' / 'report.html'}"))
    return 0


def _setup_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", type=Path, help="a sweep spec, e.g. configs/sweeps/kim_cpu.yaml (docs/sweeps.md)")
    p.add_argument("--executor", choices=("local", "slurm", "debug"), default="local",
                   help="local: submitit processes on this machine; slurm: one job array; "
                        "debug: in this process")
    p.add_argument("--parallel", type=int, default=1,
                   help="local jobs at once; each gets cores // N torch threads")
    p.add_argument("--out", type=Path, default=None, help="sweep folder (default: the spec's out)")
    p.add_argument("--dry-run", action="store_true", help="print the runs and which are done; launch nothing")
    p.add_argument("--summary-only", action="store_true",
                   help="pool the finished runs into the summary; launch nothing (e.g. after a Slurm array)")


@command("sweep")(_setup_sweep)
def _sweep(a: argparse.Namespace) -> int:
    """Run a sweep spec (arms x seeds) locally or on Slurm; pool the seeds into intervals."""
    from .experiments.sweep import SUMMARY_MD, dry_run_lines, job_threads, plan, run_sweep, summarize
    from .experiments.sweep_spec import load_spec

    spec = load_spec(a.spec, a.out)
    if a.parallel < 1:
        raise SsrobustError(f"--parallel must be >= 1, got {a.parallel}")
    if a.dry_run:
        print("\n".join(dry_run_lines(plan(spec, job_threads(spec, a.executor, a.parallel)))))
        return 0
    if a.summary_only:
        summarize(spec)
    else:
        outcomes = run_sweep(spec, a.executor, a.parallel)
        failed = [o for o in outcomes if o.status == "failed"]
        blocked = [o for o in outcomes if o.status == "blocked"]
        if failed or blocked:
            skipped = f", {len(blocked)} skipped (a prerequisite failed)" if blocked else ""
            print(f"{len(failed)} of {len(outcomes)} runs failed{skipped}; fix and rerun the same "
                  f"command (finished runs are skipped)", file=sys.stderr)
            return 1
        if a.executor == "slurm":
            print(f"submitted; when the array is done: ssrobust sweep {a.spec} --summary-only")
            return 0
    print(f"summary: {spec.out / SUMMARY_MD}")
    return 0


class _IntermixedParser(argparse.ArgumentParser):
    """Sub-command parser whose flags and positionals may come in any order, e.g. ``train cfg.yaml
    --overwrite epochs=1`` (plain argparse stops collecting ``nargs="*"`` positionals at the first
    flag and rejects the rest). The sub-parsers action calls ``parse_known_args``; the intermixed
    parse calls it again internally, hence the re-entrancy flag."""

    _inside = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._inside:
            return super().parse_known_args(args, namespace)
        self._inside = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inside = False


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="ssrobust", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ssrobust {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_IntermixedParser)
    for name, (setup, _) in COMMANDS.items():
        sp = sub.add_parser(name, help=(COMMANDS[name][1].__doc__ or "").strip() or None)
        setup(sp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return COMMANDS[a.command][1](a)
    except _USER_ERRORS as e:
        if os.environ.get("SSROBUST_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
