"""One-class training: the Outlier Exposure strategy, resumable per-class sweeps, OC-SVM, report."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from _helpers import make_npz, tiny_run_config
from ssrobust.api import make_config
from ssrobust.cli import main
from ssrobust.data import DataConfig, load_splits
from ssrobust.errors import ConfigError, DataError
from ssrobust.models import create_model
from ssrobust.ood import one_class_metrics
from ssrobust.experiments.one_class import (OCSVMSettings, class_run_config, ocsvm_metrics,
                                          pixel_features, run_one_class_sweep)
from ssrobust.tasks import build_task
from ssrobust.tasks.rotation_translation import oe_uniform_loss
from ssrobust.experiments import run as experiment_run
from ssrobust.runs.network import Network, build_network
from ssrobust.train.strategies import build_strategy

SIZE = 16


def _outliers(tmp_path, n: int = 40, size: int = SIZE):
    path = tmp_path / f"outliers_{size}.npy"
    np.save(path, np.random.default_rng(7).integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    return path


def _net() -> Network:
    torch.manual_seed(0)
    model = create_model("tiny", 1, width=4)
    return Network(model, {"rotation_translation": build_task("rotation_translation", model.num_features)})


def _x() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    return x, torch.zeros(6, dtype=torch.long)


def test_oe_weight_zero_is_exactly_ss_only(tmp_path):
    net, (x, y) = _net(), _x()
    oe = build_strategy("one_class_oe", outliers={"source": "path", "root": str(_outliers(tmp_path))},
                        weight=0.0)
    a = oe(net, x, y, torch.Generator().manual_seed(3))  # train mode: BatchNorm batch statistics
    b = build_strategy("ss_only")(net, x, y, torch.Generator().manual_seed(3))
    assert a.main_loss.item() == b.main_loss.item() == 0.0
    assert a.aux_losses["rotation_translation"].item() == b.aux_losses["rotation_translation"].item()
    assert oe._images is None  # weight 0 never loads the outliers


def test_oe_loss_adds_the_uniform_term_on_transformed_outliers(tmp_path):
    net, (x, y) = _net(), _x()
    net.eval()  # running BatchNorm statistics: a joint forward equals separate ones
    path = _outliers(tmp_path)
    oe = build_strategy("one_class_oe", outliers={"source": "path", "root": str(path)}, weight=0.7,
                        batch_size=5)
    out = oe(net, x, y, torch.Generator().manual_seed(3))
    plain = build_strategy("ss_only")(net, x, y, torch.Generator().manual_seed(3))
    # By hand: the task draws its in-distribution views first (so they equal ss_only's), then
    # the strategy samples 5 outliers and the task transforms them with the same generator.
    task, model = net.tasks["rotation_translation"], net.model
    gen = torch.Generator().manual_seed(3)
    task.prepare(x, gen)
    outl = oe.sample(x, gen)
    assert outl.shape == (5, 3, SIZE, SIZE)
    stored = torch.from_numpy(np.load(path)).permute(0, 3, 1, 2).float() / 255
    views = task.prepare(outl, gen)
    with torch.no_grad():
        expected = oe_uniform_loss(*task.logits(model.forward_features(views.inputs)))
    torch.testing.assert_close(out.aux_losses["rotation_translation"], plain.aux_losses["rotation_translation"])
    torch.testing.assert_close(out.main_loss.detach(), 0.7 * expected, rtol=1e-5, atol=1e-6)
    assert expected > (np.log(4) + 2 * np.log(3)) / 3  # strictly above the uniform minimum
    # Without augmentation every sampled outlier is one of the stored images.
    plain_oe = build_strategy("one_class_oe", outliers={"source": "path", "root": str(path)},
                              augment=False)
    drawn = plain_oe.sample(x, torch.Generator().manual_seed(0))
    assert all(torch.isclose(stored, d).all(dim=(1, 2, 3)).any() for d in drawn) and len(drawn) == 6
    out.main_loss.backward()  # the uniform term trains the heads
    assert net.tasks["rotation_translation"].head_v.weight.grad.abs().sum() > 0


def test_oe_strategy_errors(tmp_path):
    net, (x, y) = _net(), _x()
    with pytest.raises(ConfigError, match="needs options.outliers"):
        build_strategy("one_class_oe")
    with pytest.raises(ConfigError, match="strategy.options.outliers.rot"):
        build_strategy("one_class_oe", outliers={"source": "path", "rot": "x"})
    with pytest.raises(ConfigError, match="weight must be a finite number >= 0"):
        build_strategy("one_class_oe", outliers={"root": "x"}, weight=-1.0)
    wrong_task = build_strategy("one_class_oe", outliers={"root": str(_outliers(tmp_path))}, task="rotation")
    with pytest.raises(ConfigError, match="task 'rotation' is not among the run's tasks"):
        wrong_task(net, x, y, None)
    big = build_strategy("one_class_oe", outliers={"root": str(_outliers(tmp_path, size=32))})
    with pytest.raises(DataError, match="outliers_32.npy holds 32x32 images, but the in-distribution"):
        big(net, x, y, None)


def test_ocsvm_separates_classes_that_differ_in_pixels():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 80, (60, 8, 8, 3), dtype=np.uint8)
    bright = rng.integers(170, 256, (40, 8, 8, 3), dtype=np.uint8)
    m = ocsvm_metrics(dark[:40], dark[40:], bright, OCSVMSettings(max_train=30))
    assert m["auroc_out_pos"] == 1.0 and m["fpr_at_95_tpr_in"] == 0.0
    feats = pixel_features(dark[:2], downsample=2)
    assert feats.shape == (2, 48)
    np.testing.assert_allclose(feats[0, :3], dark[0, :2, :2].reshape(4, 3).mean(0) / 255, rtol=1e-6)
    with pytest.raises(ConfigError, match="does not divide"):
        pixel_features(dark, downsample=3)


def _base(tmp_path, **over) -> dict:
    data = {"source": "npz", "root": str(make_npz(tmp_path)), "val_size": 0, "batch_size": 16}
    return tiny_run_config(tmp_path, data=data, **over)


def test_cli_sweep_writes_per_class_auroc_and_report_then_resumes(tmp_path, monkeypatch, capsys):
    base = _base(tmp_path)
    out = tmp_path / "sw"
    args = (["one-class"] + [f"{k}={json.dumps(v)}" for k, v in base.items()]
            + ["--classes", "0,2", "--out", str(out)])
    assert main(args) == 0
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["classes"] == [0, 2] and [r["name"] for r in sweep["records"]] == ["c0", "c2"]
    has_sklearn = sweep["ocsvm"]["skipped"] is None
    assert sweep["methods"] == (["ours", "OC-SVM"] if has_sklearn else ["ours"])
    # The recorded AUROC is the one-class metric of the saved model on the full test set.
    full = load_splits(DataConfig(source="npz", root=base["data"]["root"], val_size=0))
    for record in sweep["records"]:
        c = record["class"]
        run = out / f"class_{c}_s0"  # the sweep layer's <arm>_s<seed>
        cfg = make_config(str(run / "config.yaml"))
        assert cfg.data.classes == [c] and cfg.strategy.name == "ss_only"
        assert cfg.tasks == ["rotation_translation:1.0"] and record["runs"] == {"ours": f"class_{c}_s0"}
        net = build_network(cfg, 1)
        net.load_state_dict(torch.load(run / "model.pt", weights_only=True)["network"])
        again = one_class_metrics(net.model.eval(), full.test.images, full.test.labels, [c],
                                  dict(net.tasks.items()), batch_size=64)
        assert record["methods"]["ours"] == pytest.approx(again["rotation_translation"])
        if has_sklearn:  # class c is brighter in channel c: raw pixels separate it
            assert record["methods"]["OC-SVM"]["auroc_out_pos"] > 0.9
            assert (out / "ocsvm" / f"class_{c}.json").is_file()
    report = (out / "report" / "report.md").read_text()
    assert "| class | OC-SVM | ours |" in report or not has_sklearn
    auroc = 100 * sweep["records"][0]["methods"]["ours"]["auroc_out_pos"]
    assert "| c0 |" in report and f"{auroc:.1f}" in report
    assert (out / "report" / "figures" / "one_class_auroc.png").stat().st_size > 1000
    # Rerunning trains nothing and recomputes nothing.
    monkeypatch.setattr(experiment_run, "fit_run", lambda *a, **k: pytest.fail("a finished class was retrained"))
    monkeypatch.setattr("ssrobust.experiments.one_class.ocsvm_metrics",
                        lambda *a, **k: pytest.fail("a cached OC-SVM was refitted"))
    capsys.readouterr()
    assert main(args) == 0
    assert json.loads((out / "sweep.json").read_text())["records"] == sweep["records"]


def test_oe_sweep_joins_the_plain_sweep_folder(tmp_path, monkeypatch):
    oe = {"name": "one_class_oe", "options": {"outliers": {"root": str(_outliers(tmp_path))}, "batch_size": 8}}
    base = make_config(_base(tmp_path, epochs=1, strategy=oe))
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)  # scikit-learn "not installed"
    with pytest.warns(UserWarning, match="OC-SVM baseline skipped: scikit-learn is not installed"):
        plain = run_one_class_sweep(base, [1], tmp_path / "sw", oe=False)
    assert plain["methods"] == ["ours"] and plain["ocsvm"]["skipped"]
    sweep = run_one_class_sweep(base, [1], tmp_path / "sw", ocsvm=False)  # oe follows the config
    assert sweep["methods"] == ["ours", "ours+OE"]
    record = sweep["records"][0]
    assert record["runs"] == {"ours": "class_1_s0", "ours+OE": "class_1_oe_s0"}
    oe_cfg = make_config(str(tmp_path / "sw" / "class_1_oe_s0" / "config.yaml"))
    assert oe_cfg.strategy.name == "one_class_oe" and oe_cfg.data.classes == [1]
    log = [json.loads(line) for line in (tmp_path / "sw" / "class_1_oe_s0" / "metrics.jsonl").read_text().splitlines()]
    epoch = [r for r in log if r["kind"] == "epoch"][0]
    assert epoch["main_loss"] > 0.5 * (np.log(4) + 2 * np.log(3)) / 3  # the OE term is in the loss


def test_sweep_arguments_fail_before_training(tmp_path):
    base = make_config(_base(tmp_path))
    with pytest.raises(ConfigError, match="Outlier Exposure needs strategy"):
        run_one_class_sweep(base, [0], tmp_path / "a", oe=True)
    with pytest.raises(ConfigError, match="distinct class ids"):
        run_one_class_sweep(base, [0, 0], tmp_path / "b")
    with pytest.raises(ConfigError, match="need a rotation_translation \\(or rotation\\) task"):
        run_one_class_sweep(make_config(_base(tmp_path, tasks=["jigsaw"])), [0], tmp_path / "c")
    with pytest.raises(ConfigError, match="strategy 'pgd_at' is not supported"):
        run_one_class_sweep(make_config(_base(tmp_path, strategy={"name": "pgd_at"})), [0], tmp_path / "d")
    bad_oe = make_config(_base(tmp_path, strategy={"name": "one_class_oe", "options": {"weight": 1.0}}))
    with pytest.raises(ConfigError, match="needs options.outliers"):
        run_one_class_sweep(bad_oe, [0], tmp_path / "e")
    assert not any((tmp_path / n).exists() for n in "abcde")
    cfg = class_run_config(make_config(_base(tmp_path, tasks=["rotation:0.5"])), 2, tmp_path, oe=False)
    assert cfg.eval.options["ood"] == {"held_out": True, "scores": ["rotnet"], "ood_sets": ["held_out"]}


def _to_schema1(m: dict) -> dict:
    """A metrics dict as schema version 1 stored it."""
    return {"auroc": m["auroc_out_pos"], "aupr_in": m["aupr_in_pos"],
            "aupr_out": m["aupr_out_pos"], "fpr95": m["fpr_at_95_tpr_out"]}


def test_sweep_resumes_a_schema1_folder(tmp_path, monkeypatch):
    """A sweep folder written before schema 2 (old keys in sweep.json, in the class run's
    results.json and in the OC-SVM cache) resumes without retraining: the run's metrics are
    upgraded (no in-positive FPR95, shown as missing), the OC-SVM cache is recomputed."""
    pytest.importorskip("sklearn")
    base = make_config(_base(tmp_path, epochs=1))
    out = tmp_path / "sw"
    new = run_one_class_sweep(base, [0], out)["records"][0]["methods"]
    res_path = out / "class_0_s0" / "results.json"
    res = json.loads(res_path.read_text())
    per_set = res["suites"]["ood"]["scores"]["rotation_translation"]["per_set"]
    per_set["held_out"] = _to_schema1(per_set["held_out"])
    res_path.write_text(json.dumps(res))
    sweep = json.loads((out / "sweep.json").read_text())
    sweep["records"][0]["methods"] = {k: _to_schema1(v) for k, v in new.items()}
    (out / "sweep.json").write_text(json.dumps(sweep))
    cache = out / "ocsvm" / "class_0.json"
    old_cache = json.loads(cache.read_text())
    del old_cache["metric_keys"]
    old_cache["metrics"] = _to_schema1(old_cache["metrics"])
    cache.write_text(json.dumps(old_cache))
    monkeypatch.setattr(experiment_run, "fit_run", lambda *a, **k: pytest.fail("a finished class was retrained"))
    methods = run_one_class_sweep(base, [0], out)["records"][0]["methods"]
    assert methods["OC-SVM"] == pytest.approx(new["OC-SVM"])  # recomputed in full
    ours = methods["ours"]
    assert ours["fpr_at_95_tpr_in"] is None
    assert ours["fpr_at_95_tpr_out"] == pytest.approx(new["ours"]["fpr_at_95_tpr_out"])
    assert ours["auroc_out_pos"] == pytest.approx(new["ours"]["auroc_out_pos"])
