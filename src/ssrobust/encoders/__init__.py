"""Encoder robustness across downstream tasks (the layer6 benchmark), as plain components.

An :class:`Encoder` wraps a backbone or any ``nn.Module`` (``as_encoder``) and gives ``pooled(x)``
and ``spatial(x)``; light heads (``HEADS``: ``cls``, ``seg``, ``depth``) are trained on it frozen
(``train_head``) and scored (``evaluate_head``). See docs/encoders.md.
"""

from .encoder import Encoder, FeatureShapes, NoSpatialMap, as_encoder, probe
from .heads import HEADS, DepthBins, DepthHead, LinearHead, SegmentationHead, TaskModel, build_head
from .metrics import (AccuracyMeter, DepthMeter, SegmentationMeter, accuracy, depth_metrics, mean_iou,
                      miou_from_confusion, valid_depth)
from .probe_training import HeadTrainConfig, encode, evaluate_head, train_head

__all__ = [
    "Encoder", "FeatureShapes", "NoSpatialMap", "as_encoder", "probe",
    "HEADS", "LinearHead", "SegmentationHead", "DepthHead", "DepthBins", "TaskModel", "build_head",
    "HeadTrainConfig", "encode", "train_head", "evaluate_head",
    "accuracy", "mean_iou", "miou_from_confusion", "depth_metrics", "valid_depth",
    "AccuracyMeter", "SegmentationMeter", "DepthMeter",
]
