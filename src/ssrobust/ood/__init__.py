"""Out-of-distribution detection: scores, metrics and the 36 geometric transforms
(the OOD image sets live in :mod:`ssrobust.data.ood_sets` and :mod:`ssrobust.data.image_sets`, re-exported here).

One convention everywhere: a score is an anomaly score, **higher = more anomalous**. Every metric key
names its positive class (``fpr_at_95_tpr_in``: the literature's FPR95, in-distribution positive;
see :mod:`ssrobust.ood.metrics`).
"""

from ..data.image_sets import ImageSetConfig, image_set_config, load_image_set, read_image_path
from ..data.ood_sets import SYNTHETIC_OOD, as_ood_images, make_ood_set, split_classes
from .metrics import (METRIC_KEYS, auroc, average_precision, fpr_at_tpr, metrics, roc_curve,
                      roc_points, upgrade_metrics)
from .one_class import auroc_table, one_class_metrics, one_class_scores
from .scores import (OOD_SCORES, OODScore, ScoreInputs, build_score, compute_score_inputs,
                     score_batch, score_images)
from .transforms import apply_transform, geometric_transforms, transform_per_sample, transform_table

__all__ = [
    "SYNTHETIC_OOD", "as_ood_images", "make_ood_set", "split_classes",
    "ImageSetConfig", "image_set_config", "load_image_set", "read_image_path",
    "METRIC_KEYS", "auroc", "average_precision", "fpr_at_tpr", "metrics", "roc_curve",
    "roc_points", "upgrade_metrics",
    "auroc_table", "one_class_metrics", "one_class_scores",
    "OOD_SCORES", "OODScore", "ScoreInputs", "build_score", "compute_score_inputs", "score_batch",
    "score_images",
    "apply_transform", "geometric_transforms", "transform_per_sample", "transform_table",
]
