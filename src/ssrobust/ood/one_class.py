"""One-class OOD evaluation helpers (Hendrycks et al. 2019, §4.2).

Protocol: train one model per class ``c`` of a K-class dataset on the images of ``c`` only; at test
time the test images of ``c`` are in-distribution and those of the other ``K - 1`` classes OOD. The
training sweep calls :func:`one_class_metrics` on each trained model and :func:`auroc_table` on the
collected per-class results (paper Table 3 reports per-class AUROC and the mean).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..data.ood_sets import split_classes
from ..tasks.base import declared_scores
from .metrics import METRIC_KEYS, metrics, upgrade_metrics
from .scores import OODScore, build_score, score_images


def default_one_class_scores(tasks: Mapping[str, nn.Module]) -> list[str]:
    """The one-class scores the model's tasks declare (``PretextTask.one_class_scores``):
    ``rotation_translation`` and/or ``rotnet``."""
    names = declared_scores(tasks, "one_class_scores")
    if not names:
        raise ValueError("one-class scoring needs a 'rotation_translation' or 'rotation' task")
    return names


def one_class_scores(model: nn.Module, images: Any, tasks: Mapping[str, nn.Module],
                     scores: Sequence[str] | Mapping[str, OODScore] | None = None,
                     batch_size: int = 256, device: torch.device | None = None,
                     autocast: Callable = nullcontext) -> dict[str, np.ndarray]:
    """Anomaly scores of uint8 ``[N, H, W, 3]`` images: ``{score name: float64 [N]}``.

    ``scores``: names in ``OOD_SCORES`` or ready objects; default :func:`default_one_class_scores`.
    """
    if scores is None:
        scores = default_one_class_scores(tasks)
    objs = dict(scores) if isinstance(scores, Mapping) else {s: build_score(s) for s in scores}
    return score_images(model, images, tasks, objs, batch_size, device, autocast)


def one_class_metrics(model: nn.Module, images: Any, labels: Any, in_classes: Iterable[int],
                      tasks: Mapping[str, nn.Module],
                      scores: Sequence[str] | Mapping[str, OODScore] | None = None,
                      **kwargs: Any) -> dict[str, dict[str, float]]:
    """Metrics of each score with ``labels`` in ``in_classes`` as in-distribution, the rest OOD.

    Returns ``{score: metrics}`` with the :data:`~ssrobust.ood.metrics.METRIC_KEYS`; ``kwargs`` go
    to :func:`one_class_scores`.
    """
    in_mask, out_mask = split_classes(np.asarray(torch.as_tensor(labels).cpu()), in_classes)
    if not in_mask.any() or not out_mask.any():
        raise ValueError("one-class evaluation needs both in-class and out-of-class test images")
    s = one_class_scores(model, images, tasks, scores, **kwargs)
    return {name: metrics(v[in_mask], v[out_mask]) for name, v in s.items()}


def auroc_table(per_class: Mapping[str, Mapping[str, Any]], metric: str = "auroc_out_pos"
                ) -> dict[str, Any]:
    """Aggregate one-class results into a class-by-method table with the mean over classes.

    Args:
        per_class: ``{class name: {method: value or metrics dict}}`` (e.g. the output of
            :func:`one_class_metrics` per class; a plain float is taken as the metric itself, so
            baselines such as an OC-SVM AUROC can be mixed in). Metrics dicts with the schema-1
            keys are read through :func:`~ssrobust.ood.metrics.upgrade_metrics`.
        metric: which entry of a metrics dict to tabulate (a key of ``METRIC_KEYS``); a dict
            without it counts as missing.
    Returns:
        ``{"metric", "methods", "classes", "values": {method: {class: value or None}},
        "mean": {method: mean over the classes that have it}, "headers", "rows"}``; ``headers`` /
        ``rows`` (class rows then a ``"mean"`` row) can be passed to ``ssrobust.report.Table``.
    """
    if metric not in METRIC_KEYS:
        raise ValueError(f"auroc_table: unknown metric {metric!r}; expected one of "
                         f"{', '.join(METRIC_KEYS)}")
    classes = list(per_class)
    methods: list[str] = []
    for res in per_class.values():
        methods += [m for m in res if m not in methods]
    values: dict[str, dict[str, float | None]] = {m: {} for m in methods}
    for c, res in per_class.items():
        for m in methods:
            v = res.get(m)
            if isinstance(v, Mapping):
                v = upgrade_metrics(v).get(metric)
            values[m][c] = float(v) if v is not None else None
    mean = {}
    for m in methods:
        got = [v for v in values[m].values() if v is not None]
        mean[m] = float(np.mean(got)) if got else None
    rows = [[c] + [values[m][c] for m in methods] for c in classes]
    rows.append(["mean"] + [mean[m] for m in methods])
    return {"metric": metric, "methods": methods, "classes": classes, "values": values,
            "mean": mean, "headers": ["class"] + methods, "rows": rows}
