"""Out-of-distribution image sets: synthetic noise sets, user arrays, and held-out classes.

Every set is uint8 ``[N, H, W, 3]`` (the layout of :class:`ssrobust.eval.EvalContext` images).
The synthetic sets follow Hendrycks et al.'s OOD evaluation code (Outlier Exposure, ICLR 2019, and
ss-ood, NeurIPS 2019), rewritten on the [0, 1] pixel scale and generated from a seed:

* ``gaussian``: i.i.d. ``N(mean, std)`` per pixel and channel, clipped to [0, 1]. Default
  ``mean = 0.5, std = 0.5``, the ss-ood test code. (The Outlier Exposure code draws ``N(0, 0.5)``
  clipped to [-1, 1] on a [-1, 1] scale, i.e. ``std = 0.25`` here; pass ``std=0.25`` for it.)
* ``rademacher``: each value is 0 or 1 with probability 1/2 (the code's ``+-1`` mapped to {0, 1}).
* ``blobs``: Bernoulli(0.7) pixels, Gaussian blur with sigma 1.5 px, then values below 0.75 set to
  0. As in the code (``skimage.filters.gaussian(..., multichannel=False)`` on an ``H x W x 3``
  array) the blur also runs across the 3 channels; borders replicate the edge value (scipy's
  ``"nearest"``) and the kernel is truncated at 4 sigma. ``blur_channels=False`` blurs each
  channel separately. Implemented with separable torch convolutions.

Generation runs in chunks so memory stays bounded for 10,000-image sets, and float images are
quantized to uint8 by rounding (``round(255 x)``).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from ..registry import Registry
from ..seeds import derived_seed

# name -> fn(n, size, generator) -> float [n, H, W, 3] in [0, 1]
SYNTHETIC_OOD: Registry = Registry("synthetic OOD set")

_CHUNK = 1024


@SYNTHETIC_OOD.register("gaussian")
def gaussian_noise(n: int, size: tuple[int, int], generator: torch.Generator,
                   mean: float = 0.5, std: float = 0.5) -> torch.Tensor:
    """``[n, H, W, 3]`` float: ``clip(N(mean, std), 0, 1)``."""
    x = torch.randn(n, size[0], size[1], 3, generator=generator) * std + mean
    return x.clamp_(0.0, 1.0)


@SYNTHETIC_OOD.register("rademacher")
def rademacher_noise(n: int, size: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
    """``[n, H, W, 3]`` float with values in {0, 1}, each with probability 1/2."""
    return torch.randint(0, 2, (n, size[0], size[1], 3), generator=generator).float()


def gaussian_kernel1d(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Normalized 1-D Gaussian of radius ``int(truncate * sigma + 0.5)`` (scipy's convention)."""
    radius = int(truncate * sigma + 0.5)
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).float()


def _blur_last_axis(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Convolve along the last axis of any tensor with edge replication (scipy ``"nearest"``)."""
    shape = x.shape
    flat = x.reshape(-1, 1, shape[-1])
    r = kernel.numel() // 2
    flat = F.pad(flat, (r, r), mode="replicate")
    return F.conv1d(flat, kernel.view(1, 1, -1)).reshape(shape)


def gaussian_blur_hwc(x: torch.Tensor, sigma: float, blur_channels: bool = True) -> torch.Tensor:
    """Separable Gaussian blur of ``[n, H, W, C]`` over H and W (and C if ``blur_channels``)."""
    k = gaussian_kernel1d(sigma).to(x.device)
    axes = (1, 2, 3) if blur_channels else (1, 2)
    for axis in axes:
        x = _blur_last_axis(x.movedim(axis, -1), k).movedim(-1, axis)
    return x


@SYNTHETIC_OOD.register("blobs")
def blobs(n: int, size: tuple[int, int], generator: torch.Generator, p: float = 0.7,
          sigma: float = 1.5, threshold: float = 0.75, blur_channels: bool = True) -> torch.Tensor:
    """``[n, H, W, 3]`` float: blurred Bernoulli(``p``) pixels, values below ``threshold`` zeroed."""
    x = (torch.rand(n, size[0], size[1], 3, generator=generator) < p).float()
    x = gaussian_blur_hwc(x, sigma, blur_channels)
    return torch.where(x < threshold, torch.zeros_like(x), x)


def make_ood_set(name: str, n: int, size: tuple[int, int] = (32, 32), seed: int = 0,
                 **options: Any) -> np.ndarray:
    """Generate ``n`` images of a registered synthetic set as uint8 ``[n, H, W, 3]``.

    The same ``(name, n, size, seed, options)`` always gives the same images (CPU generator).
    """
    fn: Callable[..., torch.Tensor] = SYNTHETIC_OOD.get(name)
    gen = torch.Generator().manual_seed(seed)
    out = np.empty((n, size[0], size[1], 3), dtype=np.uint8)
    for i in range(0, n, _CHUNK):
        m = min(_CHUNK, n - i)
        x = fn(m, size, gen, **options)
        out[i: i + m] = x.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def as_ood_images(images: Any, name: str = "OOD set") -> np.ndarray:
    """Validate a user-given set: uint8 ``[N, H, W, 3]`` (or ``[N, H, W]`` gray, made 3-channel)."""
    arr = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if arr.dtype != np.uint8:
        raise DataError(f"{name}: images must be uint8 in [0, 255], got dtype {arr.dtype}")
    if arr.ndim == 3:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] == 0:
        raise DataError(f"{name}: expected a non-empty [N, H, W, 3] array, got shape {arr.shape}")
    return arr


def split_classes(labels: Any, in_classes: Iterable[int]) -> tuple[Any, Any]:
    """Held-out-classes protocol: ``(in_mask, out_mask)`` over ``labels``.

    Samples whose label is in ``in_classes`` are in-distribution, all others OOD (e.g. one-class
    CIFAR-10: ``in_classes=[c]``, OOD = the other nine classes). Masks are bool tensors for a tensor
    input, bool numpy arrays otherwise.
    """
    classes = sorted({int(c) for c in in_classes})
    if not classes:
        raise ValueError("in_classes is empty")
    if isinstance(labels, torch.Tensor):
        in_mask = torch.isin(labels, torch.tensor(classes, device=labels.device, dtype=labels.dtype))
        return in_mask, ~in_mask
    lab = np.asarray(labels)
    in_mask = np.isin(lab, classes)
    return in_mask, ~in_mask


def default_seed(name: str, base_seed: int) -> int:
    """A per-set seed so different synthetic sets never share a random stream for one base seed."""
    return derived_seed(base_seed, name)
