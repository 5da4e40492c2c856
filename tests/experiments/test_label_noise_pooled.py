"""``ssrobust sweep`` on a spec whose runs corrupt labels: the Table 2 / Fig. 4 records and report
with the seeds pooled (:mod:`ssrobust.experiments.label_noise_pooled`), on faked finished runs."""

from __future__ import annotations

import json

import pytest
import yaml

from _helpers import make_npz, tiny_run_config
from ssrobust.experiments.label_noise_pooled import spec_records
from ssrobust.experiments.sweep import summarize
from ssrobust.experiments.sweep_spec import load_spec


def _sweep_base(tmp_path):
    data = {"source": "npz", "root": str(make_npz(tmp_path)), "val_size": 16, "batch_size": 16,
            "label_noise": {"trusted_fraction": 0.125}}
    return tiny_run_config(tmp_path, data=data)


def _fake_results(run_dir, accuracy: float, realized: float | None) -> None:
    run_dir.mkdir(parents=True)
    noise = None if realized is None else {"realized_noise": realized, "trusted_fraction": 0.0}
    (run_dir / "results.json").write_text(json.dumps(
        {"suites": {"clean": {"accuracy": accuracy}}, "data": {"label_noise": noise}}))


def test_a_generic_sweep_spec_with_label_noise_gets_table2_with_seeds_pooled(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(_sweep_base(tmp_path)))
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({
        "base": "base.yaml", "out": str(tmp_path / "sw"), "seeds": [0, 1], "metrics": ["clean.accuracy"],
        "axes": [{"arms": {"plain": [], "rot": ["tasks=[rotation:0.5]"]}},
                 {"grid": {"data.label_noise.strength": [0.0, 0.6]}}],
        "extra_arms": {"pretrain": ["data.label_noise=null"]}}, sort_keys=False))
    spec = load_spec(spec_file)
    out = tmp_path / "sw"
    acc = {("plain", 0.0): [0.9, 0.8], ("plain", 0.6): [0.5, 0.7], ("rot", 0.0): [0.95, 0.85],
           ("rot", 0.6): [0.6, None]}  # rot at 0.6: seed 1 did not finish
    for (arm, s), per_seed in acc.items():
        for seed, a in enumerate(per_seed):
            if a is not None:
                _fake_results(out / f"{arm}_strength{s}_s{seed}", a, 0.4 * s + 0.01 * seed)
    _fake_results(out / "pretrain_s0", 0.99, None)
    assert spec_records(spec) == summarize(spec)["label_noise"]
    records = {r["method"]: r for r in summarize(spec)["label_noise"]}
    assert sorted(records) == ["plain", "rot"]  # the strength axis is dropped, the clean pretraining left out
    plain = records["plain"]["points"]
    assert [p["strength"] for p in plain] == [0.0, 0.6]
    assert plain[1]["test_error"] == pytest.approx(((1 - 0.5) + (1 - 0.7)) / 2)
    assert plain[1]["test_errors"] == pytest.approx([0.5, 0.3]) and plain[1]["seeds"] == [0, 1]
    assert plain[1]["realized_noise"] == pytest.approx(0.24 + 0.005)
    assert plain[1]["runs"] == ["plain_strength0.6_s0", "plain_strength0.6_s1"]
    rot = records["rot"]["points"]
    assert rot[1]["seeds"] == [0] and rot[1]["test_error"] == pytest.approx(0.4)
    md = (out / "summary.md").read_text()
    assert "label_noise_report/report.md" in md
    report = (out / "label_noise_report" / "report.md").read_text()
    assert "mean over the finished runs of seeds 0, 1" in report
    # Table 2 row of "plain": mean over its two strengths of the seed-pooled errors, in percent
    assert f"| plain | {100 * (0.15 + 0.4) / 2:.1f}" in report
    assert (out / "label_noise_report" / "figures" / "label_noise_error_vs_strength.png").is_file()


def test_a_sweep_spec_without_label_noise_gets_no_label_noise_report(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_run_config(tmp_path)))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({
        "base": "base.yaml", "out": str(tmp_path / "sw"), "seeds": [0],
        "axes": [{"grid": {"optim.lr": [0.05, 0.1]}}]}))
    spec = load_spec(tmp_path / "spec.yaml")
    _fake_results(tmp_path / "sw" / "lr0.05_s0", 0.9, None)
    assert "label_noise" not in summarize(spec)
    assert not (tmp_path / "sw" / "label_noise_report").exists()
