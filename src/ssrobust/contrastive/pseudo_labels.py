"""AdvCL's pseudo-supervision stimulus: K-means cluster ids of encoder features, for several K.

AdvCL (Fan et al. 2021) clusters the features of a separately pretrained, non-adversarial encoder
with K ∈ {2, 10, 50, 100, 500} and trains one linear head per K; its clustering step was never
released. Here: features ``[N, D]`` are ℓ2-normalized and clustered with scikit-learn's ``KMeans``
(Lloyd, k-means++ seeding) with a fixed ``random_state`` and ``n_init``, so the labels are a
function of (features, Ks, seed, n_init, max_iter, scikit-learn version).

Scaling K to the dataset (:func:`scale_ks`): each cluster should hold on average at least
``min_cluster_size`` points (default 10), so every K is capped at ``N // min_cluster_size`` and
duplicates are dropped; K >= 2 always and K < N. CIFAR-10's 50,000 images keep all five Ks; 1,000
images give {2, 10, 50, 100}.

:func:`cached_pseudo_labels` stores the result as ``pseudo_labels-<hash>.npz`` (numbers only,
read with ``allow_pickle=False``), written atomically; the hash covers the features' bytes and
every clustering setting, and a file whose stored key or arrays do not match is refused with a
:class:`~ssrobust.errors.DataError` naming it (never overwritten: the package does not replace a
file it cannot vouch for).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..atomic import write_atomic
from ..data.safe_io import npz_member, open_npz
from ..errors import ConfigError, DataError

ADVCL_KS: tuple[int, ...] = (2, 10, 50, 100, 500)
_CACHE_VERSION = "ssrobust-pseudo-labels-v1"


def scale_ks(ks: Sequence[int], n: int, min_cluster_size: int = 10) -> tuple[int, ...]:
    """The Ks to use for ``n`` points: each capped at ``n // min_cluster_size``, sorted, distinct."""
    if not ks or any(int(k) < 2 for k in ks):
        raise ConfigError(f"pseudo-label cluster counts must be integers >= 2, got {list(ks)}")
    cap = n // max(1, int(min_cluster_size))
    if cap < 2:
        raise ConfigError(f"{n} points are too few for pseudo-labels: at least 2 clusters of "
                          f"{min_cluster_size} points need {2 * min_cluster_size}")
    return tuple(sorted({min(int(k), cap) for k in ks}))


def _as_features(features: torch.Tensor | np.ndarray) -> np.ndarray:
    """``[N, D]`` float32, C-contiguous, finite (the bytes the cache key is computed on)."""
    arr = features.detach().cpu().numpy() if isinstance(features, torch.Tensor) else np.asarray(features)
    if arr.ndim != 2 or arr.shape[0] < 2 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"pseudo-label features must be a numeric [N, D] array with N >= 2, got "
                         f"{arr.dtype} of shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("pseudo-label features contain NaN or infinite values")
    return arr


def kmeans_pseudo_labels(features: torch.Tensor | np.ndarray, ks: Sequence[int] = ADVCL_KS, seed: int = 0,
                         n_init: int = 3, max_iter: int = 300) -> dict[int, np.ndarray]:
    """``features [N, D]`` -> ``{K: cluster ids int64 [N] in [0, K)}`` for each K in ``ks``.

    The Ks are used as given (apply :func:`scale_ks` first to fit them to ``N``); each must be
    < N. Deterministic for a given ``seed`` (the ``random_state`` of every K's K-means).
    """
    from sklearn.cluster import KMeans  # imported here: only the pseudo-label step needs it

    x = _as_features(features).astype(np.float64)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    out: dict[int, np.ndarray] = {}
    for k in ks:
        if not 2 <= int(k) < len(x):
            raise ConfigError(f"K-means with K = {k} on {len(x)} points: expected 2 <= K < N "
                              f"(use scale_ks to fit the Ks to the dataset)")
        km = KMeans(n_clusters=int(k), n_init=n_init, max_iter=max_iter, random_state=seed)
        out[int(k)] = km.fit_predict(x).astype(np.int64)
    return out


def cache_key(features: np.ndarray, ks: Sequence[int], seed: int, n_init: int, max_iter: int) -> str:
    """sha256 hex digest of the features' float32 bytes and shape and every clustering setting."""
    import sklearn

    h = hashlib.sha256()
    settings = (_CACHE_VERSION, sklearn.__version__, features.shape, tuple(int(k) for k in ks),
                int(seed), int(n_init), int(max_iter))
    h.update(repr(settings).encode())
    h.update(_as_features(features).tobytes())
    return h.hexdigest()


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``path`` through a temporary file in the same folder and an atomic rename."""
    write_atomic(path, lambda f: np.savez(f, **arrays))


def _read_cache(path: Path, key: str, ks: Sequence[int], n: int) -> dict[int, np.ndarray]:
    """The labels stored in ``path``, after checking they are the ones asked for."""
    with open_npz(path) as archive:
        if "key" not in archive.files:
            raise DataError(f"{path}: no 'key' entry; expected a pseudo-label cache written by ssrobust")
        stored = str(npz_member(archive, "key", path))
        if stored != key:
            raise DataError(f"{path}: cache key {stored[:16]}… does not match these features and "
                            f"settings ({key[:16]}…); refusing it (remove it or use another cache folder)")
        out = {}
        for k in ks:
            name = f"labels_{int(k)}"
            labels = npz_member(archive, name, path) if name in archive.files else None
            if (labels is None or labels.shape != (n,) or labels.dtype != np.int64
                    or (n and (labels.min() < 0 or labels.max() >= k))):
                raise DataError(f"{path}: {name} missing or not int64 [{n}] in [0, {k}); refusing the cache")
            out[int(k)] = labels
    return out


def cached_pseudo_labels(features: torch.Tensor | np.ndarray, cache_dir: str | Path,
                         ks: Sequence[int] = ADVCL_KS, seed: int = 0, n_init: int = 3,
                         max_iter: int = 300) -> dict[int, np.ndarray]:
    """:func:`kmeans_pseudo_labels`, read from ``cache_dir`` when computed before, else computed
    and stored there as ``pseudo_labels-<hash>.npz``."""
    x = _as_features(features)
    key = cache_key(x, ks, seed, n_init, max_iter)
    path = Path(cache_dir) / f"pseudo_labels-{key[:24]}.npz"
    if path.exists():
        return _read_cache(path, key, ks, len(x))
    labels = kmeans_pseudo_labels(x, ks, seed, n_init, max_iter)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"key": np.array(key), "ks": np.array([int(k) for k in ks], dtype=np.int64)}
    arrays.update({f"labels_{k}": v for k, v in labels.items()})
    _write_npz_atomic(path, arrays)
    return labels
