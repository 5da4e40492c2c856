"""Folder locks: one writer, a refusal that names the holder, stale locks of dead processes taken over."""

import json
import os
import subprocess
import sys

import pytest

from ssrobust.errors import LockedError
from ssrobust.locking import LOCK_FILE, DirLock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_lock_is_refused_with_the_holder_and_released_on_exit(tmp_path):
    with DirLock(tmp_path, "run directory") as lock:
        info = json.loads((tmp_path / LOCK_FILE).read_text())
        assert info["pid"] == os.getpid() and info["host"] and info["started"]
        with pytest.raises(LockedError) as e:
            DirLock(tmp_path, "run directory").acquire()  # another open file: refused like another process
        msg = str(e.value)
        assert f"run directory {tmp_path} is in use by pid {os.getpid()} on {info['host']}" in msg
        assert "\n" not in msg and lock.held
    assert not (tmp_path / LOCK_FILE).exists()  # released: the file is gone
    with DirLock(tmp_path):  # and the folder can be locked again
        pass


def test_lock_file_of_a_dead_process_is_taken_over(tmp_path):
    pid = _dead_pid()
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": pid, "host": "h", "started": "t", "command": "c"}))
    with DirLock(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists()


def test_lock_held_by_another_process_is_refused_until_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom ssrobust.locking import DirLock\n"
        "DirLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(300)"), str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"in use by pid {holder.pid} "):
            DirLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / LOCK_FILE).exists()  # killed: its lock file stays behind, stale
    with DirLock(tmp_path):
        pass
