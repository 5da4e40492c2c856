"""Downstream-task metrics, accumulated over batches: accuracy, mIoU, depth RMSE / AbsRel / δ<1.25.

Conventions (also in docs/encoders.md):

* **mIoU** comes from one confusion matrix summed over *all* pixels of the evaluated set (not a mean
  of per-image IoUs). Pixels whose target is the ``void`` label are ignored, whatever is predicted
  there. Class ``c``'s IoU is ``TP / (TP + FP + FN)``; the mean runs over the classes present in the
  target or in the prediction (``TP + FP + FN > 0``); a class absent from both is left out (its IoU is
  ``None`` in ``per_class_iou``), not counted as 0 or 1.
* **Depth** metrics pool all valid pixels of the set: ``rmse = sqrt(mean((p - g)^2))``,
  ``absrel = mean(|p - g| / g)``, ``delta1 = mean(max(p / g, g / p) < 1.25)``. A pixel is valid when
  its target is finite and > 0 (0 marks "no measurement", as in KITTI / NYU PNGs) and the optional
  mask is true. For the ratio, predictions are clamped to at least ``1e-6`` (a non-positive depth
  prediction is then a miss, never a division by zero).
"""

from __future__ import annotations

import math

import torch

DELTA_THRESHOLD = 1.25
MIN_PRED_DEPTH = 1e-6


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of ``pred == target``; ``pred`` class ids ``[N]`` or logits ``[N, K]``."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(dim=1)
    if pred.shape != target.shape or target.numel() == 0:
        raise ValueError(f"accuracy: predictions {tuple(pred.shape)} and targets {tuple(target.shape)} "
                         f"must have the same non-empty shape")
    return float((pred == target).float().mean())


def valid_depth(target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, H, W]`` bool: target finite and > 0, and ``mask`` where given."""
    valid = torch.isfinite(target) & (target > 0)
    return valid if mask is None else valid & mask.bool()


class AccuracyMeter:
    """Classification accuracy over batches of class-id predictions ``[B]``."""

    def __init__(self) -> None:
        self.correct, self.total = 0, 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.correct += int((pred == target).sum())
        self.total += int(target.numel())

    def compute(self) -> dict[str, float]:
        if self.total == 0:
            raise ValueError("accuracy: no samples were scored")
        return {"accuracy": self.correct / self.total}


class SegmentationMeter:
    """Confusion matrix ``[K, K]`` (rows: target, columns: prediction) over non-void pixels."""

    def __init__(self, num_classes: int, void: int = 255) -> None:
        if num_classes < 1 or 0 <= void < num_classes:
            raise ValueError(f"segmentation metrics need num_classes >= 1 and a void label outside "
                             f"0..{num_classes - 1}, got num_classes={num_classes}, void={void}")
        self.num_classes, self.void = num_classes, void
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred`` class ids ``[B, H, W]``, ``target`` ``[B, H, W]`` with ``void`` where unlabelled."""
        if pred.shape != target.shape:
            raise ValueError(f"segmentation: predictions {tuple(pred.shape)} and masks "
                             f"{tuple(target.shape)} differ in shape")
        keep = target != self.void
        t, p = target[keep].long().cpu(), pred[keep].long().cpu()
        k = self.num_classes
        for name, v in (("mask", t), ("prediction", p)):
            bad = v[(v < 0) | (v >= k)]
            if bad.numel():
                raise ValueError(f"segmentation {name} has class {int(bad[0])}; expected 0..{k - 1} "
                                 f"or the void label {self.void}")
        self.confusion += torch.bincount(t * k + p, minlength=k * k).view(k, k)

    def compute(self) -> dict[str, object]:
        """``miou``, ``pixel_accuracy`` and ``per_class_iou`` (``None`` for absent classes)."""
        miou, per_class = miou_from_confusion(self.confusion)
        total = int(self.confusion.sum())
        if total == 0:
            raise ValueError("segmentation: every pixel is void; nothing to score")
        return {"miou": miou, "pixel_accuracy": int(self.confusion.diag().sum()) / total,
                "per_class_iou": per_class}


def miou_from_confusion(confusion: torch.Tensor) -> tuple[float, list[float | None]]:
    """Mean IoU over classes present in target or prediction, and each class's IoU (or None)."""
    tp = confusion.diag().double()
    union = confusion.sum(dim=0).double() + confusion.sum(dim=1).double() - tp
    per_class = [float(tp[c] / union[c]) if union[c] > 0 else None for c in range(len(tp))]
    present = [v for v in per_class if v is not None]
    return (sum(present) / len(present) if present else math.nan), per_class


def mean_iou(pred: torch.Tensor, target: torch.Tensor, num_classes: int, void: int = 255) -> float:
    """mIoU of one set of predictions ``[B, H, W]`` (see the module docstring for the convention)."""
    meter = SegmentationMeter(num_classes, void)
    meter.update(pred, target)
    return float(meter.compute()["miou"])  # type: ignore[arg-type]


class DepthMeter:
    """RMSE, AbsRel and δ<1.25 over the valid pixels of every batch."""

    def __init__(self) -> None:
        self.sq_err, self.abs_rel, self.within, self.count = 0.0, 0.0, 0, 0

    def update(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """``pred``, ``target`` (and ``mask``) ``[B, H, W]``; see :func:`valid_depth`."""
        if pred.shape != target.shape:
            raise ValueError(f"depth: predictions {tuple(pred.shape)} and targets {tuple(target.shape)} "
                             f"differ in shape")
        valid = valid_depth(target, mask)
        p, g = pred[valid].double(), target[valid].double()
        ratio = torch.maximum(p.clamp_min(MIN_PRED_DEPTH) / g, g / p.clamp_min(MIN_PRED_DEPTH))
        self.sq_err += float(((p - g) ** 2).sum())
        self.abs_rel += float(((p - g).abs() / g).sum())
        self.within += int((ratio < DELTA_THRESHOLD).sum())
        self.count += int(valid.sum())

    def compute(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("depth: no valid target pixel (finite and > 0) was scored")
        return {"rmse": math.sqrt(self.sq_err / self.count), "absrel": self.abs_rel / self.count,
                "delta1": self.within / self.count}


def depth_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
                  ) -> dict[str, float]:
    """RMSE, AbsRel and δ<1.25 of one set of depth predictions ``[B, H, W]``."""
    meter = DepthMeter()
    meter.update(pred, target, mask)
    return meter.compute()
