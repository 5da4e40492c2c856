"""The pretext-task interface.

A pretext task is an ``nn.Module`` that owns its head. Each training step it

1. ``prepare(x, generator)``: builds, on ``x``'s device, the extra images it needs forwarded
   through the shared trunk (or ``None`` if it only reads the clean features) and its targets;
2. ``loss(features, clean_features, batch)``: returns its scalar loss from the trunk features of
   its own images and of the clean batch.

:func:`forward_with_tasks` concatenates the clean batch with every task's images into **one**
trunk forward, so tasks that share a view share its forward pass (rotation's 0-degree copy is
the clean batch; reconstruction decodes the clean features), and BatchNorm sees one batch.
With ``joint=False`` the clean batch and each task's images get their own forward instead
(BatchNorm batch statistics per view group, as in Kim et al.'s code): the graphs are then
disjoint, so the gradient of one task's loss only traverses that task's views -- which is what
makes per-task gradients (meta weighting) cheap. Only the clean forward updates the BatchNorm
running statistics then: the clean batch is normalised by clean statistics in training, so
evaluation must use running statistics of clean images too (letting the grey, blurred and rotated
views update them as well cost 12 points of accuracy in the CPU-scale Kim study). New tasks
register under ``TASKS`` and need no change to the training loop.

Every task accepts ``fraction`` (issue 18's cheaper self-supervision): the task sees only the
first ``round(fraction * B)`` images of each batch (at least one; batches are already in random
order), so its extra forward costs that share of the batch. :func:`forward_with_tasks` applies it
(the task's ``prepare`` and ``loss`` see the subset); a task that applies it itself (rotation, which
combines it with its own options) sets ``applies_fraction``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry

TASKS: Registry = Registry("pretext task")


class TaskHead(nn.Linear):
    """The linear head of a classification-type pretext task (rotation, jigsaw, ...): a
    :class:`torch.nn.Linear` whose logits are multiplied by ``scale``.

    ``scale`` follows the backbone's own classifier (``Backbone.head_scale``, e.g. fastnet's 1/9;
    1 for the others), set by :meth:`PretextTask.match_backbone`, so an auxiliary head trains at
    the learning rate the recipe chose for the backbone's head. Without it, fastnet's fast recipe
    (lr 1.5) made the rotation loss diverge within a few steps. ``scale`` is a plain attribute, not
    a buffer: state dicts are those of ``nn.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.scale = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out if self.scale == 1.0 else out * self.scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:g}"


@dataclass
class TaskBatch:
    """What ``prepare`` returns: images to forward (``[n, 3, H, W]`` in [0,1], or None) and targets."""

    inputs: torch.Tensor | None
    targets: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class PretextTask(nn.Module):
    """Base class of self-supervised auxiliary tasks. Subclasses set ``name`` and implement both hooks."""

    name: ClassVar[str] = "task"
    # The OOD scores (names in ssrobust.ood.OOD_SCORES) this task's head makes possible: for
    # multi-class OOD detection, and for one-class anomaly detection.
    ood_scores: ClassVar[tuple[str, ...]] = ()
    one_class_scores: ClassVar[tuple[str, ...]] = ()
    # What its head gives those scores (``ssrobust.ood.scores.NEEDS_*``).
    provides: ClassVar[frozenset[str]] = frozenset()
    # True if ``prepare``/``per_sample_loss`` apply ``fraction`` themselves (else forward_with_tasks does).
    applies_fraction: ClassVar[bool] = False

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.fraction = 1.0

    def set_fraction(self, fraction: float) -> None:
        """Share of each batch the task sees, in (0, 1] (a ConfigError naming the task otherwise)."""
        self.fraction = check_fraction(self.name, fraction)

    def subset_size(self, batch: int) -> int:
        """How many images of a batch of ``batch`` the task sees (at least one)."""
        return batch if self.fraction == 1.0 else max(1, round(self.fraction * batch))

    def match_backbone(self, backbone: nn.Module) -> None:
        """Scale every :class:`TaskHead` of this task like the backbone's classifier
        (``backbone.head_scale``, 1 when it has none)."""
        scale = float(getattr(backbone, "head_scale", 1.0))
        if not (scale > 0 and scale == scale and scale != float("inf")):
            raise ValueError(f"backbone head_scale must be a finite number > 0, got {scale}")
        for m in self.modules():
            if isinstance(m, TaskHead):
                m.scale = scale

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        raise NotImplementedError

    def loss(self, features: torch.Tensor | None, clean_features: torch.Tensor,
             batch: TaskBatch) -> torch.Tensor:
        raise NotImplementedError

    def per_sample_loss(self, features: torch.Tensor | None, clean_features: torch.Tensor,
                        batch: TaskBatch) -> torch.Tensor:
        """``[B]``: each clean image's own loss (the mean over its views, pixels and heads), so that
        ``per_sample_loss(...).mean()`` equals :meth:`loss`. Attack objectives need it: a sample's
        value must not depend on the other samples of the batch (PGD restarts, SPSA's best iterate)."""
        raise NotImplementedError(f"pretext task {self.name!r} has no per-sample loss")


def mean_per_image(values: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``[k * B, ...]`` per-view values, view-major (row ``j * B + i`` belongs to image ``i``, as every
    task stacks its views) -> ``[B]``: the mean over each image's views and remaining dimensions."""
    return values.reshape(values.shape[0] // batch_size, batch_size, -1).mean(dim=(0, 2))


def check_fraction(task: str, fraction: Any) -> float:
    """``fraction`` as a float in (0, 1]; a ConfigError naming the task otherwise."""
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 < value <= 1.0:  # also refuses nan
        raise ConfigError(f"{task}: fraction must lie in (0, 1], got {fraction!r}")
    return value


def build_task(name: str, num_features: int, **options: Any) -> PretextTask:
    """Instantiate a registered task; unknown options raise a TypeError naming the task.
    ``fraction`` (share of the batch the task sees) is accepted by every :class:`PretextTask`."""
    cls = TASKS.get(name)
    own = isinstance(cls, type) and issubclass(cls, PretextTask) and not cls.applies_fraction
    fraction = options.pop("fraction", 1.0) if own else 1.0
    task = TASKS.build(name, num_features=num_features, **options)
    if own:
        task.set_fraction(fraction)
    return task


def _rows(task: Any, batch: int) -> int:
    """How many of the batch's images ``task`` sees when forward_with_tasks applies its fraction."""
    if isinstance(task, PretextTask) and not task.applies_fraction:
        return task.subset_size(batch)
    return batch


def _pad_per_sample(values: torch.Tensor, batch: int) -> torch.Tensor:
    """``[m]`` per-image losses of the first m images -> ``[batch]``: 0 for the others and the
    subset scaled by ``batch / m``, so the mean still equals the task's loss on its subset."""
    m = values.shape[0]
    if m == batch:
        return values
    return torch.cat([values * (batch / m), values.new_zeros(batch - m)])


def declared_scores(tasks: Mapping[str, nn.Module] | Sequence[str], kind: str = "ood_scores") -> list[str]:
    """The scores the tasks declare (``kind``: ``ood_scores`` or ``one_class_scores``), task by task
    in the given order. ``tasks`` maps names to modules, or is a list of task names; a module that
    is not a :class:`PretextTask` (e.g. a user's own head) counts as the registered task of its name."""
    out: list[str] = []
    for name in tasks:
        module = tasks[name] if isinstance(tasks, Mapping) else None
        cls = type(module) if isinstance(module, PretextTask) else (TASKS.get(name) if name in TASKS else None)
        out += [s for s in getattr(cls, kind, ()) if s not in out]
    return out


def forward_with_tasks(model: nn.Module, x: torch.Tensor, tasks: dict[str, PretextTask],
                       generator: torch.Generator | None = None, joint: bool = True,
                       per_sample: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Trunk forward of the clean batch and all task views, then every task's loss.

    Args:
        model: a backbone with ``forward_features``.
        x: clean (or adversarial) batch ``[B, 3, H, W]`` in [0, 1].
        tasks: name -> task.
        joint: True: one concatenated forward (BatchNorm sees all views together). False: one
            forward for the clean batch and one per task with images (disjoint graphs; only the
            clean forward updates BatchNorm running statistics).
        per_sample: return each task's :meth:`~PretextTask.per_sample_loss` ``[B]`` instead of
            its scalar loss (with ``fraction < 1``: 0 outside the task's subset, the subset scaled
            by B/m, so the mean is the scalar loss).
    Returns:
        ``(clean_features [B, D], {task name: scalar loss, or [B] with per_sample})``.
    """
    rows = {name: _rows(task, x.shape[0]) for name, task in tasks.items()}
    batches = {name: task.prepare(x if rows[name] == x.shape[0] else x[:rows[name]], generator)
               for name, task in tasks.items()}
    views = [b.inputs for b in batches.values() if b.inputs is not None]
    if joint:
        feats = model.forward_features(torch.cat([x, *views]) if views else x)
        sizes = [x.shape[0]] + [v.shape[0] for v in views]
        clean, *view_feats = feats.split(sizes)
    else:
        clean = model.forward_features(x)
        with frozen_running_stats(model):
            view_feats = [model.forward_features(v) for v in views]
    losses: dict[str, torch.Tensor] = {}
    it = iter(view_feats)
    for name, task in tasks.items():
        b = batches[name]
        loss_fn = task.per_sample_loss if per_sample else task.loss
        own = clean if rows[name] == x.shape[0] else clean[:rows[name]]
        value = loss_fn(next(it) if b.inputs is not None else None, own, b)
        losses[name] = _pad_per_sample(value, x.shape[0]) if per_sample else value
    return clean, losses


@contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside leave every normalization layer's running statistics (and batch
    counter) as they were; train-mode layers still normalise with the batch's own statistics.

    The layers update throw-away copies, and the original buffer tensors are put back afterwards
    (no in-place write on them, which autograd may have saved for the backward pass)."""
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats:
            originals = {n: b for n, b in m.named_buffers(recurse=False) if b is not None}
            saved.append((m, originals))
            for n, b in originals.items():
                setattr(m, n, b.clone())
    try:
        yield
    finally:
        for m, originals in saved:
            for n, b in originals.items():
                setattr(m, n, b)
