"""Sweep stages: ``{run:ARM}`` prerequisites run first (locally stage by stage, on Slurm with
``afterok``), a second stage computes what it needs from the first at start, errors in the spec."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import yaml

from _helpers import make_npz
from ssrobust.cli import main
from ssrobust.experiments import run as experiment_run
from ssrobust.experiments.sweep import dry_run_lines, plan, run_sweep
from ssrobust.experiments.sweep_spec import load_spec
from ssrobust.label_noise import estimate_corruption_matrix
from ssrobust.runs.config import RunConfig
from ssrobust.runs.load import load_network
from ssrobust.runs.rundir import config_yaml
from ssrobust.runs.splits import load_splits
from ssrobust.train.label_noise import MATRIX_FILE
from ssrobust.train.strategies import PrepareContext, build_strategy
from ssrobust.typedconfig import from_dict

BASE = {"epochs": 1, "precision": "fp32", "log_every": 1, "model": {"name": "tiny", "kwargs": {"width": 4}},
        "optim": {"lr": 0.05}, "eval": {"suites": ["clean"]}}


def _spec(tmp_path: Path, axes: list, **over) -> Path:
    """A spec next to a base config of a tiny run on a toy npz dataset with label noise."""
    data = {"source": "npz", "root": str(make_npz(tmp_path, n_train=64, n_test=24)), "val_size": 0,
            "batch_size": 16, "label_noise": {"strength": 0.6, "trusted_fraction": 0.25}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({**BASE, "data": data}))
    spec = {"base": "base.yaml", "out": str(tmp_path / "sweep"), "seeds": [0], "axes": axes, **over}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return tmp_path / "spec.yaml"


GLC_AXES = [{"arms": {"glc": ["strategy.name=glc", "strategy.options.matrix_from={run:stage1}"],
                      "stage1": ["data.label_noise.use=untrusted"]}},
            {"grid": {"data.label_noise.strength": [0.6]}}]


def test_a_two_stage_sweep_runs_stage1_first_and_stage2_estimates_its_matrix(tmp_path, monkeypatch):
    spec = load_spec(_spec(tmp_path, GLC_AXES))  # loads (and validates) before stage 1 exists
    out = spec.out
    stage1, glc = out / "stage1_strength0.6_s0", out / "glc_strength0.6_s0"
    runs = {r.name: r for r in spec.runs()}
    assert runs[glc.name].needs == (stage1.name,) and runs[glc.name].stage == 1
    assert runs[glc.name].config(out).strategy.options == {"matrix_from": str(stage1)}
    assert dry_run_lines(plan(spec, None)) == ["stage 0:", f"new      {stage1}", "stage 1:",
                                               f"new      {glc}  after {stage1.name}",
                                               "0 done, 0 partial, 2 new, 0 conflict of 2 runs"]
    lines = []
    outcomes = run_sweep(spec, executor="local", parallel=2, echo=lines.append)  # job processes
    assert [(o.name, o.status) for o in outcomes] == [(glc.name, "done"), (stage1.name, "done")]
    assert lines[1:] == [f"done {stage1.name}", f"done {glc.name}"]  # stage 1 first, though 2 may run at once

    # Stage 2 estimated Ĉ from the stage-1 model on its own trusted images, cached in its folder.
    cached = json.loads((glc / MATRIX_FILE).read_text())
    assert cached["source"] == str(stage1) and cached["correction"] == "glc"
    cfg = from_dict(RunConfig, yaml.safe_load((glc / "config.yaml").read_text()))
    splits = load_splits(cfg.data)
    trusted = torch.nonzero(torch.as_tensor(splits.train.extras["trusted"])).flatten()
    _, net = load_network(stage1)
    with torch.no_grad():
        x = torch.as_tensor(splits.train.images[trusted.numpy()]).permute(0, 3, 1, 2).float() / 255
        probs = torch.softmax(net.model(x), 1)
    want = estimate_corruption_matrix(probs, torch.as_tensor(splits.train.extras["clean_labels"])[trusted], 3)
    assert cached["num_images"] == len(trusted) == 16
    assert torch.allclose(torch.tensor(cached["matrix"], dtype=torch.float64), want.double(), atol=1e-5)

    # The cache is what a resumed stage 2 uses (same source): not estimated again.
    identity = torch.eye(3).tolist()
    (glc / MATRIX_FILE).write_text(json.dumps({**cached, "matrix": identity}))
    strategy = build_strategy("glc", **cfg.strategy.options)
    strategy.prepare(PrepareContext(None, splits, glc, torch.device("cpu"), 0))
    assert strategy.loss.matrix.tolist() == identity

    # A rerun launches nothing.
    monkeypatch.setattr(experiment_run, "fit_run", lambda *a, **k: pytest.fail("a finished run was retrained"))
    assert [p.state for p in plan(spec, None)] == ["done", "done"]
    assert run_sweep(spec, executor="local", echo=lambda s: None) == []


def test_a_failed_stage1_run_skips_its_dependents_and_the_others_finish(tmp_path, capsys):
    path = _spec(tmp_path, [{"arms": {"first": [], "second": ["init_from={run:first}"], "alone": []}}])
    out = tmp_path / "sweep"
    # another experiment sits where first_s0 goes: that job fails, so second_s0 must not start
    (out / "first_s0").mkdir(parents=True)
    (out / "first_s0" / "config.yaml").write_text(
        config_yaml(load_spec(path).runs()[0].config(out)).replace("epochs: 1", "epochs: 5"))
    assert main(["sweep", str(path)]) == 1
    err = capsys.readouterr()
    assert "FAILED first_s0: ssrobust.errors.ConfigError: " + str(out / "first_s0") in err.out
    assert "SKIPPED second_s0: its prerequisite first_s0 did not finish" in err.out
    assert "done alone_s0" in err.out
    assert "1 of 3 runs failed, 1 skipped (a prerequisite failed)" in err.err
    assert (out / "alone_s0" / "results.json").is_file() and not (out / "second_s0").exists()


def test_slurm_submits_dependents_with_afterok_on_their_prerequisites(tmp_path, monkeypatch):
    from submitit.slurm.slurm import SlurmExecutor

    scripts, next_id = [], [100]
    monkeypatch.setattr(SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun" present

    def fake_sbatch(self, submission_file_path):
        scripts.append(Path(submission_file_path).read_text())
        next_id[0] += 1
        return ["echo", f"Submitted batch job {next_id[0] - 1}"]  # nothing is submitted

    monkeypatch.setattr(SlurmExecutor, "_make_submission_command", fake_sbatch)
    path = _spec(tmp_path, [{"arms": {"ft": ["init_from={run:pre}"], "eval": ["init_from={run:ft}"]}}],
                 extra_arms={"pre": ["epochs=2"]}, seeds=[0, 1], slurm={"gpus_per_node": 1})
    spec = load_spec(path)
    assert {r.name: r.stage for r in spec.runs()} == {"ft_s0": 1, "ft_s1": 1, "eval_s0": 2, "eval_s1": 2,
                                                      "pre_s0": 0, "pre_s1": 0}
    (spec.out / "pre_s1").mkdir(parents=True)  # finished: its dependents need not wait
    (spec.out / "pre_s1" / "config.yaml").write_text(config_yaml(spec.runs()[5].config(spec.out, 4)))
    (spec.out / "pre_s1" / "results.json").write_text('{"suites": {}}')
    lines = []
    run_sweep(spec, executor="slurm", echo=lines.append)
    ids = dict(re.match(r"submitted (\S+): Slurm job ([^\s,]+)", ln).groups() for ln in lines[1:])
    assert list(ids) == ["pre_s0", "ft_s0", "ft_s1", "eval_s0", "eval_s1"]  # stage by stage
    assert len(scripts) == 5  # one array per stage and set of prerequisites

    def script_of(run: str) -> str:
        return scripts[list(ids).index(run)]

    for run, prereq in (("ft_s0", "pre_s0"), ("eval_s0", "ft_s0"), ("eval_s1", "ft_s1")):
        assert f"#SBATCH --dependency=afterok:{ids[prereq]}\n" in script_of(run)
        assert "#SBATCH --kill-on-invalid-dep=yes" in script_of(run)
    for run in ("pre_s0", "ft_s1"):  # nothing to wait for
        assert "--dependency" not in script_of(run)


@pytest.mark.parametrize("arms, message", [
    ({"a": ["init_from={run:b}"], "b": ["init_from={run:a}"]}, "arms depend on each other in a cycle: a -> b -> a"),
    ({"a": ["init_from={run:a}"]}, "arms depend on each other in a cycle: a -> a"),
    ({"a": ["init_from={run:nope}"], "b": []}, "arm a: {run:nope} names no arm; arms: a, b"),
])
def test_cycles_and_unknown_arms_are_one_line_errors_naming_the_spec(tmp_path, capsys, arms, message):
    path = _spec(tmp_path, [{"arms": arms}])
    assert main(["sweep", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: sweep spec {path}: {message}"
    assert not (tmp_path / "sweep").exists()


def test_an_axis_label_means_the_arm_with_this_arms_other_labels(tmp_path):
    axes = [{"arms": {"pre": [], "ft": ["init_from={run:pre}"]}}, {"grid": {"optim.lr": [0.1, 0.2]}}]
    spec = load_spec(_spec(tmp_path, axes, seeds=[3]))
    cfg = {r.name: r.config(spec.out) for r in spec.runs()}
    assert cfg["ft_lr0.2_s3"].init_from == str(spec.out / "pre_lr0.2_s3")
    assert cfg["ft_lr0.1_s3"].init_from == str(spec.out / "pre_lr0.1_s3")
