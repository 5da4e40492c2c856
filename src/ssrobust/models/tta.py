"""Test-time augmentation as a model: a weighted mean over fixed flipped and translated views.

:class:`TestTimeAugmentation` wraps a backbone and is itself a deterministic, differentiable
classifier of [0, 1] images, so an evaluation suite treats it as any model: clean accuracy and
attacks see the same function (an attack differentiates through every view, so the robust numbers
of a TTA model are those of the averaged prediction, not of a single view).

Modes (``eval.tta``):

* ``none``: the model itself (no wrapper is built);
* ``flip``: mean of the image and its left-right mirror;
* ``flip_translate``: the two mirrors, each unshifted (weight 1/4) and shifted one pixel
  up-left and one pixel down-right with reflected borders (weight 1/8 each), as in airbench's
  strongest test-time augmentation (Jordan 2024).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

TTA_MODES = ("none", "flip", "flip_translate")


class View(NamedTuple):
    flip: bool    # mirror left-right
    shift: int    # translate by this many pixels down and right (negative: up and left)
    weight: float


def tta_views(mode: str) -> tuple[View, ...]:
    """The views of ``mode`` and their weights (which sum to 1)."""
    if mode == "flip":
        return View(False, 0, 0.5), View(True, 0, 0.5)
    if mode == "flip_translate":
        return tuple(View(f, s, 0.25 if s == 0 else 0.125) for f in (False, True) for s in (0, -1, 1))
    raise ValueError(f"test-time augmentation {mode!r} is not one of {', '.join(TTA_MODES[1:])}")


def apply_view(x: torch.Tensor, view: View) -> torch.Tensor:
    """``x`` ``[B, C, H, W]`` -> the view, same shape (shifted content, reflected border)."""
    if view.flip:
        x = x.flip(-1)
    s = view.shift
    if s:
        h, w = x.shape[-2:]
        p = abs(s)
        padded = F.pad(x, (p, p, p, p), mode="reflect")
        x = padded[..., p - s: p - s + h, p - s: p - s + w]
    return x


class TestTimeAugmentation(nn.Module):
    """``model`` evaluated on the views of ``mode``: ``forward`` is the weighted mean of the views'
    logits ``[B, K]``; ``forward_features`` the weighted mean of their features ``[B, D]`` (equal
    to the logits' mean through ``forward_head`` because every registered head is affine)."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self, model: nn.Module, mode: str) -> None:
        super().__init__()
        self.model = model
        self.mode = mode
        self.views = tta_views(mode)

    @property
    def num_features(self) -> int:
        return self.model.num_features

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def _mean(self, fn, x: torch.Tensor) -> torch.Tensor:
        out = None
        for v in self.views:
            y = v.weight * fn(apply_view(x, v))
            out = y if out is None else out + y
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._mean(self.model, x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._mean(self.model.forward_features, x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(features)


def with_tta(model: nn.Module, mode: str) -> nn.Module:
    """``model`` itself for ``none``, else wrapped in :class:`TestTimeAugmentation`."""
    return model if mode == "none" else TestTimeAugmentation(model, mode)
