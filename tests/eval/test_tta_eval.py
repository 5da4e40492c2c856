"""eval.tta: every suite of a run (clean and attacked alike) sees the same TTA model; results say so."""

import json

import numpy as np
import pytest
import torch

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.errors import ConfigError
from ssrobust.eval.base import SUITES
from ssrobust.models.tta import TestTimeAugmentation
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`


def test_every_suite_gets_the_tta_model_and_records_it(tmp_path, monkeypatch):
    seen = {}

    def spy(ctx):
        seen["model"] = ctx.model
        return {}

    monkeypatch.setitem(SUITES._items, "spy", spy)
    adversarial = {"max_images": 8, "autoattack": False, "spsa": False, "square": False,
                   "sweep_linf": [], "sweep_l2": [], "pgd20_steps": 1, "pgd100_steps": 1}
    cfg = make_config(tiny_run_config(tmp_path, epochs=1, eval={
        "suites": ["clean", "spy", "adversarial"], "tta": "flip", "options": {"adversarial": adversarial}}))
    res = json.loads((fit(cfg) / "results.json").read_text())
    assert {k: v["tta"] for k, v in res["suites"].items()} == {"clean": "flip", "spy": "flip",
                                                               "adversarial": "flip"}
    model = seen["model"]
    assert isinstance(model, TestTimeAugmentation) and model.mode == "flip"
    data = np.load(cfg.data.root)
    x = torch.as_tensor(data["x_test"]).permute(0, 3, 1, 2).float() / 255
    y = torch.as_tensor(data["y_test"])
    inner = model.model.eval()
    with torch.no_grad():
        logits = 0.5 * inner(x) + 0.5 * inner(x.flip(-1))
    assert torch.allclose(model(x), logits, atol=1e-6)
    correct = (logits.argmax(1) == y).float()
    # clean suite and the attacked suite's clean pass both evaluate the same TTA model
    assert res["suites"]["clean"]["accuracy"] == pytest.approx(float(correct.mean()))
    assert res["suites"]["adversarial"]["clean_accuracy"] == pytest.approx(float(correct[:8].mean()))


def test_unknown_tta_mode_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="eval.tta must be one of none, flip, flip_translate"):
        make_config(tiny_run_config(tmp_path, eval={"tta": "mirror"}))
