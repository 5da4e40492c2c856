"""The high-frequency-component (HFC) view of AdvCL (Fan et al. 2021, Sec. 4).

Per image and channel: 2-D FFT, shift the zero frequency to the centre, zero every coefficient
within distance ``< radius`` of the centre (the low frequencies), shift back, inverse FFT, keep the
real part. AdvCL uses radius 8 on 32×32 CIFAR images.

Centre: the zero-frequency bin after ``fftshift``, ``(H // 2, W // 2)``. The AdvCL code uses
``(H / 2, H / 2)``, which is the same bin for the even, square images it runs on.

Range: without its low frequencies (the mean included) the real part is an image of roughly zero
mean with values of both signs. The AdvCL code feeds that raw real part to its network (whose
input has no normalization). Models of this package take images in [0, 1] and normalize inside,
so by default (``clip=True``) the view is clipped to [0, 1]: the positive half of the high-frequency
detail on black. ``clip=False`` returns the raw real part, exactly as the AdvCL code does.
"""

from __future__ import annotations

import torch


def low_frequency_disk(height: int, width: int, radius: float,
                       device: torch.device | str | None = None) -> torch.Tensor:
    """bool ``[H, W]``: True where the (fftshift-ed) frequency lies strictly within ``radius`` of
    the zero-frequency bin ``(H // 2, W // 2)``."""
    rows = torch.arange(height, device=device, dtype=torch.float64) - height // 2
    cols = torch.arange(width, device=device, dtype=torch.float64) - width // 2
    return (rows[:, None] ** 2 + cols[None, :] ** 2).sqrt() < radius


def high_frequency_component(x: torch.Tensor, radius: float = 8.0, clip: bool = True) -> torch.Tensor:
    """``x [B, C, H, W]`` float -> its high-frequency component, same shape and dtype.

    ``clip=True`` clips to [0, 1] (an image the package's models accept); ``clip=False`` returns
    the raw real part as the AdvCL code does. ``radius = 0`` keeps every frequency.
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"the high-frequency view needs float images [B, C, H, W], got {x.dtype} "
                         f"{tuple(x.shape)}")
    if not radius >= 0:
        raise ValueError(f"high-frequency radius must be >= 0, got {radius!r}")
    h, w = x.shape[-2:]
    keep = ~low_frequency_disk(h, w, radius, x.device)
    spectrum = torch.fft.fftshift(torch.fft.fft2(x), dim=(-2, -1))
    spectrum = spectrum * keep.to(spectrum.dtype)
    out = torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=(-2, -1))).real.to(x.dtype)
    return out.clamp(0.0, 1.0) if clip else out
