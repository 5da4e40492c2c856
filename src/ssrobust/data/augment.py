"""Batched on-device augmentation: random translation (pad-``pad`` crop, default 4) and horizontal flip.

Random parameters are sampled apart from applying them (``sample_crop_flip`` / ``apply_crop_flip``)
so a batch's augmentation can be replayed exactly; sampling uses a CPU ``torch.Generator`` so the
same seed gives the same augmentation on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class CropFlipParams:
    dy: torch.Tensor    # int64 [B], top offset into the padded image, 0..2*pad
    dx: torch.Tensor    # int64 [B]
    flip: torch.Tensor  # bool [B]
    pad: int
    pad_mode: str = "zeros"  # "zeros" | "reflect": what the crop sees beyond the border


PAD_MODES = ("zeros", "reflect")


def sample_crop_flip(batch: int, pad: int = 4, generator: torch.Generator | None = None,
                     pad_mode: str = "zeros") -> CropFlipParams:
    """Offsets in ``0..2*pad`` and flips for ``batch`` images (``pad=0``: flips only)."""
    if pad < 0 or pad_mode not in PAD_MODES:
        raise ValueError(f"crop pad must be >= 0 and pad_mode one of {', '.join(PAD_MODES)}, got {pad}, {pad_mode!r}")
    dy = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (batch,), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    return CropFlipParams(dy, dx, flip, pad, pad_mode)


def apply_crop_flip(x: torch.Tensor, p: CropFlipParams) -> torch.Tensor:
    """``x`` [B, C, H, W] -> padded (zeros or reflection) random crops of the same size, some
    flipped left-right."""
    b, c, h, w = x.shape
    dev = x.device
    mode = "reflect" if p.pad_mode == "reflect" else "constant"
    xp = F.pad(x, (p.pad, p.pad, p.pad, p.pad), mode=mode) if p.pad else x
    rows = (p.dy.to(dev)[:, None] + torch.arange(h, device=dev)[None, :])  # [B, H]
    cols = (p.dx.to(dev)[:, None] + torch.arange(w, device=dev)[None, :])  # [B, W]
    cols = torch.where(p.flip.to(dev)[:, None], cols.flip(1), cols)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
