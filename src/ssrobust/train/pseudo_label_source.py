"""AdvCL pseudo-labels of a run's training images from another run's encoder.

The encoder is the backbone of a finished run directory (``model.pt``, e.g. a ``simclr``
pretraining run); its features of the training images are clustered by K-means
(:func:`~ssrobust.contrastive.cached_pseudo_labels`) and cached on disk, so a resumed or repeated
run reads the same labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

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
