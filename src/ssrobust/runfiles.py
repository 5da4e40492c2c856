"""The files of a run directory as files: their names and their JSON readers and writers.

Core layer (no torch, no config): the report reads ``results.json`` and ``metrics.jsonl``
through this module without importing the run machinery (:mod:`ssrobust.runs.rundir`)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

from .atomic import write_text_atomic
from .errors import CheckpointError

CONFIG, META, METRICS, CHECKPOINT, MODEL, RESULTS = (
    "config.yaml", "meta.json", "metrics.jsonl", "checkpoint.pt", "model.pt", "results.json")


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically."""
    write_text_atomic(Path(path), json.dumps(obj, indent=1, sort_keys=False) + "\n")


def read_json(path: Path) -> Any:
    """A JSON file; a missing or invalid one is a one-line :class:`CheckpointError`."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of ``<run_dir>/metrics.jsonl`` (``[]`` if there is none; a torn last line is
    dropped with a warning, see :func:`metric_lines`)."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    return [record for _, record in metric_lines(path)]


def metric_lines(path: Path) -> list[tuple[str, dict]]:
    """``(line, record)`` for each record line of a metrics log.

    A process killed while appending leaves a torn last line: it is dropped with a warning (the
    record is written again when the run resumes). A bad line before the last one is corruption and
    raises a :class:`CheckpointError` naming the file and the line number.
    """
    text = Path(path).read_text(errors="replace")  # binary garbage: reported by line, below
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    out = []
    for k, (number, line) in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            out.append((line, record))
        elif k == len(lines) - 1:
            warnings.warn(f"{path}: dropped the incomplete last line {number} (the run was "
                          f"interrupted while writing it)", RuntimeWarning, stacklevel=3)
        else:
            raise CheckpointError(f"{path}: line {number} is not a JSON object (the file is corrupt); "
                                  f"expected one metrics record per line")
    return out
