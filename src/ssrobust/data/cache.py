"""Decode-once caching of image arrays as ``.npy`` files opened as read-only memory maps."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import write_atomic


def default_cache_dir() -> Path:
    return Path(os.environ.get("SSROBUST_CACHE", Path.home() / ".cache" / "ssrobust"))


def fingerprint(items: list[tuple[str, int, int]] | list[str]) -> str:
    """A short stable hash of (path, size, mtime) tuples or strings."""
    h = hashlib.sha256(json.dumps(items, sort_keys=False).encode())
    return h.hexdigest()[:20]


def _open_cached(path: Path) -> np.ndarray | None:
    """The cache file as a read-only memory map, or None if it is empty, truncated or unreadable."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            offset = f.tell()
        if dtype.hasobject or os.path.getsize(path) < offset + int(np.prod(shape)) * dtype.itemsize:
            return None
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None


def cached_array(path: Path, build: Callable[[], np.ndarray]) -> np.ndarray:
    """Return ``np.load(path, mmap_mode='r')``, building and atomically saving it first if absent.

    A zero-length, truncated or otherwise unreadable cache file is never trusted: it is rebuilt and
    atomically replaced (not deleted first, so a concurrent reader never sees it vanish).
    """
    path = Path(path)
    if path.is_file():
        cached = _open_cached(path)
        if cached is not None:
            return cached
    arr = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: np.save(f, arr))  # on error the old cache file is left as it was
    return np.load(path, mmap_mode="r", allow_pickle=False)
