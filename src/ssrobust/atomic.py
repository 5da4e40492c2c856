"""The one atomic file writer: a crash leaves either the old file or the new one, never a part.

Everything the package writes that a reader may open meanwhile (run files, checkpoints, caches,
pseudo-labels, report manifests) goes through :func:`write_atomic`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomic(path: str | Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file next to ``path`` (same folder, so the rename cannot
    cross file systems), fsync it, then rename it over ``path``. On any error the temporary file
    (ours) is removed and ``path`` is left as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # only our own partial file
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """:func:`write_atomic` for UTF-8 text."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))
