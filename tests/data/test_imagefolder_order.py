"""Image-folder splits come in a fixed mixed order, so the first N test images cover the classes."""

import numpy as np
from PIL import Image

from ssrobust.api import make_config
from ssrobust.data.base import load_splits


def _folder(root, per_class=20, classes=4):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(d / f"{i:03d}.png")


def test_first_test_images_cover_every_class_and_the_order_is_fixed(tmp_path):
    _folder(tmp_path / "data")
    cfg = make_config(None, ["data.source=imagefolder", f"data.root={tmp_path / 'data'}", "data.val_size=0",
                             f"data.cache_dir={tmp_path / 'cache'}"])
    a = load_splits(cfg.data)
    first = a.test.labels[:20]
    assert set(first.tolist()) == {0, 1, 2, 3}  # class-sorted order would give twenty 0s
    assert np.bincount(a.test.labels).tolist() == [20, 20, 20, 20]
    b = load_splits(make_config(cfg, [f"data.cache_dir={tmp_path / 'cache2'}"]).data)
    assert np.array_equal(a.test.labels, b.test.labels) and np.array_equal(a.test.images, b.test.images)
