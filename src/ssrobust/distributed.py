"""Distributed helpers that also work with no process group (single process).

The one copy of ``rank()``/``world_size()``: the trainer and the contrastive losses both use it."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True when a default process group is initialized."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_from_env(device: torch.device) -> bool:
    """Join the process group ``torchrun`` describes through environment variables (gloo on CPU,
    nccl on CUDA). Returns True when running distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast(t: torch.Tensor, src: int = 0) -> torch.Tensor:
    """``t`` becomes rank ``src``'s ``t`` on every rank (in place); nothing in one process."""
    if is_distributed():
        dist.broadcast(t, src)
    return t


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t

