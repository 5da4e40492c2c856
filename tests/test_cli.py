"""The command line: exit codes and one-line errors that name the problem."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import tiny_run_config
from ssrobust.cli import main


def test_print_config_resolves_overrides(capsys):
    assert main(["train", "epochs=3", "tasks=[rotation]", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "epochs: 3" in out and "- rotation" in out and "weight_decay: 0.0005" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "optim.lrr=1", "--print-config"], "unknown config key(s) optim.lrr"),
    (["train", "missing.yaml", "--print-config"], "missing.yaml does not exist"),
    (["train", "epochs=zero", "--print-config"], "epochs: expected an integer"),
    (["eval", "/nonexistent/run"], "is not a run directory"),
    (["report", "/nonexistent/run", "--out", "/tmp/x"], "has no results.json"),
])
def test_user_errors_exit_2_with_a_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_train_eval_report_round_trip(tmp_path, capsys):
    cfg = tiny_run_config(tmp_path, epochs=1)
    assert main(["train"] + [f"{k}={json.dumps(v)}" for k, v in cfg.items()]) == 0
    run = tmp_path / "runs" / "tiny"
    assert main(["eval", str(run), "--suites", "clean"]) == 0
    assert "clean" in capsys.readouterr().out
    assert main(["report", str(run), str(run), "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep" / "report.html").exists()


@pytest.mark.parametrize("module", ["ssrobust", "ssrobust.cli"])
def test_module_entry_point_runs(module):
    proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("ssrobust ")
    bad = subprocess.run([sys.executable, "-m", module, "train", "epochs=0"], capture_output=True, text=True)
    assert bad.returncode == 2 and "epochs" in bad.stderr  # exit code passes through


def test_corrupt_command_writes_the_official_layout(tmp_path, capsys):
    import numpy as np

    from _helpers import make_npz

    root = make_npz(tmp_path)
    out = tmp_path / "toy-c"
    argv = ["corrupt", "source=npz", f"root={root}", "--out", str(out), "--names", "contrast,gaussian_noise",
            "--severities", "1,5", "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    arr = np.load(out / "contrast.npy")
    assert arr.shape == (2 * 32, 16, 16, 3) and arr.dtype == np.uint8
    assert np.load(out / "labels.npy").shape == (64,) and (out / "manifest.json").exists()
    assert main(argv) == 2 and "error:" in capsys.readouterr().err  # refuses to overwrite silently
    assert main(["corrupt", "source=npz", f"root={tmp_path / 'missing.npz'}", "--out", str(tmp_path / "x")]) == 2


def test_eval_preset_supplies_suites_and_options_and_overrides_win(tmp_path, monkeypatch, capsys):
    import ssrobust.api

    seen = {}

    def fake_evaluate(run_dir, suites, options, device):
        seen.update(suites=suites, options=options)
        return {"suites": {}}

    monkeypatch.setattr(ssrobust.api, "evaluate", fake_evaluate)
    preset = Path(__file__).resolve().parents[1] / "configs/paper/eval/adversarial_full_budget.yaml"
    assert main(["eval", str(tmp_path), "adversarial.max_images=50", "--preset", str(preset)]) == 0
    assert seen["suites"] == ["adversarial"]
    adv = seen["options"]["adversarial"]
    assert adv["max_images"] == 50 and adv["spsa_samples"] == 4096 and adv["spsa_steps"] == 100
    assert main(["eval", str(tmp_path), "--preset", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml does not exist" in capsys.readouterr().err
