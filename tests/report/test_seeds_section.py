"""The report's Seeds section: runs differing only in seed pooled into intervals, paired by seed."""

from __future__ import annotations

import json

import pytest

from ssrobust.cli import main
from ssrobust.report import render_results
from ssrobust.report.seeds import aggregate, seed_groups
from ssrobust.stats import interval, paired_difference


def _result(name, seed, tasks, acc, corr=None):
    suites = {"clean": {"accuracy": acc, "loss": 0.4, "n": 100, "time_s": 1.0}}
    if corr is not None:
        suites["mystery"] = {"score": corr}
    return {"run": name, "config": {"name": name, "seed": seed, "out_dir": f"/runs/{name}", "threads": seed + 1,
                                    "tasks": tasks, "model": {"name": "tiny"}},
            "suites": suites}


RUNS = [_result("base_s0", 0, [], 0.70, 0.50), _result("base_s1", 1, [], 0.74, 0.52),
        _result("base_s2", 2, [], 0.69, 0.49), _result("rot_s0", 0, ["rotation:0.5"], 0.75, 0.58),
        _result("rot_s1", 1, ["rotation:0.5"], 0.76, 0.55), _result("rot_s2", 2, ["rotation:0.5"], 0.71, 0.57),
        _result("lonely", 0, ["jigsaw:0.5"], 0.6)]


def test_runs_differing_only_in_seed_are_grouped_and_intervals_are_right():
    groups = seed_groups(RUNS, [r["run"] for r in RUNS])
    assert {k: len(v) for k, v in groups.items()} == {"base": 3, "rot": 3, "lonely": 1}
    agg = aggregate(groups, ["clean.accuracy", "mystery.score"], baseline="base")
    want = interval([0.75, 0.76, 0.71])
    got = agg["rot"]["clean.accuracy"]
    assert (got["mean"], got["sd"], got["low"], got["high"], got["n"]) == (
        want.mean, want.sd, want.low, want.high, 3)
    d = paired_difference({0: 0.58, 1: 0.55, 2: 0.57}, {0: 0.50, 1: 0.52, 2: 0.49})
    assert agg["rot"]["mystery.score"]["diff"]["low"] == pytest.approx(d.low)
    assert agg["lonely"]["clean.accuracy"]["diff"]["n"] == 1  # seed 0 pairs with base_s0
    assert "mystery.score" not in agg["lonely"]
    assert "diff" not in agg["base"]["clean.accuracy"]


def test_report_shows_the_seeds_section_with_n_intervals_and_error_bars(tmp_path):
    out = render_results(RUNS, tmp_path / "rep", baseline="base")
    md = (out / "report.md").read_text()
    assert "## Seeds" in md and "minus base (paired)" in md
    rot = interval([0.75, 0.76, 0.71])
    assert f"| rot | 3 | {rot.mean:.4g} | {rot.sd:.4g} | [{rot.low:.4g}, {rot.high:.4g}] |" in md
    assert "| base | 3 |" in md and "baseline |" in md
    assert "clean.loss" not in md and "clean.n" not in md  # not metrics
    assert (out / "figures" / "seeds_error_bars.png").stat().st_size > 1000


def test_no_seeds_section_without_repeated_seeds_and_bad_baseline_is_one_line(tmp_path, capsys):
    out = render_results(RUNS[:1] + RUNS[3:4], tmp_path / "rep")
    assert "## Seeds" not in (out / "report.md").read_text()
    for r in RUNS[:2]:
        run = tmp_path / r["run"]
        run.mkdir()
        (run / "results.json").write_text(json.dumps(r))
    args = ["report", str(tmp_path / "base_s0"), str(tmp_path / "base_s1"), "--out", str(tmp_path / "r2")]
    assert main(args + ["--baseline", "nope"]) == 2
    assert "--baseline 'nope' is not a seed group of these runs; groups: base" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
    assert main(args + ["--baseline", "base"]) == 0
    assert "| base | 2 |" in (tmp_path / "r2" / "report.md").read_text()
