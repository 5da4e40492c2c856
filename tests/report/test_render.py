"""Report rendering: tables side by side in Markdown and HTML, figures, atomic output."""

import json

import pytest

from ssrobust.errors import ConfigError
from ssrobust.report import Table, render_results
from ssrobust.report.base import pct


def _result(name, acc, per_class):
    return {"run": name, "config": {"model": {"name": "tiny"}, "tasks": ["rotation:0.5"] if "rot" in name else [],
                                    "strategy": {"name": "standard"}},
            "train": {"epochs": 2, "time_s": 12.0, "images_per_sec": 300.0},
            "suites": {"clean": {"accuracy": acc, "loss": 0.5, "per_class": per_class, "n": 100},
                       "mystery": {"value": 1}}}


def test_table_markdown_and_html_escape():
    t = Table(["a", "b<"], [[1, 0.123456], ["x&y", None]], caption="cap")
    md = t.markdown()
    assert "| a | b< |" in md and "| 1 | 0.1235 |" in md and "| x&y | – |" in md
    html = t.html()
    assert "<th>b&lt;</th>" in html and "<td>x&amp;y</td>" in html and "<caption>cap</caption>" in html
    assert pct(0.81234) == "81.2" and pct(None) == "–"


def test_render_two_runs_side_by_side(tmp_path):
    res = [_result("base", 0.7, {"cat": 0.6, "dog": 0.8}), _result("rot", 0.75, {"cat": 0.7, "dog": 0.8})]
    out = render_results(res, tmp_path / "rep", title="T", intro="hello")
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert md.startswith("# T") and "hello" in md
    assert "| base | tiny | none | standard | 2 | 12 | 300 | 70.0 |" in md
    assert "| rot | 75.0 | 0.5 | 70.0 | 80.0 |" in md
    assert "No renderer is registered" in md  # unknown suites are listed, not dropped
    assert (out / "figures" / "clean_per_class.png").stat().st_size > 1000
    assert 'src="figures/clean_per_class.png"' in html and "<table>" in html
    combined = json.loads((out / "results.json").read_text())
    assert set(combined["runs"]) == {"base", "rot"}


def test_duplicate_run_names_are_disambiguated(tmp_path):
    out = render_results([_result("a", 0.5, {}), _result("a", 0.6, {})], tmp_path / "r")
    assert set(json.loads((out / "results.json").read_text())["runs"]) == {"a", "a (2)"}


def test_failed_render_leaves_previous_report_untouched(tmp_path, monkeypatch):
    out = render_results([_result("a", 0.5, {"c": 0.5})], tmp_path / "r")
    before = (out / "report.md").read_text()
    import ssrobust.report.render as r

    monkeypatch.setattr(r, "_html", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        render_results([_result("b", 0.9, {"c": 0.9})], tmp_path / "r")
    assert (out / "report.md").read_text() == before


def test_changing_task_weights_are_plotted(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lines = [{"kind": "step", "epoch": 0, "step": s, "weights": {"rotation": 0.5 - 0.01 * s}} for s in range(5)]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    (fixed / "metrics.jsonl").write_text(json.dumps({"kind": "step", "step": 0, "weights": {"rotation": 0.5}}) + "\n")
    res = [dict(_result("meta", 0.5, {}), run_dir=str(run_dir)), dict(_result("fixed", 0.5, {}), run_dir=str(fixed))]
    out = render_results(res, tmp_path / "r")
    assert (out / "figures" / "task_weights_0.png").exists()
    assert not (out / "figures" / "task_weights_1.png").exists()
    assert "task_weights_0.png" in (out / "report.md").read_text()


def test_report_replaces_only_its_own_files(tmp_path):
    out = tmp_path / "r"
    (out / "runs" / "a").mkdir(parents=True)
    (out / "runs" / "a" / "config.yaml").write_text("name: a\n")
    (out / "notes.txt").write_text("mine")
    (out / "figures").mkdir()
    (out / "figures" / "my_plot.png").write_bytes(b"mine")
    render_results([_result("a", 0.5, {"c": 0.5})], out)
    assert (out / "figures" / "clean_per_class.png").exists()
    render_results([dict(_result("b", 0.9, {}), suites={})], out)  # a report without that figure
    assert not (out / "figures" / "clean_per_class.png").exists()  # the report's own stale figure goes
    assert (out / "runs" / "a" / "config.yaml").read_text() == "name: a\n"
    assert (out / "notes.txt").read_text() == "mine" and (out / "figures" / "my_plot.png").read_bytes() == b"mine"
    assert set(json.loads((out / "results.json").read_text())["runs"]) == {"b"}
    assert not list(out.glob(".report.tmp*")) and not (out / ".ssrobust.lock").exists()


def test_report_never_deletes_outside_its_figures_even_if_its_file_list_says_so(tmp_path):
    out = render_results([_result("a", 0.5, {"c": 0.5})], tmp_path / "r")
    (tmp_path / "victim.txt").write_text("mine")
    (out / "notes.txt").write_text("mine")
    listed = ["../victim.txt", "notes.txt", "figures/../notes.txt", str(tmp_path / "victim.txt")]
    (out / ".ssrobust-report.json").write_text(json.dumps({"files": listed}))
    render_results([_result("a", 0.5, {"c": 0.5})], out)
    assert (tmp_path / "victim.txt").exists() and (out / "notes.txt").exists()


def test_report_refuses_a_folder_whose_results_json_it_did_not_write(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"schema_version": 1, "run": "a", "suites": {}}))
    before = (run / "results.json").read_text()
    with pytest.raises(ConfigError, match="holds a results.json that no report wrote"):
        render_results([_result("a", 0.5, {})], run)
    assert (run / "results.json").read_text() == before and sorted(p.name for p in run.iterdir()) == ["results.json"]


def test_report_into_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "some_file"
    f.write_text("mine")
    with pytest.raises(ConfigError, match=f"report folder {f} is a file, expected a folder"):
        render_results([_result("a", 0.5, {})], f)
    assert f.read_text() == "mine"


def test_failed_first_render_leaves_no_folder_behind(tmp_path, monkeypatch):
    import ssrobust.report.render as r

    monkeypatch.setattr(r, "_html", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        render_results([_result("a", 0.5, {})], tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_summary_shows_the_resolved_task_forward(tmp_path):
    """results.json records the forward mode the loop resolved; the summary table shows it."""
    from _helpers import tiny_run_config
    from ssrobust.api import make_config
    from ssrobust.report import render_runs
    from ssrobust.experiments.run import train_and_evaluate as fit

    runs = [fit(make_config(tiny_run_config(tmp_path, name=n, epochs=1, tasks=["rotation:0.5"],
                                            task_forward=mode, eval={"suites": ["clean"]})))
            for n, mode in (("auto_fixed", "auto"), ("sep", "separate"))]
    results = [json.loads((r / "results.json").read_text()) for r in runs]
    assert [r["meta"]["task_forward"] for r in results] == ["joint", "separate"]
    md = (render_runs(runs, tmp_path / "rep") / "report.md").read_text()
    assert "| task forward |" in md

    def summary_row(text: str, run: str) -> str:  # the summary table comes first
        return next(ln for ln in text.splitlines() if ln.startswith(f"| {run} |"))

    assert summary_row(md, "auto_fixed").endswith("| joint |")
    assert summary_row(md, "sep").endswith("| separate |")
    # An older results.json without meta.task_forward shows an explicit config value, else "–".
    old = [dict(results[1], meta={}), dict(results[0], meta={}, run="old_auto")]
    md = (render_results(old, tmp_path / "rep2") / "report.md").read_text()
    assert summary_row(md, "sep").endswith("| separate |")
    assert summary_row(md, "old_auto").endswith("| – |")


def test_summary_names_the_machine_each_run_trained_on(tmp_path):
    cpu = {"model_name": "AMD EPYC", "family": "25", "model": "17", "simd": "avx512", "avx512_bf16": True,
           "amx": False}
    meta = {"device": "cpu", "precision": "fp32", "threads": 2, "cpu": cpu, "libraries": {"torch": "2.13.0+cpu"},
            "code": {"ssrobust": "9.9"}}
    runs = [dict(_result("new", 0.5, {}), meta=meta), dict(_result("old", 0.5, {}), meta={})]
    md = (render_results(runs, tmp_path / "rep") / "report.md").read_text()
    assert "| run | device | precision | threads | CPU | torch | ssrobust |" in md
    assert ("| new | cpu | fp32 | 2 | AMD EPYC (family 25 model 17; avx512, AVX512-BF16) | 2.13.0+cpu | 9.9 |"
            in md)
    assert "| old | – | – | – | – | – | – |" in md  # a results.json from before meta.cpu


def test_a_folder_named_like_the_stage_is_left_alone(tmp_path, monkeypatch):
    """The report stages in a folder it creates itself; a user's folder with the old stage name
    (``.report.tmp<pid>``) and its files survive a render."""
    import os

    from ssrobust.report.render import render_results

    out = tmp_path / "report"
    mine = out / f".report.tmp{os.getpid()}"
    mine.mkdir(parents=True)
    (mine / "keep.txt").write_text("user data")
    render_results([{"run": "a", "suites": {}}], out)
    assert (mine / "keep.txt").read_text() == "user data"
    assert (out / "report.md").is_file()
