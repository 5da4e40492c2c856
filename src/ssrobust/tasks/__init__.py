"""Self-supervised pretext tasks, selected by name through ``TASKS``."""

from . import (  # noqa: F401  (registration)
    colorization, deblurring, inpainting, jigsaw, reconstruction, rgb_permutation, rotation,
    rotation_translation, translation)
from .base import TASKS, PretextTask, TaskBatch, TaskHead, build_task, forward_with_tasks
from .objectives import CrossEntropyPlusTasks, SelfSupervisedLoss
from .rotation import RotationPrediction, rotate_batch

__all__ = ["TASKS", "PretextTask", "TaskBatch", "TaskHead", "build_task", "forward_with_tasks",
           "RotationPrediction", "rotate_batch", "CrossEntropyPlusTasks", "SelfSupervisedLoss"]
