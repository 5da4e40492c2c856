"""Cross-dataset transfer end to end (configs/cpu/advcl_transfer_*.yaml, shrunk): contrastive
pretraining on classes 0-4 of a tiny generated image folder, SLF / ALF / AFF finetuning on classes
5-9 (init_from: backbone only), evaluation, and the report rows naming both stages' data; and
synthetic -> image folder."""

import json
from pathlib import Path

import pytest
import torch
from _helpers import make_image_folder

from ssrobust.api import make_config
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.report import render_runs

CPU = Path(__file__).resolve().parents[2] / "configs" / "cpu"
FINETUNING = {"slf": ("standard", "backbone"), "alf": ("pgd_at", "backbone"), "aff": ("trades", "none")}


def _preset(name, tmp_path, root, *extra):
    shrink = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", f"out_dir={tmp_path / 'runs'}",
              "epochs=1", "data.batch_size=10", "data.limit_train=null", "data.limit_test=null",
              "model.kwargs={width: 4}", "progress=false", "optim.warmup_epochs=0"]
    return make_config(CPU / f"advcl_transfer_{name}.yaml", shrink + list(extra))


def test_the_presets_chain_pretraining_on_0_4_to_finetuning_on_5_9():
    pre = {n: make_config(CPU / f"advcl_transfer_{n}.yaml") for n in ("simclr", "advcl")}
    assert all(c.data.classes == [0, 1, 2, 3, 4] and c.data.source == "imagefolder" for c in pre.values())
    assert pre["advcl"].strategy.options["pseudo_label_run"] == f"runs/{pre['simclr'].name}"
    for name, (strategy, freeze) in FINETUNING.items():
        cfg = make_config(CPU / f"advcl_transfer_{name}.yaml")
        assert cfg.data.classes == [5, 6, 7, 8, 9] and cfg.init_from == f"runs/{pre['advcl'].name}"
        assert (cfg.strategy.name, cfg.freeze, cfg.model) == (strategy, freeze, pre["advcl"].model)
    synthetic = make_config(CPU / "advcl_transfer_synthetic_slf.yaml")
    source = make_config(CPU / "advcl_advcl.yaml")
    assert synthetic.init_from == f"runs/{source.name}" and source.data.source == "synthetic"
    assert synthetic.data.classes is None and synthetic.model == source.model


def test_pretrain_on_0_4_finetune_on_5_9_evaluate_and_report(tmp_path):
    root = make_image_folder(tmp_path / "folder")
    pre = fit(_preset("simclr", tmp_path, root))
    shrink_eval = ["eval.options.adversarial={max_images: 6, sweep_steps: 2, gradient_free_images: 0, "
                   "autoattack: false}", "eval.options.corruptions={max_images: 6, severities: [3], "
                   "names: [gaussian_noise]}"]
    runs = [pre]
    for name in FINETUNING:
        attack = [] if name == "slf" else ["strategy.options.steps=1"]
        run = fit(_preset(name, tmp_path, root, f"init_from={pre}", *shrink_eval, *attack))
        res = json.loads((run / "results.json").read_text())
        assert res["data"]["class_names"] == [f"class{c}" for c in range(5, 10)]
        assert res["suites"]["clean"]["n"] == 10 and {"adversarial", "corruptions"} <= set(res["suites"])
        source = torch.load(pre / "model.pt", weights_only=True)["network"]
        tuned = torch.load(run / "model.pt", weights_only=True)["network"]
        assert source["model.fc.weight"].shape == tuned["model.fc.weight"].shape == (5, 16)
        if name != "aff":  # frozen encoder: the pretrained backbone, bit for bit
            assert all(torch.equal(source[k], v) for k, v in tuned.items()
                       if k.startswith("model.") and not k.startswith("model.fc."))
        runs.append(run)
    md = (render_runs(runs, tmp_path / "report") / "report.md").read_text()
    for scheme in ("SLF", "ALF", "AFF"):
        assert (f"| simclr | imagefolder folder, classes 0–4 | {scheme} | imagefolder folder, classes 5–9 | 1 |"
                in md)


def test_synthetic_pretraining_then_all_ten_classes_of_a_folder(tmp_path):
    root = make_image_folder(tmp_path / "folder")
    pre = fit(make_config(CPU / "advcl_simclr.yaml", [
        f"out_dir={tmp_path / 'runs'}", "epochs=1", "data.num_train=40", "data.num_test=10",
        "data.batch_size=10", "model.kwargs={width: 4}", "progress=false", "optim.warmup_epochs=0"]))
    run = fit(_preset("synthetic_slf", tmp_path, root, f"init_from={pre}", "eval.suites=[clean]"))
    res = json.loads((run / "results.json").read_text())
    assert len(res["data"]["class_names"]) == 10 and res["suites"]["clean"]["n"] == 20
    md = (render_runs([pre, run], tmp_path / "report") / "report.md").read_text()
    assert "| simclr | synthetic | SLF | imagefolder folder | 1 |" in md
