"""K-means pseudo-labels: determinism, blob recovery, the .npz cache, and encoder features."""

import numpy as np
import pytest
import torch

from ssrobust.contrastive import cached_pseudo_labels, encode_dataset, kmeans_pseudo_labels, scale_ks
from ssrobust.contrastive import pseudo_labels as pl
from ssrobust.errors import ConfigError, DataError
from ssrobust.models import create_model


def blobs(n_per=30, k=4, d=8, seed=0, spread=0.05):
    """k well-separated directions (the features are l2-normalized before clustering)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(d)[:k] * 5.0
    x = np.concatenate([c + spread * rng.standard_normal((n_per, d)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(k), n_per)


def test_deterministic_for_a_seed_and_recovers_blobs():
    x, truth = blobs()
    a = kmeans_pseudo_labels(x, ks=(2, 4), seed=0)
    b = kmeans_pseudo_labels(torch.from_numpy(x), ks=(2, 4), seed=0)
    assert set(a) == {2, 4}
    for k in (2, 4):
        assert a[k].dtype == np.int64 and a[k].shape == (120,) and np.array_equal(a[k], b[k])
        assert a[k].min() >= 0 and a[k].max() < k
    # K = 4: each blob is one cluster and the four clusters are distinct.
    per_blob = [np.unique(a[4][truth == j]) for j in range(4)]
    assert all(len(u) == 1 for u in per_blob)
    assert len({int(u[0]) for u in per_blob}) == 4
    # K = 2: blobs are never split.
    assert all(len(np.unique(a[2][truth == j])) == 1 for j in range(4))


def test_different_seeds_can_differ():
    x = np.random.default_rng(1).standard_normal((200, 5)).astype(np.float32)  # no structure
    runs = {tuple(kmeans_pseudo_labels(x, ks=(10,), seed=s, n_init=1)[10]) for s in range(4)}
    assert len(runs) > 1


def test_scale_ks_rule():
    assert scale_ks((2, 10, 50, 100, 500), 50_000) == (2, 10, 50, 100, 500)
    assert scale_ks((2, 10, 50, 100, 500), 1_000) == (2, 10, 50, 100)
    assert scale_ks((2, 10, 50, 100, 500), 200) == (2, 10, 20)
    with pytest.raises(ConfigError, match="too few for pseudo-labels"):
        scale_ks((2, 10), 15)
    with pytest.raises(ConfigError, match="expected 2 <= K < N"):
        kmeans_pseudo_labels(np.random.rand(10, 3), ks=(10,))
    with pytest.raises(ValueError, match="NaN or infinite"):
        kmeans_pseudo_labels(np.full((10, 3), np.nan), ks=(2,))


def test_cache_round_trips_and_is_keyed_by_inputs(tmp_path, monkeypatch):
    x, _ = blobs()
    first = cached_pseudo_labels(x, tmp_path, ks=(2, 4), seed=0)
    files = list(tmp_path.glob("pseudo_labels-*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp*"))
    with np.load(files[0], allow_pickle=False) as archive:  # numbers and a str key only
        assert sorted(archive.files) == ["key", "ks", "labels_2", "labels_4"]

    def no_kmeans(*args, **kwargs):
        raise AssertionError("K-means must not run again for cached inputs")

    monkeypatch.setattr(pl, "kmeans_pseudo_labels", no_kmeans)
    again = cached_pseudo_labels(x, tmp_path, ks=(2, 4), seed=0)
    assert all(np.array_equal(first[k], again[k]) for k in (2, 4))
    monkeypatch.undo()
    # Other features, other Ks or another seed: another file, computed afresh.
    cached_pseudo_labels(x[::-1].copy(), tmp_path, ks=(2, 4), seed=0)
    cached_pseudo_labels(x, tmp_path, ks=(2,), seed=0)
    cached_pseudo_labels(x, tmp_path, ks=(2, 4), seed=1)
    assert len(list(tmp_path.glob("pseudo_labels-*.npz"))) == 4


def test_cache_refuses_files_that_do_not_match(tmp_path):
    x, _ = blobs()
    cached_pseudo_labels(x, tmp_path / "a", ks=(2,), seed=0)
    cached_pseudo_labels(x, tmp_path / "b", ks=(2,), seed=1)
    (good,) = (tmp_path / "a").glob("*.npz")
    (other,) = (tmp_path / "b").glob("*.npz")
    other.write_bytes(good.read_bytes())  # a file under the wrong name: its stored key differs
    with pytest.raises(DataError, match=r"pseudo_labels-.*\.npz: cache key .* does not match"):
        cached_pseudo_labels(x, tmp_path / "b", ks=(2,), seed=1)
    assert other.read_bytes() == good.read_bytes()  # refused, not overwritten
    good.write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a .npz archive"):
        cached_pseudo_labels(x, tmp_path / "a", ks=(2,), seed=0)


def test_cache_refuses_labels_out_of_range(tmp_path):
    x, _ = blobs()
    cached_pseudo_labels(x, tmp_path, ks=(2,), seed=0)
    (path,) = tmp_path.glob("*.npz")
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    arrays["labels_2"] = arrays["labels_2"] + 5
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(DataError, match=r"labels_2 missing or not int64 \[120\] in \[0, 2\)"):
        cached_pseudo_labels(x, tmp_path, ks=(2,), seed=0)


def test_encode_dataset_batches_restores_modes_and_matches_one_pass():
    torch.manual_seed(0)
    model = create_model("tiny", 10, width=4)
    model.train()
    model.body[0].eval()  # deliberately mixed modes must come back as they were
    modes = [m.training for m in model.modules()]
    images = np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    feats = encode_dataset(model, images, batch_size=3)
    assert feats.shape == (10, 16) and feats.dtype == torch.float32 and not feats.requires_grad
    assert [m.training for m in model.modules()] == modes
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        torch.testing.assert_close(feats, model.forward_features(x))
    as_tensor = encode_dataset(model, torch.from_numpy(images).permute(0, 3, 1, 2), batch_size=4)
    torch.testing.assert_close(as_tensor, feats)
    with pytest.raises(ValueError, match=r"uint8 \[N, H, W, 3\]"):
        encode_dataset(model, images.astype(np.float32))
