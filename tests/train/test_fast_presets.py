"""The configs/cpu/cifar10_fast*.yaml presets run end to end (shrunk) on a tiny image folder."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from _helpers import make_image_folder

from ssrobust.api import make_config
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`

PRESETS = sorted((Path(__file__).resolve().parents[2] / "configs" / "cpu").glob("cifar10_fast*.yaml"))


def test_the_presets_cover_baseline_rotation_variants_and_fast_at():
    names = {p.stem for p in PRESETS}
    assert {"cifar10_fast", "cifar10_fast_rotation", "cifar10_fast_rotation_one",
            "cifar10_fast_rotation_quarter", "cifar10_fast_at", "cifar10_fast_at_rotation"} <= names


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_trains_and_evaluates_when_shrunk(tmp_path, preset):
    root = make_image_folder(tmp_path / "folder", classes=3, per_class=8)
    before = torch.get_num_threads()
    cfg = make_config(preset, [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path}",
                               "epochs=2", "data.batch_size=6", "data.val_size=6", "data.eval_batch_size=8",
                               "model.kwargs={widths: [8, 16]}", "eval.suites=[clean]", "eval.options={}",
                               "progress=false", "optim.warmup_epochs=0"])
    try:
        run = fit(cfg)
    finally:
        torch.set_num_threads(before)
    res = json.loads((run / "results.json").read_text())
    assert res["suites"]["clean"]["n"] == 6 and res["suites"]["clean"]["tta"] == cfg.eval.tta
    assert json.loads((run / "meta.json").read_text())["channels_last"] is True  # auto on a CPU


def test_the_fast_at_90min_arms_differ_only_in_the_rotation_task():
    """cifar10_fast_at_90min is the paired no-task arm of cifar10_fast_at_rotation_90min: removing
    the task, its options and the task's two attack options from the rotation preset gives it."""
    folder = PRESETS[0].parent
    plain = yaml.safe_load((folder / "cifar10_fast_at_90min.yaml").read_text())
    rot = yaml.safe_load((folder / "cifar10_fast_at_rotation_90min.yaml").read_text())
    assert rot["tasks"] == ["rotation:0.5"] and "tasks" not in plain and "task_options" not in plain
    assert rot["strategy"]["options"].pop("attack_ss_weight") == 1.0
    assert rot["strategy"]["options"].pop("tasks_on") == "adv"
    for key in ("name", "tasks", "task_options"):
        rot.pop(key)
        plain.pop(key, None)
    assert rot == plain
