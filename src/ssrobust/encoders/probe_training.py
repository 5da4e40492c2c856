"""Training and scoring a head on a frozen encoder, on in-memory tensors.

The encoder's features are computed once, without gradients and in eval mode (the encoder is frozen,
so they cannot change), then only the head's parameters are optimized for a few epochs. No
augmentation: this is the linear-probe protocol, and it keeps a CPU probe to seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Literal

import torch
from torch import nn

from ..errors import ConfigError
from .encoder import Encoder, FeatureKind, eval_mode, module_mode
from .heads import TaskModel

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")


@dataclass
class HeadTrainConfig:
    """``epochs`` passes over the data in shuffled batches of ``batch_size`` (seeded by ``seed``);
    ``optimizer`` ``"adam"`` or ``"sgd"`` (with ``momentum``) at learning rate ``lr``."""

    epochs: int = 10
    batch_size: int = 64
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"head optimizer {self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"head training needs epochs >= 1 and batch_size >= 1, got "
                              f"{self.epochs}, {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)) or self.weight_decay < 0:
            raise ConfigError(f"head training needs lr > 0 and weight_decay >= 0, got {self.lr}, "
                              f"{self.weight_decay}")


def check_batch(x: torch.Tensor, y: torch.Tensor) -> None:
    """Float images ``[N, 3, H, W]`` in [0, 1] and one target per image."""
    if not x.is_floating_point() or x.dim() != 4:
        raise ValueError(f"expected float images [N, 3, H, W] in [0, 1], got {x.dtype} {tuple(x.shape)}")
    if x.numel() == 0 or y.dim() < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"{x.shape[0]} images but targets of shape {tuple(y.shape)}")
    if bool(x.min() < 0) or bool(x.max() > 1):
        raise ValueError("images must lie in [0, 1] (normalization belongs inside the encoder)")


def encode(encoder: Encoder, x: torch.Tensor, kind: FeatureKind, batch_size: int = 256) -> torch.Tensor:
    """Features of every image (``pooled`` ``[N, D]`` or ``spatial`` ``[N, C, h, w]``), no gradients."""
    with torch.no_grad(), eval_mode(encoder):
        return torch.cat([encoder.features(xb, kind) for xb in x.split(batch_size)])


def _optimizer(params: Iterable[nn.Parameter], cfg: HeadTrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def train_head(encoder: Encoder, head: nn.Module, x: torch.Tensor, y: torch.Tensor,
               cfg: HeadTrainConfig | None = None) -> list[float]:
    """Fit ``head`` on ``encoder``'s features of ``x`` against targets ``y``; returns the mean training
    loss of each epoch. Only ``head.parameters()`` are optimized; the encoder is only read.

    ``x``: float ``[N, 3, H, W]`` in [0, 1]; ``y``: class ids ``[N]``, masks ``[N, H, W]`` (void
    ignored) or depth ``[N, H, W]`` (invalid pixels ignored), as the head expects.
    """
    cfg = cfg or HeadTrainConfig()
    check_batch(x, y)
    feats = encode(encoder, x, head.feature, cfg.batch_size)
    opt = _optimizer(head.parameters(), cfg)
    gen = torch.Generator().manual_seed(cfg.seed)
    image_size = (int(x.shape[-2]), int(x.shape[-1]))
    history: list[float] = []
    with module_mode(head, train=True):
        for _ in range(cfg.epochs):
            total = 0.0
            for idx in torch.randperm(len(x), generator=gen).split(cfg.batch_size):
                idx = idx.to(x.device)
                loss = head.loss(head(feats[idx], image_size), y[idx]).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            history.append(total / len(x))
    return history


def evaluate_head(encoder: Encoder, head: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  batch_size: int = 256) -> dict[str, object]:
    """The head's metrics on images ``x`` (clean or attacked) and targets ``y``, in eval mode:
    ``{"accuracy"}``, ``{"miou", "pixel_accuracy", "per_class_iou"}`` or ``{"rmse", "absrel", "delta1"}``."""
    check_batch(x, y)
    model, meter = TaskModel(encoder, head), head.meter()
    with torch.no_grad(), eval_mode(model):
        for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
            meter.update(head.predict(model(xb)), yb)
    return meter.compute()
