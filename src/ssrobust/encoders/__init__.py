"""Encoder robustness across downstream tasks (the layer6 benchmark), as plain components.

An :class:`Encoder` wraps a backbone or any ``nn.Module`` (``as_encoder``) and gives ``pooled(x)``
and ``spatial(x)``; light heads (``HEADS``: ``cls``, ``seg``, ``depth``) are trained on it frozen
(``train_head``) and scored (``evaluate_head``), clean or under an attack in embedding space
(``embedding_pgd``) or at the task output (``SegPGD``, ``task_pgd``). ``finetune_step`` is one step
of label-free adversarial finetuning. See docs/encoders.md.
"""

from .attacks import (EmbeddingDistance, SegPGD, TaskLoss, attack_embeddings, embed, embedding_distance,
                      embedding_pgd, segpgd_loss, task_pgd)
from .encoder import Encoder, FeatureShapes, NoSpatialMap, as_encoder, probe
from .finetune import FinetuneConfig, finetune_loss, finetune_step
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
    "EmbeddingDistance", "embedding_distance", "embedding_pgd", "attack_embeddings", "embed",
    "TaskLoss", "task_pgd", "SegPGD", "segpgd_loss",
    "FinetuneConfig", "finetune_loss", "finetune_step",
]
