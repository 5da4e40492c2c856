"""Label-free adversarial finetuning of an encoder as a training strategy (``encoder_finetune``).

A run with this strategy and ``init_from: <run directory>`` starts from that run's backbone (the
student) and keeps a frozen copy of it (the teacher). Per batch (no labels used):

    x_adv = argmax_{||δ||∞ ≤ ε} d(s(x + δ), t(x))
    L     = d(s(x), t(x)) + w · d(s(x_adv), a),   a = s(x) (anchor "student") or t(x)

the loss of :func:`ssrobust.encoders.finetune_loss` (DeACL, as the layer6 benchmark finetunes).
The teacher is the backbone as it was at the first step (the ``init_from`` weights); it is saved
in the checkpoint, so a resumed run keeps the same teacher. The run's classifier is not trained
(it is not part of the loss); its training accuracy is logged as it is. The result is an ordinary
run directory whose ``model.pt`` holds the finetuned encoder, for ``ssrobust encoders``.

Single process only (the student is called outside DDP), and no pretext tasks.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..encoders import Encoder, FinetuneConfig, as_encoder, attack_embeddings, embed, embedding_pgd, finetune_loss
from ..errors import ConfigError
from ..images import unit_float
from ..typedconfig import check_number
from .strategies import STRATEGIES, StepOutput, Strategy


@STRATEGIES.register("encoder_finetune")
class EncoderFinetune(Strategy):
    """Options as :class:`~ssrobust.encoders.FinetuneConfig`: ``weight`` (2), ``metric``
    (``cosine``/``l2``), ``anchor`` (``student``/``teacher``), ``features`` (``pooled``/``spatial``),
    and the inner attack's ``eps`` (8/255), ``step_size`` (2/255), ``steps`` (5)."""

    def __init__(self, weight: float = 2.0, metric: str = "cosine", anchor: str = "student",
                 features: str = "pooled", eps: float = 8 / 255, step_size: float = 2 / 255,
                 steps: int = 5) -> None:
        check_number("strategy.options.eps", eps, 0.0, 1.0)
        check_number("strategy.options.step_size", step_size, low=0.0)
        check_number("strategy.options.steps", steps, low=0)
        self.cfg = FinetuneConfig(weight=weight, metric=metric, anchor=anchor,  # type: ignore[arg-type]
                                  features=features, eps=eps, step_size=step_size, steps=int(steps))
        self._teacher: Encoder | None = None
        self._pending: dict[str, torch.Tensor] | None = None

    def _teacher_of(self, model: nn.Module) -> Encoder:
        """The frozen teacher: a copy of the backbone at the first step (or the checkpoint's)."""
        if self._teacher is None:
            twin = copy.deepcopy(model)
            if self._pending is not None:
                twin.load_state_dict(self._pending, strict=True)
                self._pending = None
            self._teacher = as_encoder(twin)
        return self._teacher

    def __call__(self, net, x, y, generator, extras=None) -> StepOutput:
        if hasattr(net, "module"):
            raise ConfigError("strategy encoder_finetune runs in a single process (no DDP)")
        if len(net.tasks):
            raise ConfigError(f"strategy encoder_finetune trains no pretext tasks; set tasks: [] "
                              f"(got {', '.join(net.tasks)})")
        model, cfg = net.model, self.cfg
        teacher, student = self._teacher_of(model), as_encoder(model, frozen=False)
        x = unit_float(x)
        attack = embedding_pgd(cfg.metric, eps=cfg.eps, step_size=cfg.step_size, steps=cfg.steps,
                               features=cfg.features, reference=teacher)
        x_adv = attack_embeddings(student, x, attack, generator)
        with torch.no_grad():
            teacher_clean = embed(teacher, x, cfg.features)
        both = embed(student, torch.cat([x, x_adv]), cfg.features)  # the loop keeps net in train mode
        student_clean, student_adv = both.split(x.shape[0])
        loss, parts = finetune_loss(student_clean, student_adv, teacher_clean, cfg.weight, cfg.metric,
                                    cfg.anchor)
        with torch.no_grad():
            pooled = student_clean if cfg.features == "pooled" else student_clean.mean(dim=(2, 3))
            logits = model.forward_head(pooled).float()
        return StepOutput(logits, loss, {}, inputs=x_adv)

    def state_dict(self) -> dict[str, Any]:
        """The teacher's weights (so a resumed run finetunes against the same teacher)."""
        if self._teacher is None:
            return {"teacher": self._pending} if self._pending is not None else {}
        return {"teacher": self._teacher.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("teacher") is not None:
            self._pending, self._teacher = state["teacher"], None
