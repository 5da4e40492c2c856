"""The command line: exit codes and one-line errors that name the problem."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    (["train", "name=../elsewhere", "--print-config"], "is not a valid run name"),
    (["train", "name=/abs/run", "--print-config"], "is not a valid run name"),
    (["train", "name=a/b", "--print-config"], "is not a valid run name"),
    (["train", "name=''", "--print-config"], "is not a valid run name"),
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


def test_paths_that_are_files_where_a_folder_is_expected(tmp_path, capsys):
    f = tmp_path / "some_file"
    f.write_text("mine")
    cfg = tiny_run_config(tmp_path, epochs=1, out_dir=str(f))
    cases = [(["train"] + [f"{k}={json.dumps(v)}" for k, v in cfg.items()], f"out_dir {f} is a file"),
             (["quickstart", "--out", str(f), "--epochs", "1"], f"quickstart folder {f} is a file"),
             (["corrupt", "source=synthetic", "--out", str(f)], f"--out {f} is a file"),
             (["corrupt", "source=synthetic", "--out", str(f / "sub")], f"{f} is a file, expected a folder")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert f.read_text() == "mine"


def test_report_into_the_runs_folder_keeps_the_runs(tmp_path, capsys):
    cfg = tiny_run_config(tmp_path, epochs=1)
    assert main(["train"] + [f"{k}={json.dumps(v)}" for k, v in cfg.items()]) == 0
    runs, run = tmp_path / "runs", tmp_path / "runs" / "tiny"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["report", str(run), "--out", str(runs)]) == 0
    assert (runs / "report.html").exists() and {p.name: p.read_bytes() for p in run.iterdir()} == before
    (tmp_path / "f").write_text("mine")
    assert main(["report", str(run), "--out", str(tmp_path / "f")]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err
    assert main(["report", str(run), "--out", str(run)]) == 2  # would replace the run's results.json
    assert "no report wrote" in capsys.readouterr().err and (run / "model.pt").exists()


def test_eval_verifies_a_corrupted_folder_manifest_unless_no_verify(tmp_path, capsys):
    from ssrobust.corruptions import write_corrupted_dataset
    from ssrobust.data import DataConfig, load_splits

    cfg = tiny_run_config(tmp_path, epochs=1)
    assert main(["train"] + [f"{k}={json.dumps(v)}" for k, v in cfg.items()]) == 0
    test = load_splits(DataConfig(source="npz", root=cfg["data"]["root"], val_size=0)).test
    folder = tmp_path / "toy-c"
    write_corrupted_dataset(test.images, test.labels, folder, names=["contrast"], batch_size=32, progress=False)
    run, opt = str(tmp_path / "runs" / "tiny"), f"corruptions.folder={folder}"
    assert main(["eval", run, opt]) == 0
    raw = bytearray((folder / "contrast.npy").read_bytes())
    raw[-1] ^= 0xFF  # one image byte: header and size stay valid
    (folder / "contrast.npy").write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["eval", run, opt]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "contrast.npy: sha256" in err and err.count("\n") == 1
    assert main(["eval", run, opt, "--no-verify"]) == 0


def test_data_errors_exit_2_naming_the_file(tmp_path, capsys):
    garbage = tmp_path / "g.npz"
    garbage.write_bytes(b"not an archive " * 8)
    assert main(["corrupt", "source=npz", f"root={garbage}", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {garbage}: not a .npz archive (no zip header); expected a file written by " \
                  f"numpy.savez or numpy.savez_compressed\n"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("override, message", [
    ("optim.lr=.nan", "optim.lr must be a finite number > 0, got nan"),
    ("optim.lr=inf", "optim.lr must be a finite number > 0, got inf"),
    ("optim.lr=0", "optim.lr must be a finite number > 0, got 0.0"),
    ("optim.lr=-0.1", "optim.lr must be a finite number > 0, got -0.1"),
    ("optim.momentum=1.0", "optim.momentum must be a finite number in [0, 1), got 1.0"),
    ("optim.momentum=-0.5", "optim.momentum must be a finite number in [0, 1), got -0.5"),
    ("eval.max_images=0", "eval.max_images must be >= 1"),
    ("tasks=[rotation:inf]", "tasks: the weight in 'rotation:inf' must be a finite number"),
])
def test_bad_numbers_exit_2_with_one_line_naming_the_key(override, message, capsys):
    assert main(["train", override, "--print-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err


def _train_argv(tmp_path, **over) -> list[str]:
    return ["train"] + [f"{k}={json.dumps(v)}" for k, v in tiny_run_config(tmp_path, **over).items()]


@pytest.mark.parametrize("options, message", [
    ({"name": "pgd_at", "options": {"eps": 8}}, "strategy.options.eps must be a finite number in [0, 1], got 8"),
    ({"name": "trades", "options": {"eps": -0.1}}, "strategy.options.eps must be a finite number in [0, 1]"),
    ({"name": "pgd_at", "options": {"step_size": -1}}, "strategy.options.step_size must be a finite number >= 0"),
    ({"name": "pgd_at", "options": {"steps": -2}}, "strategy.options.steps must be a finite number >= 0"),
])
def test_bad_attack_settings_of_a_strategy_exit_2_before_training(tmp_path, options, message, capsys):
    assert main(_train_argv(tmp_path, strategy=options)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert not (tmp_path / "runs" / "tiny" / "checkpoint.pt").exists()


def test_overrides_may_follow_flags(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(tiny_run_config(tmp_path, epochs=2)))
    assert main(["train", str(cfg), "--print-config", "epochs=3"]) == 0
    assert "epochs: 3" in capsys.readouterr().out
    assert main(["train", "--overwrite", str(cfg), "epochs=1", "eval.suites=[clean]"]) == 0
    run = tmp_path / "runs" / "tiny"
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 1
    argv = ["eval", str(run), "--suites", "corruptions", "corruptions.max_images=4",
            "--device", "cpu", "corruptions.names=[contrast]", "corruptions.severities=[2]"]
    assert main(argv) == 0
    record = json.loads((run / "results.json").read_text())["suites"]["corruptions"]
    assert record["n_images"] == 4 and record["names"] == ["contrast"] and record["severities"] == [2]


def test_eval_refuses_zero_images_and_eps_outside_the_unit_interval(tmp_path, capsys):
    assert main(_train_argv(tmp_path, epochs=1)) == 0
    run = tmp_path / "runs" / "tiny"
    before = (run / "results.json").read_text()
    capsys.readouterr()
    for option, message in (("corruptions.max_images=0", "corruptions.max_images must be an integer >= 1"),
                            ("adversarial.max_images=0", "adversarial.max_images must be a finite number >= 1"),
                            ("adversarial.eps=8", "adversarial.eps must be a finite number in [0, 1], got 8")):
        assert main(["eval", str(run), option]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and message in err
    assert (run / "results.json").read_text() == before  # nothing recorded


def test_eval_preset_supplies_suites_and_options_and_overrides_win(tmp_path, monkeypatch, capsys):
    import ssrobust.api

    seen = {}

    def fake_evaluate(run_dir, suites, options, device, verify=True):
        seen.update(suites=suites, options=options, verify=verify)
        return {"suites": {}}

    monkeypatch.setattr(ssrobust.api, "evaluate", fake_evaluate)
    preset = Path(__file__).resolve().parents[1] / "configs/paper/eval/adversarial_full_budget.yaml"
    assert main(["eval", str(tmp_path), "adversarial.max_images=50", "--preset", str(preset)]) == 0
    assert seen["suites"] == ["adversarial"]
    adv = seen["options"]["adversarial"]
    assert adv["max_images"] == 50 and adv["spsa_samples"] == 4096 and adv["spsa_steps"] == 100
    assert main(["eval", str(tmp_path), "--preset", str(tmp_path / "none.yaml")]) == 2
    assert "none.yaml does not exist" in capsys.readouterr().err
