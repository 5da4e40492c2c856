"""In-memory image datasets and the source registry.

Every source turns its files into :class:`ImageArrays` — uint8 ``[N, H, W, 3]`` images (often a
read-only memory map of a cache file) and int64 labels — and returns a :class:`DatasetSplits`.
Images stay uint8 until the batch is on the device (see :mod:`ssrobust.data.loader`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np

from ..errors import ConfigError, DataError
from ..registry import Registry

SOURCES: Registry = Registry("data source")


@dataclass
class LabelNoiseConfig:
    """Seeded synthetic label corruption of the training split (Hendrycks et al. 2019, §3.3).

    ``kind``: uniform | flip | hierarchical (see :mod:`ssrobust.label_noise.matrices`); ``strength``: s in
    [0, 1]. ``trusted_fraction`` of the training images (stratified) keep their clean labels and
    are marked in ``extras["trusted"]`` (GLC's gold set). ``use``: train on ``all`` images, or only
    the ``untrusted`` ones (GLC stage 1). The split and the noise depend only on ``seed`` and the
    clean training labels, so runs that differ in ``use`` or ``strength`` share the trusted set.
    """

    kind: Literal["uniform", "flip", "hierarchical"] = "uniform"
    strength: float = 0.0
    trusted_fraction: float = 0.0
    seed: int = 0
    use: Literal["all", "untrusted"] = "all"

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 1.0:
            raise ConfigError(f"data.label_noise.strength must lie in [0, 1], got {self.strength}")
        if not 0.0 <= self.trusted_fraction < 1.0:
            raise ConfigError(f"data.label_noise.trusted_fraction must lie in [0, 1), got "
                              f"{self.trusted_fraction}")


@dataclass
class DataConfig:
    """Where the data comes from and how batches are made.

    ``source``: synthetic | cifar10 | cifar100 | imagefolder | npz. ``root``: folder (or ``.npz``
    file) for file-based sources. ``num_train``/``num_test``: sizes of the generated synthetic set.
    ``val_size``: images carved from train (seeded) as a validation split. ``limit_train`` /
    ``limit_test``: keep a seeded random subset of N images for quick runs (random, not the first
    N, because many sources store images sorted by class).
    ``label_noise``: corrupt the training labels (after the validation split is carved, so
    validation and test labels stay clean). ``classes``: held-out-classes protocol (see
    :func:`select_classes`): train/val/test keep only these class ids, relabelled ``0..len-1`` in
    the given order; the test images of the other classes become ``DatasetSplits.held_out``.
    ``flip`` (with ``augment``): ``random`` (each image flipped with probability 1/2 per epoch) or
    ``alternating`` (each image flipped on every other epoch from a seeded random first choice,
    so consecutive epochs always see both mirrors; Jordan 2024's derandomized flip).
    """

    source: str = "synthetic"
    root: str | None = None
    num_train: int = 5000
    num_test: int = 1000
    val_size: int = 500
    seed: int = 0
    cache_dir: str | None = None
    batch_size: int = 128
    eval_batch_size: int = 256
    augment: bool = True
    flip: Literal["random", "alternating"] = "random"
    translate: int = 4
    pad_mode: Literal["zeros", "reflect"] = "zeros"
    limit_train: int | None = None
    limit_test: int | None = None
    label_noise: LabelNoiseConfig | None = None
    classes: list[int] | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.translate, int) and 0 <= self.translate <= 16):
            raise ConfigError(f"data.translate must be an integer number of pixels in 0..16, got {self.translate!r}")
        if self.classes is not None:
            if not self.classes or len(set(self.classes)) != len(self.classes) or min(self.classes) < 0:
                raise ConfigError(f"data.classes must be a non-empty list of distinct class ids >= 0, "
                                  f"got {self.classes}")


@dataclass
class ImageArrays:
    images: np.ndarray            # uint8 [N, H, W, 3]
    labels: np.ndarray            # int64 [N]
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. masks, depth (per image)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray) -> "ImageArrays":
        idx = np.sort(np.asarray(idx))  # sorted gathers from a memory map are sequential reads
        return ImageArrays(np.asarray(self.images[idx]), np.asarray(self.labels[idx]),
                           {k: np.asarray(v[idx]) for k, v in self.extras.items()})


@dataclass
class DatasetSplits:
    train: ImageArrays
    test: ImageArrays
    class_names: list[str]
    val: ImageArrays | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # JSON-safe; goes to results.json "data"
    # With ``DataConfig.classes``: the test images of the other classes, original labels.
    held_out: ImageArrays | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def check_arrays(arr: ImageArrays, num_classes: int, where: str) -> None:
    """Validate dtype, shape and label range, naming ``where`` in the error."""
    x, y = arr.images, arr.labels
    if x.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8, got {x.dtype}")
    if x.ndim != 4 or x.shape[-1] != 3:
        raise DataError(f"{where}: images must have shape [N, H, W, 3], got {tuple(x.shape)}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise DataError(f"{where}: {x.shape[0]} images but labels of shape {tuple(y.shape)}")
    if x.shape[0] == 0:
        raise DataError(f"{where}: no images")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integers, got {y.dtype}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= num_classes:
        raise DataError(f"{where}: label out of range: found labels {lo}..{hi}, expected 0..{num_classes - 1}")


def split_validation(train: ImageArrays, val_size: int, seed: int) -> tuple[ImageArrays, ImageArrays | None]:
    """Carve a seeded random validation split of ``val_size`` images off the training set."""
    if val_size <= 0:
        return train, None
    if val_size >= len(train):
        raise DataError(f"data.val_size={val_size} leaves no training images (train has {len(train)})")
    perm = np.random.default_rng([seed, 1]).permutation(len(train))
    return train.subset(perm[val_size:]), train.subset(perm[:val_size])


def load_splits(cfg: DataConfig) -> DatasetSplits:
    """Load ``cfg.source``, validate it, apply limits and carve the validation split.

    ``data.label_noise`` belongs to a learning component above this layer: a config with it is
    loaded by :func:`ssrobust.runs.splits.load_splits` (this function refuses it rather than
    silently returning clean labels)."""
    if cfg.label_noise is not None:
        raise ConfigError("data.label_noise is set: load the splits with ssrobust.runs.splits.load_splits, "
                          "which applies the label noise")
    return load_clean_splits(cfg)


def load_clean_splits(cfg: DataConfig) -> DatasetSplits:
    """:func:`load_splits` with the training labels as the source gives them (``cfg.label_noise``
    is not applied here)."""
    loader: Callable[[DataConfig], DatasetSplits] = SOURCES.get(cfg.source)
    splits = loader(cfg)
    k = len(splits.class_names)
    check_arrays(splits.train, k, f"{cfg.source} train split")
    check_arrays(splits.test, k, f"{cfg.source} test split")
    train, test, names = splits.train, splits.test, splits.class_names
    if cfg.limit_test is not None and cfg.limit_test < len(test):
        test = test.subset(np.random.default_rng([cfg.seed, 3]).permutation(len(test))[: cfg.limit_test])
    held_out, info = None, {}
    if cfg.classes is not None:  # before limit_train: the limit counts images of the kept classes
        train, test, held_out, names, info["classes"] = select_classes(train, test, names, cfg.classes)
    if cfg.limit_train is not None and cfg.limit_train < len(train):
        perm = np.random.default_rng([cfg.seed, 2]).permutation(len(train))
        train = train.subset(perm[: cfg.limit_train])
    train, val = split_validation(train, cfg.val_size, cfg.seed)
    return DatasetSplits(train, test, names, val, cfg.source, info, held_out)


def select_classes(train: ImageArrays, test: ImageArrays, class_names: list[str], classes: list[int]
                   ) -> tuple[ImageArrays, ImageArrays, ImageArrays, list[str], dict[str, Any]]:
    """Held-out-classes protocol (Hendrycks et al. 2019, §4.2 one-class: ``classes=[c]``).

    Returns ``(train, test, held_out, kept names, info)``: ``train`` and ``test`` keep the images of
    ``classes`` with labels remapped to their position in ``classes`` (so a classifier has
    ``len(classes)`` outputs); ``held_out`` holds the other test images with their **original**
    labels (the OOD images of the protocol); ``info`` is the JSON-safe summary for results.json.
    """
    bad = [c for c in classes if c >= len(class_names)]
    if bad:
        raise DataError(f"data.classes: class id(s) {bad} out of range; the source has "
                        f"{len(class_names)} classes (0..{len(class_names) - 1})")
    lookup = np.full(len(class_names), -1, dtype=np.int64)
    lookup[np.asarray(classes)] = np.arange(len(classes))

    def keep(arr: ImageArrays, where: str) -> ImageArrays:
        mask = lookup[arr.labels] >= 0
        missing = sorted(set(classes) - set(np.unique(arr.labels[mask]).tolist()))
        if missing:
            raise DataError(f"data.classes: the {where} split has no image of class(es) {missing}")
        out = arr.subset(np.flatnonzero(mask))
        return ImageArrays(out.images, lookup[out.labels], out.extras)

    out_idx = np.flatnonzero(lookup[test.labels] < 0)
    held_out = test.subset(out_idx) if len(out_idx) else None
    other = [c for c in range(len(class_names)) if c not in set(classes)]
    info = {"kept": list(classes), "kept_names": [class_names[c] for c in classes],
            "held_out": other, "held_out_names": [class_names[c] for c in other],
            "num_held_out_test": len(out_idx)}
    return keep(train, "train"), keep(test, "test"), held_out, info["kept_names"], info


def require_root(cfg: DataConfig) -> str:
    if not cfg.root:
        raise DataError(f"data.source={cfg.source} needs data.root (a path to the dataset)")
    return cfg.root
