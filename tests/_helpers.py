"""Helpers shared by tests: tiny run configs and a learnable toy dataset written to a tmp folder."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np


def tiny_run_config(tmp_path: Path, **over) -> dict:
    """A config dict for runs that take about a second: tiny net on a small npz dataset."""
    cfg = {
        "name": "tiny", "out_dir": str(tmp_path / "runs"), "epochs": 2, "seed": 0, "progress": False,
        "precision": "fp32", "log_every": 1,
        "data": {"source": "npz", "root": str(make_npz(tmp_path)), "val_size": 16, "batch_size": 16},
        "model": {"name": "tiny", "kwargs": {"width": 4}},
        "optim": {"lr": 0.05},
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


def make_npz(tmp_path: Path, n_train: int = 96, n_test: int = 32, size: int = 16, classes: int = 3) -> Path:
    """A learnable toy dataset: class c images are brighter in channel c."""
    path = tmp_path / "toy.npz"
    if path.exists():
        return path
    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % classes
        x = rng.integers(0, 120, size=(n, size, size, 3))
        x[np.arange(n), :, :, y] += 120
        return x.astype(np.uint8), y.astype(np.int64)

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
             class_names=np.array([f"c{i}" for i in range(classes)]))
    return path


def make_image_folder(root: Path, classes: int = 10, per_class: int = 6, per_class_test: int = 2,
                      size: int = 16) -> Path:
    """``root/{train,test}/class<c>/<i>.png``, learnable: class c has a bright square of side
    ``size // 4`` at cell ``divmod(c, 4)`` of a 4-wide grid over dim noise (at most 16 classes)."""
    if not 1 <= classes <= 16:
        raise ValueError(f"make_image_folder: classes must be in 1..16, got {classes}")
    from PIL import Image

    rng = np.random.default_rng(0)
    side = size // 4
    for split, n in (("train", per_class), ("test", per_class_test)):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True, exist_ok=True)
            r, col = divmod(c, 4)
            for i in range(n):
                img = rng.integers(0, 80, (size, size, 3), dtype=np.uint8)
                img[side * r:side * (r + 1), side * col:side * (col + 1)] += 150
                Image.fromarray(img).save(d / f"{i}.png")
    return root


def load_study(name: str):
    """The module of ``studies/<name>.py`` (study scripts are not a package)."""
    path = Path(__file__).resolve().parents[1] / "studies" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_study", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def counting_model(dtype=None):
    """A seeded tiny model (5 classes, width 4) in eval mode whose ``forward_features`` records the
    batch size of every call: ``(model, original forward_features, list of batch sizes)``."""
    import torch

    from ssrobust.models import create_model

    torch.manual_seed(0)
    model = create_model("tiny", 5, width=4).eval()
    if dtype is not None:
        model = model.to(dtype)
    seen: list[int] = []
    orig = model.forward_features

    def counting(z):
        seen.append(z.shape[0])
        return orig(z)

    model.forward_features = counting
    return model, orig, seen
