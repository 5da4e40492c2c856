"""Untrusted data files never run code: CIFAR pickles through the restricted unpickler, .npy/.npz
without pickles, and every refusal is a one-line DataError naming the file."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from ssrobust.data import DataConfig, load_splits
from ssrobust.data.safe_io import load_cifar_pickle, load_npy, npz_member, open_npz
from ssrobust.errors import DataError


class _Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 ``str`` (BINSTRING), as cPickle did for the official
    CIFAR files; read back with ``encoding="bytes"`` they become bytes."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes | str) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _official_like_batch(n: int = 4) -> dict:
    rng = np.random.default_rng(0)
    return {b"batch_label": b"training batch 1 of 5", b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def _numpy1_python2(batch: dict) -> bytes:
    """The batch as Python 2 + numpy 1 wrote it: protocol 2, BINSTRINGs, ``numpy.core.multiarray``."""
    import io

    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(batch)
    raw = buf.getvalue()
    assert b"cnumpy._core.multiarray\n" in raw  # GLOBAL opcodes are text in protocol 2
    return raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


@pytest.mark.parametrize("variant", ["py2_numpy1"] + [f"protocol{p}" for p in range(6)] + ["str_keys"])
def test_genuine_cifar_batches_load(tmp_path, variant):
    batch = _official_like_batch()
    path = tmp_path / "data_batch_1"
    if variant == "py2_numpy1":
        path.write_bytes(_numpy1_python2(batch))
    elif variant == "str_keys":  # re-pickled after loading with encoding="latin1"
        path.write_bytes(pickle.dumps({k.decode(): v for k, v in batch.items()}, protocol=2))
    else:  # protocol 2 stores bytes as _codecs.encode(str, "latin1"); 5 uses numpy's _frombuffer
        path.write_bytes(pickle.dumps(batch, protocol=int(variant[-1])))
    got = load_cifar_pickle(path)
    key = (lambda k: k.decode()) if variant == "str_keys" else (lambda k: k)
    assert np.array_equal(got[key(b"data")], batch[b"data"]) and got[key(b"data")].dtype == np.uint8
    assert got[key(b"labels")] == batch[b"labels"]
    assert got[key(b"filenames")] == batch[b"filenames"]
    assert got[key(b"batch_label")] == batch[b"batch_label"]


def test_numpy_scalar_labels_load(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"labels": [np.int64(3), np.uint8(7)]}, protocol=2))
    assert load_cifar_pickle(path)[b"labels"] == [3, 7]


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _OpenFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


class _Eval:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w')",)


@pytest.mark.parametrize("payload", [_System, _OpenFile, _Eval])
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_crafted_pickle_is_refused_and_runs_nothing(tmp_path, payload, protocol):
    marker = tmp_path / "MARKER"
    path = tmp_path / "data_batch_1"
    batch = {**_official_like_batch(), b"labels": payload(marker)}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    with pytest.raises(DataError, match=r"data_batch_1: refused to unpickle global") as err:
        load_cifar_pickle(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()


def test_crafted_batch_in_a_cifar_folder_fails_the_source(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"a"] * 10}, protocol=2))
    marker = tmp_path / "MARKER"
    (root / "data_batch_1").write_bytes(pickle.dumps({b"data": _System(marker)}, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_1: refused to unpickle global .*system"):
        load_splits(DataConfig(source="cifar10", root=str(tmp_path)))
    assert not marker.exists()


@pytest.mark.parametrize("obj, what", [
    ({b"data": np.array([1, "x"], dtype=object)}, "dtype object"),
    ({b"data": np.zeros(2, dtype=[("a", "u1"), ("b", "f4")])}, "dtype"),
    ({b"data": np.ma.masked_array([1, 2])}, "global numpy.ma"),
    ({b"data": Path("x")}, "global pathlib"),
])
def test_other_objects_are_refused(tmp_path, obj, what):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DataError, match=f"batch: refused to unpickle .*{what}"):
        load_cifar_pickle(path)


def test_truncated_pickle_names_the_file(tmp_path):
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps(_official_like_batch(), protocol=2)[:200])
    with pytest.raises(DataError, match="test_batch: cannot read as a CIFAR python pickle"):
        load_cifar_pickle(path)


def test_npy_and_npz_never_unpickle(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"o.npy: holds Python objects"):
        load_npy(tmp_path / "o.npy")
    (tmp_path / "g.npy").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(DataError, match=r"g.npy: not a .npy file"):
        load_npy(tmp_path / "g.npy")
    (tmp_path / "g.npz").write_bytes(b"garbage " * 20)
    with pytest.raises(DataError, match=r"g.npz: not a .npz archive \(no zip header\)"):
        open_npz(tmp_path / "g.npz")
    np.savez(tmp_path / "o.npz", x=np.array([None], dtype=object))
    with open_npz(tmp_path / "o.npz") as z, pytest.raises(DataError, match="o.npz: key x holds Python objects"):
        npz_member(z, "x", tmp_path / "o.npz")
    np.savez(tmp_path / "t.npz", x=np.zeros(1000))
    raw = (tmp_path / "t.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="t.npz: corrupt or truncated .npz archive"):
        open_npz(tmp_path / "t.npz")
