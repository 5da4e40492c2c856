"""On-device batching and augmentation: exact crop/flip, determinism per epoch, DDP sharding."""

import numpy as np
import torch
import torch.nn.functional as F

from ssrobust.data.augment import CropFlipParams, apply_crop_flip, sample_crop_flip
from ssrobust.data.loader import DeviceLoader


def test_crop_flip_matches_a_per_image_reference():
    x = torch.rand(5, 3, 8, 8)
    p = sample_crop_flip(5, pad=4, generator=torch.Generator().manual_seed(0))
    out = apply_crop_flip(x, p)
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(5):
        ref = padded[i, :, p.dy[i]: p.dy[i] + 8, p.dx[i]: p.dx[i] + 8]
        if p.flip[i]:
            ref = ref.flip(-1)
        assert torch.equal(out[i], ref)


def test_crop_offsets_cover_the_range_and_identity_params_are_identity():
    p = sample_crop_flip(4000, pad=4, generator=torch.Generator().manual_seed(1))
    assert p.dy.min() == 0 and p.dy.max() == 8 and 0.45 < p.flip.float().mean() < 0.55
    x = torch.rand(2, 3, 6, 6)
    ident = CropFlipParams(torch.full((2,), 4), torch.full((2,), 4), torch.zeros(2, dtype=torch.bool), 4)
    assert torch.equal(apply_crop_flip(x, ident), x)


def test_reflect_padding_and_translate_size_match_a_per_image_reference():
    x = torch.rand(6, 3, 8, 8)
    p = sample_crop_flip(6, pad=2, generator=torch.Generator().manual_seed(3), pad_mode="reflect")
    assert p.dy.max() <= 4 and p.pad_mode == "reflect"
    out = apply_crop_flip(x, p)
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    for i in range(6):
        ref = padded[i, :, p.dy[i]: p.dy[i] + 8, p.dx[i]: p.dx[i] + 8]
        assert torch.equal(out[i], ref.flip(-1) if p.flip[i] else ref)
    # no translation: every image is itself or its mirror
    q = sample_crop_flip(6, pad=0, generator=torch.Generator().manual_seed(3))
    out = apply_crop_flip(x, q)
    for i in range(6):
        assert torch.equal(out[i], x[i].flip(-1) if q.flip[i] else x[i])


def test_loader_translate_setting_reaches_the_batches():
    x, y = _data(16)
    dl = DeviceLoader(x, y, 8, torch.device("cpu"), shuffle=False, translate=0, flip="alternating")
    ref = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255
    for bx, _, _ in dl.epoch(0):
        for img in bx:  # no shift: each image is a training image or its mirror, pixel for pixel
            assert any(torch.equal(img, r) or torch.equal(img, r.flip(-1)) for r in ref)


def _data(n=40):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), np.arange(n) % 4


def test_loader_epochs_are_deterministic_and_permute():
    x, y = _data()
    a = DeviceLoader(x, y, 8, torch.device("cpu"), seed=5)
    b = DeviceLoader(x, y, 8, torch.device("cpu"), seed=5)
    ea = [(bx.clone(), by.clone()) for bx, by, _ in a.epoch(2)]
    eb = [(bx, by) for bx, by, _ in b.epoch(2)]
    assert len(ea) == 5 and all(torch.equal(p[0], q[0]) for p, q in zip(ea, eb))
    e3 = [by for _, by, _ in a.epoch(3)]
    assert not all(torch.equal(p[1], q) for p, q in zip(ea, e3))
    assert ea[0][0].dtype == torch.float32 and 0 <= ea[0][0].min() and ea[0][0].max() <= 1


def test_loader_without_shuffle_or_augment_returns_the_data():
    x, y = _data(16)
    dl = DeviceLoader(x, y, 8, torch.device("cpu"), shuffle=False, augment=False, drop_last=False)
    bx, by, _ = next(iter(dl.epoch(0)))
    assert torch.equal(bx, torch.from_numpy(x[:8]).permute(0, 3, 1, 2).float() / 255)
    assert by.tolist() == list(y[:8])


def test_ranks_split_each_global_batch_exactly():
    x, y = _data()
    ids = {"id": np.arange(len(y))}
    full = list(DeviceLoader(x, y, 8, torch.device("cpu"), seed=1, extras=ids).epoch(0))
    r0 = list(DeviceLoader(x, y, 8, torch.device("cpu"), seed=1, rank=0, world_size=2, extras=ids).epoch(0))
    r1 = list(DeviceLoader(x, y, 8, torch.device("cpu"), seed=1, rank=1, world_size=2, extras=ids).epoch(0))
    for (fx, fy, fe), (ax, ay, ae), (bx, by, be) in zip(full, r0, r1):
        assert torch.equal(torch.cat([ax, bx]), fx) and torch.equal(torch.cat([ay, by]), fy)
        assert torch.equal(torch.cat([ae["id"], be["id"]]), fe["id"])
        assert torch.equal(torch.as_tensor(y)[fe["id"]], fy)  # extras travel with their images


def test_to_device_uint8_reads_a_read_only_memmap_without_warning(tmp_path):
    """The image cache is a read-only memmap: it is copied (NCHW) by numpy, never handed to torch."""
    import warnings

    import numpy as np
    import torch

    from ssrobust.data.loader import to_device_uint8

    path = tmp_path / "cache.npy"
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(4, 5, 6, 3))
    arr[:] = np.arange(arr.size, dtype=np.uint64).reshape(arr.shape) % 251
    arr.flush()
    del arr
    images = np.load(path, mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = to_device_uint8(images, torch.device("cpu"))
    assert t.shape == (4, 3, 5, 6) and t.is_contiguous()
    assert torch.equal(t, torch.from_numpy(np.array(images)).permute(0, 3, 1, 2))
