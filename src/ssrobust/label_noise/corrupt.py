"""Sampling noisy labels from a corruption matrix, and the trusted (gold) subset of GLC.

Randomness comes from ``numpy.random.default_rng(seed)`` on the CPU, so a seed gives the same
labels whether the input is a numpy array or a torch tensor (on any device).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .matrices import validate_matrix


def _labels_numpy(labels: Any) -> np.ndarray:
    """Integer labels (array or tensor, any shape) as a flat int64 numpy array."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"labels must be an integer array or tensor, got dtype {arr.dtype}")
    return arr.reshape(-1).astype(np.int64)


def _like(values: np.ndarray, reference: Any, shape: tuple[int, ...] | None = None) -> Any:
    """``values`` converted to the container of ``reference`` (tensor: same dtype and device)."""
    shape = np.shape(reference) if shape is None else shape
    if isinstance(reference, torch.Tensor):
        return torch.from_numpy(values.reshape(shape)).to(reference.device, reference.dtype)
    return values.reshape(shape).astype(np.asarray(reference).dtype)


def _index_like(idx: np.ndarray, reference: Any) -> Any:
    """Index arrays: ``torch.long`` on the labels' device for tensors, ``int64`` numpy otherwise."""
    if isinstance(reference, torch.Tensor):
        return torch.from_numpy(idx).to(reference.device)
    return idx


def _check_range(y: np.ndarray, num_classes: int) -> None:
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"labels must lie in [0, {num_classes - 1}] for a {num_classes}-class "
                        f"matrix, found values in [{y.min()}, {y.max()}]")


def corrupt_labels(labels: Any, matrix: Any, seed: int = 0) -> Any:
    """Replace each label ``y`` by a sample from row ``C[y]`` of the corruption matrix.

    ``labels``: integer numpy array or tensor of any shape; ``matrix``: ``[K, K]`` row-stochastic
    (validated). Returns the same container, shape and dtype (and device) as ``labels``.
    Deterministic given ``seed``.
    """
    c = validate_matrix(matrix)
    k = c.shape[0]
    y = _labels_numpy(labels)
    _check_range(y, k)
    # Inverse-CDF sampling: one uniform per label, then a per-class searchsorted in the row's CDF.
    # Normalizing each CDF by its last entry keeps rounding from ever pushing a draw past K - 1.
    cdf = np.cumsum(c, axis=1)
    cdf /= cdf[:, -1:]
    u = np.random.default_rng(seed).random(y.size)
    noisy = np.empty_like(y)
    for cls in np.unique(y):
        at = y == cls
        noisy[at] = np.searchsorted(cdf[cls], u[at], side="right")
    np.minimum(noisy, k - 1, out=noisy)
    return _like(noisy, labels)


def realized_noise_rate(clean: Any, noisy: Any) -> float:
    """Fraction of positions where ``noisy`` differs from ``clean`` (same number of labels)."""
    a, b = _labels_numpy(clean), _labels_numpy(noisy)
    if a.shape != b.shape:
        raise DataError(f"clean and noisy labels differ in size: {a.size} vs {b.size}")
    if a.size == 0:
        raise DataError("cannot compute a noise rate over zero labels")
    return float(np.mean(a != b))


def _round_half_up(x: float) -> int:
    # Not Python's round(): banker's rounding would make 2.5 -> 2 but 3.5 -> 4.
    return int(np.floor(x + 0.5))


def _trusted_counts(counts: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Per-class sizes summing to ``floor(fraction * N + 1/2)``, each within 1 of
    ``fraction * n_c``.

    Largest-remainder rounding; ties among equal remainders are broken at random.
    """
    quota = fraction * counts
    base = np.floor(quota).astype(np.int64)
    missing = _round_half_up(fraction * counts.sum()) - int(base.sum())
    remainder = quota - base
    order = np.lexsort((rng.random(counts.size), -remainder))  # largest remainder first
    eligible = order[base[order] < counts[order]]
    base[eligible[:max(missing, 0)]] += 1
    return base


def split_trusted(labels: Any, fraction: float, seed: int = 0,
                  stratified: bool = True) -> tuple[Any, Any]:
    """Split positions into a trusted (clean-label) subset and the untrusted rest.

    Returns ``(trusted_idx, untrusted_idx)``: sorted int64 index arrays (``torch.long`` tensors on
    the labels' device if ``labels`` is a tensor) that partition ``range(N)``; the trusted part has
    ``floor(fraction * N + 1/2)`` elements. ``stratified=True`` takes about ``fraction`` of every
    class (within one example), as GLC does; otherwise a uniformly random subset.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"trusted fraction must lie in [0, 1], got {fraction!r}")
    y = _labels_numpy(labels)
    rng = np.random.default_rng(seed)
    if stratified:
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        sizes = _trusted_counts(counts, fraction, rng)
        perm = rng.permutation(y.size)
        # Rank of each position among the permuted positions of its own class.
        by_class = perm[np.argsort(inverse[perm], kind="stable")]
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        rank = np.empty(y.size, np.int64)
        rank[by_class] = np.arange(y.size) - np.repeat(starts, counts)
        trusted = rank < sizes[inverse]
    else:
        trusted = np.zeros(y.size, bool)
        trusted[rng.permutation(y.size)[: _round_half_up(fraction * y.size)]] = True
    return (_index_like(np.flatnonzero(trusted), labels),
            _index_like(np.flatnonzero(~trusted), labels))


@dataclass
class NoisyLabels:
    """Result of :func:`make_noisy_dataset` (containers follow the input labels).

    ``labels_noisy``: corrupted labels with the trusted positions kept clean, shape of the input;
    ``trusted_mask``: bool, ``True`` where the label is guaranteed clean;
    ``realized_rate``: fraction of *untrusted* labels that differ from the clean ones.
    """

    labels_noisy: Any
    trusted_mask: Any
    realized_rate: float


def make_noisy_dataset(labels: Any, matrix: Any, trusted_fraction: float = 0.0,
                       seed: int = 0, stratified: bool = True) -> NoisyLabels:
    """Corrupt ``labels`` with ``matrix`` except on a trusted subset (GLC's semi-verified setting).

    The split and the corruption draw from two independent streams spawned from ``seed``.
    ``trusted_fraction`` must be < 1 so that some untrusted labels remain.
    """
    if not 0.0 <= trusted_fraction < 1.0:
        raise ConfigError(f"trusted_fraction must lie in [0, 1), got {trusted_fraction!r}")
    split_seed, noise_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    y = _labels_numpy(labels)
    trusted_idx, _ = split_trusted(y, trusted_fraction, split_seed, stratified)
    noisy = corrupt_labels(y, matrix, noise_seed)
    noisy[trusted_idx] = y[trusted_idx]
    mask = np.zeros(y.size, bool)
    mask[trusted_idx] = True
    if mask.all():
        raise ConfigError("the trusted subset covers every label; nothing is left to corrupt")
    rate = realized_noise_rate(y[~mask], noisy[~mask])
    shape = tuple(np.shape(labels))
    trusted_mask = (torch.from_numpy(mask.reshape(shape)).to(labels.device)
                    if isinstance(labels, torch.Tensor) else mask.reshape(shape))
    return NoisyLabels(_like(noisy, labels), trusted_mask, rate)
