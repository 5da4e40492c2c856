"""Dense-label folders (images + label PNGs + 16-bit / npz depth) and the built-in scenes' targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssrobust.data.dense import DenseFolderConfig, images_to_float, load_dense_folder, synthetic_dense
from ssrobust.errors import ConfigError, DataError

H, W = 6, 8


def _rgb(value: int) -> np.ndarray:
    return np.full((H, W, 3), value, dtype=np.uint8)


def _labels(first: int) -> np.ndarray:
    lab = np.zeros((H, W), dtype=np.uint8)
    lab[:, : W // 2] = first
    lab[0, 0] = 255  # void
    return lab


def make_folder(root: Path, n: int = 3) -> Path:
    """``n`` images a, b, c with labels and depth (a, b as 16-bit PNG in mm; c as npz with a NaN)."""
    for d in ("images", "labels", "depth"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate("abc"[:n]):
        Image.fromarray(_rgb(40 * i)).save(root / "images" / f"{stem}.png")
        Image.fromarray(_labels(i % 3)).save(root / "labels" / f"{stem}.png")
        depth_mm = np.full((H, W), 1500 + i, dtype=np.uint16)
        depth_mm[1, 1] = 0  # no measurement
        if stem == "c":
            d = depth_mm / 1000.0
            d[1, 1] = np.nan
            np.savez(root / "depth" / "c.npz", depth=d)
        else:
            Image.fromarray(depth_mm).save(root / "depth" / f"{stem}.png")
    return root


def load(root: Path, **kw) -> object:
    return load_dense_folder(DenseFolderConfig(str(root), **{"num_classes": 3, **kw}))


def test_reads_images_masks_and_depth(tmp_path):
    out = load(make_folder(tmp_path))
    assert out.names == ["a", "b", "c"] and out.images.shape == (3, H, W, 3) and out.images.dtype == np.uint8
    assert out.masks.dtype == np.int64 and out.masks.shape == (3, H, W)
    assert out.masks[1, 0, 0] == 255 and out.masks[1, 2, 0] == 1 and out.masks[1, 2, -1] == 0
    assert out.depth.dtype == np.float32
    assert out.depth[0, 2, 2] == pytest.approx(1.5) and out.depth[1, 2, 2] == pytest.approx(1.501)
    assert out.depth[2, 2, 2] == pytest.approx(1.502)
    assert (out.depth[:, 1, 1] == 0).all()  # 0 in the PNG and NaN in the npz are both "invalid"


def test_depth_scale_and_optional_targets(tmp_path):
    root = make_folder(tmp_path, n=2)
    assert load(root, depth_scale=256.0).depth[0, 2, 2] == pytest.approx(1500 / 256)
    for d in ("labels", "depth"):
        for p in (root / d).iterdir():
            p.unlink()
        (root / d).rmdir()
    out = load_dense_folder(DenseFolderConfig(str(root)))  # images only: no num_classes needed
    assert out.masks is None and out.depth is None and len(out) == 2


def test_palette_and_16_bit_label_pngs(tmp_path):
    root = make_folder(tmp_path, n=1)
    pal = Image.fromarray(_labels(2), mode="L").convert("P")
    pal.save(root / "labels" / "a.png")
    assert load(root).masks[0, 2, 0] == 2
    Image.fromarray(np.full((H, W), 300, dtype=np.uint16)).save(root / "labels" / "a.png")
    assert load(root, num_classes=400, void=65535).masks[0, 0, 0] == 300


def _error(root: Path, **kw) -> str:
    with pytest.raises(DataError) as e:
        load(root, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_folders_and_files(tmp_path):
    assert "does not exist" in _error(tmp_path / "nope")
    assert "no images/ folder" in _error(tmp_path)
    (tmp_path / "images").mkdir()
    assert "has no images" in _error(tmp_path)
    root = make_folder(tmp_path / "ds")
    (root / "labels" / "b.png").unlink()
    msg = _error(root)
    assert "missing label file" in msg and "b.png" in msg
    root = make_folder(tmp_path / "ds2")
    (root / "depth" / "b.png").unlink()
    assert "missing depth file for image b.png" in _error(root)


def test_label_problems_name_the_file(tmp_path):
    root = make_folder(tmp_path)
    bad = _labels(1)
    bad[3, 3] = 7
    Image.fromarray(bad).save(root / "labels" / "b.png")
    msg = _error(root)
    assert str(root / "labels" / "b.png") in msg and "label value 7 out of range" in msg
    assert "0..2 or void 255" in msg
    Image.fromarray(_rgb(1)).save(root / "labels" / "b.png")
    assert "mode RGB; expected a single-channel PNG of class ids" in _error(root)
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(root / "labels" / "b.png")
    assert "b.png is 8x7, expected 8x6 like its image b.png" in _error(root)
    Image.fromarray(_labels(0)).save(root / "labels" / "b.png")
    Image.fromarray(_labels(0)).save(root / "labels" / "zz.png")
    assert "zz.png has no image zz.*" in _error(root)
    (root / "labels" / "zz.png").unlink()
    Image.fromarray(_rgb(0)).save(root / "labels" / "a.jpg")
    assert "a.jpg: unexpected file; expected only .png files here" in _error(root)


def test_depth_problems_name_the_file(tmp_path):
    root = make_folder(tmp_path)
    Image.fromarray(np.full((H, W), 200, np.uint8)).save(root / "depth" / "a.png")
    msg = _error(root)
    assert str(root / "depth" / "a.png") in msg and "mode L" in msg and "expected a 16-bit" in msg
    Image.fromarray(np.ones((H, W + 2), np.uint16)).save(root / "depth" / "a.png")
    assert "a.png is 10x6, expected 8x6" in _error(root)
    Image.fromarray(np.ones((H, W), np.uint16)).save(root / "depth" / "a.png")
    np.savez(root / "depth" / "a.npz", depth=np.ones((H, W)))
    assert "both a.png and a.npz" in _error(root)
    (root / "depth" / "a.npz").unlink()
    np.savez(root / "depth" / "c.npz", other=np.ones((H, W)))
    assert "c.npz: no 'depth' array (has other)" in _error(root)
    np.savez(root / "depth" / "c.npz", depth=np.array([object()] * 3, dtype=object))
    assert "holds Python objects" in _error(root)
    (root / "depth" / "c.npz").write_bytes(b"not a zip")
    assert "c.npz: not a .npz archive" in _error(root)


def test_image_problems(tmp_path):
    root = make_folder(tmp_path)
    Image.fromarray(np.zeros((H, W + 1, 3), np.uint8)).save(root / "images" / "b.png")
    assert "image " + str(root / "images" / "b.png") + " is 9x6, expected 8x6 like a.png" in _error(root)
    (root / "images" / "b.png").write_bytes(b"garbage")
    assert "cannot read image" in _error(root)
    Image.fromarray(_rgb(0)).save(root / "images" / "b.jpg")
    (root / "images" / "b.png").unlink()
    Image.fromarray(_rgb(0)).save(root / "images" / "b.bmp")
    assert "several images share the stem 'b'" in _error(root)


def test_config_errors(tmp_path):
    root = make_folder(tmp_path)
    with pytest.raises(ConfigError, match="num_classes is required"):
        load_dense_folder(DenseFolderConfig(str(root)))
    with pytest.raises(ConfigError, match="void \\(1\\) outside"):
        DenseFolderConfig(str(root), num_classes=3, void=1)
    with pytest.raises(ConfigError, match="depth_scale must be > 0"):
        DenseFolderConfig(str(root), depth_scale=0)


def test_synthetic_scenes_carry_labels_masks_and_depth():
    out = synthetic_dense(20, seed=3, size=16, num_classes=4)
    assert out.images.shape == (20, 16, 16, 3) and out.labels.shape == (20,)
    assert out.num_classes == 5 and out.masks.dtype == np.int64
    # every object pixel carries its image's class + 1; the rest is background 0
    for i in range(20):
        assert set(np.unique(out.masks[i])) <= {0, int(out.labels[i]) + 1}
    assert out.depth.min() > 0 and out.depth.max() <= 1
    again = synthetic_dense(20, seed=3, size=16, num_classes=4)
    assert np.array_equal(out.images, again.images) and np.array_equal(out.depth, again.depth)


def test_tensors_by_task_name(tmp_path):
    x, targets = synthetic_dense(4, seed=0, size=16, num_classes=2).tensors()
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert set(targets) == {"cls", "seg", "depth"} and targets["seg"].dtype == torch.int64
    x, targets = load_dense_folder(DenseFolderConfig(str(make_folder(tmp_path)), num_classes=3)).tensors()
    assert set(targets) == {"seg", "depth"} and x[1, 0, 0, 0].item() == pytest.approx(40 / 255)
    imgs = torch.randint(0, 256, (2, 5, 6, 3), dtype=torch.uint8)
    torch.testing.assert_close(images_to_float(imgs), imgs.permute(0, 3, 1, 2).float() / 255)
    with pytest.raises(ValueError, match="uint8 images"):
        images_to_float(imgs.float())
