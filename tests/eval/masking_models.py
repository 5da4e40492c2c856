"""Tiny models that mask gradients in the three well-known ways, each with its ordinary counterpart
(the same weights without the trick), for the tests of the ``adversarial`` suite's guarantees.

All are the linear classifier ``W (x - 1/2)`` on 3x8x8 images (10 classes) plus one trick:

* ``saturated``: logits multiplied by 10^4, so the softmax is exactly one-hot in float32 and the
  cross-entropy and its gradient are exactly 0 (defensive distillation's failure mode);
* ``quantized``: the input quantizer ``round(4x)/4`` (non-differentiable preprocessing: zero
  gradient almost everywhere);
* ``randomized``: a random term ``a * sum_i V_ki sin(w x_i + phi_ki)`` with fresh phases ``phi`` at
  every forward pass (randomness at inference): the outputs move a little between passes, but the
  gradient of one pass is dominated by the random term (``a w = 10`` against weights of ~0.07).
"""

from __future__ import annotations

import math

import torch
from torch import nn

DIM = 3 * 8 * 8
KINDS = ("saturated", "quantized", "randomized")


class MaskedLinear(nn.Module):
    """``W (x - 1/2)`` with one gradient-masking ``trick`` (``None``: the ordinary model)."""

    def __init__(self, trick: str | None = None, seed: int = 0, amplitude: float = 0.01,
                 frequency: float = 1000.0) -> None:
        super().__init__()
        if trick not in (None, *KINDS):
            raise ValueError(f"unknown trick {trick!r}")
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(10, DIM, generator=g) / DIM ** 0.5)
        self.register_buffer("v", torch.randn(10, DIM, generator=g) / DIM ** 0.5)
        self.trick, self.amplitude, self.frequency = trick, amplitude, frequency

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, 8, 8]`` in [0, 1] -> logits ``[B, 10]``."""
        if self.trick == "quantized":
            x = torch.round(x * 4) / 4
        flat = x.flatten(1)
        z = (flat - 0.5) @ self.weight.T
        if self.trick == "saturated":
            return z * 1e4
        if self.trick == "randomized":
            phase = torch.rand(flat.shape[0], 10, DIM, device=x.device) * (2 * math.pi)
            wave = torch.sin(self.frequency * flat[:, None, :] + phase)
            z = z + self.amplitude * (wave * self.v).sum(-1)
        return z


def labelled_images(model: nn.Module, n: int = 32, seed: int = 0
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``[n, 8, 8, 3]`` random images and labels = the *ordinary* model's predictions with 4
    flipped (so every trick is evaluated on the same labels and clean accuracy is 28/32)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 8, 8, 3), generator=g, dtype=torch.uint8)
    with torch.no_grad():
        labels = model(images.permute(0, 3, 1, 2).float() / 255).argmax(1)
    labels[:4] = (labels[:4] + 1) % 10
    return images, labels
