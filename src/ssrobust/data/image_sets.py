"""Image sets read from files, folders, data sources or the synthetic generators: OOD test sets
(``ood`` suite ``ood_paths``) and Outlier Exposure images (strategy ``one_class_oe``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from ..errors import ConfigError, DataError
from .ood_sets import SYNTHETIC_OOD, as_ood_images, default_seed, make_ood_set


@dataclass
class ImageSetConfig:
    """An image set: OOD test images (``ood`` suite ``ood_paths``) or Outlier Exposure images
    (strategy ``one_class_oe``). Images are never resized: they must have the in-distribution size.

    ``source``:

    * ``"path"``: ``root`` is a uint8 ``[N, H, W, 3]`` ``.npy``; a ``.npz`` (its only array, else
      ``x_test``, ``images`` or ``x``); an SVHN-style ``.mat`` (``X`` of shape ``[H, W, 3, N]``,
      needs scipy); or a folder of ``.png/.jpg/.jpeg/.bmp`` images, flat or in class subfolders;
    * a data source of ``ssrobust.data.SOURCES`` (``cifar100``, ``cifar10``, ``imagefolder``,
      ``npz``, ``synthetic``) read from ``root``; ``split`` picks its train, test or both splits,
      ``exclude_classes`` drops labels (e.g. classes shared with the in-distribution set);
    * a synthetic OOD set (``gaussian``, ``rademacher``, ``blobs``): ``num_images`` generated
      images (also the size of a generated ``synthetic`` source split).

    ``max_images``: keep a seeded random subset (``seed``) of at most this many images.
    """

    source: str = "path"
    root: str | None = None
    split: Literal["train", "test", "all"] = "test"
    exclude_classes: list[int] = field(default_factory=list)
    max_images: int | None = None
    num_images: int = 10000
    seed: int = 0
    cache_dir: str | None = None


def _first_image_size_check(files: list[Path], size: tuple[int, int] | None, name: str) -> None:
    from .files import decode_image

    if size is not None:
        h, w = decode_image(files[0]).shape[:2]
        if (h, w) != tuple(size):
            raise DataError(f"{name}: image {files[0]} is {w}x{h}, but the in-distribution images "
                            f"are {size[1]}x{size[0]}; resize the set beforehand (no resizing is done)")


def _read_image_folder(path: Path, size: tuple[int, int] | None, name: str) -> np.ndarray:
    from .files import IMAGE_SUFFIXES, decode_all

    def images_in(d: Path) -> list[Path]:
        return sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)

    files = images_in(path)
    for sub in sorted(d for d in path.iterdir() if d.is_dir()):
        files += images_in(sub)
    if not files:
        raise DataError(f"{name}: image folder {path} has no .png/.jpg/.jpeg/.bmp images (directly or "
                        f"in class subfolders)")
    _first_image_size_check(files, size, name)
    return decode_all(files)  # raises naming any image whose size differs from the first


def _read_array_file(path: Path) -> np.ndarray:
    from .safe_io import load_npy, npz_member, open_npz

    suffix = path.suffix.lower()
    if suffix == ".npy":
        return load_npy(path)
    if suffix == ".npz":
        with open_npz(path) as z:
            keys = z.files if len(z.files) == 1 else [k for k in ("x_test", "images", "x") if k in z.files]
            if not keys:
                raise DataError(f"{path}: a .npz OOD set needs a single array or one named x_test, "
                                f"images or x; it has {', '.join(z.files)}")
            return npz_member(z, keys[0], path)
    if suffix == ".mat":
        try:
            from scipy.io import loadmat
        except ImportError:
            raise DataError(f"{path}: reading .mat files needs scipy (pip install scipy)") from None
        try:  # scipy reads MATLAB objects as plain data: nothing in the file is executed
            mat = loadmat(path)
        except Exception as e:  # scipy's MatReadError is not a ValueError
            raise DataError(f"{path}: not a readable MATLAB .mat file ({' '.join(str(e).split())})") from None
        if "X" not in mat or np.ndim(mat["X"]) != 4:
            raise DataError(f"{path}: expected an SVHN-style array 'X' of shape [H, W, 3, N]")
        return np.ascontiguousarray(np.moveaxis(mat["X"], -1, 0))
    raise DataError(f"{path}: unsupported OOD set file type {suffix!r} (use .npy, .npz, .mat or a folder)")


def read_image_path(path: str | Path, size: tuple[int, int] | None = None, name: str = "image set"
                    ) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` from a ``.npy`` / ``.npz`` / ``.mat`` file or an image folder.

    With ``size = (H, W)`` a set of another size raises :class:`DataError` naming the file.
    """
    path = Path(path)
    if path.is_dir():
        return _read_image_folder(path, size, name)
    if not path.is_file():
        raise DataError(f"{name}: {path} does not exist")
    try:
        arr = _read_array_file(path)
    except DataError as e:  # already names the file and what was expected
        raise DataError(f"{name}: {e}") from None
    except (ValueError, OSError) as e:
        raise DataError(f"{name}: cannot read {path}: {e}") from None
    images = as_ood_images(arr, f"{name} ({path})")
    if size is not None and tuple(images.shape[1:3]) != tuple(size):
        raise DataError(f"{name}: {path} holds {images.shape[2]}x{images.shape[1]} images, but the "
                        f"in-distribution images are {size[1]}x{size[0]}; resize the set beforehand "
                        f"(no resizing is done)")
    return images


def _from_source(cfg: ImageSetConfig) -> np.ndarray:
    from .base import DataConfig, load_splits

    n = cfg.num_images
    data = DataConfig(source=cfg.source, root=cfg.root, val_size=0, seed=cfg.seed,
                      cache_dir=cfg.cache_dir, num_train=n if cfg.split != "test" else 1,
                      num_test=n if cfg.split != "train" else 1)
    splits = load_splits(data)
    parts = {"train": [splits.train], "test": [splits.test], "all": [splits.train, splits.test]}
    return np.concatenate([np.asarray(p.images[~np.isin(p.labels, cfg.exclude_classes)])
                           for p in parts[cfg.split]])


def load_image_set(cfg: ImageSetConfig, size: tuple[int, int] | None = None,
                   name: str = "image set") -> np.ndarray:
    """The images of ``cfg`` as uint8 ``[N, H, W, 3]``; ``size = (H, W)`` is required for the
    synthetic OOD generators and checked for every other source (no resizing)."""
    from .base import SOURCES

    if cfg.source == "path":
        if not cfg.root:
            raise ConfigError(f"{name}: source 'path' needs root (a .npy/.npz/.mat file or an image folder)")
        if cfg.exclude_classes:
            raise ConfigError(f"{name}: exclude_classes needs a labelled data source, not a path")
        images, where = read_image_path(cfg.root, size, name), cfg.root
    elif cfg.source in SOURCES:
        images, where = _from_source(cfg), f"data source {cfg.source} ({cfg.root or 'generated'})"
    elif cfg.source in SYNTHETIC_OOD:
        if size is None:
            raise ConfigError(f"{name}: a synthetic OOD set needs the image size")
        images = make_ood_set(cfg.source, cfg.num_images, size, seed=default_seed(cfg.source, cfg.seed))
        where = f"synthetic {cfg.source}"
    else:
        known = ["path"] + sorted(SOURCES.names()) + sorted(SYNTHETIC_OOD.names())
        raise ConfigError(f"{name}: unknown source {cfg.source!r}; known: {', '.join(known)}")
    images = as_ood_images(images, f"{name} ({where})")
    if size is not None and tuple(images.shape[1:3]) != tuple(size):
        raise DataError(f"{name}: {where} has {images.shape[2]}x{images.shape[1]} images, but the "
                        f"in-distribution images are {size[1]}x{size[0]} (no resizing is done)")
    if cfg.max_images is not None and cfg.max_images < len(images):
        keep = np.random.default_rng([cfg.seed, 3]).permutation(len(images))[: cfg.max_images]
        images = images[np.sort(keep)]
    return np.ascontiguousarray(images)


def image_set_config(value: str | Mapping[str, Any], where: str) -> ImageSetConfig:
    """A path string or a mapping of :class:`ImageSetConfig` fields, validated (errors name ``where``)."""
    from ..typedconfig import from_dict

    if isinstance(value, (str, Path)):
        return ImageSetConfig(source="path", root=str(value))
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a path or a mapping, got {value!r}")
    return from_dict(ImageSetConfig, dict(value), where)
