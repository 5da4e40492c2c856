"""CPU adversarial presets (configs/cpu/adversarial_*.yaml): one like-for-like comparison.

Kucer's modes, rotation vs none and PGD-AT vs TRADES vs fast-AT are compared across these files, so
they must share data, model, optimizer, epochs, the training eps and the evaluation; the retuned
recipe (fastnet, eps 4/255, measured in docs/cpu_presets.md) must also reach every file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssrobust.api import make_config
from ssrobust.experiments import train_and_evaluate

CPU = Path(__file__).resolve().parents[2] / "configs" / "cpu"
PRESETS = sorted(CPU.glob("adversarial_*.yaml"))
EPS = 4 / 255


def _load(path: Path):
    return make_config(str(path))


def test_the_presets_share_data_model_optimizer_and_epochs() -> None:
    assert {"adversarial_standard", "adversarial_pgd_at", "adversarial_fast_at", "adversarial_trades",
            "adversarial_pgd_at_rotation"} <= {p.stem for p in PRESETS}
    cfgs = {p.stem: _load(p) for p in PRESETS}
    ref = cfgs["adversarial_pgd_at"]
    for name, cfg in cfgs.items():
        assert (cfg.data, cfg.model, cfg.optim, cfg.epochs, cfg.channels_last) == \
               (ref.data, ref.model, ref.optim, ref.epochs, ref.channels_last), name
    assert ref.model.name == "fastnet"  # the tiny net stayed at chance under PGD-AT (12.5% clean)


def test_every_linf_preset_trains_and_evaluates_at_one_eps() -> None:
    evaluated = {p.stem: _load(p) for p in PRESETS if "adversarial" in _load(p).eval.suites}
    ref = evaluated["adversarial_pgd_at"].eval
    assert ref.options["adversarial"]["eps"] == pytest.approx(EPS)
    for name, cfg in evaluated.items():
        opts = cfg.strategy.options
        if opts.get("norm", "linf") == "l2":  # an l2 comparison of its own: a longer l2 sweep, the rest alike
            adv = {k: v for k, v in cfg.eval.options["adversarial"].items() if k != "sweep_l2"}
            assert adv == ref.options["adversarial"], name
            continue
        assert cfg.eval == ref, name  # same attacks, budgets and images everywhere
        if cfg.strategy.name != "standard":
            assert opts["eps"] == pytest.approx(EPS), name


@pytest.mark.parametrize("stem", ["adversarial_pgd_at", "adversarial_fast_at"])
def test_preset_trains_and_evaluates_when_shrunk(tmp_path: Path, stem: str) -> None:
    cfg = make_config(str(CPU / f"{stem}.yaml"), [
        f"out_dir={tmp_path}", "epochs=1", "threads=1", "progress=false", "data.num_train=96",
        "data.num_test=16", "data.val_size=16", "data.batch_size=32", "model.kwargs={widths: [8, 16]}",
        "eval.options.adversarial={max_images: 8, eps: 0.01568627450980392, sweep_steps: 2, "
        "pgd20_steps: 2, pgd100_steps: 2, gradient_free_images: 0, autoattack: false, "
        "sweep_linf: [0.0, 0.01568627450980392], sweep_l2: [0.0]}"])
    before = torch.get_num_threads()
    try:
        run = train_and_evaluate(cfg)
    finally:
        torch.set_num_threads(before)  # threads=1 is process-wide
    res = json.loads((run / "results.json").read_text())
    adv = res["suites"]["adversarial"]
    assert adv["eps"] == pytest.approx(EPS) and res["suites"]["clean"]["n"] == 16
