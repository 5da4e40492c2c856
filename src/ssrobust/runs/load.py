"""Loading a finished run: the one place that turns a run directory back into a network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.base import DatasetSplits
from ..errors import CheckpointError, ConfigError
from .splits import load_splits
from .checkpoint import load_checkpoint, load_state_strict
from .config import RunConfig
from .device import resolve_device
from .network import Network, build_network
from .precision import Precision
from .rundir import MODEL, load_run_config

PRETRAINING_HEADS = "contrastive."  # the heads of ssrobust.train.contrastive in a state dict


@dataclass
class LoadedRun:
    """A finished run ready for evaluation: its config, its data splits and its trained network
    (in eval mode, on ``device``) with the run's resolved precision."""

    run_dir: Path
    cfg: RunConfig
    splits: DatasetSplits
    net: Network
    device: torch.device
    precision: Precision


def load_run(run_dir: str | Path, device: str | None = None,
             splits: DatasetSplits | None = None) -> LoadedRun:
    """Read ``config.yaml`` and ``model.pt`` of ``run_dir`` and rebuild the trained network
    (``device`` overrides the run's ``device`` setting). The data splits are loaded from the run's
    config (so the test split is the one the run was trained against) unless ``splits`` are given."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    dev = resolve_device(device or cfg.device)
    ck = load_checkpoint(run_dir / MODEL, map_location=dev)
    if any(k.startswith(PRETRAINING_HEADS) for k in ck["network"]):
        raise ConfigError(f"{run_dir} is a contrastive pretraining run (its classifier is untrained); "
                          f"finetune it (init_from={run_dir}) and evaluate that run")
    splits = splits if splits is not None else load_splits(cfg.data)
    net = build_network(cfg, splits.num_classes).to(dev)
    load_state_strict(net, ck["network"], f"{run_dir / MODEL}")
    net.eval()
    return LoadedRun(run_dir, cfg, splits, net, dev, Precision.resolve(cfg.precision, dev))


def load_network(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[RunConfig, Network]:
    """The trained network of ``run_dir`` (eval mode, on ``device``) and its config, without loading
    the run's data: the number of classes comes from ``model.pt``."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ck = load_checkpoint(run_dir / MODEL, map_location=device)
    if not isinstance(ck.get("num_classes"), int):
        raise CheckpointError(f"{run_dir / MODEL} records no num_classes; expected a model.pt written by ssrobust")
    net = build_network(cfg, ck["num_classes"]).to(device)
    load_state_strict(net, ck["network"], f"{run_dir / MODEL}")
    return cfg, net.eval()
