"""The AdvCL presets: configs/paper/advcl/ carry the paper's recipe; configs/cpu/advcl_*.yaml run
end to end (shrunk) as the chain simclr -> acl / advcl -> slf / alf / aff, with the report."""

import json
from pathlib import Path

import pytest
import torch

from ssrobust.api import make_config
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.report import render_runs
from ssrobust.train.contrastive import ContrastivePretraining

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
PAPER = CONFIGS / "paper" / "advcl"
PRETRAINING = ("simclr", "acl", "advcl")
FINETUNING = ("slf", "alf", "aff")


@pytest.mark.parametrize("name", PRETRAINING)
def test_paper_pretraining_presets_have_the_recipe(name):
    cfg = make_config(PAPER / f"{name}.yaml")
    assert (cfg.model.name, cfg.data.batch_size, cfg.optim.lr, cfg.epochs) == ("resnet18", 512, 0.5, 1000)
    assert cfg.optim.warmup_epochs == 10 and cfg.optim.weight_decay == 1e-4 and cfg.eval.suites == []
    strategy = ContrastivePretraining(**cfg.strategy.options)
    assert strategy.mode == name and strategy.criterion.temperature == 0.5
    if name != "simclr":
        assert strategy.attack.steps == 5 and abs(strategy.attack.eps - 8 / 255) < 1e-12
        assert abs(strategy.attack.step_size - 2 / 255) < 1e-12
    if name == "advcl":  # the AdvCL code does not clip the high-frequency image
        assert strategy.hfc_clip is False and strategy.pl_weight == 0.2 and strategy.dual_bn
        assert strategy.pl_ks == (2, 10, 50, 100, 500)


@pytest.mark.parametrize("name, strategy, freeze", [("slf", "standard", "backbone"),
                                                    ("alf", "pgd_at", "backbone"), ("aff", "trades", "none")])
def test_paper_finetuning_presets(name, strategy, freeze):
    cfg = make_config(PAPER / f"{name}.yaml")
    assert (cfg.strategy.name, cfg.freeze, cfg.model.name) == (strategy, freeze, "resnet18")
    assert cfg.init_from and {"clean", "adversarial", "corruptions"} <= set(cfg.eval.suites)
    assert cfg.eval.options["adversarial"]["autoattack"] is True


SHRINK = ["epochs=1", "data.num_train=60", "data.num_test=16", "data.batch_size=20",
          "model.kwargs={width: 4}", "progress=false", "optim.warmup_epochs=0"]


def _cpu(name, tmp_path, *extra):
    return make_config(CONFIGS / "cpu" / f"advcl_{name}.yaml", SHRINK + [f"out_dir={tmp_path}", *extra])


def test_cpu_presets_run_the_chain_and_report(tmp_path):
    runs = {"simclr": fit(_cpu("simclr", tmp_path))}
    runs["acl"] = fit(_cpu("acl", tmp_path, "strategy.options.steps=1"))
    runs["advcl"] = fit(_cpu("advcl", tmp_path, "strategy.options.steps=1",
                             f"strategy.options.pseudo_label_run={runs['simclr']}"))
    shrink_eval = ["eval.options.adversarial={max_images: 8, sweep_steps: 2, gradient_free_images: 0, "
                   "autoattack: false}", "eval.options.corruptions={max_images: 8, severities: [3], "
                   "names: [gaussian_noise]}", "strategy.options.steps=1"]
    for fine in FINETUNING:
        extra = shrink_eval if fine != "slf" else shrink_eval[:2]
        runs[fine] = fit(_cpu(fine, tmp_path, f"init_from={runs['advcl']}", *extra))
        res = json.loads((runs[fine] / "results.json").read_text())
        assert {"clean", "adversarial", "corruptions"} <= set(res["suites"])
    pre = torch.load(runs["advcl"] / "model.pt", weights_only=True)["network"]
    assert any(".bns.pgd." in k for k in pre) and any(k.startswith("contrastive.") for k in pre)
    md = (render_runs(list(runs.values()), tmp_path / "report") / "report.md").read_text()
    for fine in ("SLF", "ALF", "AFF"):
        assert f"| advcl | synthetic | {fine} | synthetic | 1 |" in md
