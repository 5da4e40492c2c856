"""Atomic checkpoint files, always loaded with ``weights_only=True``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..atomic import write_atomic
from ..errors import CheckpointError


def save_atomic(obj: Any, path: Path) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``: a crash leaves
    either the old file or the new one, never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot load checkpoint {path}: {e}") from None


def load_state_strict(module: torch.nn.Module, state: dict, what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that says which part did not match."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{what} does not match the checkpoint: {e}") from None
