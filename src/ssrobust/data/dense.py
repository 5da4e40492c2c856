"""Images with dense targets (segmentation masks, depth maps): a folder loader and the built-in scenes.

Folder layout (one split per folder; file stems pair the files)::

    root/images/<stem>.png|jpg|jpeg|bmp     RGB images, all of one size
    root/labels/<stem>.png                  optional: class ids, single channel (8-bit L / palette P,
                                            or 16-bit); ``void`` (default 255) = unlabelled
    root/depth/<stem>.png                   optional: 16-bit PNG, depth = value / depth_scale, 0 = invalid
    root/depth/<stem>.npz                   ... or an array under key ``depth`` (allow_pickle=False);
                                            NaN, inf and values <= 0 = invalid

A ``labels`` or ``depth`` folder, when present, must cover every image. Every problem is a one-line
:class:`~ssrobust.errors.DataError` naming the file and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..images import unit_float
from .safe_io import npz_member, open_npz

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
LABEL_MODES = ("L", "P", "I;16", "I;16B", "I;16L", "I")
DEPTH_PNG_MODES = ("I;16", "I;16B", "I;16L", "I")  # Pillow opens 16-bit PNGs as I;16 (older: I)
INVALID_DEPTH = 0.0


@dataclass
class DenseArrays:
    """``images`` uint8 ``[N, H, W, 3]``; ``masks`` int64 ``[N, H, W]`` (``void`` = unlabelled) or
    None; ``depth`` float32 ``[N, H, W]`` (0 = invalid) or None; ``names``: file stems / ids;
    ``num_classes``: of the masks; ``labels``: image-level class ids ``[N]`` where known."""

    images: np.ndarray
    masks: np.ndarray | None
    depth: np.ndarray | None
    names: list[str]
    num_classes: int | None = None
    void: int = 255
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def tensors(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(images float [N, 3, H, W] in [0, 1], targets)``; targets by task name, where present:
        ``"cls"`` labels ``[N]``, ``"seg"`` masks ``[N, H, W]``, ``"depth"`` ``[N, H, W]``."""
        arrays = {"cls": self.labels, "seg": self.masks, "depth": self.depth}
        targets = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items() if v is not None}
        return images_to_float(torch.from_numpy(np.ascontiguousarray(self.images))), targets


def images_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` (as the data sources give them) -> float ``[N, 3, H, W]`` in [0, 1]."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {tuple(images.shape)}")
    return unit_float(images.permute(0, 3, 1, 2))


@dataclass(frozen=True)
class DenseFolderConfig:
    """``root``: the split folder. ``num_classes``: label ids are ``0..num_classes-1`` (required when
    there is a ``labels`` folder). ``void``: the unlabelled value. ``depth_scale``: 16-bit PNG value
    per depth unit (1000 for millimetres -> metres as NYU; 256 for KITTI)."""

    root: str
    num_classes: int | None = None
    void: int = 255
    depth_scale: float = 1000.0

    def __post_init__(self) -> None:
        if not self.depth_scale > 0:
            raise ConfigError(f"depth_scale must be > 0, got {self.depth_scale}")
        if self.num_classes is not None and (self.num_classes < 1 or 0 <= self.void < self.num_classes):
            raise ConfigError(f"num_classes must be >= 1 and void ({self.void}) outside the class ids "
                              f"0..{self.num_classes - 1}")


def _open(path: Path, what: str) -> "object":
    from PIL import Image

    try:
        im = Image.open(path)
        im.load()
        return im
    except Exception as e:
        raise DataError(f"cannot read {what} {path}: {' '.join(str(e).split()) or type(e).__name__}") from None


def _read_image(path: Path) -> np.ndarray:
    im = _open(path, "image")
    return np.asarray(im.convert("RGB"), dtype=np.uint8)  # type: ignore[attr-defined]


def _check_size(arr: np.ndarray, shape: tuple[int, int], path: Path, image: Path) -> None:
    if arr.shape[:2] != shape:
        raise DataError(f"{path} is {arr.shape[1]}x{arr.shape[0]}, expected {shape[1]}x{shape[0]} "
                        f"like its image {image.name}")


def _read_labels(path: Path, cfg: DenseFolderConfig, shape: tuple[int, int], image: Path) -> np.ndarray:
    im = _open(path, "label file")
    mode = im.mode  # type: ignore[attr-defined]
    if mode not in LABEL_MODES:
        raise DataError(f"{path}: label PNG of mode {mode}; expected a single-channel PNG of class ids "
                        f"(8-bit L or palette P, or 16-bit), not colour-coded labels")
    ids = np.asarray(im).astype(np.int64)
    _check_size(ids, shape, path, image)
    k = int(cfg.num_classes)  # type: ignore[arg-type]
    bad = ids[(ids != cfg.void) & ((ids < 0) | (ids >= k))]
    if bad.size:
        raise DataError(f"{path}: label value {int(bad[0])} out of range; expected class ids 0..{k - 1} "
                        f"or void {cfg.void}")
    return ids


def _read_depth_png(path: Path, cfg: DenseFolderConfig) -> np.ndarray:
    im = _open(path, "depth file")
    mode = im.mode  # type: ignore[attr-defined]
    if mode not in DEPTH_PNG_MODES:
        raise DataError(f"{path}: depth PNG of mode {mode} (8-bit or colour); expected a 16-bit "
                        f"single-channel PNG (depth = value / depth_scale {cfg.depth_scale:g}, 0 = invalid)")
    raw = np.asarray(im).astype(np.float64)
    return (raw / cfg.depth_scale).astype(np.float32)  # 0 stays 0 = invalid


def _read_depth_npz(path: Path) -> np.ndarray:
    with open_npz(path) as z:
        if "depth" not in z.files:
            raise DataError(f"{path}: no 'depth' array (has {', '.join(z.files) or 'nothing'})")
        d = npz_member(z, "depth", path)
    if d.ndim != 2 or not (np.issubdtype(d.dtype, np.floating) or np.issubdtype(d.dtype, np.integer)):
        raise DataError(f"{path}: 'depth' must be a numeric [H, W] array, got {d.dtype} {d.shape}")
    d = d.astype(np.float32)
    d[~np.isfinite(d) | (d <= 0)] = INVALID_DEPTH
    return d


def _read_depth(folder: Path, stem: str, cfg: DenseFolderConfig, shape: tuple[int, int],
                image: Path) -> np.ndarray:
    png, npz = folder / f"{stem}.png", folder / f"{stem}.npz"
    if png.is_file() and npz.is_file():
        raise DataError(f"{folder}: both {png.name} and {npz.name}; keep one depth file per image")
    if not png.is_file() and not npz.is_file():
        raise DataError(f"missing depth file for image {image.name}: expected {png} or {npz}")
    depth = _read_depth_png(png, cfg) if png.is_file() else _read_depth_npz(npz)
    _check_size(depth, shape, png if png.is_file() else npz, image)
    return depth


def _list_images(root: Path) -> list[Path]:
    folder = root / "images"
    if not folder.is_dir():
        raise DataError(f"dense folder {root}: no images/ folder (expected root/images/<stem>.png|jpg, "
                        f"root/labels/<stem>.png, root/depth/<stem>.png|npz)")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{folder} has no images (.png/.jpg/.jpeg/.bmp)")
    stems = [p.stem for p in files]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise DataError(f"{folder}: several images share the stem {dup[0]!r}; stems pair images with targets")
    return files


def _check_orphans(folder: Path, stems: set[str], suffixes: tuple[str, ...]) -> None:
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):  # .DS_Store and the like
            continue
        if p.suffix.lower() in suffixes and p.stem not in stems:
            raise DataError(f"{p} has no image {p.stem}.* in {folder.parent / 'images'}")
        if p.is_file() and p.suffix.lower() not in suffixes:
            raise DataError(f"{p}: unexpected file; expected only {'/'.join(suffixes)} files here")


def load_dense_folder(cfg: DenseFolderConfig) -> DenseArrays:
    """Read one split folder (layout in the module docstring)."""
    root = Path(cfg.root)
    if not root.is_dir():
        raise DataError(f"dense folder {root} does not exist or is not a folder")
    files = _list_images(root)
    labels_dir, depth_dir = root / "labels", root / "depth"
    if labels_dir.is_dir():
        if cfg.num_classes is None:
            raise ConfigError(f"{labels_dir}: num_classes is required to check the label ids")
        _check_orphans(labels_dir, {p.stem for p in files}, (".png",))
    if depth_dir.is_dir():
        _check_orphans(depth_dir, {p.stem for p in files}, (".png", ".npz"))
    images, masks, depth = [], [], []
    for f in files:
        img = _read_image(f)
        if images and img.shape != images[0].shape:
            raise DataError(f"image {f} is {img.shape[1]}x{img.shape[0]}, expected "
                            f"{images[0].shape[1]}x{images[0].shape[0]} like {files[0].name}")
        images.append(img)
        if labels_dir.is_dir():
            lab = labels_dir / f"{f.stem}.png"
            if not lab.is_file():
                raise DataError(f"missing label file {lab} for image {f.name}")
            masks.append(_read_labels(lab, cfg, img.shape[:2], f))
        if depth_dir.is_dir():
            depth.append(_read_depth(depth_dir, f.stem, cfg, img.shape[:2], f))
    return DenseArrays(np.stack(images), np.stack(masks) if masks else None,
                       np.stack(depth) if depth else None, [f.stem for f in files], cfg.num_classes, cfg.void)


def synthetic_dense(n: int, seed: int, size: int = 32, num_classes: int = 10) -> DenseArrays:
    """The built-in scenes with their targets: image labels ``0..num_classes-1``, masks with
    ``num_classes + 1`` classes (0 = background, ``c + 1`` = object of class ``c``; no void pixels)
    and depth in (0, 1] (relative; larger = farther). Deterministic given the arguments (see
    docs/synthetic.md)."""
    from .synthetic import generate_synthetic

    data = generate_synthetic(n, seed=seed, size=size, num_classes=num_classes)
    return DenseArrays(data.images, data.masks.astype(np.int64), data.depth, [str(i) for i in range(n)],
                       num_classes + 1, void=255, labels=data.labels)
