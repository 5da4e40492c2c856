"""The high-frequency view against a numpy FFT reference written here."""

import numpy as np
import pytest
import torch

from ssrobust.contrastive import high_frequency_component, low_frequency_disk


def numpy_hfc(x: np.ndarray, radius: float) -> np.ndarray:
    """Reference: per image and channel, np.fft.fft2 -> fftshift -> zero the pixels whose distance
    to the zero-frequency bin (h // 2, w // 2) is < radius (explicit loops) -> inverse -> real."""
    out = np.empty_like(x, dtype=np.float64)
    h, w = x.shape[-2:]
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            spec = np.fft.fftshift(np.fft.fft2(x[b, c].astype(np.float64)))
            for i in range(h):
                for j in range(w):
                    if np.hypot(i - h // 2, j - w // 2) < radius:
                        spec[i, j] = 0
            out[b, c] = np.real(np.fft.ifft2(np.fft.ifftshift(spec)))
    return out


@pytest.mark.parametrize("shape,radius", [((2, 3, 32, 32), 8.0), ((1, 3, 15, 20), 3.5)])
def test_matches_numpy_reference(shape, radius):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    ref = numpy_hfc(x.numpy(), radius)
    raw = high_frequency_component(x, radius, clip=False)
    np.testing.assert_allclose(raw.numpy(), ref, atol=2e-6)
    clipped = high_frequency_component(x, radius)
    np.testing.assert_allclose(clipped.numpy(), np.clip(ref, 0, 1), atol=2e-6)
    assert raw.min() < 0  # the raw component really has negative values that clipping removes


def test_removes_the_mean_and_keeps_everything_at_radius_zero():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    raw = high_frequency_component(x, 8.0, clip=False)
    torch.testing.assert_close(raw.mean(dim=(-2, -1)), torch.zeros(2, 3), atol=1e-6, rtol=0)
    torch.testing.assert_close(high_frequency_component(x, 0.0, clip=False), x, atol=1e-6, rtol=0)
    smooth = torch.ones(1, 3, 16, 16) * 0.7  # a constant image has no high frequencies
    torch.testing.assert_close(high_frequency_component(smooth, 1.0, clip=False),
                               torch.zeros_like(smooth), atol=1e-6, rtol=0)


def test_disk_and_bad_inputs():
    disk = low_frequency_disk(32, 32, 8)
    # 197 lattice points have i² + j² <= 64; the strict '<' drops (±8, 0) and (0, ±8).
    assert disk[16, 16] and disk[16, 23] and not disk[16, 24] and int(disk.sum()) == 193
    with pytest.raises(ValueError, match="radius must be >= 0"):
        high_frequency_component(torch.rand(1, 3, 8, 8), -1.0)
    with pytest.raises(ValueError, match=r"float images \[B, C, H, W\]"):
        high_frequency_component(torch.rand(3, 8, 8), 2.0)
