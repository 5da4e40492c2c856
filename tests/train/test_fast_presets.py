"""The configs/cpu/cifar10_fast*.yaml presets run end to end (shrunk) on a tiny image folder."""

import json
from pathlib import Path

import pytest
import torch
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
