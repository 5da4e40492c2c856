"""Run directories: resolved config, provenance, metrics log, checkpoints, results.

Layout of ``<out_dir>/<name>/``::

    config.yaml      resolved configuration (every default filled in)
    meta.json        code version, library versions, seed, device, precision, world size
    metrics.jsonl    one JSON object per line: {"kind": "epoch", ...} and {"kind": "step", ...}
    checkpoint.pt    last completed epoch (atomic; for resuming)
    model.pt         final weights of the backbone and task heads
    results.json     evaluation records (schema: docs/results_schema.md)
    .ssrobust.lock   while a process writes the run (train, eval): its pid, host, start time
    .ssrobust-previous/  the run being replaced by --overwrite, until the new run checkpoints
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from .._version import __version__
from ..errors import CheckpointError
from ..runfiles import (CHECKPOINT, CONFIG, META, METRICS, MODEL, RESULTS, metric_lines,  # noqa: F401
                        read_json, read_metrics, write_json, write_text_atomic)
from ..typedconfig import from_dict, to_dict
from .config import RunConfig
from .precision import cpu_summary



def load_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a run directory (no {CONFIG})")
    return from_dict(RunConfig, yaml.safe_load(path.read_text()))


def config_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def code_version() -> dict[str, Any]:
    """The git commit of the source tree this package runs from, when it is a checkout."""
    src = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--", "."],
                                    capture_output=True, text=True, timeout=5).stdout.strip()) if sha else None
    except (OSError, subprocess.SubprocessError):
        sha, dirty = None, None
    return {"ssrobust": __version__, "git_commit": sha, "git_dirty": dirty}


def library_versions() -> dict[str, str]:
    import numpy
    import torch

    out = {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__}
    for mod in ("kornia", "matplotlib", "PIL"):
        try:
            out[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return out


def make_meta(cfg: RunConfig, device: str, precision: str, world: int) -> dict[str, Any]:
    return {"code": code_version(), "libraries": library_versions(), "seed": cfg.seed,
            "device": device, "precision": precision, "world_size": world,
            "host": socket.gethostname(), "platform": platform.platform(), "cpu": cpu_summary(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def same_config(text: str, cfg: RunConfig) -> bool:
    """Whether a stored ``config.yaml`` resolves to ``cfg`` (it may predate options added later,
    whose defaults then fill in)."""
    try:
        return to_dict(from_dict(RunConfig, yaml.safe_load(text))) == to_dict(cfg)
    except Exception:  # unreadable or no longer valid: treat as different
        return False


class MetricsLog:
    """Append-only JSON-lines log; on resume, records after the checkpointed epoch are dropped."""

    def __init__(self, path: Path, keep_before_epoch: int | None = None, enabled: bool = True) -> None:
        self.path, self.enabled = Path(path), enabled
        if enabled and keep_before_epoch is not None and self.path.exists():
            kept = [line for line, r in metric_lines(self.path) if r.get("epoch", 0) < keep_before_epoch]
            write_text_atomic(self.path, "".join(k + "\n" for k in kept))
        elif enabled and keep_before_epoch is None:
            self.path.write_text("")

    def write(self, record: dict) -> None:
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
