"""``ssrobust sweep``: real tiny runs through submitit's local executor, resume after a kill, the
Slurm array script (without Slurm), the summary's intervals, and spec errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from _helpers import make_npz
from ssrobust.cli import main
from ssrobust.experiments.run import train_and_evaluate
from ssrobust.experiments.sweep import plan, run_sweep
from ssrobust.experiments.sweep_spec import load_spec
from ssrobust.runs.rundir import config_yaml
from ssrobust.stats import interval, paired_difference

BASE = {"epochs": 1, "precision": "fp32", "log_every": 1, "model": {"name": "tiny", "kwargs": {"width": 4}},
        "optim": {"lr": 0.05}}


def _spec(tmp_path: Path, **over) -> Path:
    """A spec file next to a base config of a tiny run on a toy npz dataset."""
    data = {"source": "npz", "root": str(make_npz(tmp_path, n_train=64, n_test=24)), "val_size": 16,
            "batch_size": 16}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BASE, "data": data}))
    spec = {"base": "base.yaml", "out": str(tmp_path / "sweep"), "seeds": [0, 1],
            "axes": [{"grid": {"optim.lr": [0.05, 0.1]}}], "baseline": "lr0.05",
            "metrics": ["clean.accuracy"], **over}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path / "spec.yaml"


def _accuracies(out: Path, arm: str, seeds=(0, 1)) -> dict[int, float]:
    return {s: json.loads((out / f"{arm}_s{s}" / "results.json").read_text())["suites"]["clean"]["accuracy"]
            for s in seeds}


def test_grid_2x2_runs_through_the_local_executor_and_pools_seeds(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("ssrobust.train.recipe.usable_cores", lambda: 8)  # 8 cores // 4 jobs
    path = _spec(tmp_path, axes=[{"arms": {"lr0.05": [], "lr0.1": ["optim.lr=0.1"]}}], seeds=[0, 1],
                 baseline="lr0.05")
    out = tmp_path / "sweep"
    # another experiment sits where lr0.1_s1 goes: that job fails, the other three finish
    (out / "lr0.1_s1").mkdir(parents=True)
    (out / "lr0.1_s1" / "config.yaml").write_text(config_yaml(load_spec(path).runs()[3].config(out, 2)).replace(
        "epochs: 1", "epochs: 5"))
    assert main(["sweep", str(path), "--parallel", "4"]) == 1
    err = capsys.readouterr()
    assert "FAILED lr0.1_s1: ssrobust.errors.ConfigError: " + str(out / "lr0.1_s1") in err.out
    assert "(log: " + str(out / "jobs") in err.out and "1 of 4 runs failed" in err.err
    for name in ("lr0.05_s0", "lr0.05_s1", "lr0.1_s0"):
        cfg = yaml.safe_load((out / name / "config.yaml").read_text())
        assert (cfg["threads"], cfg["name"], cfg["seed"]) == (2, name, int(name[-1]))
    assert not (out / "lr0.1_s1" / "results.json").exists()
    assert "epochs: 5" in (out / "lr0.1_s1" / "config.yaml").read_text()  # left as it was

    summary = json.loads((out / "summary.json").read_text())
    acc = {"lr0.05": _accuracies(out, "lr0.05"), "lr0.1": _accuracies(out, "lr0.1", seeds=(0,))}
    base = summary["arms"]["lr0.05"]["clean.accuracy"]
    want = interval(list(acc["lr0.05"].values()))
    assert (base["n"], base["mean"], base["sd"], base["low"], base["high"]) == (
        2, want.mean, want.sd, want.low, want.high)
    assert "diff" not in base
    rec = summary["arms"]["lr0.1"]["clean.accuracy"]
    diff = paired_difference(acc["lr0.1"], acc["lr0.05"])  # paired on seed 0 only
    assert (rec["n"], rec["low"], rec["diff"]["n"], rec["diff"]["mean"]) == (1, None, 1, diff.mean)
    assert summary["runs_done"] == {"lr0.05": 2, "lr0.1": 1}
    assert (out / "summary_error_bars.png").stat().st_size > 0
    assert "| lr0.05 | 2 |" in (out / "summary.md").read_text()

    # Idempotent: the next call skips the finished runs (also when --parallel changes threads)
    assert main(["sweep", str(path), "--dry-run", "--parallel", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"done     {out / 'lr0.1_s0'}" in lines and f"conflict {out / 'lr0.1_s1'}" in lines
    assert lines[-1] == "3 done, 0 partial, 0 new, 1 conflict of 4 runs"


def test_a_run_killed_midway_resumes_on_the_next_sweep_call(tmp_path):
    spec = load_spec(_spec(tmp_path, seeds=[0], axes=[{"grid": {"optim.lr": [0.05]}}], overrides=["epochs=2"]))
    run = spec.runs()[0]
    cfg = run.config(spec.out, threads=1)
    train_and_evaluate(cfg, stop_after=1)  # as if killed after epoch 1 of 2
    first = (spec.out / run.name / "metrics.jsonl").read_text().splitlines()
    assert [p.state for p in plan(spec, 1)] == ["partial"]
    # the next call (another thread count: the run keeps the one it started with) resumes it
    outcomes = run_sweep(spec, executor="debug", echo=lambda s: None)
    assert [(o.name, o.status) for o in outcomes] == [(run.name, "done")]
    records = [json.loads(x) for x in (spec.out / run.name / "metrics.jsonl").read_text().splitlines()]
    epochs = [r["epoch"] for r in records if r.get("kind") == "epoch"]
    assert epochs == [0, 1]  # epoch 0 was not trained again ...
    assert (spec.out / run.name / "metrics.jsonl").read_text().splitlines()[:len(first)] == first  # ... nor rewritten
    assert yaml.safe_load((spec.out / run.name / "config.yaml").read_text())["threads"] == 1
    assert [p.state for p in plan(spec, 1)] == ["done"]
    assert [o.status for o in run_sweep(spec, executor="debug", echo=lambda s: None)] == []


def test_slurm_submits_one_array_with_the_spec_resources(tmp_path, monkeypatch):
    import submitit
    from submitit.slurm.slurm import SlurmExecutor

    calls = []
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun" present

    def fake_sbatch(self, submission_file_path):
        calls.append(Path(submission_file_path).read_text())
        return ["echo", "Submitted batch job 4242"]  # what sbatch prints; nothing is submitted

    monkeypatch.setattr(SlurmExecutor, "_make_submission_command", fake_sbatch)
    slurm = {"partition": "gpu", "time_min": 90, "cpus_per_task": 6, "gpus_per_node": 1, "mem_gb": 16,
             "array_parallelism": 2, "setup": ["module load cuda"], "additional": {"account": "lab"}}
    spec = load_spec(_spec(tmp_path, slurm=slurm))
    (spec.out / "lr0.05_s0").mkdir(parents=True)  # a finished run is not submitted again
    (spec.out / "lr0.05_s0" / "config.yaml").write_text(config_yaml(spec.runs()[0].config(spec.out)))
    (spec.out / "lr0.05_s0" / "results.json").write_text('{"suites": {}}')
    lines = []
    outcomes = run_sweep(spec, executor="slurm", echo=lines.append)
    assert [o.name for o in outcomes] == ["lr0.05_s1", "lr0.1_s0", "lr0.1_s1"]
    assert len(calls) == 1  # one array, not three jobs
    script = calls[0]
    for flag in ("#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --time=90",
                 "#SBATCH --cpus-per-task=6", "#SBATCH --gpus-per-node=1", "#SBATCH --mem=16GB",
                 "#SBATCH --account=lab", "#SBATCH --job-name=spec", "module load cuda",
                 "submitit.core._submit"):
        assert flag in script, flag
    assert str(spec.out / "jobs") in script
    assert "Slurm job 4242_2" in lines[-1]
    # the pickled jobs are the sweep's own job function on the runs still to do
    pickles = sorted((spec.out / "jobs").glob("4242_*/4242_*_submitted.pkl"))
    assert len(pickles) == 3
    sub = submitit.core.utils.DelayedSubmission.load(pickles[0])
    assert sub.function.__name__ == "run_job" and sub.args[0].run.name in {o.name for o in outcomes}
    assert sub.args[0].threads == 6  # each task's torch threads: the cpus it asked Slurm for


@pytest.mark.parametrize("change, message", [
    ({"axes": [{"zip": {"optim.lr": [0.1, 0.2], "epochs": [1]}}]}, "zip lists must have the same length"),
    ({"baseline": "nope"}, "baseline 'nope' is not an arm"),
    ({"seeds": [0, 0]}, "seeds: expected distinct integers"),
    ({"axes": [{"grid": {"optim.lrr": [0.1]}}], "baseline": None}, "run lrr0.1_s0: unknown config key(s) optim.lrr"),
    ({"sedes": [1]}, "unknown key(s) sedes"),
    ({"axes": [{"product": {}}]}, "each axis is one of"),
    ({"slurm": {"gpus": 1}}, "unknown config key(s) slurm.gpus"),
])
def test_bad_specs_are_one_line_errors_before_anything_runs(tmp_path, capsys, change, message):
    path = _spec(tmp_path, **change)
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: sweep spec {path}: ") and message in err and "\n" not in err
    assert not (tmp_path / "sweep").exists()


def test_zip_and_arms_axes_name_the_runs_and_a_later_base_wins(tmp_path):
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({**BASE, "epochs": 3}))
    path = _spec(tmp_path, axes=[{"arms": {"plain": ["tasks=[]"], "other": {"base": "other.yaml"}}},
                                 {"zip": {"optim.lr": [0.1, 0.2], "tasks": [["rotation:0.5"], []]}}],
                 baseline="plain_lr0.2_tasks")
    spec = load_spec(path)
    names = [r.name for r in spec.runs()]
    assert names[:2] == ["plain_lr0.1_tasks-rotation-0.5_s0", "plain_lr0.1_tasks-rotation-0.5_s1"]
    assert len(names) == 8
    cfg = {r.name: r.config(spec.out) for r in spec.runs()}
    assert cfg["plain_lr0.2_tasks_s1"].tasks == [] and cfg["plain_lr0.2_tasks_s1"].optim.lr == 0.2
    assert cfg["other_lr0.1_tasks-rotation-0.5_s0"].epochs == 3
    assert cfg["other_lr0.1_tasks-rotation-0.5_s0"].tasks == ["rotation:0.5"]


@pytest.mark.parametrize("spec", sorted((Path(__file__).parents[2] / "configs" / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_the_shipped_specs_load_and_name_their_baseline(spec):
    loaded = load_spec(spec)
    assert loaded.runs() and len(loaded.seeds) >= 3
    assert loaded.baseline is None or loaded.baseline in {a.name for a in loaded.arms}
    if "_cpu" not in spec.stem:  # paper scale (not *_cpu, study_cpu_*): ready for Slurm
        assert loaded.slurm.gpus_per_node >= 1
