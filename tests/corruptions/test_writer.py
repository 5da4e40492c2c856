"""The -C writer's output folder: one writer at a time, and a file where the folder should be."""

from __future__ import annotations

import os

import numpy as np
import pytest

import ssrobust.corruptions as C
from ssrobust.errors import ConfigError, LockedError
from ssrobust.locking import LOCK_FILE, DirLock


def _images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, 4)


def test_second_writer_of_one_folder_is_refused(tmp_path):
    out = tmp_path / "toy-C"
    out.mkdir()
    with DirLock(out, "corruption output folder"):  # the first job
        with pytest.raises(LockedError, match=f"corruption output folder {out} is in use by pid {os.getpid()} "):
            C.write_corrupted_dataset(*_images(), out, names=["contrast"], severities=[1], progress=False)
    assert sorted(p.name for p in out.iterdir()) == []  # the refused job touched nothing
    C.write_corrupted_dataset(*_images(), out, names=["contrast"], severities=[1], progress=False)
    assert (out / "manifest.json").exists() and not (out / LOCK_FILE).exists()


def test_output_path_that_is_a_file_is_a_clear_error(tmp_path):
    f = tmp_path / "some_file"
    f.write_text("mine")
    with pytest.raises(ConfigError, match="is a file, expected a folder"):
        C.write_corrupted_dataset(*_images(), f, names=["contrast"], severities=[1], progress=False)
    assert f.read_text() == "mine"
