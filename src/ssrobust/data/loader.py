"""Device-resident batching: uint8 images live on the device, batches are augmented there.

The permutation and augmentation of epoch ``e`` depend only on ``(seed, e)``, so a resumed run sees
exactly the batches an uninterrupted run would. With ``world_size > 1`` each rank takes its slice
of every global batch (global batch = ``batch_size``). With ``flip="alternating"`` image ``i`` is
mirrored in epoch ``e`` iff ``first[i] xor (e odd)``, ``first`` drawn once from ``seed``; the crops
stay those of the random mode.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..images import unit_float
from ..seeds import epoch_seed
from .augment import apply_crop_flip, sample_crop_flip

FLIP_MODES = ("random", "alternating")


def to_device_uint8(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [N, H, W, 3] array (memmap ok) -> uint8 [N, 3, H, W] tensor on ``device``."""
    # One copy, made by numpy into a new (writable) NCHW array: a read-only memmap cache is never
    # handed to torch, which warns on (and could write through) non-writable arrays.
    return torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2))).to(device)


class DeviceLoader:
    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, device: torch.device,
                 shuffle: bool = True, augment: bool = True, seed: int = 0, drop_last: bool = True,
                 rank: int = 0, world_size: int = 1, extras: dict[str, np.ndarray] | None = None,
                 flip: str = "random", translate: int = 4, pad_mode: str = "zeros") -> None:
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by world size {world_size}")
        if flip not in FLIP_MODES:
            raise ValueError(f"flip {flip!r} is not one of {', '.join(FLIP_MODES)}")
        self.x = to_device_uint8(images, device)
        self.y = torch.as_tensor(np.asarray(labels), dtype=torch.long).to(device)
        self.batch_size, self.device = batch_size, device
        self.shuffle, self.augment, self.seed, self.drop_last = shuffle, augment, seed, drop_last
        self.rank, self.world_size = rank, world_size
        self.translate, self.pad_mode = translate, pad_mode
        self.first_flip = None  # bool [N] on the CPU: alternating flips' choice for epoch 0
        if flip == "alternating":
            g = torch.Generator().manual_seed(epoch_seed(seed, -1))  # not an epoch's stream
            self.first_flip = torch.rand(len(self.y), generator=g) < 0.5
        # Per-sample side information that travels with the batch (e.g. a trusted-label mask).
        self.extras = {k: torch.as_tensor(np.asarray(v)).to(device) for k, v in (extras or {}).items()}
        for k, v in self.extras.items():
            if len(v) != len(self.y):
                raise ValueError(f"loader extra {k!r} has {len(v)} entries for {len(self.y)} images")

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
        """Yield ``(x float [b,3,H,W] in [0,1], y int64 [b], extras {name: [b, ...]})`` for this rank."""
        g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        n = len(self.y)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        local = self.batch_size // self.world_size
        for i in range(len(self)):
            idx = order[i * self.batch_size: (i + 1) * self.batch_size]
            # Every rank samples the whole global batch's augmentation so the stream is identical
            # whatever the world size, then keeps its own slice.
            params = (sample_crop_flip(len(idx), self.translate, g, self.pad_mode)
                      if self.augment else None)
            if params is not None and self.first_flip is not None:
                params.flip = self.first_flip[idx] ^ bool(epoch % 2)
            sl = slice(self.rank * local, (self.rank + 1) * local)
            if self.world_size > 1:
                idx = idx[sl]
            idx = idx.to(self.device)
            x = unit_float(self.x[idx])
            if params is not None:
                if self.world_size > 1:
                    params = type(params)(params.dy[sl], params.dx[sl], params.flip[sl], params.pad,
                                          params.pad_mode)
                x = apply_crop_flip(x, params)
            yield x, self.y[idx], {k: v[idx] for k, v in self.extras.items()}
