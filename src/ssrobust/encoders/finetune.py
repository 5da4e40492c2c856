"""Label-free adversarial finetuning of an encoder against a frozen copy of itself.

The layer6 benchmark finetunes encoders with DeACL (Zhang et al. 2022, "Decoupled adversarial
contrastive learning"; the benchmark's ``fine_tune/deacl``): a student starts from the encoder, a
frozen teacher keeps the original weights, and per batch

    x_adv = argmax_{||δ||∞ ≤ ε} d(s(x + δ), t(x))            (PGD in embedding space, student in eval mode)
    L     = d(s(x), t(x)) + w · d(s(x_adv), a),   a = s(x)    (``anchor="student"``, the benchmark)
                                                  a = t(x)    (``anchor="teacher"``)

with ``d = 1 - cos`` (the benchmark's ``-cos``, shifted by the constant 1 so a perfect match is 0) or
the squared ℓ2 distance, and ``w = 2`` (the benchmark's ``trades_k``). The first term keeps the
student's clean embedding on the teacher's; the second keeps the attacked embedding close to the
clean one. With ``anchor="teacher"`` the second term pulls the attacked embedding directly onto the
teacher's clean embedding (the FARE form). Gradients flow through both student terms (no detach), as
in the benchmark. Here: the loss and one training step; the training-strategy wiring comes later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import ConfigError
from .attacks import METRICS, Metric, attack_embeddings, embed, embedding_distance, embedding_pgd
from .encoder import FEATURE_KINDS, Encoder, FeatureKind, module_mode

ANCHORS: tuple[str, ...] = ("student", "teacher")


@dataclass
class FinetuneConfig:
    """Loss weight and metric, and the inner attack (ℓ∞ PGD, the benchmark's 5 steps of 2/255 in 8/255)."""

    weight: float = 2.0
    metric: Metric = "cosine"
    anchor: Literal["student", "teacher"] = "student"
    features: FeatureKind = "pooled"
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 5

    def __post_init__(self) -> None:
        if self.metric not in METRICS or self.anchor not in ANCHORS or self.features not in FEATURE_KINDS:
            raise ConfigError(f"finetune: metric must be one of {', '.join(METRICS)}, anchor one of "
                              f"{', '.join(ANCHORS)}, features one of {', '.join(FEATURE_KINDS)}; got "
                              f"{self.metric!r}, {self.anchor!r}, {self.features!r}")
        if not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ConfigError(f"finetune.weight must be a finite number >= 0, got {self.weight}")


def finetune_loss(student_clean: torch.Tensor, student_adv: torch.Tensor, teacher_clean: torch.Tensor,
                  weight: float = 2.0, metric: Metric = "cosine", anchor: str = "student"
                  ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Embeddings ``[B, ...]`` -> (scalar loss, ``{"clean", "adv"}`` batch means, detached)."""
    if anchor not in ANCHORS:
        raise ConfigError(f"finetune anchor {anchor!r} is not one of {', '.join(ANCHORS)}")
    clean = embedding_distance(student_clean, teacher_clean, metric).mean()
    target = student_clean if anchor == "student" else teacher_clean
    adv = embedding_distance(student_adv, target, metric).mean()
    return clean + weight * adv, {"clean": clean.detach(), "adv": adv.detach()}


def _check_pair(student: Encoder, teacher: Encoder) -> None:
    if student.frozen:
        raise ConfigError("finetune: the student encoder is frozen; wrap it with as_encoder(model, frozen=False)")
    if not teacher.frozen:
        raise ConfigError("finetune: the teacher encoder must be frozen (as_encoder(copy, frozen=True))")
    if any(p is q for p in student.parameters() for q in teacher.parameters()):
        raise ConfigError("finetune: student and teacher share parameters; give the teacher a deep copy")


def finetune_step(student: Encoder, teacher: Encoder, x: torch.Tensor, optimizer: torch.optim.Optimizer,
                  cfg: FinetuneConfig | None = None, generator: torch.Generator | None = None
                  ) -> dict[str, float]:
    """One step on a batch ``x`` ``[B, 3, H, W]`` in [0, 1]: attack the student (eval mode), then
    update it on clean and attacked images together (train mode; flags restored afterwards).
    Returns ``{"loss", "clean", "adv"}``. ``optimizer`` must hold the student's parameters only.
    """
    cfg = cfg or FinetuneConfig()
    _check_pair(student, teacher)
    attack = embedding_pgd(cfg.metric, eps=cfg.eps, step_size=cfg.step_size, steps=cfg.steps,
                           features=cfg.features, reference=teacher)
    x_adv = attack_embeddings(student, x, attack, generator)
    with torch.no_grad():
        teacher_clean = embed(teacher, x, cfg.features)
    with module_mode(student, train=True):
        both = embed(student, torch.cat([x, x_adv]), cfg.features)
    student_clean, student_adv = both.split(x.shape[0])
    loss, parts = finetune_loss(student_clean, student_adv, teacher_clean, cfg.weight, cfg.metric, cfg.anchor)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": float(loss.detach()), "clean": float(parts["clean"]), "adv": float(parts["adv"])}
