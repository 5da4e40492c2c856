"""Writing -C datasets in the official layout, streamed, seeded, with a checksum manifest."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import write_text_atomic
from ..errors import ConfigError, DataError
from ..images import unit_float
from ..locking import DirLock
from ..paths import make_dir
from .base import CORRUPTIONS, NAMES, SEVERITIES, block_generator, corrupt, to_uint8_like_official
from .folder import MANIFEST, sha256_file
from .params import resolve_param_set

PARTIAL = ".partial"
FORMAT = "ssrobust-corruptions/1"


def _versions() -> dict[str, str]:
    import PIL

    from .._version import __version__

    return {"ssrobust": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "python": platform.python_version()}


def _check_inputs(images: Any, labels: Any, names: Sequence[str], severities: Sequence[int]
                  ) -> tuple[np.ndarray, np.ndarray]:
    images = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise DataError(f"images must be uint8 (N, H, W, 3) with N >= 1; got {images.dtype} {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"labels must be {len(images)} integers; got {labels.dtype} {labels.shape}")
    for name in names:
        CORRUPTIONS.get(name)  # unknown names raise, listing the known ones
    if (not severities or any(int(s) not in SEVERITIES for s in severities)
            or len(set(severities)) != len(severities)):
        raise ConfigError(f"severities must be distinct values in 1..5; got {list(severities)}")
    return images, labels


def _write_rows(path: Path, images: np.ndarray, name: str, k: int, sev: int, seed: int, batch_size: int,
                device: torch.device, param_set: str, bar: tqdm | None) -> None:
    """Corrupt all images at one severity into rows ``k*N .. (k+1)*N`` of an existing .npy file."""
    n = len(images)
    mm = np.load(path, mmap_mode="r+")
    for block, start in enumerate(range(0, n, batch_size)):
        stop = min(start + batch_size, n)
        x = torch.from_numpy(np.array(images[start:stop])).to(device)  # a writable copy of the block
        x = unit_float(x.permute(0, 3, 1, 2))
        y = corrupt(x, name, sev, block_generator(seed, name, sev, block), param_set=param_set)
        mm[k * n + start: k * n + stop] = to_uint8_like_official(y).permute(0, 2, 3, 1).cpu().numpy()
        if bar is not None:
            bar.update(stop - start)
    mm.flush()
    del mm


def _worker(task: tuple) -> tuple[str, int]:
    """Entry point of a writer process (spawned): one (corruption, severity) slice."""
    images_path, path, name, k, sev, seed, batch_size, param_set = task
    torch.set_num_threads(1)  # the processes are the parallelism
    images = np.load(images_path, mmap_mode="r")
    _write_rows(Path(path), images, name, k, sev, seed, batch_size, torch.device("cpu"), param_set, None)
    return name, len(images)


def _run_parallel(out: Path, images: np.ndarray, names: Sequence[str], sev: list[int], seed: int,
                  batch_size: int, param_set: str, workers: int, bar: tqdm) -> None:
    """All (corruption, severity) slices on ``workers`` spawned processes, one thread each: robust
    multi-core use (no OpenMP barriers between cores) and output identical to the serial run."""
    src = out / f".images.npy{PARTIAL}"
    with open(src, "wb") as f:
        np.save(f, images)
    tasks = [(str(src), str(out / f"{name}.npy{PARTIAL}"), name, k, s, seed, batch_size, param_set)
             for name in names for k, s in enumerate(sev)]
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(_worker, t) for t in tasks]):
                name, count = fut.result()
                bar.set_postfix_str(name)
                bar.update(count)
    finally:
        src.unlink(missing_ok=True)


def write_corrupted_dataset(images_uint8: Any, labels: Any, out_dir: str | Path,
                            names: Sequence[str] = NAMES, severities: Sequence[int] = SEVERITIES,
                            seed: int = 0, batch_size: int = 500, progress: bool = True,
                            device: str | torch.device = "cpu", param_set: str = "auto",
                            overwrite: bool = False, workers: int = 1) -> dict:
    """Write a -C dataset: ``<corruption>.npy`` of shape ``(S*N, H, W, 3)`` uint8 (severity-major),
    ``labels.npy`` ``(S*N,)`` and ``manifest.json`` (sha256 per file, seed, batch size, versions).

    ``images_uint8``: ``(N, H, W, 3)`` uint8; ``labels``: ``(N,)`` ints. Images are corrupted in
    blocks of ``batch_size`` straight into memory-mapped files, so memory stays bounded. Block ``b``
    of (corruption, severity) uses a generator seeded from ``(seed, name, severity, b)``: the output
    is a function of ``seed`` and ``batch_size`` (both recorded). Outputs are truncated to uint8
    like the official generator's (:func:`to_uint8_like_official`). Files are written under
    ``*.partial`` names and renamed only when all are complete, the manifest last, so an interrupted
    run leaves nothing that looks complete. Labels are stored as uint8 when they fit (as in the
    official files), int64 otherwise. ``workers > 1`` (CPU only) spreads the (corruption, severity)
    slices over that many single-threaded processes; the files are identical. Returns the manifest.
    """
    images, labels = _check_inputs(images_uint8, labels, names, severities)
    if batch_size < 1 or workers < 1:
        raise ConfigError(f"batch_size and workers must be >= 1, got {batch_size} and {workers}")
    device = torch.device(device)
    if workers > 1 and device.type != "cpu":
        raise ConfigError("workers > 1 runs CPU processes; use workers=1 with a GPU device")
    out = Path(out_dir)
    make_dir(out, "corruption output folder")
    # One writer per folder: a second job would reallocate the memory-mapped files under the first.
    with DirLock(out, "corruption output folder"):
        return _write_locked(images, labels, out, names, severities, seed, batch_size, progress, device,
                             param_set, overwrite, workers)


def _write_locked(images: np.ndarray, labels: np.ndarray, out: Path, names: Sequence[str],
                  severities: Sequence[int], seed: int, batch_size: int, progress: bool,
                  device: torch.device, param_set: str, overwrite: bool, workers: int) -> dict:
    """:func:`write_corrupted_dataset` once ``out`` is locked."""
    finals = [out / f"{n}.npy" for n in names] + [out / "labels.npy", out / MANIFEST]
    existing = [p.name for p in finals if p.exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds {', '.join(existing)}; pass overwrite=True to replace")
    (out / MANIFEST).unlink(missing_ok=True)  # never let an old manifest vouch for new files
    n, sev = len(images), [int(s) for s in severities]
    resolved = resolve_param_set(images.shape[1], param_set)
    for name in names:  # allocate every file first; slices are filled in place
        np.lib.format.open_memmap(out / f"{name}.npy{PARTIAL}", mode="w+", dtype=np.uint8,
                                  shape=(len(sev) * n, *images.shape[1:])).flush()
    with tqdm(total=len(names) * len(sev) * n, disable=not progress, unit="img", desc="corrupt") as bar:
        if workers > 1:
            _run_parallel(out, images, names, sev, seed, batch_size, resolved, workers, bar)
        else:
            for name in names:
                bar.set_postfix_str(name)
                for k, s in enumerate(sev):
                    _write_rows(out / f"{name}.npy{PARTIAL}", images, name, k, s, seed, batch_size, device,
                                resolved, bar)
    label_dtype = np.uint8 if labels.min() >= 0 and labels.max() < 256 else np.int64
    with open(out / f"labels.npy{PARTIAL}", "wb") as f:
        np.save(f, np.tile(labels.astype(label_dtype), len(sev)))
    manifest = {"format": FORMAT, "layout": "severity-major", "names": list(names), "severities": sev,
                "n_images": n, "image_shape": list(images.shape[1:]), "seed": int(seed),
                "batch_size": int(batch_size), "param_set": resolved, "quantization": "truncation",
                "label_dtype": np.dtype(label_dtype).name, "versions": _versions()}
    return _publish(out, [f"{name}.npy" for name in names] + ["labels.npy"], manifest)


def _publish(out: Path, fnames: list[str], manifest: dict) -> dict:
    """Checksum the finished ``*.partial`` files, rename them, then write the manifest (last)."""
    files = {}
    for fname in fnames:
        tmp = out / f"{fname}{PARTIAL}"
        files[fname] = {"sha256": sha256_file(tmp), "bytes": tmp.stat().st_size}
    for fname in fnames:
        os.replace(out / f"{fname}{PARTIAL}", out / fname)
    manifest = {**manifest, "files": files}
    write_text_atomic(out / MANIFEST, json.dumps(manifest, indent=1))  # last: the folder is complete
    return manifest
