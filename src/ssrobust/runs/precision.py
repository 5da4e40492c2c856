"""One autocast path for every precision and device.

``fp32``: no autocast. ``bf16``: autocast to bfloat16 (CPU or CUDA). ``fp16``: autocast to float16
with a GradScaler (CUDA only; on CPU fp16 is rejected because CPU fp16 kernels are slow and
unscaled fp16 gradients underflow). ``auto``: bf16 on CUDA devices that support it and on CPUs with
native bf16 matrix units (AMX / AVX512-BF16), otherwise fp32.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (checked through /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return precision


def autocast_context(device: torch.device, precision: str):
    """Autocast for a *resolved* precision (``fp32`` gives a no-op context)."""
    if precision == "fp32" or precision == "auto":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler that is enabled only for fp16 (a disabled one is a transparent no-op)."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16"))


@dataclass(frozen=True)
class Precision:
    """A resolved precision on one device: the one object the loop, the attacks and the suites use
    instead of a string, a resolved string and an autocast lambda.

    ``name`` is ``fp32``, ``bf16`` or ``fp16`` (never ``auto``)."""

    name: str
    device: torch.device

    @classmethod
    def resolve(cls, requested: str, device: torch.device) -> "Precision":
        """``requested`` from ``RunConfig.precision`` (``auto`` allowed) on ``device``."""
        return cls(resolve_precision(requested, device), device)

    def autocast(self) -> ContextManager:
        """A fresh autocast context (a no-op for fp32); callable as an ``AutocastFactory``."""
        return autocast_context(self.device, self.name)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler enabled only for fp16."""
        return make_grad_scaler(self.device, self.name)
