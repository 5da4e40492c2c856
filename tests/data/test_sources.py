"""Data sources and their errors: CIFAR pickles, image folders, npz; caching; validation split."""

import pickle

import numpy as np
import pytest
from PIL import Image

from ssrobust.data import DataConfig, load_splits
from ssrobust.errors import DataError


def _write_cifar10(root, n=10):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    names = [f"class{i}".encode() for i in range(10)]
    with open(root / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names}, f)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = list(rng.integers(0, 10, n))
        batches[name] = (data, labels)
        with open(root / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f)
    return batches


def test_cifar10_layout_and_channel_order(tmp_path):
    batches = _write_cifar10(tmp_path / "cifar-10-batches-py")
    s = load_splits(DataConfig(source="cifar10", root=str(tmp_path), val_size=0))
    assert s.train.images.shape == (50, 32, 32, 3) and s.test.images.shape == (10, 32, 32, 3)
    assert s.class_names[3] == "class3"
    data, labels = batches["data_batch_1"]
    # CIFAR rows are 1024 red values, then green, then blue, each row-major
    assert s.train.images[0, 0, 1, 0] == data[0, 1]
    assert s.train.images[0, 0, 0, 1] == data[0, 1024]
    assert s.train.images[0, 1, 0, 2] == data[0, 2048 + 32]
    assert s.train.labels[:10].tolist() == labels


def test_cifar10_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(DataError, match="no CIFAR python folder"):
        load_splits(DataConfig(source="cifar10", root=str(tmp_path)))
    _write_cifar10(tmp_path / "c")
    (tmp_path / "c" / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="data_batch_3"):
        load_splits(DataConfig(source="cifar10", root=str(tmp_path / "c")))


def test_cifar100_fine_labels_and_coarse_extra(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(1)
    with open(root / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"f{i}".encode() for i in range(100)]}, f)
    for split, n in (("train", 20), ("test", 8)):
        with open(root / split, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": list(rng.integers(0, 100, n)),
                         b"coarse_labels": list(rng.integers(0, 20, n))}, f)
    s = load_splits(DataConfig(source="cifar100", root=str(tmp_path), val_size=4))
    assert s.num_classes == 100 and len(s.train) == 16 and len(s.val) == 4
    assert s.test.extras["coarse_labels"].shape == (8,)


def _imagefolder(root, classes=("cat", "dog"), n=3, size=8, ext="png"):
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.{ext}")


def test_imagefolder_decodes_once_into_a_memory_mapped_cache(tmp_path):
    _imagefolder(tmp_path / "d")
    cfg = DataConfig(source="imagefolder", root=str(tmp_path / "d"), val_size=0, cache_dir=str(tmp_path / "cache"))
    s = load_splits(cfg)
    assert s.class_names == ["cat", "dog"] and s.train.images.shape == (6, 8, 8, 3)
    # a fixed mixed order, not class by class (tests/data/test_imagefolder_order.py)
    assert sorted(s.train.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    expected = np.asarray(Image.open(tmp_path / "d" / "train" / "dog" / "1.png"))
    at = [i for i in range(6) if np.array_equal(s.train.images[i], expected)]
    assert len(at) == 1 and s.train.labels[at[0]] == 1  # the image sits next to its own label
    caches = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(caches) == 2
    raw = load_splits(cfg).train  # second load reads the cache
    assert isinstance(np.load(caches[0], mmap_mode="r"), np.memmap) and np.array_equal(raw.images, s.train.images)
    # touching the data invalidates the cache key
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "d" / "train" / "cat" / "9.png")
    assert len(load_splits(cfg).train) == 7


@pytest.mark.parametrize("breakage, message", [
    ("missing", "does not exist"),
    ("empty_class", "is empty"),
    ("bad_image", "cannot read image .*1.png"),
    # whichever of the two sizes is decoded first is the expected one (the folder order is mixed)
    ("other_size", "2.png has size 9x9, expected 8x8|has size 8x8, expected 9x9 like .*2.png"),
    ("extra_test_class", "class folder\\(s\\) bird not present"),
])
def test_imagefolder_errors_name_the_problem(tmp_path, breakage, message):
    root = tmp_path / "d"
    if breakage != "missing":
        _imagefolder(root)
    if breakage == "empty_class":
        (root / "train" / "emu").mkdir()
    elif breakage == "bad_image":
        (root / "train" / "cat" / "1.png").write_bytes(b"not a png")
    elif breakage == "other_size":
        Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(root / "train" / "dog" / "2.png")
    elif breakage == "extra_test_class":
        (root / "test" / "bird").mkdir()
    with pytest.raises(DataError, match=message):
        load_splits(DataConfig(source="imagefolder", root=str(root), val_size=0, cache_dir=str(tmp_path / "c")))


def test_npz_label_range_and_keys(tmp_path):
    x = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "a.npz", x_train=x, y_train=np.array([0, 1, 2, 5]), x_test=x, y_test=np.zeros(4),
             class_names=np.array(["a", "b", "c"]))
    with pytest.raises(DataError, match="label out of range: found labels 0..5, expected 0..2"):
        load_splits(DataConfig(source="npz", root=str(tmp_path / "a.npz"), val_size=0))
    np.savez(tmp_path / "b.npz", x_train=x)
    with pytest.raises(DataError, match="lacks key\\(s\\) y_train"):
        load_splits(DataConfig(source="npz", root=str(tmp_path / "b.npz")))
    np.savez(tmp_path / "c.npz", x_train=x.astype(np.float32), y_train=np.zeros(4), x_test=x, y_test=np.zeros(4))
    with pytest.raises(DataError, match="must be uint8"):
        load_splits(DataConfig(source="npz", root=str(tmp_path / "c.npz"), val_size=0))


def test_missing_root_and_unknown_source():
    with pytest.raises(DataError, match="needs data.root"):
        load_splits(DataConfig(source="imagefolder"))
    with pytest.raises(KeyError, match="known: .*synthetic"):
        load_splits(DataConfig(source="mnist"))


def test_validation_split_is_seeded_and_disjoint(tmp_path):
    from _helpers import make_npz

    root = str(make_npz(tmp_path))
    a = load_splits(DataConfig(source="npz", root=root, val_size=10, seed=3))
    b = load_splits(DataConfig(source="npz", root=root, val_size=10, seed=3))
    c = load_splits(DataConfig(source="npz", root=root, val_size=10, seed=4))
    assert np.array_equal(a.val.images, b.val.images) and not np.array_equal(a.val.images, c.val.images)
    assert len(a.train) + len(a.val) == 96
    flat = {bytes(im) for im in a.train.images}
    assert not any(bytes(im) in flat for im in a.val.images)
    with pytest.raises(DataError, match="leaves no training images"):
        load_splits(DataConfig(source="npz", root=root, val_size=96))


def test_synthetic_source_is_deterministic_and_carries_masks_and_depth():
    cfg = DataConfig(source="synthetic", num_train=60, num_test=20, val_size=10, seed=1)
    a, b = load_splits(cfg), load_splits(cfg)
    assert np.array_equal(a.train.images, b.train.images) and a.num_classes == 10
    assert a.test.extras["masks"].shape == (20, 32, 32) and a.test.extras["depth"].shape == (20, 32, 32)
    assert not np.array_equal(a.train.images[:20], a.test.images)


def test_limits_take_seeded_random_subsets_not_the_first_classes(tmp_path):
    x = np.zeros((100, 4, 4, 3), np.uint8)
    y = np.repeat(np.arange(4), 25)  # sorted by class, as image folders are
    np.savez(tmp_path / "s.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    cfg = DataConfig(source="npz", root=str(tmp_path / "s.npz"), val_size=0, limit_train=40, limit_test=40)
    s = load_splits(cfg)
    assert len(s.train) == 40 and len(s.test) == 40
    assert set(s.test.labels.tolist()) == {0, 1, 2, 3} and set(s.train.labels.tolist()) == {0, 1, 2, 3}
    assert np.array_equal(load_splits(cfg).test.labels, s.test.labels)


def _npz(path, y_train, y_test, **extra):
    x = np.zeros((len(y_train), 4, 4, 3), np.uint8)
    np.savez(path, x_train=x, y_train=y_train, x_test=np.zeros((len(y_test), 4, 4, 3), np.uint8),
             y_test=y_test, **extra)
    return DataConfig(source="npz", root=str(path), val_size=0)


@pytest.mark.parametrize("y_train, y_test, extra, message", [
    (np.array([0., 1., 2.]), np.array([0, 1]), {}, r"y_train must be integer class ids .*got float64"),
    (np.array([0, 1, 2]), np.array([0.5, 1.0]), {}, r"y_test must be integer class ids .*got float64"),
    (np.array([0, 1, -1]), np.array([0, 1]), {}, r"y_train has negative label -1"),
    (np.array([0, 1, 99]), np.array([0, 1]), {}, r"y_train has labels up to 99 but no image of class\(es\) "
                                                 r"2, 3, 4, 5, 6, \.\.\.; .*add class_names"),
    (np.array([0, 1, 2]), np.array([0, 3]), {}, r"y_test: label out of range: found labels 0..3, expected 0..2"),
    (np.array([0, 1, 2]), np.array([0, 1]), {"class_names": np.array(["a", "b"])},
     r"y_train: label out of range: found labels 0..2, expected 0..1 \(class_names declares 2 classes\)"),
    (np.array([0, 1]), np.array([0, 1]), {"class_names": np.array(["a", "a"])}, r"class_names has duplicates"),
])
def test_npz_labels_must_be_ints_within_the_declared_classes(tmp_path, y_train, y_test, extra, message):
    cfg = _npz(tmp_path / "d.npz", y_train, y_test, **extra)
    with pytest.raises(DataError, match=r"d.npz: " + message):
        load_splits(cfg)


def test_npz_class_names_declare_classes_without_images(tmp_path):
    cfg = _npz(tmp_path / "d.npz", np.array([0, 2]), np.array([2, 3]), class_names=np.array(list("abcd")))
    s = load_splits(cfg)
    assert s.num_classes == 4 and s.test.labels.tolist() == [2, 3]


def test_garbage_npz_is_described_as_such(tmp_path):
    path = tmp_path / "g.npz"
    path.write_bytes(b"this is not an archive\n" * 10)
    with pytest.raises(DataError, match=r"g.npz: not a .npz archive \(no zip header\)") as err:
        load_splits(DataConfig(source="npz", root=str(path)))
    assert "pickle" not in str(err.value)
    np.savez(tmp_path / "o.npz", x_train=np.array([None], dtype=object), y_train=np.zeros(1, int),
             x_test=np.zeros((1, 4, 4, 3), np.uint8), y_test=np.zeros(1, int))
    with pytest.raises(DataError, match=r"o.npz: key x_train holds Python objects"):
        load_splits(DataConfig(source="npz", root=str(tmp_path / "o.npz")))


def test_imagefolder_with_a_single_class_is_an_error(tmp_path):
    _imagefolder(tmp_path / "d", classes=("only",))
    with pytest.raises(DataError, match=r"train has a single class folder \(only\); expected one subfolder "
                                        r"per class, at least 2"):
        load_splits(DataConfig(source="imagefolder", root=str(tmp_path / "d"), cache_dir=str(tmp_path / "c")))


@pytest.mark.parametrize("damage", ["empty", "truncated", "header_only"])
def test_damaged_cache_file_is_rebuilt(tmp_path, damage):
    _imagefolder(tmp_path / "d")
    cfg = DataConfig(source="imagefolder", root=str(tmp_path / "d"), val_size=0, cache_dir=str(tmp_path / "cache"))
    expected = np.array(load_splits(cfg).train.images)
    cache = next((tmp_path / "cache").glob("imagefolder-train-*.npy"))
    raw = cache.read_bytes()
    cache.write_bytes({"empty": b"", "truncated": raw[: len(raw) - 50], "header_only": raw[:100]}[damage])
    again = load_splits(cfg).train.images
    assert np.array_equal(again, expected)
    assert cache.read_bytes() == raw  # rebuilt in place
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        p.name for p in (tmp_path / "cache").glob("imagefolder-*.npy"))  # no temporary file left
