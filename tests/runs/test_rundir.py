"""Run-directory files: the metrics log survives a torn last line and names corruption."""

from __future__ import annotations

import json

import pytest

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.cli import main
from ssrobust.errors import CheckpointError
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.runs.rundir import read_metrics


def _write(tmp_path, text: str):
    (tmp_path / "metrics.jsonl").write_bytes(text.encode("utf-8", "surrogateescape"))
    return tmp_path


def test_a_torn_last_line_is_dropped_with_a_warning_naming_the_file(tmp_path):
    run = _write(tmp_path, '{"kind": "epoch", "epoch": 0}\n{"kind": "step", "epoch": 1, "lo')
    with pytest.warns(RuntimeWarning, match=rf"{tmp_path / 'metrics.jsonl'}: dropped the incomplete last line 2"):
        assert read_metrics(run) == [{"kind": "epoch", "epoch": 0}]


@pytest.mark.parametrize("bad", ['{"kind": "ep', "[1, 2]", "\udcff\udcfe binary"])
def test_a_bad_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path, bad):
    run = _write(tmp_path, '{"epoch": 0}\n\n' + bad + '\n{"epoch": 1}\n')
    with pytest.raises(CheckpointError, match=rf"{tmp_path / 'metrics.jsonl'}: line 3 is not a JSON object"):
        read_metrics(run)


def test_a_run_killed_mid_write_resumes_and_rewrites_the_log(tmp_path):
    cfg = make_config(tiny_run_config(tmp_path, epochs=2))
    run = fit(cfg, stop_after=1)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"kind": "step", "epoch": 1, "step": 5, "lr": 0.0')  # killed while appending
    with pytest.warns(RuntimeWarning, match="incomplete last line"):
        fit(cfg)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line is whole again
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == [0, 1]
    assert (run / "results.json").is_file()


def test_a_corrupt_metrics_log_stops_a_resume_with_exit_2(tmp_path, capsys):
    cfg = tiny_run_config(tmp_path, epochs=2)
    run = fit(make_config(cfg), stop_after=1)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], "#garbage#"] + lines[1:]) + "\n")
    assert main(["train"] + [f"{k}={json.dumps(v)}" for k, v in cfg.items()]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{run / 'metrics.jsonl'}: line 2 is not a JSON object" in err


def test_run_metadata_records_the_cpu_it_ran_on():
    from ssrobust.runs.precision import cpu_summary
    from ssrobust.runs.rundir import make_meta

    meta = make_meta(make_config(None, []), "cpu", "fp32", 1)
    assert meta["cpu"] == cpu_summary() and meta["precision"] == "fp32"
