"""One writer per folder: an exclusive OS lock on a lock file inside a run directory or output folder.

``fcntl.flock`` locks belong to an open file; the OS drops them when the owner exits, however it
exits (even SIGKILL). So a lock file left behind by a dead process is stale by construction and the
next writer simply takes it over; the pid/host/start time written into the file only serve the
refusal message of a second writer.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .errors import LockedError, SsrobustError

LOCK_FILE = ".ssrobust.lock"

try:  # POSIX
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
except ImportError:  # Windows: a byte-range lock on the first byte
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True


def _holder(path: Path) -> str:
    """Who holds the lock, as written into the lock file by its owner."""
    try:
        info = json.loads(path.read_text())
        return f"pid {info['pid']} on {info['host']} (since {info['started']}: {info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (its lock file is being written)"


class DirLock:
    """Exclusive lock on ``folder`` through ``folder/.ssrobust.lock`` (the folder must exist).

    ``acquire`` raises :class:`~ssrobust.errors.LockedError` naming the holder when another process
    (or another open lock in this process) holds it; ``release`` removes the lock file. Use as a
    context manager: ``with DirLock(run_dir, "run directory"): ...``.
    """

    def __init__(self, folder: str | Path, what: str = "folder") -> None:
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DirLock:
        for _ in range(10):  # retried only when a releasing owner removed the file under us
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise SsrobustError(f"cannot lock {self.what} {self.folder}: {e.strerror} "
                                    f"(the folder must exist and be writable)") from None
            if not _try_lock(fd):
                os.close(fd)
                raise LockedError(f"{self.what} {self.folder} is in use by {_holder(self.path)}; "
                                  f"wait for it to finish or stop it (a lock of a dead process is taken over)")
            if self._same_file(fd):
                self._fd = fd
                self._write_owner()
                return self
            os.close(fd)
        raise LockedError(f"could not lock {self.what} {self.folder}: its lock file {self.path} keeps changing")

    def _same_file(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at ``self.path`` (its previous owner may have removed it
        between our open and our lock; locking that orphan would let a third process in)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _write_owner(self) -> None:
        info: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(),
                                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                "command": " ".join(sys.argv) or "python"}
        data = (json.dumps(info) + "\n").encode()
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, data)

    def release(self) -> None:
        """Remove the lock file, then drop the lock (in that order: see :meth:`_same_file`)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DirLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
