"""Label-corruption matrices ``C[i, j] = p(noisy label = j | true label = i)``.

Three families from Hendrycks et al. (2019, "Using Self-Supervised Learning Can Improve Model
Robustness and Uncertainty", §3.3) and the Gold Loss Correction paper they build on (Hendrycks et
al., 2018): ``uniform`` (the one used in the self-supervision paper), ``flip`` and CIFAR-100
``hierarchical``. All builders return a ``[K, K]`` float tensor whose rows are distributions.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..registry import Registry
from .cifar100 import COARSE_OF_FINE

ROW_SUM_ATOL = 1e-5

MatrixBuilder = Callable[..., torch.Tensor]
LABEL_CORRUPTIONS: Registry[MatrixBuilder] = Registry("label corruption")
"""name -> ``builder(num_classes, strength, seed=0, coarse_of_fine=None) -> [K, K] tensor``."""


def _check_strength(strength: float) -> float:
    s = float(strength)
    if not 0.0 <= s <= 1.0:
        raise ConfigError(f"corruption strength must lie in [0, 1], got {strength!r}")
    return s


def _check_num_classes(num_classes: int, minimum: int = 1) -> int:
    if int(num_classes) != num_classes or num_classes < minimum:
        raise ConfigError(f"num_classes must be an integer >= {minimum}, got {num_classes!r}")
    return int(num_classes)


def as_numpy_matrix(matrix: Any) -> np.ndarray:
    """A tensor / array / nested list as a float64 numpy array (no validation)."""
    if isinstance(matrix, torch.Tensor):
        return matrix.detach().to("cpu", torch.float64).numpy()
    return np.asarray(matrix, dtype=np.float64)


def validate_matrix(matrix: Any, num_classes: int | None = None,
                    atol: float = ROW_SUM_ATOL) -> np.ndarray:
    """Check that ``matrix`` is a row-stochastic ``[K, K]`` matrix; return it as float64 numpy.

    Raises ``ValueError`` (``ConfigError``) naming the problem: wrong rank or shape, a class count
    different from ``num_classes``, non-finite or negative entries, or a row whose sum is more than
    ``atol`` away from 1.
    """
    c = as_numpy_matrix(matrix)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] == 0:
        raise ConfigError(f"corruption matrix must be square [K, K] with K >= 1, got shape "
                          f"{tuple(c.shape)}")
    if num_classes is not None and c.shape[0] != num_classes:
        raise ConfigError(f"corruption matrix is {c.shape[0]}x{c.shape[0]} but num_classes is "
                          f"{num_classes}")
    if not np.isfinite(c).all():
        raise ConfigError("corruption matrix has NaN or infinite entries")
    if (c < 0).any():
        i, j = np.argwhere(c < 0)[0]
        raise ConfigError(f"corruption matrix has negative entries, e.g. C[{i}, {j}] = {c[i, j]}")
    err = np.abs(c.sum(axis=1) - 1.0)
    if (err > atol).any():
        i = int(err.argmax())
        raise ConfigError(f"corruption matrix rows must sum to 1; row {i} sums to "
                          f"{c[i].sum():.6g} (tolerance {atol})")
    return c


def uniform_matrix(num_classes: int, strength: float,
                   dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``C = (1 - s) I + s 11ᵀ / K`` (Hendrycks et al. 2019, §3.3). ``[K, K]``.

    With probability ``s`` the label is resampled uniformly from all ``K`` classes (itself
    included), so the expected fraction of changed labels is ``s (1 - 1/K)``.
    """
    k = _check_num_classes(num_classes)
    s = _check_strength(strength)
    c = np.full((k, k), s / k) + (1.0 - s) * np.eye(k)
    return torch.as_tensor(c, dtype=dtype)


def flip_matrix(num_classes: int, strength: float, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``1 - s`` on the diagonal and ``s`` on one other class per row. ``[K, K]``.

    The target of each row is drawn uniformly from the other ``K - 1`` classes with
    ``numpy.random.default_rng(seed)`` (the GLC code draws with the legacy global numpy RNG, so
    the same seed gives different targets there). The expected flip rate is exactly ``s``.
    """
    k = _check_num_classes(num_classes, minimum=2)
    s = _check_strength(strength)
    rng = np.random.default_rng(seed)
    c = (1.0 - s) * np.eye(k)
    for i in range(k):
        others = np.delete(np.arange(k), i)
        c[i, rng.choice(others)] += s
    return torch.as_tensor(c, dtype=dtype)


def hierarchical_matrix(strength: float, coarse_of_fine: Sequence[int] = COARSE_OF_FINE,
                        include_true: bool = False,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Flip within superclasses: ``1 - s`` on the diagonal, ``s`` spread over the superclass.

    ``coarse_of_fine`` has one superclass id per fine class (default: CIFAR-100, 100 fine classes
    in 20 superclasses of 5). Following the GLC code (Hendrycks et al. 2018), the mass ``s`` is
    spread uniformly over the *other* members of the superclass (``s/4`` each on CIFAR-100), so
    the expected flip rate is exactly ``s``. With ``include_true=True`` it is spread over all
    ``m`` members including the true class (diagonal ``1 - s + s/m``), the analogue of the
    uniform matrix restricted to the superclass. Returns ``[K, K]``, ``K = len(coarse_of_fine)``.
    """
    s = _check_strength(strength)
    coarse = np.asarray(coarse_of_fine)
    if coarse.ndim != 1 or coarse.size == 0 or not np.issubdtype(coarse.dtype, np.integer):
        raise ConfigError("coarse_of_fine must be a non-empty 1-D sequence of integer "
                          "superclass ids, one per fine class")
    k = coarse.size
    c = (1.0 - s) * np.eye(k)
    for sup in np.unique(coarse):
        members = np.flatnonzero(coarse == sup)
        for i in members:
            targets = members if include_true else members[members != i]
            if targets.size == 0:
                raise ConfigError(f"superclass {sup} has the single member {i}: nothing to flip "
                                  f"to (use include_true=True or merge superclasses)")
            c[i, targets] += s / targets.size
    return torch.as_tensor(c, dtype=dtype)


def expected_noise_rate(matrix: Any, class_prior: Any = None) -> float:
    """Probability that a label changes: ``1 - Σ_i π_i C[i, i]`` (uniform ``π`` by default)."""
    c = validate_matrix(matrix)
    k = c.shape[0]
    prior = np.full(k, 1.0 / k) if class_prior is None else np.asarray(class_prior, np.float64)
    if prior.shape != (k,) or (prior < 0).any() or abs(prior.sum() - 1.0) > ROW_SUM_ATOL:
        raise ConfigError(f"class_prior must be a distribution over {k} classes")
    return float(1.0 - prior @ np.diag(c))


@LABEL_CORRUPTIONS.register("uniform")
def _uniform(num_classes: int, strength: float, seed: int = 0,
             coarse_of_fine: Sequence[int] | None = None) -> torch.Tensor:
    return uniform_matrix(num_classes, strength)


@LABEL_CORRUPTIONS.register("flip")
def _flip(num_classes: int, strength: float, seed: int = 0,
          coarse_of_fine: Sequence[int] | None = None) -> torch.Tensor:
    return flip_matrix(num_classes, strength, seed)


@LABEL_CORRUPTIONS.register("hierarchical")
def _hierarchical(num_classes: int, strength: float, seed: int = 0,
                  coarse_of_fine: Sequence[int] | None = None) -> torch.Tensor:
    coarse = COARSE_OF_FINE if coarse_of_fine is None else coarse_of_fine
    if len(coarse) != num_classes:
        raise ConfigError(f"hierarchical corruption needs one superclass id per class: got "
                          f"{len(coarse)} ids for {num_classes} classes (the default mapping is "
                          f"CIFAR-100's, 100 classes)")
    return hierarchical_matrix(strength, coarse)


def corruption_matrix(kind: str, num_classes: int, strength: float, seed: int = 0,
                      coarse_of_fine: Sequence[int] | None = None) -> torch.Tensor:
    """Build a matrix by registry name (``"uniform"``, ``"flip"``, ``"hierarchical"``)."""
    return LABEL_CORRUPTIONS.get(kind)(num_classes, strength, seed, coarse_of_fine)
