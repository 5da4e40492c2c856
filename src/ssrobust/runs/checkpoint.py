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


def state_mismatch(module: torch.nn.Module, state: dict, show: int = 3) -> str | None:
    """One line saying how ``state`` differs from ``module.state_dict()`` (missing and unexpected
    keys, shape differences, the first ``show`` of each), or None when every key and shape matches."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {list(state[k].shape)} in the checkpoint vs {list(v.shape)} here"
              for k, v in own.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    parts = []
    for label, items in (("shape differs", shapes), ("missing", missing), ("unexpected", unexpected)):
        if items:
            more = f" (+{len(items) - show} more)" if len(items) > show else ""
            parts.append(f"{len(items)} {label}: {', '.join(items[:show])}{more}")
    return "; ".join(parts) or None


def load_state_strict(module: torch.nn.Module, state: dict, what: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error that says which part did not match."""
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:  # torch's message spans many lines; summarize it in one
        detail = state_mismatch(module, state) or " ".join(str(e).split())
        raise CheckpointError(f"{what} does not match the checkpoint: {detail}") from None
