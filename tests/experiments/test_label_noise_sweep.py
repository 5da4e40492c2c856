"""Label noise through the data pipeline, the training loop and resumable strength sweeps."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from _helpers import make_npz, tiny_run_config
from ssrobust.api import make_config
from ssrobust.cli import main
from ssrobust.data import DataConfig
from ssrobust.runs.splits import load_splits  # data + the configured label noise
from ssrobust.data.base import LabelNoiseConfig
from ssrobust.errors import ConfigError, DataError
from ssrobust.label_noise import COARSE_OF_FINE, FINE_NAMES, flip_matrix
from ssrobust.experiments.label_noise import SweepSettings, run_method, run_sweep
from ssrobust.experiments import run as experiment_run
from ssrobust.typedconfig import from_dict


def _data(tmp_path, **noise) -> DataConfig:
    root = make_npz(tmp_path, n_train=200, n_test=40)
    ln = {"kind": "uniform", "strength": 0.6, "trusted_fraction": 0.1, "seed": 3, **noise}
    return make_config({"data": {"source": "npz", "root": str(root), "val_size": 20,
                                 "label_noise": ln}}).data


def test_label_noise_is_seeded_train_only_and_recorded(tmp_path):
    clean = load_splits(_data(tmp_path, strength=0.0))
    noisy = load_splits(_data(tmp_path))
    again = load_splits(_data(tmp_path))
    other = load_splits(_data(tmp_path, seed=4))
    tr, extras = noisy.train, noisy.train.extras
    np.testing.assert_array_equal(tr.labels, again.train.labels)
    assert not np.array_equal(tr.labels, other.train.labels)
    # Validation is carved first and the test split is never touched: both stay clean.
    np.testing.assert_array_equal(noisy.val.labels, clean.val.labels)
    np.testing.assert_array_equal(noisy.test.labels, clean.test.labels)
    np.testing.assert_array_equal(extras["clean_labels"], clean.train.labels)
    np.testing.assert_array_equal(clean.train.labels, clean.train.extras["clean_labels"])
    trusted = extras["trusted"]
    assert trusted.dtype == bool and trusted.sum() == 18  # round(0.1 * 180)
    np.testing.assert_array_equal(tr.labels[trusted], extras["clean_labels"][trusted])
    info = noisy.info["label_noise"]
    changed = tr.labels[~trusted] != extras["clean_labels"][~trusted]
    assert info["realized_noise"] == pytest.approx(changed.mean()) and changed.any()
    assert info["num_trusted"] == 18 and info["num_untrusted"] == 162
    assert info["expected_noise"] == pytest.approx(0.6 * 2 / 3, abs=1e-6)
    assert clean.info["label_noise"]["realized_noise"] == 0.0


def test_untrusted_use_drops_the_trusted_images_and_keeps_the_same_noise(tmp_path):
    full = load_splits(_data(tmp_path))
    stage1 = load_splits(_data(tmp_path, use="untrusted"))
    keep = ~full.train.extras["trusted"]
    assert len(stage1.train) == keep.sum() and not stage1.train.extras["trusted"].any()
    np.testing.assert_array_equal(stage1.train.labels, full.train.labels[keep])
    np.testing.assert_array_equal(stage1.train.images, full.train.images[keep])
    assert stage1.info["label_noise"]["num_train_used"] == keep.sum()


@pytest.mark.parametrize("bad, message", [
    ({"strength": 1.5}, "strength must lie in"),
    ({"trusted_fraction": 1.0}, "trusted_fraction must lie in"),
    ({"kind": "pairwise"}, "'pairwise' is not one of"),
    ({"use": "trusted"}, "'trusted' is not one of"),
])
def test_label_noise_config_errors_name_the_key(tmp_path, bad, message):
    with pytest.raises(ConfigError, match="data.label_noise"):
        _data(tmp_path, **bad)
    with pytest.raises(ConfigError, match=message):
        from_dict(LabelNoiseConfig, bad, "data.label_noise")


def _write_cifar100(root, n_train=600, n_test=50):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    with open(root / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [n.encode() for n in FINE_NAMES]}, f)
    for split, n in (("train", n_train), ("test", n_test)):
        fine = np.arange(n) % 100
        with open(root / split, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": fine.tolist(),
                         b"coarse_labels": np.asarray(COARSE_OF_FINE)[fine].tolist()}, f)


def test_hierarchical_noise_flips_within_cifar100_superclasses(tmp_path):
    _write_cifar100(tmp_path / "cifar-100-python")
    ln = {"kind": "hierarchical", "strength": 1.0, "trusted_fraction": 0.0}
    splits = load_splits(DataConfig(source="cifar100", root=str(tmp_path), val_size=0,
                                    label_noise=make_config({"data": {"label_noise": ln}}).data.label_noise))
    clean, noisy = splits.train.extras["clean_labels"], splits.train.labels
    coarse = np.asarray(COARSE_OF_FINE)
    assert (noisy != clean).all() and (coarse[noisy] == coarse[clean]).all()
    assert splits.info["label_noise"]["realized_noise"] == 1.0
    # A source without a hierarchy cannot be corrupted hierarchically.
    with pytest.raises(DataError, match="hierarchical needs CIFAR-100"):
        load_splits(_data(tmp_path, kind="hierarchical"))


def _sweep_base(tmp_path, **over):
    data = {"source": "npz", "root": str(make_npz(tmp_path)), "val_size": 16, "batch_size": 16,
            "label_noise": {"trusted_fraction": 0.125}}
    return tiny_run_config(tmp_path, data=data, **over)


def test_cli_sweep_writes_records_and_report_then_skips_finished_points(tmp_path, monkeypatch, capsys):
    base = _sweep_base(tmp_path)
    args = (["noise-sweep"] + [f"{k}={json.dumps(v)}" for k, v in base.items()]
            + ["--methods", "none,glc,forward", "--strengths", "0,0.7", "--out", str(tmp_path / "sw")])
    assert main(args) == 0
    sweep = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert [r["method"] for r in sweep["records"]] == ["none", "glc (12.5% trusted)", "forward"]
    for record in sweep["records"]:
        assert [p["strength"] for p in record["points"]] == [0.0, 0.7]
        for p in record["points"]:
            res = json.loads((tmp_path / "sw" / p["run"] / "results.json").read_text())
            assert p["test_error"] == pytest.approx(1 - res["suites"]["clean"]["accuracy"])
            assert p["realized_noise"] == res["data"]["label_noise"]["realized_noise"]
    glc_at_07 = sweep["records"][1]["points"][1]
    assert glc_at_07["realized_noise"] > 0.2 and glc_at_07["trusted_fraction"] == 0.125
    assert sweep["records"][0]["points"][0]["realized_noise"] == 0.0
    # forward's first stage is the "none" run itself; GLC has its own untrusted-only stage 1.
    # Run folders are the sweep layer's <arm>_s<seed>.
    runs = sorted(p.name for p in (tmp_path / "sw").iterdir() if p.is_dir() and p.name != "report")
    assert runs == sorted(f"{s}_{m}_s0" for s in ("s0", "s0.7")
                          for m in ("none", "glc_t0.125_stage1", "glc_t0.125", "forward"))
    stage1 = json.loads((tmp_path / "sw" / "s0.7_glc_t0.125_stage1_s0" / "results.json").read_text())
    assert stage1["data"]["num_train"] == stage1["data"]["label_noise"]["num_untrusted"] == 70
    # Stage 2 names its stage 1 in its config and estimated the matrix itself, cached in its folder.
    glc = make_config(str(tmp_path / "sw" / "s0.7_glc_t0.125_s0" / "config.yaml"))
    assert glc.strategy.name == "glc"
    assert glc.strategy.options == {"matrix_from": str(tmp_path / "sw" / "s0.7_glc_t0.125_stage1_s0")}
    cached = json.loads((tmp_path / "sw" / "s0.7_glc_t0.125_s0" / "corruption_matrix.json").read_text())
    assert cached["source"] == glc.strategy.options["matrix_from"] and len(cached["matrix"]) == 3
    forward = make_config(str(tmp_path / "sw" / "s0.7_forward_s0" / "config.yaml")).strategy.options
    assert forward == {"quantile": 0.97, "matrix_from": str(tmp_path / "sw" / "s0.7_none_s0")}
    report = (tmp_path / "sw" / "report" / "report.md").read_text()
    assert "Label corruption" in report and "label_noise_error_vs_strength.png" in report
    assert (tmp_path / "sw" / "report" / "figures" / "label_noise_error_vs_strength.png").is_file()
    # Rerunning the same command trains nothing and reproduces the records.
    monkeypatch.setattr(experiment_run, "fit_run", lambda *a, **k: pytest.fail("a finished point was retrained"))
    capsys.readouterr()
    assert main(args) == 0
    assert json.loads((tmp_path / "sw" / "sweep.json").read_text())["records"] == sweep["records"]


def test_sweeps_with_another_trusted_fraction_join_the_same_folder(tmp_path):
    shared = tmp_path / "sw" / "s0.6_none_s0" / "results.json"
    stamps = []
    for fraction, strengths in ((0.125, [0.0, 0.6]), (0.25, [0.6])):
        base = _sweep_base(tmp_path, epochs=1)
        base["data"]["label_noise"]["trusted_fraction"] = fraction
        sweep = run_sweep(make_config(base), ["none", "glc"], strengths, tmp_path / "sw")
        stamps.append(shared.stat().st_mtime_ns)
    assert stamps[0] == stamps[1]  # the "none" run both sweeps need was trained once
    assert sweep["methods"] == ["glc (12.5% trusted)", "none", "glc (25% trusted)"]
    assert sweep["strengths"] == [0.0, 0.6]
    by_label = {r["method"]: r for r in json.loads((tmp_path / "sw" / "sweep.json").read_text())["records"]}
    assert [p["strength"] for p in by_label["glc (12.5% trusted)"]["points"]] == [0.0, 0.6]
    assert [p["run"] for p in by_label["glc (25% trusted)"]["points"]] == ["s0.6_glc_t0.25_s0"]
    # "none" keeps its s=0 point from the first invocation.
    assert [p["run"] for p in by_label["none"]["points"]] == ["s0_none_s0", "s0.6_none_s0"]


def test_interrupted_sweep_resumes_the_unfinished_run(tmp_path, monkeypatch):
    cfg = make_config(_sweep_base(tmp_path, epochs=3))
    real_fit = experiment_run.fit_run

    def killed(cfg_, *a, **k):  # the process dies after one epoch of the first run
        real_fit(cfg_, stop_after=1)
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment_run, "fit_run", killed)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(cfg, ["none"], [0.5], tmp_path / "sw")
    assert not (tmp_path / "sw" / "s0.5_none_s0" / "results.json").exists()
    monkeypatch.setattr(experiment_run, "fit_run", real_fit)
    sweep = run_sweep(cfg, ["none"], [0.5], tmp_path / "sw")
    meta = json.loads((tmp_path / "sw" / "s0.5_none_s0" / "meta.json").read_text())
    assert meta["resumed_from_epoch"] == 1 and len(sweep["records"][0]["points"]) == 1


def test_rotation_methods_share_one_rotation_only_pretraining(tmp_path):
    cfg = make_config(_sweep_base(tmp_path, epochs=2))
    settings = SweepSettings(pretrain_epochs=1, finetune_epochs=1)
    run_sweep(cfg, ["rotation", "glc_rotation"], [0.5], tmp_path / "sw", settings)
    pre = (tmp_path / "sw" / "pretrain_rotation_s0")
    pre_cfg = make_config(str(pre / "config.yaml"))
    assert pre_cfg.strategy.name == "ss_only" and pre_cfg.data.label_noise is None
    assert pre_cfg.epochs == 1 and pre_cfg.tasks == ["rotation:0.5"]
    for name in ("s0.5_rotation_s0", "s0.5_glc_rotation_t0.125_stage1_s0", "s0.5_glc_rotation_t0.125_s0"):
        run_cfg = make_config(str(tmp_path / "sw" / name / "config.yaml"))
        assert run_cfg.init_from == str(pre) and run_cfg.epochs == 1
        assert run_cfg.tasks == ["rotation:0.5"]
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == sorted(
        ["pretrain_rotation_s0", "s0.5_rotation_s0", "s0.5_glc_rotation_t0.125_stage1_s0",
         "s0.5_glc_rotation_t0.125_s0", "sweep.json", "summary.json", "summary.md",
         "summary_error_bars.png"])


def test_sweep_argument_errors_fail_before_training(tmp_path):
    no_trusted = make_config(tiny_run_config(tmp_path))
    with pytest.raises(ConfigError, match="needs trusted data"):
        run_method(no_trusted, "glc", 0.5, tmp_path / "a")
    with pytest.raises(KeyError, match="unknown label-noise method 'glcc'"):
        run_sweep(no_trusted, ["none", "glcc"], [0.5], tmp_path / "b")
    with pytest.raises(ConfigError, match="duplicates"):
        run_sweep(no_trusted, ["none"], [0.5, 0.5], tmp_path / "c")
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        run_sweep(no_trusted, ["none"], [1.2], tmp_path / "d")
    assert not any((tmp_path / n).exists() for n in ("b", "c", "d"))


def test_glc_beats_no_correction_under_heavy_flip_noise(tmp_path):
    """Flip noise with s = 0.8 moves most labels of every class to one other class: CE learns
    the wrong class, GLC with 10% trusted labels estimates Ĉ and recovers the clean classes."""
    root = make_npz(tmp_path, n_train=480, n_test=300)
    ln = {"kind": "flip", "strength": 0.8, "trusted_fraction": 0.1, "seed": 0}
    cfg = make_config(tiny_run_config(tmp_path, epochs=5, data={
        "source": "npz", "root": str(root), "val_size": 0, "batch_size": 32, "label_noise": ln}))
    none = run_method(cfg, "none", 0.8, tmp_path / "sw")
    glc = run_method(cfg, "glc", 0.8, tmp_path / "sw")
    assert none["realized_noise"] == pytest.approx(0.8, abs=0.05)
    assert none["test_error"] > 0.8 and glc["test_error"] < 0.2, (none, glc)
    c_hat = np.array(json.loads((tmp_path / "sw" / "s0.8_glc_t0.1_s0" / "corruption_matrix.json")
                                .read_text())["matrix"])
    true_c = flip_matrix(3, 0.8, seed=0).numpy()
    assert (c_hat.argmax(1) == true_c.argmax(1)).all()  # Ĉ finds each class's flip target


def test_the_data_layer_refuses_label_noise_rather_than_ignoring_it(tmp_path):
    """``ssrobust.data.load_splits`` cannot apply label noise (a layer above it does): it says so
    instead of returning clean labels for a noisy config."""
    from ssrobust.data import load_splits as load_data_splits

    with pytest.raises(ConfigError, match="data.label_noise is set.*ssrobust.runs.splits.load_splits"):
        load_data_splits(_data(tmp_path))


def test_noise_sweep_parallel_must_be_positive(tmp_path, capsys):
    base = _sweep_base(tmp_path)
    args = (["noise-sweep"] + [f"{k}={json.dumps(v)}" for k, v in base.items()]
            + ["--methods", "none", "--strengths", "0", "--out", str(tmp_path / "sw"), "--parallel", "0"])
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == "error: --parallel must be >= 1, got 0"
    assert not (tmp_path / "sw").exists()

