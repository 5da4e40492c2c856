"""The `encoders` report section reads the cross-task results file: table rows and the heatmap."""

from __future__ import annotations

import json

import pytest

from ssrobust.report.encoders import encoders_section
from ssrobust.report.render import render_runs


def _suite(encoders=("sup", "adv")) -> dict:
    table = []
    for i, e in enumerate(encoders):
        table.append({"encoder": e, "task": "cls", "metric": "accuracy", "clean": 0.9 - i / 10,
                      "embedding_attack": 0.2 + i / 10, "task_attack": 0.1 + i / 10})
        table.append({"encoder": e, "task": "depth", "metric": "delta1", "clean": 0.5,
                      "embedding_attack": 0.4, "task_attack": None})
    return {"schema": 1, "tasks": ["cls", "depth"], "table": table, "encoders": {}}


def test_section_has_one_row_per_encoder_and_task_and_a_heatmap(tmp_path):
    sec = encoders_section([("encoders", _suite())], tmp_path)
    rows = sec.tables[0].rows
    assert sec.tables[0].headers == ["encoder", "task", "metric", "clean", "emb. attack", "task attack"]
    assert rows[0] == ["sup", "cls", "accuracy", "90.0", "20.0", "10.0"]
    assert rows[3] == ["adv", "depth", "delta1", "50.0", "40.0", "–"]
    assert len(rows) == 4 and sec.figures[0].name == "encoders_heatmap.png" and sec.figures[0].stat().st_size


def test_two_result_files_prefix_the_encoder_by_the_run(tmp_path):
    sec = encoders_section([("seed0", _suite(("a",))), ("seed1", _suite(("a",)))], tmp_path)
    assert [r[0] for r in sec.tables[0].rows] == ["seed0: a", "seed0: a", "seed1: a", "seed1: a"]


def test_a_record_without_a_table_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="encoders record of run 'x' has no 'table' list"):
        encoders_section([("x", {"tasks": []})], tmp_path)


def test_report_command_renders_an_encoders_results_file(tmp_path):
    out = tmp_path / "enc"
    out.mkdir()
    (out / "results.json").write_text(json.dumps({"run": "encoders", "suites": {"encoders": _suite()}}))
    md = (render_runs([out], tmp_path / "report") / "report.md").read_text()
    assert "## Encoders across tasks" in md and "| adv | cls | accuracy | 80.0 | 30.0 | 20.0 |" in md
