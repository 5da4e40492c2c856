"""Synthetic OOD sets (distributional properties, scipy reference blur), user arrays, class split."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssrobust.errors import DataError
from ssrobust.data.ood_sets import (SYNTHETIC_OOD, as_ood_images, blobs, default_seed,
                                   gaussian_blur_hwc, make_ood_set, split_classes)


@pytest.mark.parametrize("name", ["gaussian", "rademacher", "blobs"])
def test_shape_dtype_and_seeding(name: str) -> None:
    a = make_ood_set(name, 5, (12, 10), seed=3)
    assert a.shape == (5, 12, 10, 3) and a.dtype == np.uint8
    assert np.array_equal(a, make_ood_set(name, 5, (12, 10), seed=3))
    assert not np.array_equal(a, make_ood_set(name, 5, (12, 10), seed=4))
    # Chunked generation: the first images do not depend on how many are generated.
    assert np.array_equal(a[:2], make_ood_set(name, 2, (12, 10), seed=3))


def test_registry_lists_the_three_sets() -> None:
    assert SYNTHETIC_OOD.names() == ["blobs", "gaussian", "rademacher"]
    with pytest.raises(KeyError, match="known: blobs, gaussian, rademacher"):
        make_ood_set("uniform", 1)


def test_gaussian_statistics() -> None:
    a = make_ood_set("gaussian", 64, (32, 32), seed=0).astype(np.float64) / 255
    # N(0.5, 0.5) clipped to [0, 1]: P(x <= 0) = P(x >= 1) = Phi(-1) = 0.1587; mean 0.5.
    phi = 0.5 * (1 + math.erf(-1 / math.sqrt(2)))
    assert np.mean(a == 0.0) == pytest.approx(phi, abs=0.005)
    assert np.mean(a == 1.0) == pytest.approx(phi, abs=0.005)
    assert a.mean() == pytest.approx(0.5, abs=0.005)
    b = make_ood_set("gaussian", 64, (32, 32), seed=0, std=0.25).astype(np.float64) / 255
    assert np.mean(b == 0.0) == pytest.approx(0.5 * (1 + math.erf(-2 / math.sqrt(2))), abs=0.003)


def test_rademacher_values() -> None:
    a = make_ood_set("rademacher", 64, (32, 32), seed=0)
    assert set(np.unique(a).tolist()) == {0, 255}
    assert np.mean(a == 255) == pytest.approx(0.5, abs=0.005)


@pytest.mark.parametrize("blur_channels", [True, False])
def test_blur_matches_scipy(blur_channels: bool) -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    x = torch.rand(2, 9, 11, 3, generator=torch.Generator().manual_seed(0))
    ours = gaussian_blur_hwc(x, 1.5, blur_channels).numpy()
    sigma = (1.5, 1.5, 1.5) if blur_channels else (1.5, 1.5, 0.0)
    for i in range(2):
        ref = ndimage.gaussian_filter(x[i].double().numpy(), sigma=sigma, mode="nearest", truncate=4.0)
        np.testing.assert_allclose(ours[i], ref, atol=1e-5)


def test_blobs_threshold_and_structure() -> None:
    x = blobs(8, (32, 32), torch.Generator().manual_seed(0))
    nz = x[x > 0]
    assert float(nz.min()) >= 0.75 and float(x.max()) <= 1.0
    frac = float((x > 0).float().mean())
    assert 0.05 < frac < 0.95
    # Blobs are spatially coherent: a pixel's neighbour is much more often in the same state than
    # for independent pixels with the same density.
    on = (x > 0).float()
    agree = float((on[:, 1:] == on[:, :-1]).float().mean())
    assert agree > (frac ** 2 + (1 - frac) ** 2) + 0.15


def test_as_ood_images() -> None:
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    assert np.array_equal(as_ood_images(rgb), rgb)
    gray = np.arange(32, dtype=np.uint8).reshape(2, 4, 4)
    out = as_ood_images(torch.from_numpy(gray))
    assert out.shape == (2, 4, 4, 3) and np.array_equal(out[..., 2], gray)
    with pytest.raises(DataError, match="uint8"):
        as_ood_images(rgb.astype(np.float32))
    with pytest.raises(DataError, match="shape"):
        as_ood_images(np.zeros((2, 4, 4, 4), np.uint8))


def test_split_classes() -> None:
    labels = torch.tensor([0, 3, 1, 3, 2])
    in_mask, out_mask = split_classes(labels, [3, 1])
    assert in_mask.tolist() == [False, True, True, True, False]
    assert torch.equal(out_mask, ~in_mask)
    in_np, out_np = split_classes(labels.numpy(), [0])
    assert isinstance(in_np, np.ndarray) and in_np.tolist() == [True, False, False, False, False]
    assert out_np.tolist() == [False, True, True, True, True]
    with pytest.raises(ValueError):
        split_classes(labels, [])


def test_default_seed_differs_by_name() -> None:
    assert default_seed("gaussian", 0) != default_seed("blobs", 0)
    assert default_seed("gaussian", 0) != default_seed("gaussian", 1)
    assert default_seed("gaussian", 5) == default_seed("gaussian", 5)
