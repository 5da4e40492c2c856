"""SimCLR views, batched on the device with kornia, sampled apart from applied so they replay.

One view of each image: random resized crop (area scale 0.2–1, aspect ratio 3/4–4/3, resized back
to the input size), horizontal flip (p .5), colour jitter (brightness, contrast, saturation .4,
hue .1) with p .8, grayscale with p .2 — the augmentation of SimCLR (Chen et al. 2020) that AdvCL
uses for its two contrastive views. AdvCL's third, "original" view (the one attacked) is the pad-4
crop + flip of :mod:`ssrobust.data.augment`.

As everywhere in the package, :func:`sample_simclr_view` draws every random number from a
``torch.Generator`` (on its device, CPU by default), always the same number of draws for a batch
size, and :func:`apply_simclr_view` is deterministic given those parameters: the same generator
state gives the same views on any device.

Differences from torchvision's per-image pipeline: the four jitter operations are applied in one
random order per batch (as ``kornia.augmentation.ColorJitter`` does), not one order per image;
crops are resampled bilinearly (kornia ``crop_and_resize``, corners aligned) without antialiasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from kornia.color import rgb_to_grayscale
from kornia.enhance import (adjust_brightness_accumulative, adjust_contrast_with_mean_subtraction,
                            adjust_hue, adjust_saturation_with_gray_subtraction)
from kornia.geometry.transform import crop_and_resize

from ..errors import ConfigError

_CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop tries 10 boxes before its central fallback


@dataclass(frozen=True)
class SimCLRViewConfig:
    """Parameters of the SimCLR augmentation (defaults: Chen et al. 2020 / AdvCL for CIFAR)."""

    scale: tuple[float, float] = (0.2, 1.0)      # crop area as a fraction of the image
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio w / h
    flip_p: float = 0.5
    brightness: float = 0.4                      # factor in [1 - b, 1 + b]
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1                             # shift in [-h, h] turns, h <= 0.5
    jitter_p: float = 0.8
    grayscale_p: float = 0.2

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"view scale {self.scale}: expected 0 < min <= max <= 1")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ConfigError(f"view ratio {self.ratio}: expected 0 < min <= max")
        for name in ("flip_p", "jitter_p", "grayscale_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"view {name} {getattr(self, name)!r}: expected a probability in [0, 1]")
        for name in ("brightness", "contrast", "saturation"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"view {name} {getattr(self, name)!r}: expected a number >= 0")
        if not 0 <= self.hue <= 0.5:
            raise ConfigError(f"view hue {self.hue!r}: expected a number in [0, 0.5]")


@dataclass
class SimCLRViewParams:
    """Everything random about one batch of views (tensors on the generator's device)."""

    boxes: torch.Tensor    # float32 [B, 4, 2]: crop corners (x, y), inclusive pixel positions, clockwise
    flip: torch.Tensor     # bool [B]
    jitter: torch.Tensor   # bool [B]: colour jitter applied
    factors: torch.Tensor  # float32 [B, 4]: brightness, contrast, saturation factors; hue shift (turns)
    order: torch.Tensor    # int64 [4]: order of the jitter operations (0 b, 1 c, 2 s, 3 h), per batch
    gray: torch.Tensor     # bool [B]
    size: tuple[int, int]  # output (H, W)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator | None, dev: torch.device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=dev)


def _sample_boxes(b: int, h: int, w: int, cfg: SimCLRViewConfig, gen: torch.Generator | None,
                  dev: torch.device) -> torch.Tensor:
    """torchvision's RandomResizedCrop box sampling, vectorized: up to 10 attempts per image (the
    first that fits wins), else the largest central crop with an allowed aspect ratio."""
    area = _uniform(b * _CROP_ATTEMPTS, *cfg.scale, gen, dev) * (h * w)
    log_r = _uniform(b * _CROP_ATTEMPTS, math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), gen, dev)
    u_top, u_left = torch.rand(2, b * _CROP_ATTEMPTS, generator=gen, device=dev)
    cw = torch.sqrt(area * log_r.exp()).round().view(b, -1)
    ch = torch.sqrt(area / log_r.exp()).round().view(b, -1)
    fits = (cw >= 1) & (cw <= w) & (ch >= 1) & (ch <= h)
    first = torch.where(fits.any(1), fits.float().argmax(1), 0)[:, None]  # first attempt that fits
    cw, ch = cw.gather(1, first).squeeze(1), ch.gather(1, first).squeeze(1)
    top = (u_top.view(b, -1).gather(1, first).squeeze(1) * (h - ch + 1)).floor().clamp(max=h - ch)
    left = (u_left.view(b, -1).gather(1, first).squeeze(1) * (w - cw + 1)).floor().clamp(max=w - cw)
    # Central fallback (whole image, trimmed to the allowed aspect range).
    fw, fh = float(w), float(h)
    if w / h < cfg.ratio[0]:
        fh = float(round(w / cfg.ratio[0]))
    elif w / h > cfg.ratio[1]:
        fw = float(round(h * cfg.ratio[1]))
    ok = fits.any(1)
    cw, ch = torch.where(ok, cw, fw), torch.where(ok, ch, fh)
    left = torch.where(ok, left, float((w - fw) // 2))
    top = torch.where(ok, top, float((h - fh) // 2))
    x0, y0, x1, y1 = left, top, left + cw - 1, top + ch - 1
    return torch.stack([torch.stack([x0, y0], 1), torch.stack([x1, y0], 1),
                        torch.stack([x1, y1], 1), torch.stack([x0, y1], 1)], dim=1)


def sample_simclr_view(batch: int, size: tuple[int, int], generator: torch.Generator | None = None,
                       cfg: SimCLRViewConfig = SimCLRViewConfig()) -> SimCLRViewParams:
    """Draw the parameters of ``batch`` views of ``size = (H, W)`` images from ``generator``."""
    h, w = int(size[0]), int(size[1])
    dev = generator.device if generator is not None else torch.device("cpu")
    boxes = _sample_boxes(batch, h, w, cfg, generator, dev)
    flip = torch.rand(batch, generator=generator, device=dev) < cfg.flip_p
    jitter = torch.rand(batch, generator=generator, device=dev) < cfg.jitter_p
    factors = torch.stack([
        _uniform(batch, max(0.0, 1 - cfg.brightness), 1 + cfg.brightness, generator, dev),
        _uniform(batch, max(0.0, 1 - cfg.contrast), 1 + cfg.contrast, generator, dev),
        _uniform(batch, max(0.0, 1 - cfg.saturation), 1 + cfg.saturation, generator, dev),
        _uniform(batch, -cfg.hue, cfg.hue, generator, dev)], dim=1)
    order = torch.randperm(4, generator=generator, device=dev)
    gray = torch.rand(batch, generator=generator, device=dev) < cfg.grayscale_p
    return SimCLRViewParams(boxes, flip, jitter, factors, order, gray, (h, w))


def _jitter(x: torch.Tensor, factors: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    ops = (adjust_brightness_accumulative, adjust_contrast_with_mean_subtraction,
           adjust_saturation_with_gray_subtraction,
           lambda img, f: adjust_hue(img, f * (2 * math.pi)))  # kornia's hue is in radians
    for i in order.tolist():
        x = ops[i](x, factors[:, i])
    return x


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.to(a.device).view(-1, 1, 1, 1), a, b)


def apply_simclr_view(x: torch.Tensor, p: SimCLRViewParams) -> torch.Tensor:
    """``x [B, 3, H, W]`` float in [0, 1] on any device -> the views ``[B, 3, *p.size]`` in [0, 1]."""
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(f"SimCLR views need float RGB images [B, 3, H, W], got {x.dtype} {tuple(x.shape)}")
    if x.shape[0] != p.flip.shape[0]:
        raise ValueError(f"view parameters for {p.flip.shape[0]} images applied to a batch of {x.shape[0]}")
    dev = x.device
    out = crop_and_resize(x, p.boxes.to(dev, x.dtype), p.size, mode="bilinear", align_corners=True)
    out = _where(p.flip, out.flip(-1), out)
    jittered = _jitter(out, p.factors.to(dev, x.dtype), p.order)
    out = _where(p.jitter, jittered, out)
    out = _where(p.gray, rgb_to_grayscale(out).expand_as(out), out)
    return out.clamp(0.0, 1.0)


def simclr_view(x: torch.Tensor, generator: torch.Generator | None = None,
                cfg: SimCLRViewConfig = SimCLRViewConfig()) -> torch.Tensor:
    """Sample and apply one SimCLR view of each image of ``x [B, 3, H, W]`` (same size out)."""
    return apply_simclr_view(x, sample_simclr_view(x.shape[0], x.shape[-2:], generator, cfg))
