"""Writing -C datasets (official layout, seeded, checksummed, crash-safe) and loading -C folders."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

import ssrobust.corruptions as C
from ssrobust.errors import ConfigError, DataError

N = 6
NAMES = ("fog", "contrast", "shot_noise")


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (N, 16, 16, 3), dtype=np.uint8), rng.integers(0, 10, N)


@pytest.fixture(scope="module")
def written(tmp_path_factory, images):
    out = tmp_path_factory.mktemp("c") / "ours-C"
    manifest = C.write_corrupted_dataset(*images, out, names=NAMES, seed=3, batch_size=4, progress=False)
    return out, manifest


def test_layout_is_the_official_one(written, images):
    out, manifest = written
    x, y = images
    expected = [f"{n}.npy" for n in NAMES] + ["labels.npy", "manifest.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    labels = np.load(out / "labels.npy")
    assert labels.shape == (5 * N,) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.tile(y, 5))
    for name in NAMES:
        arr = np.load(out / f"{name}.npy")
        assert arr.shape == (5 * N, 16, 16, 3) and arr.dtype == np.uint8
    # severity-major rows, truncated like the official generator; block b of batch_size 4 uses
    # block_generator(seed, name, severity, b)
    fog = np.load(out / "fog.npy")
    for sev in (1, 5):
        xt = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
        parts = [C.corrupt(xt[s: s + 4], "fog", sev, C.block_generator(3, "fog", sev, b))
                 for b, s in enumerate(range(0, N, 4))]
        expect = C.to_uint8_like_official(torch.cat(parts)).permute(0, 2, 3, 1).numpy()
        np.testing.assert_array_equal(fog[(sev - 1) * N: sev * N], expect)


def test_manifest_records_checksums_seed_and_versions(written):
    out, manifest = written
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["seed"] == 3 and manifest["batch_size"] == 4 and manifest["severities"] == [1, 2, 3, 4, 5]
    assert manifest["names"] == list(NAMES) and manifest["param_set"] == "cifar"
    assert {"ssrobust", "torch", "numpy", "pillow"} <= set(manifest["versions"])
    for fname, info in manifest["files"].items():
        assert hashlib.sha256((out / fname).read_bytes()).hexdigest() == info["sha256"]


def test_same_seed_same_bytes_other_seed_other_random_corruptions(tmp_path, written, images):
    out, manifest = written
    again = C.write_corrupted_dataset(*images, tmp_path / "a", names=NAMES, seed=3, batch_size=4, progress=False)
    assert again["files"] == manifest["files"]
    other = C.write_corrupted_dataset(*images, tmp_path / "b", names=NAMES, seed=4, batch_size=4, progress=False)
    assert other["files"]["contrast.npy"] == manifest["files"]["contrast.npy"]  # deterministic
    assert other["files"]["fog.npy"]["sha256"] != manifest["files"]["fog.npy"]["sha256"]


@pytest.mark.slow  # spawns two processes that import torch
def test_worker_processes_write_identical_files(tmp_path, written, images):
    out, manifest = written
    par = C.write_corrupted_dataset(*images, tmp_path, names=NAMES, seed=3, batch_size=4, progress=False,
                                    workers=2)
    assert par == manifest | {"versions": par["versions"]}
    assert not list(tmp_path.glob("*.partial"))


def test_loader_reads_per_name_and_severity(written, images):
    out, _ = written
    data = C.load_corrupted_folder(out, verify=True)
    assert data.names == ("shot_noise", "fog", "contrast")  # the official order
    assert data.severities == (1, 2, 3, 4, 5) and data.n == N
    assert data.image_shape == (16, 16, 3) and len(data) == 15
    np.testing.assert_array_equal(data.labels, images[1])
    imgs, labels = data["contrast", 2]
    np.testing.assert_array_equal(imgs, np.load(out / "contrast.npy")[N: 2 * N])
    assert list(data)[:2] == [("shot_noise", 1), ("shot_noise", 2)]
    assert C.load_corrupted_folder(out, names=["contrast"]).names == ("contrast",)
    with pytest.raises(KeyError, match="not loaded"):
        data.images("snow", 1)


def test_interrupted_run_leaves_nothing_complete_looking(tmp_path, images, monkeypatch):
    import ssrobust.corruptions.writer as W

    calls = {"n": 0}
    real = W.corrupt

    def failing(*a, **k):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(W, "corrupt", failing)
    with pytest.raises(KeyboardInterrupt):
        C.write_corrupted_dataset(*images, tmp_path, names=NAMES, batch_size=4, progress=False)
    assert not list(tmp_path.glob("*.npy")) and not (tmp_path / "manifest.json").exists()
    assert list(tmp_path.glob("*.partial"))
    with pytest.raises(DataError, match="labels.npy"):
        C.load_corrupted_folder(tmp_path)


def test_writer_refuses_to_overwrite_and_rejects_bad_inputs(written, images, tmp_path):
    out, _ = written
    with pytest.raises(ConfigError, match="overwrite=True"):
        C.write_corrupted_dataset(*images, out, names=NAMES, progress=False)
    with pytest.raises(DataError, match="uint8"):
        C.write_corrupted_dataset(images[0].astype(np.float32), images[1], tmp_path, progress=False)
    with pytest.raises(DataError, match="labels"):
        C.write_corrupted_dataset(images[0], images[1][:3], tmp_path, progress=False)
    with pytest.raises(KeyError, match="known"):
        C.write_corrupted_dataset(*images, tmp_path, names=["fogg"], progress=False)


def _official_like(folder, n=4, h=8, sev=5, names=("fog", "snow")):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 100, n)
    np.save(folder / "labels.npy", np.tile(y, sev).astype(np.uint8))
    for name in names:
        np.save(folder / f"{name}.npy", rng.integers(0, 256, (sev * n, h, h, 3), dtype=np.uint8))
    return y


def test_official_folders_without_manifest_load(tmp_path):
    y = _official_like(tmp_path / "CIFAR-100-C")
    data = C.load_corrupted_folder(tmp_path / "CIFAR-100-C")
    assert data.names == ("snow", "fog") and data.severities == (1, 2, 3, 4, 5)
    np.testing.assert_array_equal(data.labels, y)
    with pytest.raises(DataError, match="manifest"):
        C.load_corrupted_folder(tmp_path / "CIFAR-100-C", verify=True)


def test_truncated_file_fails_naming_the_file(tmp_path):
    _official_like(tmp_path)
    raw = (tmp_path / "snow.npy").read_bytes()
    (tmp_path / "snow.npy").write_bytes(raw[: len(raw) - 100])
    with pytest.raises(DataError, match=r"snow\.npy: truncated"):
        C.load_corrupted_folder(tmp_path)


@pytest.mark.parametrize("problem,match", [
    ("rows", r"fog\.npy: has 15 images, expected 20"),
    ("dtype", r"fog\.npy: expected uint8 images"),
    ("labels", r"labels\.npy: the 5 severity blocks"),
    ("missing", r"snow\.npy: missing"),
    ("shape", r"(fog|snow)\.npy: image shape \(\d+, \d+, 3\) differs"),
    ("checksum", r"fog\.npy: sha256"),
])
def test_mismatched_files_fail_clearly(tmp_path, problem, match, images):
    if problem == "checksum":
        C.write_corrupted_dataset(*images, tmp_path, names=("fog",), progress=False)
        arr = np.load(tmp_path / "fog.npy")
        arr[0, 0, 0, 0] ^= 1
        np.save(tmp_path / "fog.npy", arr)
        with pytest.raises(DataError, match=match):
            C.load_corrupted_folder(tmp_path, verify=True)
        return
    _official_like(tmp_path)
    rng = np.random.default_rng(2)
    if problem == "rows":
        np.save(tmp_path / "fog.npy", rng.integers(0, 256, (15, 8, 8, 3), dtype=np.uint8))
    elif problem == "dtype":
        np.save(tmp_path / "fog.npy", rng.random((20, 8, 8, 3)).astype(np.float32))
    elif problem == "labels":
        np.save(tmp_path / "labels.npy", rng.integers(0, 9, 20).astype(np.uint8))
    elif problem == "missing":
        (tmp_path / "snow.npy").unlink()
    elif problem == "shape":
        np.save(tmp_path / "snow.npy", rng.integers(0, 256, (20, 9, 9, 3), dtype=np.uint8))
    names = ("fog", "snow") if problem == "missing" else None
    with pytest.raises(DataError, match=match):
        C.load_corrupted_folder(tmp_path, names=names)


def test_object_labels_are_refused_without_unpickling(tmp_path):
    _official_like(tmp_path)
    np.save(tmp_path / "labels.npy", np.array([None] * 20, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"labels\.npy: holds Python objects \(object\)"):
        C.load_corrupted_folder(tmp_path)
