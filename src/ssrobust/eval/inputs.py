"""Validation of the images, labels and model handed to :func:`~ssrobust.eval.evaluate.evaluate_model`.

The suites read images as ``[N, H, W, 3]`` batches: uint8 in 0..255 (divided by 255 on the device)
or float in [0, 1] (used as given). Anything else is a one-line :class:`DataError` (bad data) or
:class:`ConfigError` (bad argument) that says what was expected.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..modes import eval_mode
from .base import to_float_images

LAYOUTS = ("auto", "NHWC", "NCHW")
_EXPECTED = "expected a batch [N, H, W, 3] or [N, 3, H, W] of RGB images"


def _channel_axis(shape: tuple[int, ...], layout: str) -> int:
    """3 for NHWC, 1 for NCHW; errors for a single image, grayscale or an unknown layout."""
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if len(shape) == 3:
        what = "a single image" if 3 in (shape[0], shape[-1]) else "grayscale images [N, H, W]"
        raise DataError(f"images: got shape {shape}, which looks like {what}; {_EXPECTED} "
                        f"(use images[None] for one image, repeat a gray channel 3 times)")
    if len(shape) != 4:
        raise DataError(f"images: got shape {shape}; {_EXPECTED}")
    if layout != "auto":
        axis = 3 if layout == "NHWC" else 1
        if shape[axis] != 3:
            raise DataError(f"images: layout {layout} needs 3 channels on axis {axis}, got shape {shape}")
        return axis
    if 1 in (shape[1], shape[3]) and 3 not in (shape[1], shape[3]):
        raise DataError(f"images: got shape {shape}, which looks like grayscale (1 channel); {_EXPECTED}")
    if shape[1] == 3 and shape[3] == 3:
        raise DataError(f"images: shape {shape} is ambiguous (3 on axes 1 and 3); pass layout='NHWC' or 'NCHW'")
    if 3 not in (shape[1], shape[3]):
        raise DataError(f"images: got shape {shape}; {_EXPECTED}")
    return 3 if shape[3] == 3 else 1


def _check_values(images: np.ndarray | torch.Tensor) -> None:
    """uint8 is always valid; floats must be finite and lie in [0, 1]; other dtypes are errors."""
    is_tensor = isinstance(images, torch.Tensor)
    if images.dtype == (torch.uint8 if is_tensor else np.uint8):
        return
    floating = images.is_floating_point() if is_tensor else np.issubdtype(images.dtype, np.floating)
    if not floating:
        raise DataError(f"images: dtype {images.dtype} is not supported; expected uint8 (0..255) or float "
                        f"in [0, 1]")
    if is_tensor:
        lo, hi = float(images.detach().min()), float(images.detach().max())
    else:
        lo, hi = float(images.min()), float(images.max())  # min/max propagate NaN
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise DataError(f"images: float images contain NaN or inf (min {lo}, max {hi}); expected values in [0, 1]")
    if lo < 0.0 or hi > 1.0:
        raise DataError(f"images: float images must lie in [0, 1], found values in [{lo:g}, {hi:g}]; "
                        f"pass uint8 images for 0..255 data")


def as_eval_images(images: Any, layout: str = "auto") -> np.ndarray | torch.Tensor:
    """Validated ``[N, H, W, 3]`` view of ``images`` (numpy array, tensor or nested sequence).

    NCHW input is permuted, not copied. Raises :class:`DataError` for a single image, grayscale, an
    empty batch, a dtype other than uint8/float, or float values outside [0, 1] (NaN, inf).
    """
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        images = np.asarray(images)
    axis = _channel_axis(tuple(int(s) for s in images.shape), layout)
    if images.shape[0] == 0:
        raise DataError("images: the batch is empty (N = 0)")
    _check_values(images)
    if axis == 1:
        images = images.permute(0, 2, 3, 1) if isinstance(images, torch.Tensor) else images.transpose(0, 2, 3, 1)
    return images


def as_eval_labels(labels: Any, n: int) -> torch.Tensor:
    """int64 ``[n]`` tensor of class ids >= 0; floats, a wrong length or negative ids are errors."""
    t = labels.detach().cpu() if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise DataError(f"labels: must be integer class ids, got {t.dtype}")
    if t.ndim != 1 or len(t) != n:
        raise DataError(f"labels: expected shape [{n}] (one per image), got {tuple(t.shape)}")
    if int(t.min()) < 0:
        raise DataError(f"labels: class ids must be >= 0, found {int(t.min())}")
    return t.long()


@torch.no_grad()
def count_outputs(model: nn.Module, images: Any, device: torch.device) -> int:
    """Number of logits the model returns for one image (run in eval mode; the mode is restored)."""
    with eval_mode(model):
        out = model(to_float_images(images[:1], device))
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DataError(f"model: expected logits of shape [B, num_classes] for a [B, 3, H, W] batch, got {got}")
    return int(out.shape[1])


def resolve_classes(labels: torch.Tensor, outputs: int, class_names: Sequence[str] | None,
                    allow_extra_outputs: bool) -> list[str]:
    """The class names, checked against the labels and the model's number of outputs.

    Without ``class_names`` the classes are the model's outputs ``0..outputs-1``. A model with
    fewer outputs than classes is an error; more outputs only with ``allow_extra_outputs``.
    """
    names = [str(i) for i in range(outputs)] if class_names is None else list(class_names)
    if len(names) > outputs:
        raise DataError(f"model has {outputs} outputs, fewer than the {len(names)} classes of class_names")
    if len(names) < outputs and not allow_extra_outputs:
        raise DataError(f"model has {outputs} outputs but class_names lists {len(names)} classes; pass "
                        f"allow_extra_outputs=True if the extra outputs are intended (they count as errors)")
    top = int(labels.max())
    if top >= len(names):
        what = f"{len(names)} classes of class_names" if class_names is not None else f"{outputs} model outputs"
        raise DataError(f"labels: found class id {top}, out of range for the {what} (expected 0..{len(names) - 1})")
    return names
