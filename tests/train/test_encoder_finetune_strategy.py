"""Strategy `encoder_finetune`: label-free adversarial finetuning of a run's encoder into a new run
directory (student vs frozen teacher), resumable with the same teacher, then evaluable across tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import ssrobust
from _helpers import tiny_run_config
from ssrobust.errors import ConfigError
from ssrobust.runs.load import load_network

FT = {"name": "encoder_finetune", "options": {"steps": 1}}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ft")
    return ssrobust.train(tiny_run_config(tmp, epochs=1, eval={"suites": []}))


def _finetune_cfg(tmp_path: Path, base: Path, **over) -> dict:
    fields = {"name": "ft", "epochs": 2, "eval": {"suites": []}, "init_from": str(base), "strategy": FT}
    return tiny_run_config(tmp_path, **{**fields, **over})


def test_finetuning_moves_the_encoder_and_keeps_the_teacher_at_the_start(tmp_path, base):
    run = ssrobust.train(_finetune_cfg(tmp_path, base))
    _, start = load_network(base)
    _, tuned = load_network(run)
    a, b = start.model.state_dict(), tuned.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if "fc" not in k)  # the encoder was trained
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("fc."))  # the classifier is not in the loss
    teacher = torch.load(run / "checkpoint.pt", weights_only=True)["strategy"]["teacher"]
    assert all(torch.equal(teacher[k], a[k]) for k in a)


def test_a_resumed_run_finetunes_against_the_same_teacher(tmp_path, base):
    from ssrobust.experiments.run import train_and_evaluate

    cfg = ssrobust.make_config(_finetune_cfg(tmp_path, base))
    train_and_evaluate(cfg, stop_after=1)
    run = train_and_evaluate(cfg)
    _, start = load_network(base)
    teacher = torch.load(run / "checkpoint.pt", weights_only=True)["strategy"]["teacher"]
    assert all(torch.equal(teacher[k], v) for k, v in start.model.state_dict().items())


def test_runs_with_pretext_tasks_and_bad_options_are_refused(tmp_path, base):
    with pytest.raises(ConfigError, match="encoder_finetune trains no pretext tasks"):
        ssrobust.train(_finetune_cfg(tmp_path, base, tasks=["rotation"]))
    with pytest.raises(ConfigError, match="metric must be one of"):
        ssrobust.train(_finetune_cfg(tmp_path, base, name="ft_bad",
                                     strategy={"name": "encoder_finetune", "options": {"metric": "l1"}}))


def test_the_finetuned_run_is_evaluated_across_tasks(tmp_path, base):
    from ssrobust.experiments.encoders import EncoderEvalConfig, run_encoder_eval

    run = ssrobust.train(_finetune_cfg(tmp_path, base))
    cfg = EncoderEvalConfig(train_images=16, test_images=8, image_size=16, head_epochs=1, steps=1, batch_size=8)
    res = run_encoder_eval([base, run], tmp_path / "out", cfg)
    assert set(res["suites"]["encoders"]["encoders"]) == {"tiny", "ft"}
