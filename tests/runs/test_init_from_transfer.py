"""``init_from`` across datasets and class subsets: only the backbone is loaded when the source run
had other classes (or another number of them); a backbone that does not fit is a one-line error
naming ``init_from``, raised before the run directory is written."""

from __future__ import annotations

import pytest
import torch

import numpy as np

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.cli import main
from ssrobust.errors import CheckpointError
from ssrobust.runs.checkpoint import state_mismatch
from ssrobust.train import fit


def _npz(tmp_path):
    """Four classes of 16x16 images: 0-2 brighter in channel c, 3 darker everywhere."""
    path = tmp_path / "four.npz"
    if not path.exists():
        rng = np.random.default_rng(0)
        y = np.arange(64) % 4
        x = rng.integers(60, 120, size=(64, 16, 16, 3))
        x[y < 3, :, :, y[y < 3]] += 120
        x[y == 3] -= 60
        np.savez(path, x_train=x.astype(np.uint8), y_train=y, x_test=x[:32].astype(np.uint8), y_test=y[:32],
                 class_names=np.array(["c0", "c1", "c2", "c3"]))
    return path


def _run(tmp_path, name, classes, **over):
    data = {"source": "npz", "root": str(_npz(tmp_path)), "val_size": 0,
            "batch_size": 16, "classes": classes}
    return make_config(tiny_run_config(tmp_path, name=name, epochs=1, data=data, eval={"suites": []}, **over))


def _state(run):
    return torch.load(run / "model.pt", weights_only=True)["network"]


# lr ~ 0 (1e-300 rounds every update to exactly 0 in float32): the weights after training are the
# weights init_from left, so they can be compared with the source's.
FROZEN = {"lr": 1e-300, "lr_min": 0.0, "weight_decay": 0.0, "momentum": 0.0}


@pytest.mark.parametrize("source_classes", [[0, 1], [0, 1, 2, 3]], ids=["same_size", "other_size"])
def test_finetuning_on_other_classes_loads_only_the_backbone(tmp_path, source_classes):
    source = fit(_run(tmp_path, "src", source_classes))
    target = fit(_run(tmp_path, "tgt", [2, 3], init_from=str(source), optim=FROZEN))
    before, after = _state(source), _state(target)
    trunk = [k for k in after if k.startswith("model.") and not k.startswith("model.fc.")
             and "running_" not in k and "num_batches" not in k]  # BatchNorm statistics move in training
    assert len(trunk) > 4 and all(torch.equal(before[k], after[k]) for k in trunk)
    assert after["model.fc.weight"].shape == (2, 4 * 4)  # this run's two classes
    # The classifier of classes 0, 1 (or 0..3) is not the head of classes 2, 3: it starts fresh.
    if before["model.fc.weight"].shape == after["model.fc.weight"].shape:
        assert not torch.equal(before["model.fc.weight"], after["model.fc.weight"])


def test_the_same_classes_still_load_the_classifier(tmp_path):
    source = fit(_run(tmp_path, "src", [2, 3]))
    target = fit(_run(tmp_path, "tgt", [2, 3], init_from=str(source), optim=FROZEN))
    assert torch.equal(_state(source)["model.fc.weight"], _state(target)["model.fc.weight"])


def test_a_backbone_of_another_size_is_a_one_line_error_naming_init_from(tmp_path, capsys):
    source = fit(_run(tmp_path, "src", [0, 1]))
    cfg = _run(tmp_path, "tgt", [2, 3], init_from=str(source), model={"name": "tiny", "kwargs": {"width": 8}})
    with pytest.raises(CheckpointError) as err:
        fit(cfg)
    msg = str(err.value)
    assert msg.startswith(f"init_from {source / 'model.pt'}: backbone does not match") and "\n" not in msg
    assert "shape differs" in msg and "in the checkpoint vs" in msg
    assert not (tmp_path / "runs" / "tgt").exists()  # failed before anything was written
    config = tmp_path / "tgt.yaml"
    config.write_text(f"init_from: {source}\nname: tgt2\nout_dir: {tmp_path / 'runs'}\nepochs: 1\n"
                      f"progress: false\nmodel: {{name: tiny, kwargs: {{width: 8}}}}\n"
                      f"data: {{source: npz, root: {_npz(tmp_path)}, val_size: 0, "
                      f"batch_size: 16, classes: [2, 3]}}\neval: {{suites: []}}\n")
    assert main(["train", str(config)]) == 2
    out = capsys.readouterr().err.strip()
    assert out.startswith("error: init_from ") and "\n" not in out


def test_state_mismatch_names_missing_unexpected_and_reshaped_keys():
    module = torch.nn.Linear(3, 2)
    assert state_mismatch(module, module.state_dict()) is None
    line = state_mismatch(module, {"weight": torch.zeros(2, 4), "extra": torch.zeros(1)})
    assert line == ("1 shape differs: weight [2, 4] in the checkpoint vs [2, 3] here; 1 missing: bias; "
                    "1 unexpected: extra")
