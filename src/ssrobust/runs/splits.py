"""A run's data: the data layer's splits plus the configured label noise."""

from __future__ import annotations

from dataclasses import replace

from ..data.base import DataConfig, DatasetSplits, load_clean_splits
from ..label_noise.dataset import apply_label_noise


def load_splits(cfg: DataConfig) -> DatasetSplits:
    """Load, validate, limit and split ``cfg.source``; then corrupt the training labels with
    ``cfg.label_noise`` when it is set (after the validation split is carved, so validation
    labels stay clean). The realized noise is recorded under ``info["label_noise"]``."""
    splits = load_clean_splits(cfg)
    if cfg.label_noise is None:
        return splits
    train, summary = apply_label_noise(splits.train, list(splits.class_names), cfg.label_noise)
    return replace(splits, train=train, info={**splits.info, "label_noise": summary})
