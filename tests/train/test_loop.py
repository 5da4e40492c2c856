"""The training loop end to end: run directory contents, exact resume, config guards."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.cli import main
from ssrobust.errors import ConfigError, DivergenceError
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.train import cosine_lr, session
from ssrobust.train.strategies import Standard, StepOutput


def _weights(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)["network"]


def test_run_directory_holds_everything(tmp_path):
    cfg = make_config(tiny_run_config(tmp_path, tasks=["rotation:0.5"]))
    run = fit(cfg)
    for name in ("config.yaml", "meta.json", "metrics.jsonl", "checkpoint.pt", "model.pt", "results.json"):
        assert (run / name).is_file(), name
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 0 and "torch" in meta["libraries"] and "git_commit" in meta["code"]
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in recs if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [0, 1]
    for r in epochs:
        assert {"loss", "lr", "train_acc", "val_acc", "images_per_sec", "aux_losses"} <= set(r)
        assert r["aux_losses"]["rotation"] > 0 and r["weights"] == {"rotation": 0.5}
    assert any(r["kind"] == "step" for r in recs)
    res = json.loads((run / "results.json").read_text())
    assert res["schema_version"] == 2 and 0.0 <= res["suites"]["clean"]["accuracy"] <= 1.0
    assert set(res["suites"]["clean"]["per_class"]) == {"c0", "c1", "c2"}
    assert res["data"]["num_val"] == 16 and res["train"]["epochs"] == 2


def test_training_learns_the_toy_problem(tmp_path):
    cfg = make_config(tiny_run_config(tmp_path, epochs=6))
    res = json.loads((fit(cfg) / "results.json").read_text())
    assert res["suites"]["clean"]["accuracy"] > 0.8  # chance is 1/3


def test_resume_after_stop_gives_identical_weights(tmp_path):
    base = tiny_run_config(tmp_path, epochs=3, tasks=["rotation:0.5"], model={"name": "tiny", "kwargs": {"width": 4, "dropout": 0.2}})
    straight = fit(make_config(dict(base, name="straight")))
    cfg = make_config(dict(base, name="resumed"))
    run = fit(cfg, stop_after=1)
    assert not (run / "model.pt").exists()
    assert torch.load(run / "checkpoint.pt", weights_only=True)["state"]["epoch"] == 1
    fit(cfg)
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs if r["kind"] == "epoch"] == [0, 1, 2]


@pytest.mark.parametrize("kind", ["ema", "lookahead"])
def test_resume_with_averaged_weights_and_the_fast_recipe_is_bit_exact(tmp_path, kind):
    """fastnet (whitening from data) + label smoothing, alternating flips, bias/BN lr and EMA or
    lookahead: stopping after each epoch and resuming ends with the uninterrupted run's weights."""
    base = tiny_run_config(
        tmp_path, epochs=3, tasks=["rotation:0.5"],
        data=dict(tiny_run_config(tmp_path)["data"], flip="alternating"),
        model={"name": "fastnet", "kwargs": {"widths": [8, 16]}},
        task_options={"rotation": {"rotations": "one"}},
        optim={"lr": 0.05, "label_smoothing": 0.2, "bias_lr_scale": 4.0, "bias_weight_decay": 0.0,
               "averaging": {"kind": kind, "decay": 0.8, "every": 2, "start_epoch": 1, "power": 1.0}})
    straight = fit(make_config(dict(base, name="straight")))
    cfg = make_config(dict(base, name="resumed"))
    fit(cfg, stop_after=1)
    ck = torch.load(tmp_path / "runs" / "resumed" / "checkpoint.pt", weights_only=True)
    assert ck["averaging"] == {"shadow": {}}  # start_epoch 1: nothing averaged in epoch 0
    run = fit(cfg, stop_after=1)
    shadow = torch.load(run / "checkpoint.pt", weights_only=True)["averaging"]["shadow"]
    assert shadow and set(shadow) <= set(ck["network"])
    fit(cfg)
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # model.pt holds the averaged weights; for EMA they differ from the live ones
    final = torch.load(run / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(b[k], v) for k, v in final["averaging"]["shadow"].items())
    live_differs = any(not torch.equal(b[k], final["network"][k]) for k in final["averaging"]["shadow"])
    assert live_differs == (kind == "ema")


def test_killed_process_resumes_to_the_same_weights(tmp_path):
    """SIGKILL a real `ssrobust train` after its first checkpoint, rerun the command, compare."""
    base = tiny_run_config(tmp_path, epochs=4)

    def command(name):
        return [sys.executable, "-m", "ssrobust.cli", "train"] + [
            f"{k}={json.dumps(v)}" for k, v in dict(base, name=name).items()]

    # Both runs in subprocesses with the same thread count: float reductions depend on it.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    assert subprocess.run(command("straight"), env=env, capture_output=True, timeout=300).returncode == 0
    straight = tmp_path / "runs" / "straight"
    args = command("killed")
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ck = tmp_path / "runs" / "killed" / "checkpoint.pt"
    deadline = time.time() + 120
    while not ck.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "runs" / "killed" / "model.pt").exists(), "run finished before it could be killed"
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    a, b = _weights(straight), _weights(tmp_path / "runs" / "killed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_same_name_with_another_config_is_refused(tmp_path):
    fit(make_config(tiny_run_config(tmp_path, epochs=1)))
    with pytest.raises(ConfigError, match="different config"):
        fit(make_config(tiny_run_config(tmp_path, epochs=2)))
    run = fit(make_config(tiny_run_config(tmp_path, epochs=2)), overwrite=True)
    assert json.loads((run / "results.json").read_text())["train"]["epochs"] == 2


def test_cosine_schedule_endpoints_and_midpoint():
    assert cosine_lr(0, 100, 0.1, 1e-6) == pytest.approx(0.1)
    assert cosine_lr(50, 100, 0.1, 0.0) == pytest.approx(0.05)
    assert cosine_lr(100, 100, 0.1, 1e-6) == pytest.approx(1e-6)
    assert cosine_lr(0, 100, 0.1, 0.0, warmup=10) == pytest.approx(0.01)
    lrs = [cosine_lr(s, 100, 0.1, 0.0) for s in range(101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert cosine_lr(25, 100, 1.0, 0.0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_linear_schedule_is_a_triangle():
    lin = [cosine_lr(s, 110, 1.0, 0.1, warmup=10, schedule="linear") for s in range(111)]
    assert lin[9] == pytest.approx(1.0) and lin[10] == pytest.approx(1.0)
    assert lin[60] == pytest.approx(0.55) and lin[110] == pytest.approx(0.1)
    steps = [a - b for a, b in zip(lin[10:], lin[11:])]
    assert max(steps) == pytest.approx(min(steps))  # a straight line down


def test_schedule_and_translate_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="optim.schedule"):
        make_config(tiny_run_config(tmp_path), ["optim.schedule=step"])
    with pytest.raises(ConfigError, match="data.translate"):
        make_config(tiny_run_config(tmp_path), ["data.translate=-1"])
    with pytest.raises(ConfigError, match="data.pad_mode"):
        make_config(tiny_run_config(tmp_path), ["data.pad_mode=edge"])


def test_bad_component_names_fail_before_training(tmp_path):
    with pytest.raises(KeyError, match="unknown pretext task 'rotatoin'"):
        fit(make_config(tiny_run_config(tmp_path, tasks=["rotatoin"])))
    with pytest.raises(TypeError, match="model 'tiny' with kwargs"):
        fit(make_config(tiny_run_config(tmp_path, name="b", model={"name": "tiny", "kwargs": {"depth": 3}})))


def test_bf16_autocast_path_trains(tmp_path):
    cfg = make_config(tiny_run_config(tmp_path, precision="bf16", epochs=1, channels_last=True))
    res = json.loads((fit(cfg) / "results.json").read_text())
    assert res["meta"]["precision"] == "bf16" and 0 <= res["suites"]["clean"]["accuracy"] <= 1


def test_task_forward_resolution_and_validation(tmp_path):
    """auto: joint for fixed weights, separate for first-order meta; explicit values win."""
    with pytest.raises(ConfigError, match="task_forward"):
        make_config(tiny_run_config(tmp_path, task_forward="sideways"))
    cases = [("fixed", "auto", "joint"), ("fixed", "separate", "separate"),
             ("meta", "joint", "joint")]
    for i, (weighting, mode, expected) in enumerate(cases):
        cfg = tiny_run_config(tmp_path, name=f"tf{i}", epochs=1, tasks=["rotation:0.5"],
                              task_forward=mode, weighting={"name": weighting}, eval={"suites": []})
        run = fit(make_config(cfg))
        assert json.loads((run / "meta.json").read_text())["task_forward"] == expected


def test_run_written_before_an_option_existed_still_resumes(tmp_path):
    """A stored config.yaml that lacks a later-added key (here task_forward) resolves to the same
    config, so the run is resumed instead of refused; a real difference is still refused."""
    cfg = tiny_run_config(tmp_path, epochs=2)
    fit(make_config(cfg), stop_after=1)
    path = tmp_path / "runs" / "tiny" / "config.yaml"
    text = path.read_text()
    assert "task_forward: auto\n" in text
    path.write_text(text.replace("task_forward: auto\n", ""))
    run = fit(make_config(cfg))
    assert json.loads((run / "meta.json").read_text())["resumed_from_epoch"] == 1
    assert path.read_text() == text  # rewritten in full
    with pytest.raises(ConfigError, match="different config"):
        fit(make_config(dict(cfg, seed=5)))


def test_ensure_run_reuses_a_finished_run_and_refuses_another_config(tmp_path):
    from ssrobust.experiments import ensure_run

    cfg = make_config(tiny_run_config(tmp_path, epochs=1))
    first = ensure_run(cfg)
    model = tmp_path / "runs" / "tiny" / "model.pt"
    stamp = model.stat().st_mtime_ns
    again = ensure_run(cfg)
    assert again == first and model.stat().st_mtime_ns == stamp  # not retrained
    with pytest.raises(ConfigError, match="different config"):
        ensure_run(make_config(tiny_run_config(tmp_path, epochs=1, seed=3)))


def test_val_size_zero_trains_on_everything_without_validation_metrics(tmp_path):
    """data.val_size=0 (the Hendrycks presets): all training images are used, epoch records have no
    validation metric (not NaN), and the report renders the curves without one."""
    import warnings

    from ssrobust.report import render_runs

    data = {**tiny_run_config(tmp_path)["data"], "val_size": 0}
    cfg = make_config(tiny_run_config(tmp_path, data=data, tasks=["rotation:0.5"]))
    run = fit(cfg)
    res = json.loads((run / "results.json").read_text())
    assert res["data"]["num_val"] == 0 and res["data"]["num_train"] == 96  # the whole toy train set
    text = (run / "metrics.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    epochs = [json.loads(line) for line in text.splitlines() if '"kind": "epoch"' in line]
    assert len(epochs) == 2 and not any("val_acc" in r or "val_loss" in r for r in epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "No artists with labels" legend warning
        out = render_runs([run], tmp_path / "report")
    assert (out / "figures" / "training_curves.png").is_file()


@pytest.mark.parametrize("preset", ["hendrycks_baseline.yaml", "hendrycks_rotation.yaml"])
def test_hendrycks_presets_train_on_all_50000_images(preset):
    """The paper trains on all 50,000 CIFAR-10 training images; no preset holds any out unused."""
    from pathlib import Path

    cfg = make_config(str(Path(__file__).resolve().parents[2] / "configs" / "paper" / preset))
    assert cfg.data.val_size == 0 and cfg.data.limit_train is None and cfg.weighting.name == "fixed"


class _PoisonedStep(Standard):
    """The standard step, with a NaN loss (``what="loss"``) or, after a finite loss, NaN weights
    (``what="weights"``) at call ``at`` (counted from 0 in this process)."""

    def __init__(self, what: str, at: int) -> None:
        self.what, self.at, self.calls = what, at, 0

    def __call__(self, net, x, y, generator, extras=None):
        out = super().__call__(net, x, y, generator, extras)
        self.calls += 1
        if self.calls - 1 != self.at:
            return out
        if self.what == "loss":
            return StepOutput(out.logits, out.main_loss * float("nan"), out.aux_losses)
        # .data: the forward already used the old values; only the stored weights turn NaN
        next(self.unwrap(net).parameters()).data.fill_(float("nan"))
        return out


def _diverge_in_second_epoch(tmp_path, monkeypatch, what: str, at: int):
    """Train epoch 0 normally, then resume through the CLI with a step that diverges. Returns the
    run directory, the checkpoint's bytes after epoch 0, the steps per epoch and the exit code."""
    cfg = tiny_run_config(tmp_path, epochs=3)
    run = fit(make_config(cfg), stop_after=1)
    ck = (run / "checkpoint.pt").read_bytes()
    steps = torch.load(run / "checkpoint.pt", weights_only=True)["state"]["step"]
    monkeypatch.setattr(session, "build_strategy", lambda name, **options: _PoisonedStep(what, at))
    code = main(["train"] + [f"{k}={json.dumps(v)}" for k, v in cfg.items()])
    return run, ck, steps, code


def test_nan_loss_is_a_one_line_error_naming_epoch_and_step_and_keeps_the_checkpoint(
        tmp_path, monkeypatch, capsys):
    run, ck, steps, code = _diverge_in_second_epoch(tmp_path, monkeypatch, "loss", at=2)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: loss became nan at epoch 1 step {steps + 2}; ")
    assert f"{run / 'checkpoint.pt'} (after 1 epoch(s)) is kept" in err and "optim.lr" in err
    assert (run / "checkpoint.pt").read_bytes() == ck and not (run / "model.pt").exists()


def test_nan_weights_after_the_last_step_do_not_overwrite_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("SSROBUST_DEBUG", "1")  # main() lets the exception through
    with pytest.raises(DivergenceError, match="weights became non-finite at epoch 1 step 9; "):
        _diverge_in_second_epoch(tmp_path, monkeypatch, "weights", at=4)  # the last of 5 steps
    run = tmp_path / "runs" / "tiny"
    state = torch.load(run / "checkpoint.pt", weights_only=True)["state"]
    assert (state["epoch"], state["step"]) == (1, 5)  # still the checkpoint of epoch 0
    epochs = [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()
              if json.loads(x)["kind"] == "epoch"]
    assert epochs == [0]  # no record of the diverged epoch either
