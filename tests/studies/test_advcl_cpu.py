"""studies/advcl_cpu.py: the summary of the AdvCL CPU study (cells, paired differences, tables)
and how it reads a finetuned run's results.json. The study itself needs CIFAR-10 and is not run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _helpers import load_study

SCRIPT = Path(__file__).resolve().parents[2] / "studies" / "advcl_cpu.py"


@pytest.fixture(scope="module")
def study():
    return load_study("advcl_cpu")


def fake_values(study) -> dict:
    """Two seeds; AdvCL's PGD-20 is ACL's + 0.10 and 0.20, ACL's is SimCLR's + 0.05 (both seeds)."""
    base = {0: 0.10, 1: 0.20}
    step = {"simclr": 0.0, "acl": 0.05}
    values = {}
    for seed, b in base.items():
        values[seed] = {}
        for pre in study.PRETRAININGS:
            extra = step.get(pre, 0.05 + (0.10 if seed == 0 else 0.20))
            for ft in study.FINETUNINGS:
                values[seed][f"{pre}_{ft}"] = {"clean": 0.5, "pgd20": b + extra,
                                               "autoattack": None if ft == "slf" else b + extra - 0.01}
    return values


def test_cells_are_means_with_t_intervals_and_skip_missing_autoattack(study):
    s = study.summarize(fake_values(study))
    cell = s["cells"]["advcl_alf"]["pgd20"]
    assert cell["n"] == 2 and cell["mean"] == pytest.approx((0.25 + 0.45) / 2)
    # t(0.975, 1) = 12.706; sd of {0.25, 0.45} = 0.1414; half width = 12.706 * 0.1414 / sqrt(2) = 1.2706
    assert cell["high"] - cell["mean"] == pytest.approx(1.2706, abs=1e-3)
    assert "autoattack" not in s["cells"]["advcl_slf"] and "autoattack" in s["cells"]["advcl_aff"]


def test_paired_differences_are_per_seed(study):
    d = study.summarize(fake_values(study))["differences"]
    acl = d["acl-simclr/alf/pgd20"]  # +0.05 in both seeds: no spread
    assert acl["mean"] == pytest.approx(0.05) and acl["sd"] == pytest.approx(0.0, abs=1e-12)
    adv = d["advcl-acl/aff/autoattack"]  # +0.10 and +0.20
    assert adv["mean"] == pytest.approx(0.15) and adv["low"] < 0.10 < 0.20 < adv["high"]
    assert "advcl-acl/slf/autoattack" not in d


def test_markdown_has_every_cell_and_difference(study):
    s = study.summarize(fake_values(study))
    meta = {"date": "2026-11-30", "setting": "tiny", "seeds": [0, 1], "machine": "m",
            "command": "python studies/advcl_cpu.py --root X", "time": {"wall_min": 1.0, "cpu_min": 2.0}}
    text = study.markdown(s, meta)
    assert "| advcl | ALF | 50.0 [50.0, 50.0] | 35.0 [" in text
    assert "| advcl − acl | AFF | +0.0 [0.0, 0.0] | +15.0 [" in text
    assert "| simclr | SLF | 50.0 [50.0, 50.0] | 15.0 [" in text
    # SLF had no AutoAttack: its AutoAttack column is "–" in the 3 cell rows and 3 difference rows
    assert text.count("| – |") == 6
    assert "python studies/advcl_cpu.py --root X" in text


def test_read_cell_takes_clean_pgd20_and_autoattack(study, tmp_path):
    run = tmp_path / "acl_alf"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"suites": {
        "clean": {"accuracy": 0.61},
        "adversarial": {"clean_accuracy": 0.6, "attacks": {
            "pgd20": {"robust_accuracy": 0.3}, "autoattack": {"skipped": True}}}}}))
    assert study.read_cell(run) == {"clean": 0.61, "pgd20": 0.3, "autoattack": None, "adv_clean": 0.6}


def test_root_is_required(study):
    with pytest.raises(SystemExit):
        study.parse_args([])
    a = study.parse_args(["--root", "x", "--adv-images", "50"])
    assert study.adversarial_overrides(a, False)[-1] == (
        "adversarial={max_images: 50, pgd100_steps: 0, sweep_linf: [], sweep_l2: [], "
        "unbounded_eps: null, gradient_free_images: 0, autoattack: false}")


def test_a_root_without_train_and_test_is_refused_in_one_line(study, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        study.main(["--root", str(tmp_path), "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path) in err and "train/ and test/" in err
    assert not (tmp_path / "out").exists()


def test_autoattack_runs_last_in_the_given_finetuning_order_and_only_once(study, tmp_path):
    a = study.parse_args(["--root", "x", "--seeds", "0", "1", "--autoattack-on", "aff", "alf",
                          "--out", str(tmp_path)])
    for seed in (0, 1):
        for name in ("simclr_aff", "acl_aff", "advcl_aff", "simclr_alf", "acl_alf", "advcl_alf"):
            run = tmp_path / f"seed{seed}" / name
            run.mkdir(parents=True)
            done = seed == 0 and name == "acl_aff"  # already has AutoAttack: not run again
            aa = {"robust_accuracy": 0.1} if done else {"skipped": True}
            (run / "results.json").write_text(json.dumps({"suites": {"adversarial": {"attacks": {"autoattack": aa}}}}))

    class Calls:
        keys: list[str] = []

        def run(self, key, args):
            assert args[0] == "eval" and args[-1].endswith("autoattack: true}")
            self.keys.append(key)

    calls = Calls()
    study.autoattack(calls, a)
    assert calls.keys == [
        "seed0/simclr_aff/autoattack", "seed0/advcl_aff/autoattack",
        "seed1/simclr_aff/autoattack", "seed1/acl_aff/autoattack", "seed1/advcl_aff/autoattack",
        "seed0/simclr_alf/autoattack", "seed0/acl_alf/autoattack", "seed0/advcl_alf/autoattack",
        "seed1/simclr_alf/autoattack", "seed1/acl_alf/autoattack", "seed1/advcl_alf/autoattack"]


def test_summarize_only_uses_the_recorded_run_arguments(study, tmp_path):
    out = tmp_path / "out"
    (out / "seed0").mkdir(parents=True)
    recorded = ["--root", "/data/cifar", "--seeds", "0", "--train-images", "1500", "--adv-images", "100"]
    (out / "study_args.json").write_text(json.dumps({"argv": recorded}))
    results = tmp_path / "res" / "advcl_cpu"
    study.main(["--root", "ignored", "--summarize-only", "--out", str(out), "--results", str(results)])
    meta = json.loads(results.with_suffix(".json").read_text())
    assert meta["seeds"] == [0] and "1500 training" in meta["setting"] and "first 100 test" in meta["setting"]
    assert meta["command"].endswith("studies/advcl_cpu.py " + " ".join(recorded))
    assert meta["values"] == {"0": {}} and all(cell == {} for cell in meta["cells"].values())
