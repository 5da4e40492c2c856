"""Label noise applied to a dataset's training split (``data.label_noise``), the last step of
loading a run's data (:func:`ssrobust.runs.splits.load_splits`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.base import ImageArrays, LabelNoiseConfig
from ..errors import DataError
from .cifar100 import COARSE_OF_FINE, FINE_NAMES
from .corrupt import make_noisy_dataset
from .matrices import corruption_matrix, expected_noise_rate


def coarse_of_fine(train: ImageArrays, class_names: list[str]) -> tuple[int, ...]:
    """Superclass id per class: from ``extras["coarse_labels"]`` (cifar100 source), else the
    standard CIFAR-100 hierarchy when the classes are CIFAR-100's."""
    coarse = train.extras.get("coarse_labels")
    if coarse is None:
        if tuple(class_names) != FINE_NAMES:
            raise DataError("label_noise.kind=hierarchical needs CIFAR-100 classes or per-image "
                            "extras['coarse_labels'] from the data source")
        return COARSE_OF_FINE
    mapping: dict[int, int] = {}
    for fine, sup in zip(train.labels.tolist(), np.asarray(coarse).tolist()):
        if mapping.setdefault(fine, sup) != sup:
            raise DataError(f"class {fine} appears with two coarse labels ({mapping[fine]}, {sup})")
    if len(mapping) != len(class_names):
        raise DataError("label_noise.kind=hierarchical: some classes have no training image, so "
                        "their superclass is unknown")
    return tuple(mapping[k] for k in range(len(class_names)))


def apply_label_noise(train: ImageArrays, class_names: list[str], cfg: LabelNoiseConfig
                      ) -> tuple[ImageArrays, dict[str, Any]]:
    """Corrupt ``train.labels`` with ``cfg``; returns the new split and a JSON-safe summary.

    The result keeps the clean labels in ``extras["clean_labels"]`` and the trusted mask (bool) in
    ``extras["trusted"]``; the summary holds the realized noise rate over the untrusted images.
    """
    k = len(class_names)
    coarse = coarse_of_fine(train, class_names) if cfg.kind == "hierarchical" else None
    matrix = corruption_matrix(cfg.kind, k, cfg.strength, seed=cfg.seed, coarse_of_fine=coarse)
    noisy = make_noisy_dataset(train.labels, matrix, cfg.trusted_fraction, seed=cfg.seed)
    extras = dict(train.extras, clean_labels=np.asarray(train.labels),
                  trusted=np.asarray(noisy.trusted_mask, dtype=bool))
    out = ImageArrays(train.images, np.asarray(noisy.labels_noisy, dtype=np.int64), extras)
    if cfg.use == "untrusted":
        out = out.subset(np.flatnonzero(~extras["trusted"]))
    info = {"kind": cfg.kind, "strength": cfg.strength, "seed": cfg.seed, "use": cfg.use,
            "trusted_fraction": cfg.trusted_fraction, "num_trusted": int(extras["trusted"].sum()),
            "num_untrusted": int((~extras["trusted"]).sum()), "num_train_used": len(out),
            "realized_noise": noisy.realized_rate, "expected_noise": expected_noise_rate(matrix)}
    return out, info
