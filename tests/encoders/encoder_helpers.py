"""Tiny encoders and scenes for the encoder tests (CPU, seconds). Imported by the tests of this folder."""

from __future__ import annotations

import torch
from torch import nn


def _calibrate(model: nn.Module, size: int, seed: int) -> nn.Module:
    """Set BatchNorm statistics from one batch of random images (a fresh BN would pass raw scales)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(torch.rand(32, 3, size, size, generator=torch.Generator().manual_seed(seed)))
    for bn in bns:
        bn.momentum = 0.1
    return model.eval()


def sequential_encoder(seed: int = 0, width: int = 8, size: int = 16) -> nn.Sequential:
    """A user's classifier as a plain ``nn.Sequential``; layer ``"5"`` is the ``[B, width, H/2, W/2]``
    map before the pooling and the linear classifier."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10),
        )
    return _calibrate(model, size, seed)


class FakeTimmCNN(nn.Module):
    """timm's CNN surface: ``forward_features`` -> unpooled map, ``forward_head`` -> logits."""

    def __init__(self, width: int = 8, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.BatchNorm2d(width), nn.ReLU())
            self.stages = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 1, 1), nn.ReLU())
            self.head = nn.Linear(2 * width, 5)
        _calibrate(self, 16, seed)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, f: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = f.mean(dim=(2, 3))
        return pooled if pre_logits else self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class FakeViT(nn.Module):
    """timm's ViT surface: ``forward_features`` -> tokens ``[B, 1 + N, D]`` (class token first)."""

    def __init__(self, dim: int = 8, patch: int = 4, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.patch_embed = nn.Conv2d(3, dim, patch, patch)
            self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
            self.norm = nn.LayerNorm(dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return self.norm(torch.cat([cls, tokens], dim=1))


def square_scenes(n: int, size: int = 16, seed: int = 0, void_border: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images with a square that is redder (label 0) or greener (label 1) than the background.

    Returns ``(x [n, 3, size, size] in [0, 1], labels [n] (the square's colour),
    masks [n, size, size] (1 = square, 0 = background, 255 = void one-pixel border),
    depth [n, size, size] (0.3 on the square, 0.9 elsewhere, 0 = invalid in the top row))``.
    """
    g = torch.Generator().manual_seed(seed)
    x = 0.4 + 0.1 * torch.rand(n, 3, size, size, generator=g)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    side = size // 2
    corners = torch.randint(0, size - side + 1, (n, 2), generator=g)
    for i, (r, c) in enumerate(corners.tolist()):
        masks[i, r:r + side, c:c + side] = 1
    labels = torch.arange(n) % 2
    x[labels == 0, 0] += 0.3 * masks[labels == 0]
    x[labels == 1, 1] += 0.3 * masks[labels == 1]
    depth = torch.where(masks.bool(), 0.3, 0.9)
    depth[:, 0] = 0.0
    if void_border:
        masks[:, :, 0] = 255
    return x.clamp(0, 1), labels, masks, depth
