"""The one copy each of: seed derivation, uint8 -> float, module-mode restore, atomic writes."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch
from torch import nn

from ssrobust.atomic import write_atomic, write_text_atomic
from ssrobust.images import to_float_images, unit_float
from ssrobust.modes import eval_mode, module_modes
from ssrobust.seeds import derived_seed, epoch_seed


def test_seeds_keep_the_formulas_every_stream_used_before():
    # The adversarial suite's and the synthetic OOD sets' seeds, and the loaders' epoch streams,
    # are unchanged by the move into one module (results and resumes stay bit-identical).
    assert derived_seed(3, "attack", "pgd", 2) == (3 * 1_000_003 + zlib.crc32(b"attack/pgd/2")) % 2**63
    assert derived_seed(7, "blobs") == (7 * 1_000_003 + zlib.crc32(b"blobs")) % 2**63
    assert epoch_seed(5, 4) == 5 * 1_000_003 + 4 and epoch_seed(5, -1) == 5 * 1_000_003 - 1
    assert 0 <= derived_seed(2**62, "x") < 2**63


def test_unit_float_and_to_float_images():
    x = torch.tensor([[0, 51, 255]], dtype=torch.uint8)
    assert torch.equal(unit_float(x), torch.tensor([[0.0, 0.2, 1.0]]))
    f = torch.tensor([0.5], dtype=torch.float64)
    assert unit_float(f).dtype == torch.float32 and float(unit_float(f)) == 0.5  # floats as given
    nhwc = np.full((2, 4, 5, 3), 255, dtype=np.uint8)
    nhwc.flags.writeable = False  # e.g. a memory-mapped cache
    out = to_float_images(nhwc, torch.device("cpu"))
    assert out.shape == (2, 3, 4, 5) and out.dtype == torch.float32 and float(out.min()) == 1.0


def test_module_modes_restores_every_submodule_flag():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Dropout())
    net.train()
    net[1].eval()  # deliberately half in eval mode (frozen BatchNorm)
    with eval_mode(net):
        assert not any(m.training for m in net.modules())
    assert net.training and not net[1].training and net[2].training
    with pytest.raises(RuntimeError), module_modes([net], train=True):
        assert net[1].training
        raise RuntimeError
    assert net.training and not net[1].training  # restored after an error too


def test_write_atomic_replaces_whole_files_and_leaves_the_old_one_on_error(tmp_path):
    path = tmp_path / "f.txt"
    write_text_atomic(path, "old")

    def fail(f):
        f.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, fail)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.txt"]
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
