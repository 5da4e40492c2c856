"""User OOD sets for the ``ood`` suite: files, folders, data sources, held-out classes; errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from _helpers import make_npz
from ssrobust.errors import ConfigError, DataError
from ssrobust.eval.base import SUITES, EvalContext
from ssrobust.data.image_sets import ImageSetConfig, load_image_set, read_image_path
from ssrobust.models import create_model

SIZE = 16


def _images(n: int, seed: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _folder(root, images, classes=None):
    """Write ``images`` as PNGs: flat, or split round-robin over class subfolders."""
    for i, img in enumerate(images):
        d = root if classes is None else root / classes[i % len(classes)]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:03d}.png")


@pytest.fixture(scope="module")
def ctx() -> EvalContext:
    torch.manual_seed(0)
    model = create_model("tiny", 3, width=4).eval()
    return EvalContext(model=model, images=_images(30, 0), labels=torch.zeros(30, dtype=torch.long),
                       class_names=["a", "b", "c"], batch_size=64, seed=0, progress=False)


def test_npy_npz_and_folders_read_back_exactly(tmp_path):
    imgs = _images(6, 1)
    np.save(tmp_path / "a.npy", imgs)
    np.savez(tmp_path / "b.npz", images=imgs, labels=np.arange(6))
    np.savez(tmp_path / "c.npz", whatever=imgs)
    for name in ("a.npy", "b.npz", "c.npz"):
        np.testing.assert_array_equal(read_image_path(tmp_path / name, (SIZE, SIZE)), imgs)
    _folder(tmp_path / "flat", imgs)
    np.testing.assert_array_equal(read_image_path(tmp_path / "flat"), imgs)
    _folder(tmp_path / "nested", imgs, classes=["x", "y"])  # x: 0, 2, 4; y: 1, 3, 5
    np.testing.assert_array_equal(read_image_path(tmp_path / "nested"), imgs[[0, 2, 4, 1, 3, 5]])
    gray = np.random.default_rng(2).integers(0, 256, (3, SIZE, SIZE), dtype=np.uint8)
    np.save(tmp_path / "gray.npy", gray)
    assert read_image_path(tmp_path / "gray.npy").shape == (3, SIZE, SIZE, 3)


def test_svhn_style_mat_file(tmp_path):
    sio = pytest.importorskip("scipy.io")
    imgs = _images(4, 6)
    sio.savemat(tmp_path / "test_32x32.mat", {"X": np.moveaxis(imgs, 0, -1), "y": np.ones((4, 1))})
    np.testing.assert_array_equal(read_image_path(tmp_path / "test_32x32.mat", (SIZE, SIZE)), imgs)
    sio.savemat(tmp_path / "bad.mat", {"Z": np.zeros(3)})
    with pytest.raises(DataError, match="expected an SVHN-style array 'X'"):
        read_image_path(tmp_path / "bad.mat")


def test_data_sources_synthetic_sets_and_subsets(tmp_path):
    root = make_npz(tmp_path)  # 96 train / 32 test images of 3 classes, 16 px
    z = np.load(root)
    cfg = ImageSetConfig(source="npz", root=str(root), split="test", exclude_classes=[0])
    np.testing.assert_array_equal(load_image_set(cfg, (SIZE, SIZE)), z["x_test"][z["y_test"] != 0])
    both = load_image_set(ImageSetConfig(source="npz", root=str(root), split="all"))
    assert len(both) == 128
    sub = load_image_set(ImageSetConfig(source="npz", root=str(root), split="train", max_images=10, seed=3))
    assert len(sub) == 10 and all((z["x_train"] == s).all(axis=(1, 2, 3)).any() for s in sub)
    blobs = load_image_set(ImageSetConfig(source="blobs", num_images=7), (SIZE, SIZE))
    assert blobs.shape == (7, SIZE, SIZE, 3) and blobs.dtype == np.uint8


def test_suite_scores_path_sets_next_to_synthetic_ones(ctx, tmp_path):
    np.save(tmp_path / "a.npy", _images(20, 3))
    _folder(tmp_path / "dir", _images(5, 4), classes=["k"])
    root = make_npz(tmp_path)
    paths = {"npy": str(tmp_path / "a.npy"), "dir": str(tmp_path / "dir"),
             "toy": {"source": "npz", "root": str(root), "split": "test"}}
    rec = SUITES.get("ood")(ctx, scores=["msp"], ood_paths=paths)
    json.dumps(rec)
    assert rec["ood_sets"] == {
        "gaussian": {"n": 30, "source": "synthetic"}, "rademacher": {"n": 30, "source": "synthetic"},
        "blobs": {"n": 30, "source": "synthetic"}, "npy": {"n": 20, "source": str(tmp_path / "a.npy")},
        "dir": {"n": 5, "source": str(tmp_path / "dir")}, "toy": {"n": 32, "source": "npz:test"}}
    # The same images given as an in-memory user set give the same metrics.
    direct = EvalContext(**{**ctx.__dict__, "extra": {"ood_sets": {"npy": np.load(tmp_path / "a.npy")}}})
    same = SUITES.get("ood")(direct, scores=["msp"], ood_sets=["npy"])
    assert same["scores"]["msp"]["per_set"]["npy"] == rec["scores"]["msp"]["per_set"]["npy"]
    cut = SUITES.get("ood")(ctx, scores=["msp"], ood_sets=["toy"], ood_paths=paths, max_images=12)
    assert cut["n_in"] == 12 and cut["ood_sets"]["toy"]["n"] == 12


def test_held_out_option_uses_the_runs_other_classes(ctx):
    held = _images(11, 5)
    with_held = EvalContext(**{**ctx.__dict__, "extra": {"held_out_images": held}})
    rec = SUITES.get("ood")(with_held, scores=["msp"], held_out=True)
    assert rec["ood_sets"]["held_out"] == {"n": 11, "source": "held_out"} and len(rec["ood_sets"]) == 4
    with pytest.raises(ConfigError, match="held_out=true needs .* data.classes"):
        SUITES.get("ood")(ctx, scores=["msp"], held_out=True)
    with pytest.raises(ConfigError, match=r"unknown OOD set 'held_out' \(set held_out=true\)"):
        SUITES.get("ood")(with_held, scores=["msp"], ood_sets=["held_out"])


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.npy", "missing.npy does not exist"),
    (lambda p: (np.save(p / "big.npy", _images(2, 0, size=32)), p / "big.npy")[1],
     r"big.npy holds 32x32 images, but the in-distribution images are 16x16"),
    (lambda p: (np.save(p / "f.npy", _images(2, 0).astype(np.float32)), p / "f.npy")[1],
     r"f.npy\): images must be uint8"),
    (lambda p: (np.save(p / "flat.npy", np.zeros((2, 16), np.uint8)), p / "flat.npy")[1],
     r"expected a non-empty \[N, H, W, 3\] array"),
    (lambda p: (np.savez(p / "two.npz", a=_images(2, 0), b=_images(2, 1)), p / "two.npz")[1],
     "needs a single array or one named x_test, images or x; it has a, b"),
    (lambda p: (p / "t.txt").write_text("x") and p / "t.txt", "unsupported OOD set file type '.txt'"),
    (lambda p: (_folder(p / "d", _images(2, 0, size=24)), p / "d")[1],
     r"image .*000.png is 24x24, but the in-distribution images are 16x16"),
    (lambda p: ((p / "e").mkdir(), p / "e")[1], "has no .png/.jpg/.jpeg/.bmp images"),
])
def test_bad_paths_fail_naming_the_file(ctx, tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DataError, match=message):
        SUITES.get("ood")(ctx, scores=["msp"], ood_paths={"mine": str(path)})


def test_bad_set_configs_name_the_key(ctx, tmp_path):
    suite = SUITES.get("ood")
    with pytest.raises(ConfigError, match="ood_paths.mine.rooot"):
        suite(ctx, scores=["msp"], ood_paths={"mine": {"source": "path", "rooot": "x"}})
    with pytest.raises(ConfigError, match="unknown source 'svhn'; known: path, .*npz.*blobs"):
        suite(ctx, scores=["msp"], ood_paths={"mine": {"source": "svhn", "root": "x"}})
    with pytest.raises(ConfigError, match="exclude_classes needs a labelled data source"):
        load_image_set(ImageSetConfig(root=str(tmp_path), exclude_classes=[1]))
    with pytest.raises(ConfigError, match="'valid' is not one of"):
        suite(ctx, scores=["msp"], ood_paths={"mine": {"source": "npz", "split": "valid"}})


@pytest.mark.parametrize("name, content, message", [
    ("g.npz", b"garbage " * 20, r"g.npz: not a .npz archive \(no zip header\)"),
    ("g.npy", b"garbage " * 20, r"g.npy: not a .npy file \(no NUMPY header\)"),
    ("o.npy", None, r"o.npy: holds Python objects"),
    ("g.mat", b"garbage " * 20, r"g.mat: not a readable MATLAB .mat file"),
])
def test_unreadable_files_are_described_and_never_unpickled(tmp_path, name, content, message):
    path = tmp_path / name
    if content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(content)
    if name.endswith(".mat"):
        pytest.importorskip("scipy.io")
    with pytest.raises(DataError, match=r"^OOD set: .*/" + message) as err:
        read_image_path(path, name="OOD set")
    assert "pickled" not in str(err.value) or "never loaded" in str(err.value)
