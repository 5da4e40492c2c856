"""Outlier Exposure for one-class transformation prediction (Hendrycks et al. 2019, §4.2).

Strategy ``one_class_oe``: the ``ss_only`` loss (the classifier term is zero; the pretext tasks
train through the run's weighting) plus ``weight * L_OE`` as the step's main loss, where ``L_OE``
is :func:`~ssrobust.tasks.rotation_translation.oe_uniform_loss`: the cross-entropy from the uniform
distribution of the transformation heads on *outlier* images given the same transformations as
the in-distribution images ("we applied the aforementioned geometric transformations to the
outlier images so that the in-distribution data and the outliers are as similar as possible").

Each step draws ``batch_size`` outlier images with replacement from a device-resident uint8 copy
of the outlier set, applies the training batch's random crop + flip (``augment``), and lets the
task build its views with its own ``prepare`` (same ``mode``, same step generator). The outlier
views join the in-distribution batch and its task views in **one** trunk forward, so BatchNorm
normalizes both with one set of batch statistics, like the Outlier Exposure code that
concatenates in- and out-distribution batches. ``weight`` defaults to that code's 0.5.

The outlier set (an :class:`~ssrobust.data.image_sets.ImageSetConfig`; default split ``train``) is
loaded at the first step and must have the training images' size. The joint forward uses the
unwrapped network, so this strategy trains in one process (a DDP-wrapped network raises).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import nn

from ..data.augment import apply_crop_flip, sample_crop_flip
from ..errors import ConfigError
from ..images import unit_float
from ..tasks.base import PretextTask, TaskBatch, forward_with_tasks
from ..tasks.rotation_translation import oe_uniform_loss
from .strategies import STRATEGIES, StepOutput, Strategy, no_classifier_loss

_OE_KEY = "__outlier_exposure__"


class _OutlierViews:
    """Stands in as one more "task" of :func:`forward_with_tasks`, after the run's tasks (so their
    random draws are those of ``ss_only``): it samples the outliers, its images are their
    transformed views (sharing the trunk forward) and its loss is the uniform-target term."""

    def __init__(self, task: PretextTask,
                 sample: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]) -> None:
        self.task, self.sample = task, sample

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        return self.task.prepare(self.sample(x, generator), generator)

    def loss(self, features: torch.Tensor | None, clean_features: torch.Tensor,
             batch: TaskBatch) -> torch.Tensor:
        assert features is not None
        return oe_uniform_loss(*self.task.logits(features))


@STRATEGIES.register("one_class_oe")
class OneClassOutlierExposure(Strategy):
    """Pretext tasks + ``weight`` * uniform targets on transformed outliers (classifier loss 0).

    Args:
        outliers: the outlier set, an ``ImageSetConfig`` mapping, e.g. ``{source: cifar100, root:
            data/cifar-100-python}`` or ``{source: path, root: outliers.npy}`` (split defaults to
            ``train``). Hendrycks et al. use 80 Million Tiny Images without CIFAR images.
        weight: λ of the OE term (>= 0). With 0 the outliers are neither loaded nor forwarded and
            the step is exactly ``ss_only``'s.
        batch_size: outlier images per step (default: the training batch size).
        task: the run's task whose heads get the OE term; it must provide ``logits(features)``
            returning the head logits (``rotation_translation`` does).
        augment: random crop (pad 4) + horizontal flip of the outliers, as for the training batch.
    """

    def __init__(self, outliers: Mapping[str, Any] | None = None, weight: float = 0.5,
                 batch_size: int | None = None, task: str = "rotation_translation",
                 augment: bool = True) -> None:
        from ..data.image_sets import image_set_config

        if outliers is None:
            raise ConfigError("strategy one_class_oe needs options.outliers, e.g. {source: cifar100, "
                              "root: data/cifar-100-python} or {source: path, root: outliers.npy}")
        where = "strategy.options.outliers"
        self.outliers = image_set_config({"split": "train", **outliers}
                                         if isinstance(outliers, Mapping) else outliers, where)
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"one_class_oe: weight must be a finite number >= 0, got {weight!r}")
        if batch_size is not None and batch_size < 1:
            raise ConfigError(f"one_class_oe: batch_size must be >= 1, got {batch_size}")
        self.weight, self.batch_size, self.task, self.augment = float(weight), batch_size, task, augment
        self._images: torch.Tensor | None = None  # uint8 [N, 3, H, W] on the training device

    def outlier_images(self, like: torch.Tensor) -> torch.Tensor:
        """The outlier set as uint8 ``[N, 3, H, W]`` on ``like``'s device (loaded once)."""
        if self._images is None or self._images.device != like.device:
            from ..data.loader import to_device_uint8
            from ..data.image_sets import load_image_set

            size = (int(like.shape[2]), int(like.shape[3]))
            images = load_image_set(self.outliers, size, "one_class_oe outliers")
            self._images = to_device_uint8(images, like.device)
        return self._images

    def sample(self, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``[b, 3, H, W]`` float outliers in [0, 1]. Indices and crop/flip come from a CPU
        generator seeded by one draw of the step generator, so a step (and a resumed run) is
        reproducible while the outlier set stays on the device."""
        images = self.outlier_images(like)
        dev = generator.device if generator is not None else like.device
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=dev))
        g = torch.Generator().manual_seed(seed)
        b = self.batch_size or like.shape[0]
        idx = torch.randint(0, images.shape[0], (b,), generator=g).to(images.device)
        x = unit_float(images[idx])
        return apply_crop_flip(x, sample_crop_flip(b, generator=g)) if self.augment else x

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None,
                 extras: dict[str, torch.Tensor] | None = None) -> StepOutput:
        if self.weight == 0.0:  # exactly ss_only: nothing to add
            logits, main, aux = net(x, y, generator, main_loss=no_classifier_loss)
        else:
            logits, main, aux = self._joint_forward(net, x, y, generator)
        if not aux:
            raise ConfigError("strategy one_class_oe needs at least one pretext task in tasks")
        return StepOutput(logits, main, aux)

    def _joint_forward(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                       generator: torch.Generator | None
                       ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(net, nn.parallel.DistributedDataParallel):
            raise ConfigError("strategy one_class_oe trains in one process (its joint in/outlier "
                              "forward does not go through DDP); run without torchrun")
        core = self.unwrap(net)
        tasks = dict(core.tasks.items())
        if self.task not in tasks:
            raise ConfigError(f"one_class_oe: task {self.task!r} is not among the run's tasks "
                              f"({', '.join(tasks) or 'none'})")
        tasks[_OE_KEY] = _OutlierViews(tasks[self.task], self.sample)
        feats, losses = forward_with_tasks(core.model, x, tasks, generator,  # type: ignore[arg-type]
                                           joint=core.joint_views)
        logits = core.model.forward_head(feats).float()
        oe = losses.pop(_OE_KEY).float()
        main = no_classifier_loss(logits, y) + self.weight * oe
        return logits, main, {k: v.float() for k, v in losses.items()}
