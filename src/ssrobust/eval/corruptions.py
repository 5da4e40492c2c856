"""The ``corruptions`` suite: accuracy under common corruptions (Hendrycks & Dietterich, ICLR 2019).

Accuracy per corruption x severity, its means (over the 15 benchmark corruptions and over all 19),
and, relative to a baseline run, the corruption error ``CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}``,
its mean over corruptions (mCE) and the relative CE ``sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c}
- E^base_clean)`` (paper Sec. 3). Ratios are stored as fractions (the baseline scores 1.0).

Images are corrupted on the fly (``ctx.images``, seeded per corruption, severity and batch from
``ctx.seed``, quantized to uint8 like the -C files) or read from a -C folder (option ``folder``).
With the same seed and batch size, both give the same images as ``write_corrupted_dataset``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..corruptions import (BENCHMARK, CORRUPTIONS, NAMES, SEVERITIES, block_generator, corrupt,
                           load_corrupted_folder, resolve_param_set, to_uint8_like_official)
from ..corruptions.folder import MANIFEST, CorruptedFolder
from ..corruptions.mce import add_mce
from ..errors import ConfigError, DataError
from ..images import unit_float
from ..modes import eval_mode
from .base import SUITES, EvalContext, predict, to_float_images


def _accuracy_over(ctx: EvalContext, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> float:
    correct, total = 0, 0
    for x, y in batches:
        logits = predict(ctx.model, x, ctx.autocast)
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    return correct / max(total, 1)


def _on_the_fly(ctx: EvalContext, images: Any, labels: torch.Tensor, name: str, severity: int,
                param_set: str, quantize: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for block, start in enumerate(range(0, len(labels), ctx.batch_size)):
        x = to_float_images(images[start: start + ctx.batch_size], ctx.device)
        x = corrupt(x, name, severity, block_generator(ctx.seed, name, severity, block), param_set=param_set)
        if quantize:
            x = unit_float(to_uint8_like_official(x))
        yield x, labels[start: start + ctx.batch_size].to(ctx.device)


def _bar(ctx: EvalContext, total: int) -> tqdm:
    return tqdm(total=total, disable=not ctx.progress, desc="corruptions", unit="set")


def _summaries(acc: dict[str, dict[str, float]], severities: Sequence[int]) -> dict[str, Any]:
    names = list(acc)
    mean = {n: float(np.mean([acc[n][str(s)] for s in severities])) for n in names}
    bench = [n for n in BENCHMARK if n in mean]
    full = len(bench) == len(BENCHMARK)
    return {
        "mean_accuracy": mean,
        "mean_accuracy_benchmark": float(np.mean([mean[n] for n in bench])) if full else None,
        "mean_accuracy_all": float(np.mean(list(mean.values()))),
        "mean_accuracy_by_severity": {str(s): float(np.mean([acc[n][str(s)] for n in names]))
                                      for s in severities},
        "mean_accuracy_by_family": _family_means(mean, bench),
    }


def _family_means(mean: dict[str, float], bench: Sequence[str]) -> dict[str, float]:
    """Mean accuracy per family (noise, blur, weather, digital) over the benchmark corruptions
    evaluated (the 4 validation corruptions are left out, as in the benchmark's per-family view)."""
    families: dict[str, list[float]] = {}
    for n in bench:
        families.setdefault(CORRUPTIONS.get(n).family, []).append(mean[n])
    return {f: float(np.mean(v)) for f, v in families.items()}


@SUITES.register("corruptions")
def corruption_accuracy(ctx: EvalContext, names: Sequence[str] | None = None,
                        severities: Sequence[int] | None = None, max_images: int | None = None,
                        folder: str | None = None, param_set: str = "auto", quantize: bool = True,
                        baseline: str | None = None, verify: bool = True) -> dict:
    """Accuracy on corrupted test images.

    Options: ``names`` (default all 19; with ``folder``, every corruption file present),
    ``severities`` (default 1..5, or the folder's), ``max_images`` (first N images), ``folder`` (a -C
    folder instead of on-the-fly corruption), ``param_set`` (auto/cifar/imagenet), ``quantize`` (store-like uint8
    truncation, default on), ``baseline`` (a results.json or record file: adds CE/mCE via
    :func:`add_mce`), ``verify`` (check a folder's files against the sha256 sums of its
    ``manifest.json`` when it has one; default on).
    """
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int)
                                   or max_images < 1):
        raise ConfigError(f"corruptions.max_images must be an integer >= 1 (or null for all), got {max_images!r}")
    severities = None if severities is None else [int(s) for s in severities]
    if severities is not None and (not severities or any(s not in SEVERITIES for s in severities)):
        raise ConfigError(f"corruptions.severities must be values in 1..5; got {severities}")
    model = ctx.model
    with eval_mode(model):
        if folder is not None:
            record = _from_folder(ctx, folder, names, severities, max_images, verify)
        else:
            record = _from_engine(ctx, list(names or NAMES), severities or list(SEVERITIES), max_images,
                                  param_set, quantize)
    if baseline is not None:
        record = add_mce(record, _load_record(baseline))
    return record


def _from_engine(ctx: EvalContext, names: list[str], severities: list[int], max_images: int | None,
                 param_set: str, quantize: bool) -> dict:
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise ConfigError(f"corruptions.names: unknown {', '.join(unknown)}; known: {', '.join(NAMES)}")
    n = len(ctx.labels) if max_images is None else min(int(max_images), len(ctx.labels))
    if n == 0:
        raise ConfigError("corruptions suite: the test set has no images to corrupt")
    images, labels = ctx.images[:n], ctx.labels[:n]
    resolved = resolve_param_set(int(ctx.images.shape[1]), param_set)
    clean = _accuracy_over(ctx, ctx.batches(images, labels))
    acc: dict[str, dict[str, float]] = {}
    with _bar(ctx, len(names) * len(severities)) as bar:
        for name in names:
            acc[name] = {}
            for s in severities:
                bar.set_postfix_str(f"{name} {s}")
                batches = _on_the_fly(ctx, images, labels, name, s, resolved, quantize)
                acc[name][str(s)] = _accuracy_over(ctx, batches)
                bar.update(1)
    return {"source": "on_the_fly", "folder": None, "seed": ctx.seed, "param_set": resolved,
            "quantize": quantize, "n_images": n, "names": names, "severities": severities,
            "clean_accuracy": clean, "accuracy": acc, **_summaries(acc, severities)}


def _open_folder(ctx: EvalContext, folder: str, names: Sequence[str] | None, verify: bool) -> CorruptedFolder:
    """Load (and, when it has a manifest and ``verify``, checksum) a -C folder whose images have the
    size of the test images the model is evaluated on."""
    has_manifest = (Path(folder) / MANIFEST).is_file()
    data = load_corrupted_folder(folder, names=names, verify=verify and has_manifest)
    if ctx.images is not None:
        want = tuple(int(v) for v in ctx.images.shape[1:3])
        if tuple(data.image_shape[:2]) != want:
            first = Path(folder) / f"{data.names[0]}.npy"
            raise DataError(f"{first}: images are {data.image_shape[1]}x{data.image_shape[0]}, but the model "
                            f"is evaluated on {want[1]}x{want[0]} test images; use the -C set of this dataset")
    return data


def _from_folder(ctx: EvalContext, folder: str, names: Sequence[str] | None, severities: list[int] | None,
                 max_images: int | None, verify: bool = True) -> dict:
    data = _open_folder(ctx, folder, names, verify)
    severities = list(data.severities) if severities is None else severities
    missing = [s for s in severities if s not in data.severities]
    if missing:
        raise ConfigError(f"corruptions.severities {missing} are not in {folder} (has {list(data.severities)})")
    n = data.n if max_images is None else min(int(max_images), data.n)
    if n == 0:
        raise ConfigError(f"corruptions.folder: {folder} holds no images")
    labels = torch.as_tensor(data.labels[:n], dtype=torch.long)
    clean = None
    if ctx.images is not None and len(ctx.labels) >= n and torch.equal(ctx.labels[:n].cpu(), labels):
        clean = _accuracy_over(ctx, ctx.batches(ctx.images[:n], labels))  # same test set: clean reference
    acc: dict[str, dict[str, float]] = {}
    with _bar(ctx, len(data.names) * len(severities)) as bar:
        for name in data.names:
            acc[name] = {}
            for s in severities:
                imgs = _Rows(data.images(name, s)[:n])
                acc[name][str(s)] = _accuracy_over(ctx, ctx.batches(imgs, labels))
                bar.update(1)
    return {"source": "folder", "folder": str(folder), "seed": None, "param_set": None, "quantize": None,
            "n_images": n, "names": list(data.names), "severities": severities, "clean_accuracy": clean,
            "accuracy": acc, **_summaries(acc, severities)}


class _Rows:
    """Slices of a read-only memory map as writable copies (torch warns on read-only arrays)."""

    def __init__(self, arr: np.ndarray) -> None:
        self.arr = arr

    def __len__(self) -> int:
        return len(self.arr)

    def __getitem__(self, idx: slice) -> np.ndarray:
        return np.array(self.arr[idx])


def _load_record(path: str | Path) -> dict:
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"corruptions.baseline: cannot read {path} ({e})") from None
    rec = obj.get("suites", {}).get("corruptions", obj) if isinstance(obj, dict) else None
    if not isinstance(rec, dict) or "accuracy" not in rec:
        raise ConfigError(f"corruptions.baseline: {path} has no corruptions record (suites.corruptions)")
    return rec
