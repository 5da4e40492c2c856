"""The encoder study (studies/encoders_cpu.py, issue 15): its presets load and compare like for like,
and its summary (mean and paired advft - supervised with 95 % t-intervals) matches hand values."""

from __future__ import annotations

from pathlib import Path

import pytest
from _helpers import load_study

from ssrobust.api import make_config

ROOT = Path(__file__).resolve().parents[2]


def _study():
    return load_study("encoders_cpu")


def _suite(values: dict[str, float]) -> dict:
    """One seed's ``encoders`` suite: a cls row per encoder with the same value in every condition."""
    return {"table": [{"encoder": e, "task": "cls", "metric": "accuracy", "clean": v,
                       "embedding_attack": v / 2, "task_attack": v / 4} for e, v in values.items()]}


def test_summary_means_and_paired_differences_by_hand():
    study = _study()
    per_seed = {0: _suite({"supervised": 0.8, "advft": 0.7}), 1: _suite({"supervised": 0.6, "advft": 0.6})}
    summary, md = study.summarize(per_seed)
    sup = next(r for r in summary["rows"] if r["encoder"] == "supervised")
    clean = sup["interval"]["clean"]
    # two values 0.8, 0.6: mean 0.7, sd 0.1*sqrt(2), half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.1
    assert clean["mean"] == pytest.approx(0.7) and clean["n"] == 2
    assert clean["high"] - clean["mean"] == pytest.approx(12.7062047 * 0.1, rel=1e-6)
    (pair,) = summary["paired"]
    diff = pair["difference"]["clean"]  # per seed: -0.1, 0.0
    assert diff["mean"] == pytest.approx(-0.05) and diff["n"] == 2
    assert diff["high"] - diff["mean"] == pytest.approx(12.7062047 * 0.05, rel=1e-6)
    assert pair["difference"]["task_attack"]["mean"] == pytest.approx(-0.05 / 4)
    assert "| supervised | cls | accuracy | 70.0 [" in md and "| cls | accuracy | -5.0 [" in md


def test_study_presets_share_data_and_backbone_and_finetune_the_supervised_run():
    study = _study()
    cfgs = {name: make_config(str(ROOT / p)) for name, p in
            {**study.ENCODERS, study.FINETUNED[0]: study.FINETUNED[1]}.items()}
    for name, cfg in cfgs.items():
        assert cfg.model == cfgs["supervised"].model, name  # one backbone (init_from needs it)
        assert (cfg.data.source, cfg.data.num_train) == ("synthetic", 3000), name
    assert cfgs["simclr"].strategy.options["mode"] == "simclr"
    assert cfgs["advft"].strategy.name == "encoder_finetune" and cfgs["advft"].tasks == []
    assert cfgs["rotation"].tasks and not cfgs["supervised"].tasks
