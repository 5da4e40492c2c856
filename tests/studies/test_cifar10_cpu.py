"""studies/cifar10_cpu.py: the write-up of issue 17's sweeps (values, paired intervals, mCE,
verdicts, compute, exit codes) on fabricated sweep folders. The sweeps need CIFAR-10 and are not run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from _helpers import load_study

from ssrobust.corruptions.base import BENCHMARK
from ssrobust.stats import t_quantile

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "cifar10_cpu.py"


@pytest.fixture(scope="module")
def study():
    return load_study("cifar10_cpu")


def _corruption_record(acc: float, clean: float) -> dict:
    per = {n: {str(s): acc for s in range(1, 6)} for n in BENCHMARK}
    fam = {f: acc for f in ("noise", "blur", "weather", "digital")}
    return {"clean_accuracy": clean, "accuracy": per, "mean_accuracy_benchmark": acc,
            "mean_accuracy_by_family": fam, "mean_accuracy_by_severity": {str(s): acc for s in range(1, 6)},
            "time_s": 30.0}


def _write(folder: Path, record: dict) -> None:
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(record))


# rotation's corruption accuracy = baseline's + these, per seed (points / 100)
ROT_GAIN = {0: 0.02, 1: 0.04, 2: 0.03}
BASE_ACC = {0: 0.50, 1: 0.52, 2: 0.48}


def make_sweeps(root: Path, seeds=(0, 1, 2)) -> Path:
    sweeps = root / "sweeps"
    for seed in seeds:
        for arm, gain in (("baseline", 0.0), ("rotation", ROT_GAIN[seed]), ("rotation_quarter", -0.01)):
            acc = BASE_ACC[seed] + gain
            _write(sweeps / "study_cpu_corruptions" / f"{arm}_s{seed}",
                   {"config": {"threads": 1}, "train": {"time_s": 100.0},
                    "suites": {"clean": {"accuracy": 0.8, "time_s": 1.0},
                               "corruptions": _corruption_record(acc, 0.8)}})
        for arm, pgd in (("fast_at", 0.30), ("fast_at_rotation", 0.25)):
            checks = [{"name": "eps0_is_clean_linf", "passed": True},
                      {"name": "ce_vs_margin_loss", "passed": arm == "fast_at"}]
            _write(sweeps / "study_cpu_adversarial" / f"{arm}_s{seed}",
                   {"config": {"threads": 1}, "train": {"time_s": 200.0},
                    "suites": {"clean": {"accuracy": 0.6, "time_s": 1.0},
                               "adversarial": {"clean_accuracy": 0.6, "time_s": 60.0,
                                               "attacks": {"pgd20": {"robust_accuracy": pgd + 0.01 * seed},
                                                           "autoattack": {"robust_accuracy": pgd - 0.02}},
                                               "sanity_checks": checks,
                                               "sanity_checks_failed": sum(not c["passed"] for c in checks)}}})
        for arm, auroc in (("baseline", 0.70), ("rotation", 0.70)):
            _write(sweeps / "study_cpu_ood" / f"{arm}_s{seed}",
                   {"config": {"threads": 1}, "train": {"time_s": 50.0},
                    "suites": {"clean": {"accuracy": 0.7},
                               "ood": {"detector": {"per_set": {"held_out": {"auroc_out_pos": auroc + 0.001 * seed}},
                                                    "mean_synthetic": {"auroc_out_pos": 0.9}}}}})
    return sweeps


def test_verdict_rule(study):
    assert study.verdict({"low": 0.5, "high": 3.0}, 4.6) == "reproduced"
    assert study.verdict({"low": -3.0, "high": -0.5}, 4.6).startswith("not reproduced (opposite")
    assert study.verdict({"low": -1.0, "high": 2.0}, 4.6).startswith("not reproduced (the paper's effect")
    assert study.verdict({"low": -1.0, "high": 6.0}, 4.6) == "unclear"
    assert study.verdict({"low": None, "high": None}, 4.6).startswith("unclear")
    assert study.verdict(None, 4.6).startswith("unclear")
    # lower is better: a negative difference is the paper's direction
    assert study.verdict({"low": -3.0, "high": -0.5}, 1.0, higher_is_better=False) == "reproduced"


def test_summary_values_intervals_mce_and_verdicts(study, tmp_path):
    sweeps = make_sweeps(tmp_path)
    out = tmp_path / "out"
    assert study.main(["--sweeps", str(sweeps), "--out", str(out)]) == 0
    summary = json.loads((out / "cifar10_cpu.json").read_text())
    c1, c2, c3 = summary["claims"]

    cell = c1["table"]["corruptions.mean_accuracy_benchmark"]["arms"]["rotation"]
    diffs = [100 * ROT_GAIN[s] for s in (0, 1, 2)]
    mean = sum(diffs) / 3
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 2)
    half = t_quantile(0.975, 2) * sd / math.sqrt(3)
    assert cell["diff"]["mean"] == pytest.approx(3.0)
    assert cell["diff"]["low"] == pytest.approx(mean - half)
    assert cell["diff"]["high"] == pytest.approx(mean + half)
    assert cell["seeds"]["1"] == pytest.approx(56.0)
    # interval [0.5, 5.5] excludes 0 -> reproduced; quarter: -1 every seed (sd 0) -> opposite
    assert c1["verdicts"][0]["verdict"] == "reproduced"
    assert c1["verdicts"][1]["verdict"].startswith("not reproduced (opposite")

    # mCE of rotation vs the baseline of its seed: (1 - acc_rot) / (1 - acc_base), in %
    mce = c1["table"]["mce"]["arms"]
    for s in (0, 1, 2):
        expected = 100 * (1 - BASE_ACC[s] - ROT_GAIN[s]) / (1 - BASE_ACC[s])
        assert mce["rotation"]["seeds"][str(s)] == pytest.approx(expected)
        assert mce["baseline"]["seeds"][str(s)] == pytest.approx(100.0)

    # claim 2: rotation 5 points worse on PGD-20 in every seed; failed checks are listed by run
    assert c2["table"]["adversarial.attacks.pgd20.robust_accuracy"]["arms"]["fast_at_rotation"]["diff"]["mean"] \
        == pytest.approx(-5.0)
    assert c2["verdicts"][0]["verdict"].startswith("not reproduced (opposite")
    assert c2["failed_sanity_checks"] == {f"fast_at_rotation_s{s}": ["ce_vs_margin_loss"] for s in (0, 1, 2)}
    assert c2["table"]["adversarial.sanity_checks_failed"]["arms"]["fast_at_rotation"]["interval"]["mean"] == 1.0

    # claim 3: no difference (+0 every seed): the paper's +4.8 is ruled out
    assert c3["verdicts"][0]["verdict"].startswith("not reproduced (the paper's effect")

    # compute: 1 thread per run, training + every suite's time_s
    assert c1["core_hours"]["train"] == pytest.approx(9 * 100 / 3600)
    assert c1["core_hours"]["eval"] == pytest.approx(9 * 31 / 3600)
    assert summary["core_hours_total"] == pytest.approx(sum(c["core_hours"]["total"] for c in (c1, c2, c3)))

    text = (out / "cifar10_cpu.md").read_text()
    assert "ssrobust sweep configs/sweeps/study_cpu_corruptions.yaml --parallel 2" in text
    assert "Incomplete" not in text
    assert (out / "cifar10_cpu_diffs.png").stat().st_size > 0


def test_incomplete_sweeps_exit_1_and_say_so(study, tmp_path):
    sweeps = make_sweeps(tmp_path, seeds=(0, 1))
    out = tmp_path / "out"
    assert study.main(["--sweeps", str(sweeps), "--out", str(out)]) == 1
    assert "**Incomplete.**" in (out / "cifar10_cpu.md").read_text()


def test_missing_sweeps_folder_is_a_one_line_error(study, tmp_path, capsys):
    assert study.main(["--sweeps", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope" in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_specs_match_the_script(study):
    """The arms and baseline the script reads are those the committed specs define."""
    import yaml
    root = SCRIPT.parents[1]
    for claim in study.CLAIMS:
        spec = yaml.safe_load((root / claim["spec"]).read_text())
        assert spec["name"] == claim["sweep"]
        assert spec["baseline"] == claim["baseline"]
        assert sorted(spec["axes"][0]["arms"]) == sorted(claim["arms"])
        assert list(spec["seeds"]) == list(study.SEEDS)
        for _, path in claim["primary"]:
            assert path in spec["metrics"]
