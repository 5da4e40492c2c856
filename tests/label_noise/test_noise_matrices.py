"""Corruption matrices: closed forms, row sums, flip structure and seeding, superclass flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssrobust.label_noise import (
    COARSE_NAMES,
    COARSE_OF_FINE,
    FINE_NAMES,
    LABEL_CORRUPTIONS,
    SUPERCLASS_MEMBERS,
    corruption_matrix,
    expected_noise_rate,
    flip_matrix,
    hierarchical_matrix,
    strengths,
    uniform_matrix,
    validate_matrix,
)

ALL_S = strengths()


def _all_matrices() -> list[tuple[str, torch.Tensor]]:
    out = []
    for s in ALL_S:
        out += [(f"uniform K=10 s={s}", uniform_matrix(10, s)),
                (f"flip K=10 s={s}", flip_matrix(10, s, seed=3)),
                (f"hierarchical s={s}", hierarchical_matrix(s))]
    return out


@pytest.mark.parametrize("name,c", _all_matrices(), ids=lambda v: v if isinstance(v, str) else "")
def test_rows_are_distributions(name: str, c: torch.Tensor) -> None:
    assert c.dtype == torch.float32 and c.shape[0] == c.shape[1]
    assert torch.allclose(c.sum(1), torch.ones(c.shape[0]), atol=1e-6)
    assert (c >= 0).all()
    validate_matrix(c)  # must not raise


@pytest.mark.parametrize("k", [2, 10, 100])
@pytest.mark.parametrize("s", [0.0, 0.3, 0.7, 1.0])
def test_uniform_closed_form(k: int, s: float) -> None:
    c = uniform_matrix(k, s, dtype=torch.float64)
    expected = torch.full((k, k), s / k, dtype=torch.float64)
    expected.fill_diagonal_(1.0 - s + s / k)
    assert torch.allclose(c, expected, atol=1e-12)
    assert expected_noise_rate(c) == pytest.approx(s * (1 - 1 / k), abs=1e-12)


def test_uniform_strength_one_is_all_uniform_and_zero_is_identity() -> None:
    assert torch.equal(uniform_matrix(5, 0.0), torch.eye(5))
    assert torch.allclose(uniform_matrix(5, 1.0), torch.full((5, 5), 0.2))


@pytest.mark.parametrize("s", [0.1, 0.45, 0.6, 1.0])
def test_flip_puts_exactly_s_on_one_other_class(s: float) -> None:
    k = 10
    c = flip_matrix(k, s, seed=7, dtype=torch.float64)
    for i in range(k):
        assert c[i, i].item() == pytest.approx(1 - s, abs=1e-12)
        off = torch.cat([c[i, :i], c[i, i + 1:]])
        assert int((off > 0).sum()) == 1
        assert off.max().item() == pytest.approx(s, abs=1e-12)
    assert expected_noise_rate(c) == pytest.approx(s, abs=1e-12)


def test_flip_is_seeded() -> None:
    a, b = flip_matrix(10, 0.4, seed=1), flip_matrix(10, 0.4, seed=1)
    assert torch.equal(a, b)
    targets = {tuple(flip_matrix(10, 0.4, seed=seed).fill_diagonal_(0).argmax(1).tolist())
               for seed in range(5)}
    assert len(targets) > 1  # the seed changes the flip targets


@pytest.mark.parametrize("s", [0.2, 0.5, 1.0])
def test_hierarchical_stays_within_superclasses(s: float) -> None:
    c = hierarchical_matrix(s, dtype=torch.float64)
    coarse = torch.tensor(COARSE_OF_FINE)
    same = coarse[:, None] == coarse[None, :]
    assert c.shape == (100, 100)
    assert (c[~same] == 0).all()
    assert torch.allclose(c.diagonal(), torch.full((100,), 1 - s, dtype=torch.float64))
    off = c[same & ~torch.eye(100, dtype=torch.bool)]
    assert off.numel() == 100 * 4
    assert torch.allclose(off, torch.full_like(off, s / 4))  # GLC code: other 4 members only
    assert expected_noise_rate(c) == pytest.approx(s, abs=1e-12)


def test_hierarchical_custom_mapping_and_include_true() -> None:
    c = hierarchical_matrix(0.6, [0, 0, 1, 1, 1], dtype=torch.float64)
    expected = torch.tensor([[0.4, 0.6, 0, 0, 0],
                             [0.6, 0.4, 0, 0, 0],
                             [0, 0, 0.4, 0.3, 0.3],
                             [0, 0, 0.3, 0.4, 0.3],
                             [0, 0, 0.3, 0.3, 0.4]], dtype=torch.float64)
    assert torch.allclose(c, expected, atol=1e-12)
    inc = hierarchical_matrix(0.6, [0, 0, 1, 1, 1], include_true=True, dtype=torch.float64)
    assert inc[0, 0].item() == pytest.approx(0.4 + 0.3) and inc[0, 1].item() == pytest.approx(0.3)
    assert inc[2, 2].item() == pytest.approx(0.4 + 0.2) and inc[2, 4].item() == pytest.approx(0.2)


def test_hierarchical_single_member_superclass_raises() -> None:
    with pytest.raises(ValueError, match="single member"):
        hierarchical_matrix(0.5, [0, 0, 1])


@pytest.mark.parametrize("bad,match", [
    (np.ones((2, 3)) / 3, "square"),
    (np.array([[1.2, -0.2], [0.5, 0.5]]), "negative"),
    (np.array([[0.5, 0.4], [0.5, 0.5]]), "row 0 sums"),
    (np.array([[np.nan, 1.0], [0.5, 0.5]]), "NaN"),
    (np.ones(3) / 3, "square"),
])
def test_validate_matrix_errors(bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        validate_matrix(bad)


def test_validate_matrix_class_count_and_strength_range() -> None:
    with pytest.raises(ValueError, match="num_classes is 4"):
        validate_matrix(np.eye(3), num_classes=4)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r"strength must lie in \[0, 1\]"):
            uniform_matrix(10, bad)
    with pytest.raises(ValueError, match="num_classes"):
        flip_matrix(1, 0.5)


def test_registry_builds_every_kind_and_rejects_unknown() -> None:
    assert LABEL_CORRUPTIONS.names() == ["flip", "hierarchical", "uniform"]
    assert torch.equal(corruption_matrix("uniform", 10, 0.3), uniform_matrix(10, 0.3))
    assert torch.equal(corruption_matrix("flip", 10, 0.3, seed=2), flip_matrix(10, 0.3, 2))
    assert torch.equal(corruption_matrix("hierarchical", 100, 0.3), hierarchical_matrix(0.3))
    with pytest.raises(ValueError, match="100 classes"):
        corruption_matrix("hierarchical", 10, 0.3)
    with pytest.raises(KeyError, match="known: flip, hierarchical, uniform"):
        corruption_matrix("symmetric", 10, 0.3)


# CIFAR-100 fine -> coarse ids in the standard (alphabetical) order, written out independently
# of the name-based table in ssrobust.label_noise.cifar100 as a cross-check.
_COARSE_IDS = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, 3, 14, 9, 18, 7, 11, 3, 9, 7, 11,
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, 0, 11, 1, 10, 12, 14, 16, 9, 11, 5,
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, 16, 4, 17, 4, 2, 0, 17, 4, 18, 17,
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, 2, 10, 0, 1, 16, 12, 9, 13, 15, 13,
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, 18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
]


def test_cifar100_hierarchy_data() -> None:
    assert len(FINE_NAMES) == 100 and len(set(FINE_NAMES)) == 100
    assert list(FINE_NAMES) == sorted(FINE_NAMES)  # standard order is alphabetical
    assert len(COARSE_NAMES) == 20 and list(COARSE_NAMES) == sorted(COARSE_NAMES)
    members = [f for group in SUPERCLASS_MEMBERS.values() for f in group]
    assert sorted(members) == sorted(FINE_NAMES)  # every fine class in exactly one superclass
    assert all(len(group) == 5 for group in SUPERCLASS_MEMBERS.values())
    assert list(COARSE_OF_FINE) == _COARSE_IDS
    assert COARSE_NAMES[COARSE_OF_FINE[FINE_NAMES.index("whale")]] == "aquatic_mammals"
    assert COARSE_NAMES[COARSE_OF_FINE[FINE_NAMES.index("lawn_mower")]] == "vehicles_2"
