"""The one uint8 -> float conversion of images: 0..255 become float32 in [0, 1].

Every loader, suite, attack wrapper and corruption writer converts through these two functions,
so "divide by 255" has one definition (and one place to change, e.g. for 16-bit images)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255, any shape and device) -> a new float32 tensor in [0, 1]; float input is
    taken as already in [0, 1] and returned as float32 (a copy only if the dtype changes)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def to_float_images(batch: Any, device: torch.device) -> torch.Tensor:
    """uint8 ``[b, H, W, 3]`` (0..255) or float ``[b, H, W, 3]`` (already in [0, 1]), numpy or tensor
    -> a new float32 ``[b, 3, H, W]`` in [0, 1] on ``device``."""
    if isinstance(batch, np.ndarray) and not batch.flags.writeable:  # e.g. the read-only image cache
        batch = np.array(batch)  # torch warns on (and may write through) non-writable arrays
    t = torch.as_tensor(batch)
    x = t.to(device).permute(0, 3, 1, 2).to(torch.float32, copy=True)  # never aliases the caller's data
    return x if t.is_floating_point() else x.div_(255.0)
