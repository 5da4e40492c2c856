"""AdvCL pseudo-labels of a run's training images from another run's encoder.

The encoder is the backbone of a finished run directory (``model.pt``, e.g. a ``simclr``
pretraining run); its features of the training images are clustered by K-means
(:func:`~ssrobust.contrastive.cached_pseudo_labels`) and cached on disk, so a resumed or repeated
run reads the same labels. Under ``torchrun`` only rank 0 computes them and writes the cache (one
writer per run directory); the other ranks receive them (:func:`shared_pseudo_labels`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import distributed as dist
from ..contrastive import cached_pseudo_labels, encode_dataset, scale_ks
from ..errors import ConfigError
from ..runs.checkpoint import load_checkpoint
from ..runs.network import build_network, init_from_run
from ..runs.rundir import MODEL, load_run_config
from .strategies import PrepareContext

PSEUDO_LABELS = "pseudo_labels"  # the name of the per-image extra, int64 [N, len(ks)]
CACHE_DIR = "pseudo_labels"  # default cache folder inside the new run directory


def load_encoder(run_dir: str | Path, ctx: PrepareContext):
    """The backbone of ``run_dir/model.pt`` on ``ctx.device`` (its heads are ignored)."""
    run_dir = Path(run_dir)
    if not (run_dir / MODEL).is_file():
        raise ConfigError(f"strategy.options.pseudo_label_run: {run_dir / MODEL} does not exist; "
                          f"expected the run directory of a finished pretraining run")
    cfg = load_run_config(run_dir)
    num_classes = int(load_checkpoint(run_dir / MODEL)["num_classes"])
    encoder = build_network(cfg, num_classes).to(ctx.device)
    init_from_run(encoder, run_dir)
    return encoder.model


def pseudo_labels_for_run(run_dir: str | Path, ctx: PrepareContext, ks: Sequence[int],
                          min_cluster_size: int, cache_dir: str | Path | None) -> dict[int, np.ndarray]:
    """``{K: int64 [N]}`` cluster ids of ``ctx.splits.train`` under ``run_dir``'s encoder, the
    Ks capped to the dataset (:func:`scale_ks`), seeded by the run's seed; cached in
    ``cache_dir`` (default ``<new run dir>/pseudo_labels``)."""
    images = ctx.splits.train.images
    ks = scale_ks(ks, len(images), min_cluster_size)
    if not ks:
        raise ConfigError(f"strategy.options.pseudo_label_ks: no K fits {len(images)} training images "
                          f"with min_cluster_size={min_cluster_size}")
    features = encode_dataset(load_encoder(run_dir, ctx), images, device=ctx.device)
    where = Path(cache_dir) if cache_dir else ctx.run_dir / CACHE_DIR
    return cached_pseudo_labels(features, where, ks, seed=ctx.seed)


def shared_pseudo_labels(run_dir: str | Path, ctx: PrepareContext, ks: Sequence[int],
                         min_cluster_size: int, cache_dir: str | Path | None) -> dict[int, np.ndarray]:
    """:func:`pseudo_labels_for_run` on rank 0, broadcast to every rank (the same labels, one
    K-means, one cache writer). Every rank raises if rank 0 could not compute them."""
    if dist.world_size() == 1:
        return pseudo_labels_for_run(run_dir, ctx, ks, min_cluster_size, cache_dir)
    labels, error = None, None
    if dist.rank() == 0:
        try:
            labels = pseudo_labels_for_run(run_dir, ctx, ks, min_cluster_size, cache_dir)
        except Exception as e:  # re-raised below, after the other ranks have heard of it
            error = e
    failed = torch.tensor([float(error is not None)], device=ctx.device)
    dist.broadcast(failed)
    if error is not None:
        raise error
    if failed[0]:
        raise ConfigError(f"strategy.options.pseudo_label_run: rank 0 could not compute the pseudo-labels "
                          f"from {run_dir} (see its error)")
    fitted = scale_ks(ks, len(ctx.splits.train.images), min_cluster_size)
    table = torch.empty(len(ctx.splits.train.images), len(fitted), dtype=torch.int64, device=ctx.device)
    if labels is not None:
        table.copy_(torch.stack([torch.as_tensor(labels[k]) for k in fitted], dim=1))
    dist.broadcast(table)
    return {k: table[:, i].cpu().numpy() for i, k in enumerate(fitted)}
