"""The corruption interface: random parameters are *sampled* apart from a deterministic *apply*.

A corruption is registered in ``CORRUPTIONS`` as a :class:`Corruption` with two functions:

- ``sample_fn(shape, p, generator, dtype) -> params``: every random draw the corruption needs for a
  batch of ``shape = (B, 3, H, W)``, as a dict of tensors on the generator's device (``None`` for
  the deterministic corruptions);
- ``apply_fn(x, p, params) -> x'``: the corruption of ``x (B,3,H,W)`` in [0,1], deterministic given
  ``params``.

``p`` is the severity's entry of the parameter table (:mod:`.params`). Replaying ``apply`` with the
same params reproduces the output exactly; ``corrupt`` = ``sample`` + ``apply``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

from ..errors import ConfigError
from ..images import unit_float
from ..registry import Registry
from .params import resolve_param_set, severity_params

Params = dict[str, torch.Tensor]

BENCHMARK: tuple[str, ...] = (
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
)
"""The 15 benchmark corruptions in the official order (noise, blur, weather, digital)."""
VALIDATION: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
"""The 4 held-out corruptions meant for validation."""
NAMES: tuple[str, ...] = BENCHMARK + VALIDATION
SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
SampleFn = Callable[[tuple[int, int, int, int], Any, "torch.Generator | None", torch.dtype], Params]
ApplyFn = Callable[[torch.Tensor, Any, Params], torch.Tensor]


@dataclass(frozen=True)
class Corruption:
    name: str
    family: str  # noise | blur | weather | digital
    apply_fn: ApplyFn
    sample_fn: SampleFn | None = None

    @property
    def random(self) -> bool:
        return self.sample_fn is not None


CORRUPTIONS: Registry = Registry("corruption")


def register(name: str, family: str, sample: SampleFn | None = None) -> Callable[[ApplyFn], ApplyFn]:
    """Decorator for an apply function: ``@register("fog", "weather", sample=_sample_fog)``."""

    def deco(apply_fn: ApplyFn) -> ApplyFn:
        CORRUPTIONS.register(name)(Corruption(name, family, apply_fn, sample))
        return apply_fn

    return deco


# ----------------------------------------------------------------------------- random draws
def gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def rand(generator: torch.Generator | None, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard uniforms on [0, 1) on the generator's device."""
    return torch.rand(shape, generator=generator, device=gen_device(generator), dtype=dtype)


def randn(generator: torch.Generator | None, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=gen_device(generator), dtype=dtype)


def randint(generator: torch.Generator | None, low: int, high: int, *shape: int) -> torch.Tensor:
    """Integers in ``[low, high)`` (like ``np.random.randint``)."""
    return torch.randint(low, high, shape, generator=generator, device=gen_device(generator))


def uniform(generator: torch.Generator | None, low: float, high: float, *shape: int,
            dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return low + (high - low) * rand(generator, *shape, dtype=dtype)


# ----------------------------------------------------------------------------- per-image loops
_POOL: dict[int, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def for_each_image(fn: Callable[[int], None], n: int) -> None:
    """Run ``fn(i)`` for ``i < n`` in contiguous chunks on ``torch.get_num_threads()`` threads.

    For the few steps that are per image by nature (Pillow's JPEG codec, seeded Poisson draws);
    both release the GIL, so the threads use the cores that batched torch ops would use."""
    workers = min(torch.get_num_threads(), n)
    if workers <= 1 or n < 16:
        for i in range(n):
            fn(i)
        return
    with _POOL_LOCK:
        pool = _POOL.get(workers)
        if pool is None:
            pool = _POOL[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ssrobust-c")
    bounds = [n * k // workers for k in range(workers + 1)]

    def run(k: int) -> None:
        for i in range(bounds[k], bounds[k + 1]):
            fn(i)

    for future in [pool.submit(run, k) for k in range(workers)]:
        future.result()


# ----------------------------------------------------------------------------- public API
def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"corruptions take float tensors of shape (B, 3, H, W); got {shape}")
    if not x.is_floating_point():
        raise ConfigError(f"corruptions take float images in [0, 1]; got dtype {x.dtype} "
                          "(divide uint8 images by 255)")


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def sample(name: str, x_shape: tuple[int, ...] | torch.Size, severity: int,
           generator: torch.Generator | None = None, device: torch.device | str | None = None,
           param_set: str = "auto", dtype: torch.dtype = torch.float32) -> Params:
    """Draw the random parameters of corruption ``name`` for a batch of shape ``(B, 3, H, W)``.

    Draws happen on the generator's device (CPU if none) so a seed gives the same corruption on any
    device; the params are then moved to ``device``. Deterministic corruptions return ``{}``.
    """
    c = CORRUPTIONS.get(name)
    shape = tuple(int(s) for s in x_shape)
    if len(shape) != 4 or shape[1] != 3:
        raise ConfigError(f"x_shape must be (B, 3, H, W); got {shape}")
    p = severity_params(name, severity, resolve_param_set(shape[2], param_set))
    if c.sample_fn is None:
        return {}
    params = c.sample_fn(shape, p, generator, _work_dtype(dtype))
    if device is not None:
        params = {k: v.to(device) for k, v in params.items()}
    return params


def apply(name: str, x: torch.Tensor, severity: int, params: Params | None = None,
          param_set: str = "auto") -> torch.Tensor:
    """Apply corruption ``name`` at ``severity`` to ``x (B,3,H,W)`` in [0,1] with sampled ``params``.

    Returns a tensor like ``x`` (same shape, device, dtype), clamped to [0, 1].
    """
    c = CORRUPTIONS.get(name)
    _check_batch(x)
    p = severity_params(name, severity, resolve_param_set(x.shape[2], param_set))
    if c.random and not params:
        raise ConfigError(f"corruption {name!r} is random: pass the params returned by sample()")
    params = {k: v.to(x.device) for k, v in (params or {}).items()}
    work = _work_dtype(x.dtype)
    y = c.apply_fn(x.to(work), p, params)
    return y.clamp_(0.0, 1.0).to(x.dtype)


def corrupt(x: torch.Tensor, name: str, severity: int, generator: torch.Generator | None = None,
            param_set: str = "auto") -> torch.Tensor:
    """Corrupt a batch ``x (B,3,H,W)`` in [0,1]: ``apply(sample(...))``. Reproducible given the
    generator's state; batched on ``x``'s device."""
    _check_batch(x)
    params = sample(name, x.shape, severity, generator, device=x.device, param_set=param_set,
                    dtype=x.dtype)
    return apply(name, x, severity, params, param_set=param_set)


def to_uint8_like_official(x: torch.Tensor) -> torch.Tensor:
    """Float images in [0,1] -> uint8 by *truncation*, ``np.uint8(x * 255)``, as the official
    generator stores its outputs (the published -C sets are truncated, not rounded, so e.g. a
    constant image darkens by 0.5/255 on average). Same shape as ``x``."""
    return torch.floor(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8)


def block_generator(seed: int, name: str, severity: int, block: int) -> torch.Generator:
    """A CPU generator for block ``block`` of images of one (corruption, severity) pass, seeded by a
    hash of all four, so any corruption, severity or block can be regenerated on its own."""
    digest = hashlib.sha256(f"{int(seed)}/{name}/{int(severity)}/{int(block)}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def corrupt_mixture(images: torch.Tensor, names: Sequence[str], severities: Sequence[int],
                    seed: int) -> torch.Tensor:
    """Each image of a uint8 ``[N, 3, H, W]`` batch through one corruption and severity drawn
    uniformly from ``names`` x ``severities`` (seeded by ``seed``; the same call gives the same
    images on any device). Returns uint8 like the official -C files (truncated)."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 \
            or images.shape[1] != 3:
        what = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images)
        raise ConfigError(f"corrupt_mixture expects uint8 images of shape (N, 3, H, W), got {what}")
    for name in names:
        CORRUPTIONS.get(name)  # unknown names raise, listing the known ones
    bad = [s for s in severities if s not in SEVERITIES]
    if not names or not severities or bad:
        raise ConfigError(f"corrupt_mixture needs corruption names and severities in 1..5; got "
                          f"{list(names)} and {list(severities)}")
    g = torch.Generator().manual_seed(int(seed))
    n = images.shape[0]
    which = torch.randint(len(names), (n,), generator=g)
    level = torch.tensor(list(severities))[torch.randint(len(severities), (n,), generator=g)]
    out = images.clone()
    for i, name in enumerate(names):
        for sev in dict.fromkeys(severities):
            idx = torch.nonzero((which == i) & (level == sev)).flatten().to(images.device)
            if idx.numel():
                x = unit_float(images[idx])
                y = corrupt(x, name, sev, generator=block_generator(seed, name, sev, 0))
                out[idx] = to_uint8_like_official(y)
    return out
