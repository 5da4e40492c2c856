"""SimCLR views: shapes, range, replay from a seed, and each operation on its own."""

import math

import pytest
import torch

from ssrobust.contrastive import SimCLRViewConfig, apply_simclr_view, sample_simclr_view, simclr_view
from ssrobust.errors import ConfigError

OFF = dict(flip_p=0.0, jitter_p=0.0, grayscale_p=0.0)


def images(b=6, h=16, w=16, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_shape_range_and_determinism_for_a_seed():
    x = images()
    a = simclr_view(x, torch.Generator().manual_seed(7))
    b = simclr_view(x, torch.Generator().manual_seed(7))
    c = simclr_view(x, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_parameters_replay_exactly():
    x = images()
    p = sample_simclr_view(6, (16, 16), torch.Generator().manual_seed(3))
    assert torch.equal(apply_simclr_view(x, p), apply_simclr_view(x, p))
    g = torch.Generator().manual_seed(3)
    assert torch.equal(simclr_view(x, g), apply_simclr_view(x, p))


def test_crop_boxes_follow_scale_and_ratio():
    b, h, w = 500, 32, 32
    p = sample_simclr_view(b, (h, w), torch.Generator().manual_seed(0))
    x0, y0 = p.boxes[:, 0, 0], p.boxes[:, 0, 1]
    x1, y1 = p.boxes[:, 2, 0], p.boxes[:, 2, 1]
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= w - 1).all() and (y1 <= h - 1).all()
    cw, ch = x1 - x0 + 1, y1 - y0 + 1
    area = cw * ch / (h * w)
    # Rounding the side lengths moves area and ratio a little off the sampled values.
    assert area.min() >= 0.2 * 0.8 and area.max() <= 1.0
    ratio = cw / ch
    assert ratio.min() >= 0.75 * 0.85 and ratio.max() <= (4 / 3) / 0.85
    assert area.std() > 0.15  # spread over the range, not one box


def test_full_crop_without_other_operations_is_the_identity():
    x = images()
    cfg = SimCLRViewConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), **OFF)
    out = simclr_view(x, torch.Generator().manual_seed(0), cfg)
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)


def test_flip_and_grayscale_alone():
    x = images()
    flip = SimCLRViewConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), **dict(OFF, flip_p=1.0))
    torch.testing.assert_close(simclr_view(x, torch.Generator().manual_seed(0), flip), x.flip(-1),
                               atol=1e-5, rtol=0)
    gray = SimCLRViewConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), **dict(OFF, grayscale_p=1.0))
    out = simclr_view(x, torch.Generator().manual_seed(0), gray)
    lum = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    for ch in range(3):
        torch.testing.assert_close(out[:, ch], lum, atol=1e-5, rtol=0)


def test_jitter_brightness_alone_scales_pixels():
    x = images() * 0.5  # no clipping at factors up to 1.4
    cfg = SimCLRViewConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), contrast=0.0, saturation=0.0, hue=0.0,
                           **dict(OFF, jitter_p=1.0))
    p = sample_simclr_view(6, (16, 16), torch.Generator().manual_seed(1), cfg)
    out = apply_simclr_view(x, p)
    b = p.factors[:, 0].view(-1, 1, 1, 1)
    assert (p.factors[:, 0] >= 0.6).all() and (p.factors[:, 0] <= 1.4).all()
    torch.testing.assert_close(out, x * b, atol=1e-5, rtol=0)


def test_probabilities_are_about_right_on_a_large_batch():
    p = sample_simclr_view(4000, (8, 8), torch.Generator().manual_seed(2))
    assert p.flip.float().mean().item() == pytest.approx(0.5, abs=0.03)
    assert p.jitter.float().mean().item() == pytest.approx(0.8, abs=0.03)
    assert p.gray.float().mean().item() == pytest.approx(0.2, abs=0.03)
    hue = p.factors[:, 3]
    assert hue.min() >= -0.1 and hue.max() <= 0.1 and sorted(p.order.tolist()) == [0, 1, 2, 3]


def test_bad_config_and_inputs():
    with pytest.raises(ConfigError, match=r"view scale \(0.0, 1.0\): expected 0 < min <= max <= 1"):
        SimCLRViewConfig(scale=(0.0, 1.0))
    with pytest.raises(ConfigError, match="view jitter_p 1.5: expected a probability"):
        SimCLRViewConfig(jitter_p=1.5)
    p = sample_simclr_view(2, (16, 16), torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="for 2 images applied to a batch of 6"):
        apply_simclr_view(images(), p)
    with pytest.raises(ValueError, match=r"float RGB images \[B, 3, H, W\]"):
        apply_simclr_view(images()[:, :1], p)
    assert math.isclose(SimCLRViewConfig().ratio[1], 4 / 3)
