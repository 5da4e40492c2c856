"""Features of a whole image set from any backbone, e.g. the encoder whose K-means clusters give
AdvCL's pseudo-labels."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..images import unit_float
from ..attacks.base import attack_mode


def _batch_to_float(images: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 ``[b, H, W, 3]`` array (the package's dataset layout) or a ``[b, 3, H, W]`` tensor
    (uint8, or float in [0, 1]) -> float32 ``[b, 3, H, W]`` in [0, 1] on ``device``."""
    if isinstance(images, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    else:
        t = images
    t = t.to(device)
    return unit_float(t)


def _check_images(images: np.ndarray | torch.Tensor) -> None:
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"image arrays must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
    elif images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"image tensors must be [N, 3, H, W], got {tuple(images.shape)}")


def encode_dataset(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 256,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """``model.forward_features`` of every image -> float32 ``[N, D]`` on the CPU.

    ``images``: uint8 ``[N, H, W, 3]`` (e.g. ``ImageArrays.images``, memory maps welcome) or a
    tensor ``[N, 3, H, W]``. Runs in batches of ``batch_size`` on ``device`` (default: the device
    of the model's first parameter), in eval mode and without gradients; the train/eval flag of
    every submodule is restored afterwards.
    """
    _check_images(images)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    chunks = []
    with attack_mode([model], "eval"), torch.no_grad():
        for start in range(0, len(images), batch_size):
            x = _batch_to_float(images[start: start + batch_size], device)
            chunks.append(model.forward_features(x).float().cpu())
    if not chunks:
        return torch.zeros(0, int(getattr(model, "num_features", 0)))
    return torch.cat(chunks)
