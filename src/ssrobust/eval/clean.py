"""The ``clean`` suite: accuracy overall and per class, plus mean loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from ..modes import eval_mode
from .base import SUITES, EvalContext, predict


@SUITES.register("clean")
def clean_accuracy(ctx: EvalContext) -> dict:
    """Returns ``{"accuracy", "loss", "per_class": {name: acc}, "n"}`` (fractions in [0,1])."""
    model = ctx.model
    k = len(ctx.class_names)
    correct = torch.zeros(k, dtype=torch.long)
    total = torch.zeros(k, dtype=torch.long)
    loss_sum = 0.0
    with eval_mode(model):
        for x, y in ctx.batches():
            logits = predict(model, x, ctx.autocast)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            hit = (logits.argmax(1) == y).cpu()
            yc = y.cpu()
            total += torch.bincount(yc, minlength=k)
            correct += torch.bincount(yc[hit], minlength=k)
    n = int(total.sum())
    if n == 0:  # an accuracy of 0.0 on no images would look like a result
        raise ConfigError("clean suite: the test set has no images to evaluate")
    per_class = {name: (float(correct[i]) / float(total[i]) if total[i] else None)
                 for i, name in enumerate(ctx.class_names)}
    return {"accuracy": float(correct.sum()) / max(n, 1), "loss": loss_sum / max(n, 1),
            "per_class": per_class, "n": n}
