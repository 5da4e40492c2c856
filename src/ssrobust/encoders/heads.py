"""Light heads on a frozen encoder (the layer6 benchmark's linear probes), one per downstream task.

Every head has the same surface:

* ``feature``: which encoder output it reads, ``"pooled"`` ``[B, D]`` or ``"spatial"`` ``[B, C, h, w]``;
* ``forward(features, image_size) -> output`` (logits at the image size for dense heads);
* ``loss(output, target) -> [B]``: the per-image training loss (attacks maximize it per sample);
* ``predict(output) -> prediction`` and ``meter() -> metric accumulator`` for evaluation.

Heads are built by task name through ``HEADS`` (``cls``, ``seg``, ``depth``) or directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry
from .encoder import Encoder, FeatureKind, FeatureShapes, NoSpatialMap
from .metrics import AccuracyMeter, DepthMeter, SegmentationMeter, valid_depth

HEADS: Registry = Registry("encoder head")
ImageSize = tuple[int, int]


def masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` values and bool mask -> ``[B]`` mean over kept pixels (0 for an image with none)."""
    kept = keep.flatten(1)
    total = (values.flatten(1) * kept).sum(dim=1)
    return total / kept.sum(dim=1).clamp_min(1)


@HEADS.register("cls")
class LinearHead(nn.Module):
    """Linear classifier on the pooled features: ``[B, D] -> [B, K]`` logits."""

    feature: FeatureKind = "pooled"

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, features: torch.Tensor, image_size: ImageSize | None = None) -> torch.Tensor:
        return self.fc(features)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(output.float(), target, reduction="none")

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=1)

    def meter(self) -> AccuracyMeter:
        return AccuracyMeter()


class _DenseLinear(nn.Module):
    """BatchNorm + 1x1 conv on the feature map, bilinearly upsampled to the image size."""

    feature: FeatureKind = "spatial"

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, features: torch.Tensor, image_size: ImageSize) -> torch.Tensor:
        """``[B, C, h, w]`` -> ``[B, out_channels, H, W]``."""
        out = self.conv(self.bn(features))
        return F.interpolate(out, size=tuple(image_size), mode="bilinear", align_corners=False)


@HEADS.register("seg")
class SegmentationHead(_DenseLinear):
    """Per-location linear segmentation: ``[B, C, h, w] -> [B, K, H, W]`` logits; ``void`` ignored."""

    def __init__(self, in_channels: int, num_classes: int, void: int = 255) -> None:
        super().__init__(in_channels, num_classes)
        self.num_classes, self.void = num_classes, void

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per image: mean cross-entropy over its non-void pixels (0 if all are void)."""
        keep = target != self.void
        ce = F.cross_entropy(output.float(), target.masked_fill(~keep, 0).long(), reduction="none")
        return masked_mean(ce, keep)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=1)

    def meter(self) -> SegmentationMeter:
        return SegmentationMeter(self.num_classes, self.void)


@dataclass(frozen=True)
class DepthBins:
    """``num_bins`` depth bins between ``min_depth`` and ``max_depth``.

    ``"log"``: edges equally spaced in log depth (equal *relative* resolution, as depth errors are
    judged by AbsRel and δ), centres the geometric means of their edges; ``"linear"``: equal widths,
    centres the midpoints. Depths outside the range fall into the first / last bin.
    """

    min_depth: float
    max_depth: float
    num_bins: int = 64
    spacing: Literal["log", "linear"] = "log"

    def __post_init__(self) -> None:
        if not (0 < self.min_depth < self.max_depth and math.isfinite(self.max_depth)):
            raise ValueError(f"depth bins need 0 < min_depth < max_depth, got {self.min_depth}, {self.max_depth}")
        if self.num_bins < 2 or self.spacing not in ("log", "linear"):
            raise ValueError(f"depth bins need num_bins >= 2 and spacing 'log' or 'linear', got "
                             f"{self.num_bins}, {self.spacing!r}")

    def edges(self) -> torch.Tensor:
        """``[num_bins + 1]`` float64."""
        if self.spacing == "linear":
            return torch.linspace(self.min_depth, self.max_depth, self.num_bins + 1, dtype=torch.float64)
        return torch.logspace(math.log10(self.min_depth), math.log10(self.max_depth), self.num_bins + 1,
                              dtype=torch.float64)

    def centers(self) -> torch.Tensor:
        """``[num_bins]`` float64."""
        e = self.edges()
        return (e[:-1] * e[1:]).sqrt() if self.spacing == "log" else (e[:-1] + e[1:]) / 2

    def index(self, depth: torch.Tensor) -> torch.Tensor:
        """Bin index (int64, like ``depth``) of each depth value."""
        inner = self.edges()[1:-1].to(device=depth.device, dtype=torch.float64)
        return torch.bucketize(depth.double(), inner, right=True)


@HEADS.register("depth")
class DepthHead(_DenseLinear):
    """Per-location linear depth: classification over :class:`DepthBins` (``mode="bins"``, output
    ``[B, num_bins, H, W]`` logits) or regression (``mode="regression"``, output ``[B, 1, H, W]``).

    Prediction: ``readout="expected"`` is the softmax-weighted mean of the bin centres (smooth, and
    differentiable for attacks), ``"argmax"`` the centre of the most likely bin. Training loss per image
    over its valid pixels (:func:`~ssrobust.encoders.metrics.valid_depth`): cross-entropy against
    the target's bin, or for regression the mean absolute error.
    """

    def __init__(self, in_channels: int, min_depth: float, max_depth: float, num_bins: int = 64,
                 spacing: Literal["log", "linear"] = "log", mode: Literal["bins", "regression"] = "bins",
                 readout: Literal["expected", "argmax"] = "expected") -> None:
        if mode not in ("bins", "regression") or readout not in ("expected", "argmax"):
            raise ValueError(f"depth head: mode must be 'bins' or 'regression' and readout 'expected' "
                             f"or 'argmax', got {mode!r}, {readout!r}")
        self.bins = DepthBins(min_depth, max_depth, num_bins, spacing)
        super().__init__(in_channels, num_bins if mode == "bins" else 1)
        self.mode, self.readout = mode, readout
        self.register_buffer("centers", self.bins.centers().float(), persistent=False)

    def predict(self, output: torch.Tensor) -> torch.Tensor:
        """Output -> depth ``[B, H, W]``."""
        if self.mode == "regression":
            return output[:, 0]
        centers = self.centers.to(output.dtype)
        if self.readout == "argmax":
            return centers[output.argmax(dim=1)]
        return torch.einsum("bkhw,k->bhw", output.softmax(dim=1), centers)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = valid_depth(target)
        if self.mode == "regression":
            err = (output[:, 0].float() - target.float().nan_to_num(0.0)).abs()
            return masked_mean(err, valid)
        idx = self.bins.index(target.nan_to_num(self.bins.min_depth))
        ce = F.cross_entropy(output.float(), idx, reduction="none")
        return masked_mean(ce, valid)

    def meter(self) -> DepthMeter:
        return DepthMeter()


class TaskModel(nn.Module):
    """Encoder + head as one model: ``[B, 3, H, W]`` in [0, 1] -> the head's output. What attacks at
    the task output attack (classification: logits ``[B, K]``, so PGD / AutoAttack apply directly)."""

    def __init__(self, encoder: Encoder, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.features(x, self.head.feature), x.shape[-2:])


def build_head(task: str, shapes: FeatureShapes, **options: object) -> nn.Module:
    """The ``HEADS`` head of ``task`` sized for an encoder's :class:`FeatureShapes` (see :func:`probe`),
    e.g. ``build_head("seg", probe(enc, (32, 32)), num_classes=11)``."""
    cls = HEADS.get(task)
    size = shapes.pooled_dim if cls.feature == "pooled" else shapes.channels
    if size is None:
        raise NoSpatialMap(f"the {task!r} head needs a spatial feature map, but the encoder gives a "
                           f"pooled vector only")
    return cls(size, **options)
