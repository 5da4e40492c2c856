"""Evaluation suites: each turns a trained model into a JSON-safe result record.

A suite is registered under ``SUITES`` and called as ``suite(ctx, **options) -> dict``. The records
of all suites that ran go into ``results.json`` under ``"suites": {name: record}`` (schema in
``docs/results_schema.md``), and the report renders each with the section registered under the same
name in :mod:`ssrobust.report.sections`.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ..images import to_float_images  # noqa: F401  (re-exported: ssrobust.eval.to_float_images)
from ..registry import Registry
from ..runs.precision import autocast_context

SUITES: Registry = Registry("evaluation suite")


@dataclass
class EvalContext:
    """Everything a suite may need. ``images`` are ``[N, H, W, 3]`` (numpy or tensor), uint8 or float
    in [0, 1] (see :func:`to_float_images`)."""

    model: nn.Module
    images: Any
    labels: torch.Tensor
    class_names: list[str]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = 256
    precision: str = "fp32"
    tasks: dict[str, nn.Module] = field(default_factory=dict)
    seed: int = 0
    progress: bool = True
    train_images: Any = None  # some suites (one-class, OOD fitting) need training data
    train_labels: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # read by `ood`: "ood_sets", "held_out_images"

    def batches(self, images: Any | None = None, labels: torch.Tensor | None = None
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x float [b,3,H,W] in [0,1] on device, y)`` over the (given or test) data."""
        images = self.images if images is None else images
        labels = self.labels if labels is None else labels
        for i in range(0, len(labels), self.batch_size):
            x = to_float_images(images[i: i + self.batch_size], self.device)
            yield x, labels[i: i + self.batch_size].to(self.device)

    def autocast(self):
        return autocast_context(self.device, self.precision)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, autocast: Callable = nullcontext) -> torch.Tensor:
    """Logits in float32 for a float batch, in eval mode (mode restored by the caller)."""
    with autocast():
        return model(x).float()
