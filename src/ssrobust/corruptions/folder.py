"""Loading -C folders: the official CIFAR-10-C / CIFAR-100-C releases or ours.

Layout (Hendrycks & Dietterich 2019): one ``<corruption>.npy`` per corruption of shape
``(S*N, H, W, 3)`` uint8, severity-major (rows ``0..N-1`` are severity 1, ...), and ``labels.npy`` of
shape ``(S*N,)`` holding the same ``N`` labels once per severity. ``S = 5`` for the official sets;
folders written by :func:`write_corrupted_dataset` carry a ``manifest.json`` that names the
severities (and the sha256 of every file).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..errors import DataError
from .base import NAMES, SEVERITIES

MANIFEST = "manifest.json"


@dataclass
class CorruptedFolder:
    """Memory-mapped -C arrays. ``images(name, severity)`` -> uint8 ``(N, H, W, 3)``."""

    root: Path
    names: tuple[str, ...]
    severities: tuple[int, ...]
    labels: np.ndarray  # int64 (N,): the labels of every severity block
    image_shape: tuple[int, int, int]
    manifest: dict | None = None
    _arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.labels)

    def images(self, name: str, severity: int) -> np.ndarray:
        if name not in self._arrays:
            raise KeyError(f"corruption {name!r} not loaded from {self.root}; loaded: {', '.join(self.names)}")
        if severity not in self.severities:
            raise KeyError(f"severity {severity} not in {self.root} (has {list(self.severities)})")
        k = self.severities.index(severity)
        return self._arrays[name][k * self.n: (k + 1) * self.n]

    def __getitem__(self, key: tuple[str, int]) -> tuple[np.ndarray, np.ndarray]:
        name, severity = key
        return self.images(name, severity), self.labels

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return ((name, s) for name in self.names for s in self.severities)

    def __len__(self) -> int:
        return len(self.names) * len(self.severities)


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` of a ``.npy`` file, read without loading it."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy file ({e})") from None
    if fortran:
        raise DataError(f"{path}: Fortran-ordered arrays are not supported; expected a C-ordered array")
    if np.dtype(dtype).hasobject:
        raise DataError(f"{path}: holds Python objects ({dtype}); expected a numeric array (pickled data "
                        f"is never loaded)")
    return tuple(int(s) for s in shape), np.dtype(dtype), offset


def _open_checked(path: Path, expected_rows: int | None, what: str) -> np.ndarray:
    """Check the header and the file size before memory-mapping, for clear messages on truncation."""
    shape, dtype, offset = _npy_header(path)
    need = offset + int(np.prod(shape)) * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise DataError(f"{path}: truncated: {have} bytes, but its header declares shape {shape} "
                        f"{dtype} ({need} bytes); re-download or regenerate the file")
    if what == "images":
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            raise DataError(f"{path}: expected uint8 images of shape (rows, H, W, 3), got {dtype} {shape}")
        if expected_rows is not None and shape[0] != expected_rows:
            raise DataError(f"{path}: has {shape[0]} images, expected {expected_rows} "
                            f"(one per label in labels.npy)")
    return np.load(path, mmap_mode="r", allow_pickle=False)


def _read_labels(root: Path, n_sev: int) -> np.ndarray:
    path = root / "labels.npy"
    if not path.is_file():
        raise DataError(f"{path}: missing (a -C folder needs labels.npy next to the <corruption>.npy files)")
    labels = np.asarray(_open_checked(path, None, "labels"))
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: expected a 1-D integer array, got {labels.dtype} {labels.shape}")
    if len(labels) == 0 or len(labels) % n_sev:
        raise DataError(f"{path}: {len(labels)} labels is not a positive multiple of {n_sev} severities")
    n = len(labels) // n_sev
    blocks = labels.reshape(n_sev, n)
    if not (blocks == blocks[:1]).all():
        raise DataError(f"{path}: the {n_sev} severity blocks of {n} labels differ; expected the same "
                        "labels repeated per severity (severity-major layout)")
    if labels.min() < 0:
        raise DataError(f"{path}: negative labels")
    return blocks[0].astype(np.int64)


def sha256_file(path: Path, chunk: int = 1 << 24) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_corrupted_folder(root: str | Path, names: Sequence[str] | None = None,
                          verify: bool = False) -> CorruptedFolder:
    """Open a -C folder; ``names=None`` loads every known corruption file present.

    Checks dtype, shape and row count of every file against ``labels.npy`` (and, with
    ``verify=True``, the sha256 sums in ``manifest.json``); raises :class:`DataError` naming the file
    and what was expected.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory (expected a -C folder with <corruption>.npy files)")
    manifest = None
    if (root / MANIFEST).is_file():
        try:
            manifest = json.loads((root / MANIFEST).read_text())
        except json.JSONDecodeError as e:
            raise DataError(f"{root / MANIFEST}: not valid JSON ({e})") from None
    severities = tuple(int(s) for s in (manifest or {}).get("severities", SEVERITIES))
    labels = _read_labels(root, len(severities))
    if names is None:
        names = tuple(n for n in NAMES if (root / f"{n}.npy").is_file())
        if not names:
            raise DataError(f"{root}: no <corruption>.npy files found (known: {', '.join(NAMES)})")
    arrays, shape = {}, None
    for name in names:
        path = root / f"{name}.npy"
        if not path.is_file():
            raise DataError(f"{path}: missing (requested corruption {name!r})")
        arr = _open_checked(path, len(labels) * len(severities), "images")
        if shape is not None and arr.shape[1:] != shape:
            raise DataError(f"{path}: image shape {arr.shape[1:]} differs from {shape} of the other files")
        shape = arr.shape[1:]
        arrays[name] = arr
    if verify:
        _verify(root, manifest, list(names))
    return CorruptedFolder(root, tuple(names), severities, labels, tuple(shape), manifest, arrays)


def _verify(root: Path, manifest: dict | None, names: list[str]) -> None:
    if manifest is None:
        raise DataError(f"{root}: verify=True needs {MANIFEST} with sha256 sums (official folders have none)")
    files = manifest.get("files", {})
    for fname in [f"{n}.npy" for n in names] + ["labels.npy"]:
        want = files.get(fname, {}).get("sha256")
        if want is None:
            raise DataError(f"{root / MANIFEST}: no sha256 for {fname}")
        got = sha256_file(root / fname)
        if got != want:
            raise DataError(f"{root / fname}: sha256 {got} does not match the manifest ({want})")
