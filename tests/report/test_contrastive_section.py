"""The pretraining × finetuning section of the report (AdvCL), derived from run configs only."""

import json

from ssrobust.report import render_results
from ssrobust.report.contrastive import finetuning_scheme, scheme_section


def _pre(run_dir, mode):
    return {"run_dir": str(run_dir), "config": {"strategy": {"name": "contrastive", "options": {"mode": mode}}},
            "suites": {}}


def _fine(run_dir, source, strategy, freeze, clean, pgd20, aa=None):
    attacks = {"pgd20": {"robust_accuracy": pgd20}}
    if aa is not None:
        attacks["autoattack"] = {"robust_accuracy": aa}
    return {"run_dir": str(run_dir), "config": {"init_from": str(source), "freeze": freeze,
                                                "strategy": {"name": strategy}, "model": {"name": "tiny"}},
            "suites": {"clean": {"accuracy": clean, "n": 10},
                       "adversarial": {"attacks": attacks, "clean_accuracy": clean, "n": 10}}}


def test_scheme_names_come_from_strategy_and_freeze():
    assert finetuning_scheme({"strategy": {"name": "standard"}, "freeze": "backbone"}) == "SLF"
    assert finetuning_scheme({"strategy": {"name": "pgd_at"}, "freeze": "backbone"}) == "ALF"
    assert finetuning_scheme({"strategy": {"name": "trades"}, "freeze": "none"}) == "AFF"
    assert finetuning_scheme({"strategy": {"name": "pgd_at"}, "freeze": "none"}) == "pgd_at"


def test_the_table_averages_runs_per_pair_and_skips_other_runs(tmp_path):
    results = [_pre(tmp_path / "simclr", "simclr"), _pre(tmp_path / "advcl", "advcl"),
               _fine(tmp_path / "a", tmp_path / "advcl", "trades", "none", 0.8, 0.4, 0.3),
               _fine(tmp_path / "b", tmp_path / "advcl" / "model.pt", "trades", "none", 0.6, 0.2, 0.1),
               _fine(tmp_path / "c", tmp_path / "simclr", "standard", "backbone", 0.9, 0.0),
               _fine(tmp_path / "d", tmp_path / "elsewhere", "pgd_at", "none", 0.5, 0.5)]
    table = scheme_section(results).tables[0]
    # These configs name no data: both data columns say "?".
    assert table.rows == [["advcl", "?", "AFF", "?", 2, "70.0", "30.0", "20.0"],
                          ["simclr", "?", "SLF", "?", 1, "90.0", "0.0", "–"]]


def test_a_source_outside_the_report_is_read_from_its_results_json(tmp_path):
    source = tmp_path / "pre"
    source.mkdir()
    (source / "results.json").write_text(json.dumps(_pre(source, "acl")))
    fine = _fine(tmp_path / "f", source, "pgd_at", "backbone", 0.5, 0.25)
    out = render_results([fine], tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "## Contrastive pretraining × finetuning" in md and "| acl | ? | ALF | ? | 1 | 50.0 | 25.0 | – |" in md


def test_no_section_without_contrastive_finetuning(tmp_path):
    assert scheme_section([_fine(tmp_path / "x", tmp_path / "nowhere", "trades", "none", 0.5, 0.1)]) is None
    assert scheme_section([_pre(tmp_path / "p", "advcl")]) is None


def _data(result, **data):
    result["config"]["data"] = data
    return result


def test_rows_show_the_source_and_target_data_of_a_transfer(tmp_path):
    folder = {"source": "imagefolder", "root": "/data/cifar10-jpeg"}
    results = [_data(_pre(tmp_path / "p", "advcl"), **folder, classes=[0, 1, 2, 3, 4]),
               _data(_pre(tmp_path / "s", "advcl"), source="synthetic", root=None),
               _data(_fine(tmp_path / "a", tmp_path / "p", "standard", "backbone", 0.6, 0.1), **folder,
                     classes=[5, 6, 7, 8, 9]),
               _data(_fine(tmp_path / "b", tmp_path / "s", "standard", "backbone", 0.4, 0.0), **folder),
               _data(_fine(tmp_path / "c", tmp_path / "p", "standard", "backbone", 0.8, 0.3), **folder,
                     classes=[9, 7])]
    table = scheme_section(results).tables[0]
    assert table.headers[:5] == ["pretraining", "pretraining data", "finetuning", "finetuning data", "runs"]
    assert [row[:5] for row in table.rows] == [
        ["advcl", "imagefolder cifar10-jpeg, classes 0–4", "SLF", "imagefolder cifar10-jpeg, classes 5–9", 1],
        ["advcl", "imagefolder cifar10-jpeg, classes 0–4", "SLF", "imagefolder cifar10-jpeg, classes 9, 7", 1],
        ["advcl", "synthetic", "SLF", "imagefolder cifar10-jpeg", 1]]
