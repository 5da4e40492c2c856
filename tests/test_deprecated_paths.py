"""Old import paths keep working for one release, each with a DeprecationWarning."""

from __future__ import annotations

import importlib
import json
import sys
import warnings

import pytest

from _helpers import tiny_run_config
from ssrobust.api import make_config


def _fresh_import(name: str, monkeypatch):
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        monkeypatch.delitem(sys.modules, mod)
    return importlib.import_module(name)


def test_ssrobust_noise_is_label_noise_with_a_warning(monkeypatch):
    import ssrobust.label_noise as label_noise
    from ssrobust.label_noise import matrices

    with pytest.warns(DeprecationWarning, match="ssrobust.noise is deprecated.*ssrobust.label_noise"):
        noise = _fresh_import("ssrobust.noise", monkeypatch)
    assert noise.uniform_matrix is label_noise.uniform_matrix
    assert noise.GoldLossCorrection is label_noise.GoldLossCorrection
    from ssrobust.noise.matrices import flip_matrix  # submodules too

    assert flip_matrix is matrices.flip_matrix


def test_ssrobust_noise_pipeline_is_the_label_noise_experiment(monkeypatch):
    from ssrobust.experiments import label_noise

    with pytest.warns(DeprecationWarning, match="ssrobust.experiments.label_noise"):
        pipeline = _fresh_import("ssrobust.noise.pipeline", monkeypatch)
    assert pipeline.run_sweep is label_noise.run_sweep


def test_eval_runner_evaluate_model_warns_and_is_the_same_function():
    from ssrobust.eval import evaluate, runner

    with pytest.warns(DeprecationWarning, match="ssrobust.eval.runner.evaluate_model is deprecated"):
        fn = runner.evaluate_model
    assert fn is evaluate.evaluate_model
    with pytest.raises(AttributeError):
        runner.no_such_name  # noqa: B018


def test_train_loop_fit_still_trains_and_evaluates(tmp_path):
    """The old ``fit`` evaluated after training: through the shim it still does."""
    from ssrobust.train import loop

    with pytest.warns(DeprecationWarning, match="ssrobust.train.loop.fit is deprecated.*train_and_evaluate"):
        fit = loop.fit
    run = fit(make_config(tiny_run_config(tmp_path, epochs=1)))
    results = json.loads((run / "results.json").read_text())
    assert results["train"]["epochs"] == 1 and "clean" in results["suites"]


def test_the_trainer_no_longer_evaluates(tmp_path):
    """``ssrobust.train.fit`` trains and writes ``model.pt``; evaluation is the experiments' job."""
    from ssrobust.train import fit

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        run = fit(make_config(tiny_run_config(tmp_path, epochs=1)))
    assert (run / "model.pt").is_file() and (run / "checkpoint.pt").is_file()
    assert not (run / "results.json").exists()
