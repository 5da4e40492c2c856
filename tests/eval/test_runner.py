"""``evaluate_model``: uint8 and float images score alike, and bad input is a one-line DataError."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ssrobust import evaluate_model
from ssrobust.errors import ConfigError, DataError


class BrightestChannel(nn.Module):
    """Logit c = 10 relu(mean of channel c - 0.45) (+ zero logits for ``extra`` outputs): it relies on
    the absolute scale, so images divided by 255 once too often all get class 0 (chance accuracy).
    Asserts its input is what the README promises: float [B, 3, H, W] in [0, 1]."""

    def __init__(self, extra: int = 0) -> None:
        super().__init__()
        self.extra = extra

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.float32 and x.shape[1] == 3 and 0 <= float(x.min()) and float(x.max()) <= 1
        return x.mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        logits = torch.relu(features - 0.45) * 10
        return torch.cat([logits, torch.zeros(len(features), self.extra)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def toy(n: int = 30, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """uint8 NHWC images whose label is the brightest channel: its mean is about 140/255 = 0.55, the
    others' about 100/255 = 0.39."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    x = rng.integers(60, 140, size=(n, size, size, 3))
    x[np.arange(n), :, :, y] += 40
    return x.astype(np.uint8), y


def _acc(images, labels, **kw) -> float:
    rec = evaluate_model(BrightestChannel(kw.pop("extra", 0)), images, labels, progress=False, **kw)
    return rec["clean"]["accuracy"]


def test_float_images_in_unit_range_score_like_uint8():
    x, y = toy()
    assert _acc(x, y) == 1.0
    xf = x.astype(np.float32) / 255
    assert _acc(xf, y) == 1.0
    assert _acc(torch.from_numpy(xf), torch.from_numpy(y)) == 1.0
    assert _acc(xf.astype(np.float64), y.tolist()) == 1.0


def test_nchw_images_numpy_and_tensor():
    x, y = toy()
    nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    assert _acc(nchw, y) == 1.0
    assert _acc(torch.from_numpy(nchw).float() / 255, y) == 1.0
    assert _acc(torch.from_numpy(nchw), y, layout="NCHW") == 1.0


def test_float_input_is_not_modified():
    x, y = toy()
    xf = torch.from_numpy(x.astype(np.float32) / 255)
    before = xf.clone()
    evaluate_model(BrightestChannel(), xf, y, suites=["clean", "corruptions"], progress=False,
                   options={"corruptions": {"names": ["contrast"], "severities": [5]}})
    assert torch.equal(xf, before)


def test_default_class_names_follow_the_model_outputs():
    x, y = toy()
    rec = evaluate_model(BrightestChannel(), x[y < 2], y[y < 2], progress=False)["clean"]
    assert list(rec["per_class"]) == ["0", "1", "2"] and rec["per_class"]["2"] is None


@pytest.mark.parametrize("images, labels, kw, message", [
    (lambda x: x.astype(np.float32), None, {}, r"float images must lie in \[0, 1\], found values in \[60, 179\]"),
    (lambda x: np.where(x == x.max(), np.nan, x / 255).astype(np.float32), None, {}, "contain NaN or inf"),
    (lambda x: torch.from_numpy(x / 255).index_fill_(0, torch.tensor([3]), float("inf")), None, {},
     "contain NaN or inf"),
    (lambda x: -torch.from_numpy(x / 255), None, {}, r"must lie in \[0, 1\], found values in \[-0\.7"),
    (lambda x: x.astype(np.int64), None, {}, r"dtype int64 is not supported; expected uint8 \(0..255\) or float"),
    (lambda x: x[0], None, {}, r"shape \(8, 8, 3\), which looks like a single image; .*images\[None\]"),
    (lambda x: x[..., 0], None, {}, r"shape \(30, 8, 8\), which looks like grayscale images"),
    (lambda x: x[..., :1], None, {}, r"shape \(30, 8, 8, 1\), which looks like grayscale \(1 channel\)"),
    (lambda x: x[..., :2], None, {}, r"got shape \(30, 8, 8, 2\); expected a batch \[N, H, W, 3\] or \[N, 3, H, W\]"),
    (lambda x: x[:0], lambda y: y[:0], {}, r"the batch is empty"),
    (lambda x: x[:, :3, :3], None, {}, r"ambiguous .*layout='NHWC' or 'NCHW'"),
    (lambda x: x, lambda y: y.astype(np.float32), {}, r"labels: must be integer class ids, got torch.float32"),
    (lambda x: x, lambda y: y[:-1], {}, r"labels: expected shape \[30\] \(one per image\), got \(29,\)"),
    (lambda x: x, lambda y: y - 1, {}, r"class ids must be >= 0, found -1"),
    (lambda x: x, lambda y: y + 1, {}, r"found class id 3, out of range for the 3 model outputs \(expected 0..2\)"),
    (lambda x: x, None, {"class_names": list("abcd")}, r"model has 3 outputs, fewer than the 4 classes"),
    (lambda x: x, lambda y: y + 2, {"extra": 2, "class_names": list("abc"), "allow_extra_outputs": True},
     r"found class id 4, out of range for the 3 classes of class_names \(expected 0..2\)"),
    (lambda x: x, None, {"extra": 2, "class_names": list("abc")},
     r"model has 5 outputs but class_names lists 3 classes; pass allow_extra_outputs=True"),
])
def test_bad_input_is_a_clear_error(images, labels, kw, message):
    x, y = toy()
    with pytest.raises(DataError, match=message) as err:
        _acc(images(x), y if labels is None else labels(y), **kw)
    assert "\n" not in str(err.value)


def test_extra_outputs_when_said():
    x, y = toy()
    assert _acc(x, y, extra=2, class_names=list("rgb"), allow_extra_outputs=True) == 1.0
    with pytest.raises(ConfigError, match="layout must be one of auto, NHWC, NCHW"):
        _acc(x, y, layout="HWC")


def test_every_suite_sees_the_same_images_for_uint8_and_float_input():
    x, y = toy()
    options = {"corruptions": {"names": ["contrast", "gaussian_noise"], "severities": [3]},
               "ood": {"scores": ["msp"], "ood_sets": ["gaussian"]}}

    def run(images):
        rec = evaluate_model(BrightestChannel(), images, y, suites=["corruptions", "ood"], options=options,
                             progress=False)
        return rec["corruptions"]["accuracy"], rec["ood"]["scores"]["msp"]["per_set"]

    a = run(x)
    assert a == run(x.astype(np.float32) / 255)
    assert a[0]["contrast"]["3"] > 0.5  # a real score, not chance
