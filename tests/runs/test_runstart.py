"""Starting a run safely: validation before writing, --overwrite that keeps the old run until the new
one checkpoints, one writer per run directory (refused with the holder's pid, dead holders taken over)."""

import json
import os
import subprocess
import sys

import pytest

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.cli import main
from ssrobust.errors import ConfigError, DataError
from ssrobust.locking import LOCK_FILE
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.train import trainer
from ssrobust.runs.runstart import BACKUP, RunStart


def _snapshot(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


def test_failed_start_writes_nothing_and_the_corrected_command_runs(tmp_path):
    bad = tiny_run_config(tmp_path, epochs=1, data={"source": "npz", "root": str(tmp_path / "missing.npz")})
    with pytest.raises((DataError, FileNotFoundError)):
        fit(make_config(bad))
    assert not (tmp_path / "runs" / "tiny").exists()
    with pytest.raises(TypeError, match="kwargs"):
        fit(make_config(tiny_run_config(tmp_path, epochs=1, model={"name": "tiny", "kwargs": {"depth": 3}})))
    assert not (tmp_path / "runs" / "tiny").exists()
    run = fit(make_config(tiny_run_config(tmp_path, epochs=1)))  # not "a different config"
    assert json.loads((run / "results.json").read_text())["train"]["epochs"] == 1


def test_start_that_died_before_its_first_checkpoint_does_not_poison_the_name(tmp_path, monkeypatch):
    def crash(*a, **k):
        raise RuntimeError("killed")

    with monkeypatch.context() as m:  # config.yaml is written, then the run dies in its first epoch
        m.setattr(trainer, "save_atomic", crash)
        with pytest.raises(RuntimeError, match="killed"):
            fit(make_config(tiny_run_config(tmp_path, epochs=1, seed=1)))
    left = tmp_path / "runs" / "tiny"
    assert (left / "config.yaml").exists() and not (left / "checkpoint.pt").exists()
    run = fit(make_config(tiny_run_config(tmp_path, epochs=1)))  # nothing to lose: not "a different config"
    assert "seed: 0" in (run / "config.yaml").read_text() and (run / "model.pt").exists()


def test_overwrite_with_bad_data_keeps_the_old_run(tmp_path):
    run = fit(make_config(tiny_run_config(tmp_path, epochs=1)))
    before = _snapshot(run)
    bad = tiny_run_config(tmp_path, epochs=2, data={"source": "npz", "root": str(tmp_path / "missing.npz")})
    with pytest.raises((DataError, FileNotFoundError)):
        fit(make_config(bad), overwrite=True)
    assert _snapshot(run) == before and not (run / BACKUP).exists()


def test_overwrite_failing_before_the_first_checkpoint_restores_the_old_run(tmp_path, monkeypatch):
    run = fit(make_config(tiny_run_config(tmp_path, epochs=1)))
    before = _snapshot(run)

    def crash(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(trainer, "save_atomic", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        fit(make_config(tiny_run_config(tmp_path, epochs=2)), overwrite=True)
    assert _snapshot(run) == before and not (run / BACKUP).exists()


def test_overwrite_replaces_only_run_files_once_the_new_run_checkpoints(tmp_path):
    run = fit(make_config(tiny_run_config(tmp_path, epochs=1)))
    (run / "notes.txt").write_text("mine")
    run = fit(make_config(tiny_run_config(tmp_path, epochs=2)), overwrite=True)
    assert (run / "notes.txt").read_text() == "mine"  # a file the package did not write stays
    assert json.loads((run / "results.json").read_text())["train"]["epochs"] == 2
    assert not (run / BACKUP).exists() and not (run / LOCK_FILE).exists()


def test_overwrite_killed_before_its_first_checkpoint_gets_the_old_run_back(tmp_path):
    old = make_config(tiny_run_config(tmp_path, epochs=1))
    run = fit(old)
    before = _snapshot(run)
    start = RunStart(make_config(tiny_run_config(tmp_path, epochs=3)), overwrite=True).open()
    start.commit()
    start._lock.release()  # killed: the old run is still in .ssrobust-previous/
    assert (run / BACKUP / "model.pt").exists() and not (run / "model.pt").exists()
    with pytest.raises(ConfigError, match="different config"):  # the old run is back in place
        fit(make_config(tiny_run_config(tmp_path, epochs=3)))
    assert _snapshot(run) == before and not (run / BACKUP).exists()


def _train_cmd(cfg):
    return [sys.executable, "-m", "ssrobust", "train"] + [f"{k}={json.dumps(v)}" for k, v in cfg.items()]


def test_second_writer_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path, capsys):
    cfg = tiny_run_config(tmp_path, epochs=1)
    run = fit(make_config(cfg))
    metrics = (run / "metrics.jsonl").read_text()
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom ssrobust.locking import DirLock\n"
        "DirLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(300)"), str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        env = dict(os.environ, OMP_NUM_THREADS="1")
        second = subprocess.run(_train_cmd(cfg), env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: run directory")
        assert f"in use by pid {holder.pid} " in lines[0]
        assert main(["eval", str(run), "--suites", "clean"]) == 2  # eval writes results.json: same lock
        assert f"in use by pid {holder.pid} " in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert (run / "metrics.jsonl").read_text() == metrics  # nothing interleaved
    assert (run / LOCK_FILE).exists()  # left by the killed holder: stale
    assert main(["eval", str(run), "--suites", "clean"]) == 0
    assert not (run / LOCK_FILE).exists()
