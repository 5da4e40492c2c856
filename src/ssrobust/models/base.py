"""The backbone surface every model in ssrobust shares.

``forward_features(x) -> [B, D]`` (pooled penultimate features), ``forward_head(f) -> [B, K]``
logits, and ``forward(x) = forward_head(forward_features(x))``. ``forward_feature_map(x)`` gives the
last spatial map ``[B, D, h, w]`` for dense downstream heads. Inputs are always images in [0, 1];
per-channel normalization is the first layer of the model, so attacks and corruptions never need
to know about it.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..registry import Registry

MODELS: Registry = Registry("model")

# Channel statistics of the CIFAR-10 training set, used as the default input normalization.
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    """(x - mean) / std per channel; a layer so that models take [0, 1] images."""

    def __init__(self, mean: Sequence[float] = CIFAR_MEAN, std: Sequence[float] = CIFAR_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


class Backbone(nn.Module):
    """Base class. Subclasses implement ``forward_feature_map`` and set ``num_features``."""

    num_features: int
    num_classes: int

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> [B, num_features] (global average pool of the last map)."""
        return self.forward_feature_map(x).mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """[B, num_features] -> [B, num_classes] logits."""
        return self.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def create_model(name: str, num_classes: int, **kwargs) -> Backbone:
    """Build a registered backbone by name (``wrn``, ``resnet18``, ``tiny``)."""
    return MODELS.build(name, num_classes=num_classes, **kwargs)


def init_weights(module: nn.Module) -> None:
    """He init for convs, unit BN, zero biases (as in the WRN reference implementation)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
