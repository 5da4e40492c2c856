"""Sampling noisy labels, realized noise rates, and the trusted subset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssrobust.label_noise import (
    COARSE_OF_FINE,
    corrupt_labels,
    flip_matrix,
    hierarchical_matrix,
    make_noisy_dataset,
    realized_noise_rate,
    split_trusted,
    uniform_matrix,
)

N = 50_000


def _balanced(k: int, n: int = N) -> np.ndarray:
    return np.random.default_rng(123).permutation(np.arange(n) % k).astype(np.int64)


def _within_4_sigma(observed: float, p: float, n: int) -> bool:
    return abs(observed - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12


@pytest.mark.parametrize("s", [0.1, 0.5, 0.8, 1.0])
def test_uniform_realized_rate_matches_s_times_1_minus_1_over_k(s: float) -> None:
    k = 10
    y = _balanced(k)
    noisy = corrupt_labels(y, uniform_matrix(k, s), seed=0)
    assert _within_4_sigma(realized_noise_rate(y, noisy), s * (1 - 1 / k), N)


def test_flip_empirical_transition_matrix_matches_c() -> None:
    k = 10
    c = flip_matrix(k, 0.45, seed=4, dtype=torch.float64).numpy()
    y = _balanced(k)
    noisy = corrupt_labels(y, c, seed=1)
    assert _within_4_sigma(realized_noise_rate(y, noisy), 0.45, N)
    counts = np.zeros((k, k))
    np.add.at(counts, (y, noisy), 1)
    n_row = counts.sum(1, keepdims=True)
    sigma = np.sqrt(c * (1 - c) / n_row)
    assert (np.abs(counts / n_row - c) <= 4 * sigma + 1e-12).all()
    assert (counts[c == 0] == 0).all()  # zero-probability transitions never happen


def test_hierarchical_noise_stays_within_superclass() -> None:
    y = _balanced(100)
    noisy = corrupt_labels(y, hierarchical_matrix(0.6), seed=2)
    coarse = np.asarray(COARSE_OF_FINE)
    assert (coarse[noisy] == coarse[y]).all()
    assert _within_4_sigma(realized_noise_rate(y, noisy), 0.6, N)


@pytest.mark.parametrize("make", [
    lambda: np.random.default_rng(0).integers(0, 10, (50, 20)).astype(np.int32),
    lambda: torch.randint(0, 10, (1000,), generator=torch.Generator().manual_seed(0)),
    lambda: torch.randint(0, 10, (8, 16), dtype=torch.uint8),
    lambda: np.arange(10, dtype=np.int16),
])
def test_corrupt_keeps_container_shape_dtype_and_is_seeded(make) -> None:
    labels = make()
    c = uniform_matrix(10, 0.5)
    a, b = corrupt_labels(labels, c, seed=5), corrupt_labels(labels, c, seed=5)
    assert type(a) is type(labels) and a.shape == labels.shape and a.dtype == labels.dtype
    assert (np.asarray(a) == np.asarray(b)).all()
    assert np.asarray(a).min() >= 0 and np.asarray(a).max() < 10


def test_corrupt_seed_matters_and_numpy_equals_torch() -> None:
    y = _balanced(10, 5000)
    c = uniform_matrix(10, 0.5)
    a = corrupt_labels(y, c, seed=0)
    assert (a != corrupt_labels(y, c, seed=1)).any()
    assert (corrupt_labels(torch.from_numpy(y), c, seed=0).numpy() == a).all()


def test_strength_zero_and_identity_leave_labels_unchanged() -> None:
    y = _balanced(10, 5000)
    assert (corrupt_labels(y, uniform_matrix(10, 0.0), seed=3) == y).all()
    assert realized_noise_rate(y, y) == 0.0


def test_corrupt_rejects_bad_labels_and_matrices() -> None:
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        corrupt_labels(np.array([0, 3]), np.eye(3), seed=0)
    with pytest.raises(ValueError, match="integer"):
        corrupt_labels(np.array([0.0, 1.0]), np.eye(3), seed=0)
    with pytest.raises(ValueError, match="sums to"):
        corrupt_labels(np.array([0, 1]), np.full((3, 3), 0.5), seed=0)
    with pytest.raises(ValueError, match="differ in size"):
        realized_noise_rate(np.zeros(3, int), np.zeros(4, int))


def test_split_trusted_is_stratified_partition_of_requested_size() -> None:
    rng = np.random.default_rng(0)
    y = rng.choice(7, size=3001, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05])
    for fraction in (0.05, 0.1, 0.333):
        trusted, untrusted = split_trusted(y, fraction, seed=1)
        assert len(trusted) == math.floor(fraction * len(y) + 0.5)
        assert np.array_equal(np.sort(np.concatenate([trusted, untrusted])), np.arange(len(y)))
        per_class = np.bincount(y[trusted], minlength=7)
        assert (np.abs(per_class - fraction * np.bincount(y)) < 1).all()
    a, _ = split_trusted(y, 0.1, seed=1)
    b, _ = split_trusted(y, 0.1, seed=1)
    c, _ = split_trusted(y, 0.1, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_split_trusted_unstratified_and_torch_input() -> None:
    y = torch.from_numpy(_balanced(10, 1000))
    trusted, untrusted = split_trusted(y, 0.05, seed=0, stratified=False)
    assert isinstance(trusted, torch.Tensor) and trusted.dtype == torch.long
    assert len(trusted) == 50 and len(untrusted) == 950
    assert len(set(trusted.tolist()) | set(untrusted.tolist())) == 1000
    with pytest.raises(ValueError, match="trusted fraction"):
        split_trusted(y, 1.5, seed=0)


@pytest.mark.parametrize("as_torch", [False, True])
def test_make_noisy_dataset_keeps_trusted_labels_clean(as_torch: bool) -> None:
    y_np = _balanced(10, 20_000).astype(np.int32)
    y = torch.from_numpy(y_np) if as_torch else y_np
    out = make_noisy_dataset(y, uniform_matrix(10, 0.8), trusted_fraction=0.1, seed=3)
    noisy, mask = np.asarray(out.labels_noisy), np.asarray(out.trusted_mask)
    assert type(out.labels_noisy) is type(y) and out.labels_noisy.dtype == y.dtype
    assert mask.dtype == np.bool_ and mask.sum() == 2000
    assert (np.bincount(y_np[mask], minlength=10) == 200).all()  # stratified: 10% of each class
    assert (noisy[mask] == y_np[mask]).all()
    assert out.realized_rate == realized_noise_rate(y_np[~mask], noisy[~mask])
    assert _within_4_sigma(out.realized_rate, 0.8 * 0.9, int((~mask).sum()))
    again = make_noisy_dataset(y, uniform_matrix(10, 0.8), trusted_fraction=0.1, seed=3)
    assert (np.asarray(again.labels_noisy) == noisy).all()
    with pytest.raises(ValueError, match="trusted_fraction"):
        make_noisy_dataset(y, uniform_matrix(10, 0.8), trusted_fraction=1.0)
