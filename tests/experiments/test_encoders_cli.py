"""`ssrobust encoders`: a tiny end-to-end run of the command, and exit 2 with one line for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ssrobust
from _helpers import tiny_run_config
from ssrobust.cli import main

SMALL = ["train_images=16", "test_images=8", "image_size=16", "head_epochs=1", "steps=1", "batch_size=8"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("enc_cli")
    return ssrobust.train(tiny_run_config(tmp, epochs=1, eval={"suites": []}))


def test_encoders_command_writes_the_table_and_the_report(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["encoders", str(run_dir), "--tasks", "cls,seg", "--out", str(out), *SMALL]) == 0
    res = json.loads((out / "results.json").read_text())
    suite = res["suites"]["encoders"]
    assert suite["tasks"] == ["cls", "seg"] and suite["config"]["steps"] == 1
    assert [(r["encoder"], r["task"]) for r in suite["table"]] == [("tiny", "cls"), ("tiny", "seg")]
    md = (out / "report" / "report.md").read_text()
    assert "## Encoders across tasks" in md and "| tiny | seg | miou |" in md
    assert (out / "report" / "figures" / "encoders_heatmap.png").stat().st_size > 0
    assert "results:" in capsys.readouterr().out


def test_preset_options_apply_and_command_line_options_win(run_dir, tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("encoders: {tasks: [depth], steps: 2, head_epochs: 1}\n")
    out = tmp_path / "out"
    assert main(["encoders", str(run_dir), "--preset", str(preset), "--out", str(out), "--no-report",
                 *SMALL]) == 0
    suite = json.loads((out / "results.json").read_text())["suites"]["encoders"]
    assert suite["tasks"] == ["depth"] and suite["config"]["steps"] == 1
    assert not (out / "report").exists()


@pytest.mark.parametrize("extra, message", [
    (["--tasks", "cls,ocr"], "tasks must be distinct names among cls, seg, depth, got cls,ocr"),
    (["bogus=1"], "unknown config key(s) encoders.bogus"),
    (["eps=2"], "eps must be a finite number in [0, 1], got 2"),
    (["train_dir=/nonexistent/a", "test_dir=/nonexistent/b"], "dense folder /nonexistent/a does not exist"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run_dir, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["encoders", str(run_dir), "--out", str(out), *SMALL, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()


def test_missing_run_and_bad_preset_exit_2(tmp_path, capsys):
    assert main(["encoders", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "encoder run directory" in capsys.readouterr().err
    preset = tmp_path / "p.yaml"
    preset.write_text("steps: 2\n")
    assert main(["encoders", str(tmp_path), "--preset", str(preset), "--out", str(tmp_path / "o")]) == 2
    assert "expected one top-level mapping 'encoders:'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _dense_folder(root: Path) -> Path:
    """Two 8x8 images with label PNGs (classes 0..1) and 16-bit depth PNGs (mm)."""
    for d in ("images", "labels", "depth"):
        (root / d).mkdir(parents=True)
    for i, stem in enumerate("ab"):
        Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)).save(root / "images" / f"{stem}.png")
        Image.fromarray(np.full((8, 8), i, np.uint8)).save(root / "labels" / f"{stem}.png")
        Image.fromarray(np.full((8, 8), 1500 + i, np.uint16)).save(root / "depth" / f"{stem}.png")
    return root


@pytest.mark.parametrize("folder, bad, message", [
    ("labels", np.full((8, 8), 7, np.uint8), "label value 7 out of range"),
    ("depth", np.full((8, 8), 200, np.uint8), "expected a 16-bit"),
])
def test_a_bad_mask_or_depth_file_exits_2_naming_it(run_dir, tmp_path, capsys, folder, bad, message):
    train, test = _dense_folder(tmp_path / "train"), _dense_folder(tmp_path / "test")
    Image.fromarray(bad).save(test / folder / "b.png")
    out = tmp_path / "out"
    assert main(["encoders", str(run_dir), "--out", str(out), f"train_dir={train}", f"test_dir={test}",
                 "seg_classes=2", *SMALL]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert str(test / folder / "b.png") in err and message in err
    assert not out.exists()
