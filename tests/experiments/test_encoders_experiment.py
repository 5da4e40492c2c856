"""The cross-task encoder evaluation (issue 15): table shape and keys, untouched encoders, the
output folder rules and one-line errors for bad input. Tiny runs and the built-in scenes, CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ssrobust
from _helpers import tiny_run_config
from ssrobust.errors import CheckpointError, ConfigError, DataError, LockedError
from ssrobust.experiments.encoders import CONDITIONS, EncoderEvalConfig, run_encoder_eval
from ssrobust.locking import DirLock

SMALL = dict(train_images=24, test_images=12, image_size=16, head_epochs=1, steps=1, batch_size=8)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("enc")
    return ssrobust.train(tiny_run_config(tmp, epochs=1, eval={"suites": []}))


def _user_module() -> torch.nn.Module:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3, 1, 1), torch.nn.BatchNorm2d(6), torch.nn.ReLU())


def test_table_has_every_encoder_task_and_condition(run_dir, tmp_path):
    from ssrobust.encoders import as_encoder

    user = as_encoder(_user_module(), layer="2")
    res = run_encoder_eval({"run": run_dir, "mine": user}, tmp_path / "out", EncoderEvalConfig(**SMALL))
    assert json.loads((tmp_path / "out" / "results.json").read_text()) == res
    suite = res["suites"]["encoders"]
    assert suite["tasks"] == ["cls", "seg", "depth"] and suite["conditions"] == list(CONDITIONS)
    assert set(suite["encoders"]) == {"run", "mine"}
    for tasks in suite["encoders"].values():
        assert set(tasks) == {"cls", "seg", "depth"}
        for task, rec in tasks.items():
            assert set(rec) == set(CONDITIONS)
        assert set(tasks["seg"]["clean"]) >= {"miou", "pixel_accuracy"}
        assert set(tasks["depth"]["clean"]) >= {"rmse", "absrel", "delta1"}
    table = suite["table"]
    assert len(table) == 2 * 3
    assert {(r["encoder"], r["task"]) for r in table} == {(e, t) for e in ("run", "mine")
                                                          for t in ("cls", "seg", "depth")}
    for r in table:
        assert r["metric"] == {"cls": "accuracy", "seg": "miou", "depth": "delta1"}[r["task"]]
        assert all(0.0 <= r[c] <= 1.0 for c in CONDITIONS)
        assert r["clean"] == suite["encoders"][r["encoder"]][r["task"]]["clean"][r["metric"]]


def test_encoder_state_dict_is_bit_identical_after_the_evaluation(tmp_path):
    module = _user_module()
    module.train()  # a user's module in train mode: BN statistics must not move either
    before = {k: v.clone() for k, v in module.state_dict().items()}
    flags = [p.requires_grad for p in module.parameters()]
    from ssrobust.encoders import as_encoder

    run_encoder_eval([as_encoder(module, layer="2")], tmp_path / "out", EncoderEvalConfig(**SMALL, tasks=["seg", "depth"]))
    after = module.state_dict()
    assert set(after) == set(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert module.training and flags == [True, True, True, True]


def test_bad_tasks_and_options_are_one_line_config_errors():
    for kwargs, msg in [({"tasks": ["cls", "ocr"]}, "tasks must be distinct names among cls, seg, depth"),
                        ({"tasks": []}, "tasks must be distinct"),
                        ({"steps": -1}, "steps must be a finite number >= 0"),
                        ({"embedding_metric": "l1"}, "embedding_metric must be l2 or cosine"),
                        ({"train_dir": "x"}, "give both train_dir and test_dir")]:
        with pytest.raises(ConfigError, match=msg) as e:
            EncoderEvalConfig(**kwargs)
        assert "\n" not in str(e.value)


def test_bad_input_creates_no_output_folder(tmp_path, run_dir):
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match="not a run directory"):
        run_encoder_eval([tmp_path], out, EncoderEvalConfig(**SMALL))
    with pytest.raises(DataError, match="does not exist or is not a folder"):
        run_encoder_eval([run_dir], out, EncoderEvalConfig(**SMALL, train_dir=str(tmp_path / "no"),
                                                           test_dir=str(tmp_path / "no")))
    with pytest.raises(ConfigError, match="at least one encoder"):
        run_encoder_eval([], out)
    assert not out.exists()


def _dense_folder(root: Path, n: int = 4, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "depth").mkdir()
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        np.savez(root / "depth" / f"{i}.npz", depth=rng.uniform(0.5, 5.0, (size, size)).astype(np.float32))
    return root


def test_dense_folder_depth_works_and_a_task_without_targets_names_the_folder(tmp_path):
    train, test = _dense_folder(tmp_path / "train"), _dense_folder(tmp_path / "test")
    cfg = dict(SMALL, train_dir=str(train), test_dir=str(test))
    from ssrobust.encoders import as_encoder

    res = run_encoder_eval([as_encoder(_user_module(), method="forward")], tmp_path / "ok", EncoderEvalConfig(**cfg, tasks=["depth"]))
    assert [r["task"] for r in res["suites"]["encoders"]["table"]] == ["depth"]
    with pytest.raises(ConfigError, match=f"task seg needs masks .*{train}.* has none; drop it from --tasks"):
        run_encoder_eval([as_encoder(_user_module(), method="forward")], tmp_path / "bad", EncoderEvalConfig(**cfg, tasks=["seg", "depth"]))
    assert not (tmp_path / "bad").exists()


def test_a_second_writer_and_a_foreign_results_file_are_refused(tmp_path, run_dir):
    out = tmp_path / "out"
    out.mkdir()
    with DirLock(out, "encoders output folder"):
        with pytest.raises(LockedError, match="in use by"):
            run_encoder_eval([run_dir], out, EncoderEvalConfig(**SMALL))
    (out / "results.json").write_text(json.dumps({"run": "x", "suites": {"clean": {}}}))
    with pytest.raises(ConfigError, match="was not written by `ssrobust encoders`"):
        run_encoder_eval([run_dir], out, EncoderEvalConfig(**SMALL))
    assert json.loads((out / "results.json").read_text())["run"] == "x"  # left as it was


def test_a_contrastive_pretraining_run_is_an_encoder(tmp_path):
    # its model.pt holds projection heads (contrastive.*) besides the backbone: `ssrobust encoders`
    # used to refuse it ("does not match the checkpoint: unexpected contrastive.projection...")
    cfg = tiny_run_config(tmp_path, name="simclr", epochs=1, eval={"suites": []},
                          strategy={"name": "contrastive", "options": {"mode": "simclr"}})
    cfg["data"]["val_size"] = 0
    run = ssrobust.train(cfg)
    from ssrobust.experiments.encoders import load_backbone
    from ssrobust.runs.checkpoint import load_checkpoint

    saved = load_checkpoint(Path(run) / "model.pt")["network"]
    backbone = load_backbone(run, "cpu")
    assert not backbone.training
    for k, v in backbone.state_dict().items():
        assert torch.equal(v, saved[f"model.{k}"]), k
    res = run_encoder_eval([run], tmp_path / "out", EncoderEvalConfig(**SMALL, tasks=["cls", "seg"]))
    assert set(res["suites"]["encoders"]["encoders"]) == {"simclr"}
