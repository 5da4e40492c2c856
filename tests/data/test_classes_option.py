"""``data.classes``: the held-out-classes protocol in load_splits and its path to evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from _helpers import make_npz, tiny_run_config
from ssrobust.api import make_config
from ssrobust.data import DataConfig, load_splits
from ssrobust.errors import ConfigError, DataError
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`


def _cfg(tmp_path, **kw) -> DataConfig:
    return DataConfig(source="npz", root=str(make_npz(tmp_path)), **{"val_size": 0, **kw})


def test_classes_keep_remap_and_hold_out(tmp_path):
    full = load_splits(_cfg(tmp_path))
    sub = load_splits(_cfg(tmp_path, classes=[2, 0]))
    assert sub.class_names == ["c2", "c0"] and sub.num_classes == 2
    for part, ref in ((sub.train, full.train), (sub.test, full.test)):
        keep = np.isin(ref.labels, [2, 0])
        # Same images in the same order; label 2 -> 0 and 0 -> 1 (position in `classes`).
        np.testing.assert_array_equal(part.images, ref.images[keep])
        np.testing.assert_array_equal(part.labels, np.where(ref.labels[keep] == 2, 0, 1))
    held = sub.held_out
    out = full.test.labels == 1
    np.testing.assert_array_equal(held.images, full.test.images[out])
    np.testing.assert_array_equal(held.labels, full.test.labels[out])  # original labels
    assert sub.info["classes"] == {"kept": [2, 0], "kept_names": ["c2", "c0"], "held_out": [1],
                                   "held_out_names": ["c1"], "num_held_out_test": int(out.sum())}
    assert full.held_out is None and "classes" not in full.info


def test_limits_and_validation_split_apply_to_the_kept_classes(tmp_path):
    sub = load_splits(_cfg(tmp_path, classes=[1], val_size=4, limit_train=20, limit_test=12))
    assert len(sub.train) == 16 and len(sub.val) == 4
    assert set(sub.train.labels.tolist()) == set(sub.val.labels.tolist()) == {0}
    # limit_test cuts the full test set first (a seeded random 12), then classes split those 12.
    assert len(sub.test) + len(sub.held_out) == 12 and len(sub.test) > 0
    assert set(sub.test.labels.tolist()) == {0} and 1 not in set(sub.held_out.labels.tolist())


def test_classes_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="data.classes must be a non-empty list"):
        make_config({"data": {"classes": []}})
    with pytest.raises(ConfigError, match="distinct"):
        make_config({"data": {"classes": [1, 1]}})
    with pytest.raises(DataError, match=r"class id\(s\) \[5\] out of range; the source has 3"):
        load_splits(_cfg(tmp_path, classes=[0, 5]))
    with pytest.raises(DataError, match=r"the test split has no image of class\(es\) \[2\]"):
        load_splits(_cfg(tmp_path, classes=[2], limit_test=2))


def test_a_run_on_some_classes_evaluates_the_others_as_ood(tmp_path):
    cfg = make_config(tiny_run_config(
        tmp_path, epochs=1, data={"source": "npz", "root": str(make_npz(tmp_path)), "val_size": 0,
                                  "batch_size": 16, "classes": [0, 1]},
        eval={"suites": ["clean", "ood"],
              "options": {"ood": {"held_out": True, "ood_sets": ["held_out"], "scores": ["msp"]}}}))
    res = json.loads((fit(cfg) / "results.json").read_text())
    n_other = int((load_splits(_cfg(tmp_path)).test.labels == 2).sum())
    assert res["data"]["class_names"] == ["c0", "c1"] and res["data"]["num_test"] == 32 - n_other
    assert res["data"]["classes"]["held_out_names"] == ["c2"]
    ood = res["suites"]["ood"]
    assert ood["ood_sets"] == {"held_out": {"n": n_other, "source": "held_out"}}
    assert 0.0 <= ood["scores"]["msp"]["per_set"]["held_out"]["auroc_out_pos"] <= 1.0
    assert set(res["suites"]["clean"]["per_class"]) == {"c0", "c1"}
