"""One autocast path for every precision and device.

``fp32``: no autocast. ``bf16``: autocast to bfloat16 (CPU or CUDA). ``fp16``: autocast to float16
with a GradScaler (CUDA only; on CPU fp16 is rejected because CPU fp16 kernels are slow and
unscaled fp16 gradients underflow). ``auto``: bf16 on CUDA devices that support it and on CPUs with
AMX tile units (``amx_bf16``), otherwise fp32.

Why AMX only: the AVX512-BF16 dot-product instructions alone do not make bf16 training faster. On a
2-core AMD EPYC Zen 4 (``avx512_bf16``, no AMX), 2026-12-01, a fastnet training step ran at 242 img/s
in bf16 against 260 in fp32 (batch 1024; 583 vs 601 at width 128, batch 256), while an AMX machine
ran bf16 about 6x faster than fp32 (``benchmarks/results/time_to_accuracy_probe_zen4.json``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ContextManager

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags named on the ``flags`` lines of a ``/proc/cpuinfo`` text."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            flags.update(value.split())
    return flags


def _read_cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_summary(cpuinfo: str | None = None) -> dict[str, str | bool]:
    """What a timing depends on, for the record next to every figure: the CPU's model name,
    family/model numbers, its widest SIMD (``avx512``, ``avx2``, ``avx`` or ``other``) and whether
    it has AVX512-BF16 and AMX. Fields are empty where ``/proc/cpuinfo`` is missing (not Linux)."""
    text = _read_cpuinfo() if cpuinfo is None else cpuinfo
    first: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in first:
            first[key.strip()] = value.strip()
    flags = cpu_flags(text)
    simd = next((name for name, flag in (("avx512", "avx512f"), ("avx2", "avx2"), ("avx", "avx"))
                 if flag in flags), "other")
    return {"model_name": first.get("model name", ""), "family": first.get("cpu family", ""),
            "model": first.get("model", ""), "simd": simd if flags else "",
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags}


def cpu_has_fast_bf16(cpuinfo: str | None = None) -> bool:
    """True when this CPU has AMX bf16 tile units (``amx_bf16`` among the ``/proc/cpuinfo`` flags).

    ``cpuinfo`` is the text to read instead of ``/proc/cpuinfo`` (tests). ``avx512_bf16`` alone does
    not count: measured slower than fp32 for training (module docstring)."""
    return "amx_bf16" in cpu_flags(_read_cpuinfo() if cpuinfo is None else cpuinfo)


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
