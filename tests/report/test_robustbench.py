"""RobustBench model cards: only the right numbers, missing ones reported as missing."""

from __future__ import annotations

import copy
import json

import pytest

from _helpers import tiny_run_config
from ssrobust.api import make_config, model_card
from ssrobust.cli import main
from ssrobust.corruptions import BENCHMARK, NAMES, VALIDATION
from ssrobust.errors import ConfigError, DataError
from ssrobust.report.robustbench import robustbench_card, robustbench_cards
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`


def _corruption_accuracy() -> dict:
    """Benchmark cells 0.5 + 0.01 * severity (mean 0.53); the 4 validation corruptions 0.0, so a
    mean over all 19 (0.4184) or over the record's summaries would show."""
    return {n: {str(s): (0.0 if n in VALIDATION else 0.5 + 0.01 * s) for s in range(1, 6)}
            for n in NAMES}


def _results() -> dict:
    return {
        "run": "wrn_rot", "data": {"source": "cifar10", "num_test": 10000},
        "config": {"model": {"name": "wrn", "kwargs": {"depth": 40, "widen": 2}},
                   "strategy": {"name": "pgd_at"}, "init_from": None},
        "suites": {
            "clean": {"accuracy": 0.9, "n": 10000},
            "adversarial": {
                "n": 10000, "eps": 8 / 255, "norm": "linf", "clean_accuracy": 0.9,
                "attacks": {"pgd20": {"robust_accuracy": 0.6, "n": 10000, "eps": 8 / 255,
                                      "norm": "linf"},
                            "autoattack": {"robust_accuracy": 0.5, "n": 10000, "skipped": False,
                                           "version": "standard", "eps": 8 / 255, "norm": "linf",
                                           "package_flags": []}},
                "worst_case_robust_accuracy": 0.49,
                "sanity_checks": [{"name": "in_ball_and_range", "passed": True, "detail": ""}]},
            "corruptions": {"source": "folder", "quantize": None, "n_images": 10000,
                            "accuracy": _corruption_accuracy(), "mean_accuracy_benchmark": 0.53,
                            "mean_accuracy_all": 0.4184},
        },
    }


def test_full_record_gives_leaderboard_fields() -> None:
    cards = robustbench_cards(_results())["cards"]
    linf = cards["Linf"]
    assert list(linf["model_info"]) == [
        "link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
        "architecture", "eps", "clean_acc", "reported", "autoattack_acc", "footnote"]
    info = linf["model_info"]
    assert info["dataset"] == "cifar10" and info["eps"] == "8/255" and info["name"] == "wrn_rot"
    assert info["architecture"] == "WideResNet-40-2" and info["additional_data"] is False
    assert info["clean_acc"] == "90.00" and info["autoattack_acc"] == "50.00"  # not PGD's 60
    assert linf["sources"]["autoattack_acc"]["record"] == "suites.adversarial.attacks.autoattack"
    assert linf["comparable"] and linf["warnings"] == []
    assert set(linf["missing"]) == {"link", "authors", "venue", "reported", "footnote"}
    corr = cards["corruptions"]
    assert corr["model_info"]["eps"] is None and "autoattack_acc" not in corr["model_info"]
    # Exactly the 15 benchmark corruptions x 5 severities: 0.53, not the 19-corruption 0.4184.
    assert corr["model_info"]["corruptions_acc"] == "53.00" and corr["comparable"]
    assert corr["sources"]["corruptions_acc"]["value"] == pytest.approx(0.53)
    # No L2 AutoAttack in the record: missing, with what was found; the linf one is not reused.
    l2 = cards["L2"]
    assert l2["model_info"]["eps"] == "0.5" and l2["model_info"]["autoattack_acc"] is None
    assert "no standard AutoAttack at l2 eps 0.5" in l2["missing"]["autoattack_acc"]
    assert "autoattack at linf eps 8/255" in l2["missing"]["autoattack_acc"]
    assert not l2["comparable"]
    json.dumps(cards)


@pytest.mark.parametrize("change, reason", [
    ({"eps": 4 / 255}, "autoattack at linf eps 4/255, version standard"),
    ({"version": "plus"}, "version plus"),
    ({"skipped": True, "reason": "pyautoattack is not installed"}, "skipped (pyautoattack is not"),
])
def test_autoattack_at_another_setting_is_missing_not_substituted(change, reason) -> None:
    res = _results()
    res["suites"]["adversarial"]["attacks"]["autoattack"].update(change)
    card = robustbench_card(res, "Linf")
    assert card["model_info"]["autoattack_acc"] is None and not card["comparable"]
    assert reason in card["missing"]["autoattack_acc"]
    assert card["model_info"]["clean_acc"] == "90.00"


def test_partial_corruption_grid_is_missing() -> None:
    res = _results()
    acc = res["suites"]["corruptions"]["accuracy"]
    for name in BENCHMARK:
        for s in ("4", "5"):
            del acc[name][s]
    card = robustbench_card(res, "corruptions")
    assert card["model_info"]["corruptions_acc"] is None
    why = card["missing"]["corruptions_acc"]
    assert "30 of 75 missing: gaussian_noise s4, gaussian_noise s5" in why
    del res["suites"]["corruptions"]
    why = robustbench_card(res, "corruptions")["missing"]["corruptions_acc"]
    assert why == "no corruptions suite in results.json"


def test_warnings_make_a_card_not_comparable() -> None:
    res = _results()
    adv = res["suites"]["adversarial"]
    adv["attacks"]["autoattack"]["n"] = 1000
    adv["sanity_checks"].append({"name": "gradient_masking_spsa", "passed": False, "detail": ""})
    res["suites"]["corruptions"]["source"] = "on_the_fly"
    cards = robustbench_cards(res)["cards"]
    linf = cards["Linf"]
    assert linf["model_info"]["autoattack_acc"] == "50.00" and not linf["comparable"]
    assert "AutoAttack on 1000 test images; RobustBench evaluates 10000" in linf["warnings"]
    assert "adversarial sanity checks failed: gradient_masking_spsa" in linf["warnings"]
    assert any("on the fly" in w for w in cards["corruptions"]["warnings"])


def test_other_dataset_and_unknown_provenance() -> None:
    res = _results()
    res["data"]["source"] = "synthetic"
    res["config"]["init_from"] = "runs/pretrain"
    card = robustbench_card(res, "Linf")
    info = card["model_info"]
    assert info["dataset"] is None and "not a RobustBench dataset" in card["missing"]["dataset"]
    assert info["additional_data"] is None and "runs/pretrain" in card["missing"]["additional_data"]
    assert info["autoattack_acc"] == "50.00" and not card["comparable"]
    assert any("no synthetic Linf leaderboard" in w for w in card["warnings"])


def test_bad_input_is_a_clear_error() -> None:
    res = _results()
    res["suites"]["clean"]["accuracy"] = "high"
    with pytest.raises(DataError, match="suites.clean.accuracy is 'high', expected a fraction"):
        robustbench_card(res, "Linf")
    with pytest.raises(ConfigError, match="threat model 'linf': expected one of Linf, L2"):
        robustbench_card(_results(), "linf")
    bad = copy.deepcopy(_results())
    bad["suites"]["corruptions"]["accuracy"]["fog"]["3"] = 1.5
    with pytest.raises(DataError, match="suites.corruptions.accuracy.fog.3 is 1.5"):
        robustbench_card(bad, "corruptions")


def test_cli_card_from_a_trained_run(tmp_path, capsys) -> None:
    """End to end: a tiny run with clean and corruptions suites, then ``ssrobust card``."""
    suites = {"suites": ["clean", "corruptions"],
              "options": {"corruptions": {"max_images": 8, "severities": [1, 2, 3, 4, 5]}}}
    run = fit(make_config(tiny_run_config(tmp_path, epochs=1, eval=suites)))
    res = json.loads((run / "results.json").read_text())
    capsys.readouterr()
    assert main(["card", str(run), "--threat-model", "corruptions", "--threat-model", "Linf"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["cards"]) == ["corruptions", "Linf"] and out["run"] == "tiny"
    acc = res["suites"]["corruptions"]["accuracy"]
    mean15 = sum(acc[n][str(s)] for n in BENCHMARK for s in range(1, 6)) / 75
    corr = out["cards"]["corruptions"]
    assert corr["model_info"]["corruptions_acc"] == f"{100 * mean15:.2f}"
    assert corr["model_info"]["clean_acc"] == f"{100 * res['suites']['clean']['accuracy']:.2f}"
    linf_missing = out["cards"]["Linf"]["missing"]
    assert linf_missing["autoattack_acc"] == "no adversarial suite in results.json"
    assert model_card(run, ["corruptions"])["cards"]["corruptions"] == corr
    # A folder without results.json: one line on stderr, exit status 2.
    assert main(["card", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no results.json" in err and err.count("\n") == 1
    (tmp_path / "listy").mkdir()
    (tmp_path / "listy" / "results.json").write_text("[1, 2]")
    assert main(["card", str(tmp_path / "listy")]) == 2
    err = capsys.readouterr().err
    assert "results.json holds a JSON list, expected an object" in err and err.count("\n") == 1
