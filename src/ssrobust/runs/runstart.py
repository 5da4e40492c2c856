"""Opening a run directory for training: one writer, nothing written before validation, and an
``--overwrite`` that keeps the old run until the new one has its first checkpoint.

Only the package's own run files (:data:`RUN_FILES`) are ever moved or removed; anything else a
user put into a run directory stays where it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from ..locking import DirLock
from ..paths import check_folder_path, make_dir, remove_if_empty
from .config import RunConfig
from .rundir import CHECKPOINT, CONFIG, META, METRICS, MODEL, RESULTS, config_yaml, same_config, write_text_atomic

RUN_FILES = (CONFIG, META, METRICS, CHECKPOINT, MODEL, RESULTS)
# Files that show a run got somewhere; a run directory with none of them has nothing to lose.
PROGRESS_FILES = (CHECKPOINT, MODEL, RESULTS)
# Where --overwrite keeps the previous run's files until the new run has written a checkpoint.
BACKUP = ".ssrobust-previous"


class RunStart:
    """The start of training in ``out_dir/name``, in steps that keep every failed start harmless.

    1. :meth:`open`, before anything is validated: create the folder, take its lock (one writer),
       settle an ``--overwrite`` that a killed process left half done, and decide resume / fresh
       start / refusal by *reading* ``config.yaml``.
    2. :meth:`commit`, once config, data and model are validated: move the run being overwritten
       aside (into ``.ssrobust-previous/``) and write ``config.yaml``.
    3. :meth:`checkpointed`, after the first checkpoint: delete the moved-aside run.

    :meth:`close` releases the lock; after a failure it first restores the moved-aside run, and
    removes the run directory if this start created it and it is still empty.
    """

    def __init__(self, cfg: RunConfig, overwrite: bool = False) -> None:
        self.cfg, self.overwrite = cfg, overwrite
        self.run_dir = Path(cfg.out_dir) / cfg.name
        self.text = config_yaml(cfg)
        self.resume = False
        self._created = False
        self._backup: Path | None = None
        self._lock = DirLock(self.run_dir, "run directory")

    def open(self) -> RunStart:
        check_folder_path(self.cfg.out_dir, "out_dir")
        self._created = make_dir(self.run_dir, "run directory")
        try:
            self._lock.acquire()
            recover_overwrite(self.run_dir)
            self.resume = self._resumes()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def _resumes(self) -> bool:
        """Whether an existing run continues; raises if the folder holds another config's run."""
        path = self.run_dir / CONFIG
        if self.overwrite or not path.is_file():
            return False
        old = path.read_text()
        if old == self.text or same_config(old, self.cfg):
            return (self.run_dir / CHECKPOINT).exists()
        if any((self.run_dir / f).exists() for f in PROGRESS_FILES):
            raise ConfigError(f"run directory {self.run_dir} holds a run with a different config; "
                              f"choose another name= or out_dir=, or pass --overwrite")
        return False  # an earlier start that never reached a checkpoint: nothing to keep

    def commit(self) -> None:
        """Write ``config.yaml`` (the old run, with ``overwrite``, moves aside first)."""
        if self.overwrite:
            self._backup = move_aside(self.run_dir)
        path = self.run_dir / CONFIG
        if not path.is_file() or path.read_text() != self.text:
            write_text_atomic(path, self.text)  # also: the same run, with newer keys spelled out

    def checkpointed(self) -> None:
        """The new run has a checkpoint: the overwritten run is no longer needed."""
        if self._backup is not None:
            discard(self._backup)
            self._backup = None

    def close(self, failed: bool) -> None:
        if self._backup is not None:
            (restore if failed else discard)(self._backup)
            self._backup = None
        self._lock.release()
        if failed and self._created:
            remove_if_empty(self.run_dir)


def move_aside(run_dir: Path) -> Path | None:
    """Move the run files of ``run_dir`` into ``run_dir/.ssrobust-previous/`` (None if there are none)."""
    present = [f for f in RUN_FILES if (run_dir / f).exists()]
    if not present:
        return None
    backup = run_dir / BACKUP
    backup.mkdir(exist_ok=True)
    for f in present:
        os.replace(run_dir / f, backup / f)
    return backup


def restore(backup: Path) -> None:
    """Put the moved-aside run back; the run files of the failed start it replaced are removed."""
    run_dir = backup.parent
    for f in RUN_FILES:
        if (backup / f).exists():
            os.replace(backup / f, run_dir / f)
        else:
            (run_dir / f).unlink(missing_ok=True)
    remove_if_empty(backup)


def discard(backup: Path) -> None:
    """Delete the moved-aside run files (only those: the folder stays if anything else is in it)."""
    for f in RUN_FILES:
        (backup / f).unlink(missing_ok=True)
    remove_if_empty(backup)


def recover_overwrite(run_dir: Path) -> None:
    """Finish an ``--overwrite`` whose process died: keep the new run if it wrote a checkpoint
    (the old run's files are then deleted), else put the old run back."""
    backup = run_dir / BACKUP
    if backup.is_dir():
        (discard if (run_dir / CHECKPOINT).exists() else restore)(backup)
