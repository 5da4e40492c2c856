"""The one seed-derivation formula: every random stream of the package is a function of the run's
seed and a name or an epoch, so runs are reproducible and resume exactly at epoch boundaries."""

from __future__ import annotations

import zlib

_PRIME = 1_000_003  # spreads seeds apart so seed s, epoch e never meets seed s + 1, epoch e - 1_000_003


def epoch_seed(seed: int, epoch: int) -> int:
    """The stream of ``epoch`` of a run (``epoch=-1``: a stream before any epoch's)."""
    return int(seed) * _PRIME + epoch


def derived_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed from ``seed`` and a path of names/indices (stable across runs and machines)."""
    return (int(seed) * _PRIME + zlib.crc32("/".join(map(str, parts)).encode())) % (2**63)
