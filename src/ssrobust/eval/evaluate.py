"""Running evaluation suites on a trained run (loaded with :func:`ssrobust.runs.load_run`) or on any
PyTorch classifier, into ``results.json``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..locking import DirLock
from ..models.tta import with_tta
from ..runs.config import RunConfig
from ..runs.load import load_run
from ..runs.network import Network
from ..runs.precision import Precision
from ..runs.rundir import RESULTS, load_run_config, read_json, write_json
from ..typedconfig import to_dict
from .base import SUITES, EvalContext
from .inputs import as_eval_images, as_eval_labels, count_outputs, resolve_classes

RESULTS_SCHEMA_VERSION = 2  # 2: OOD metric keys renamed (docs/results_schema.md)


def run_suites(ctx: EvalContext, suites: Sequence[str], options: dict[str, dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    """Run each named suite (unknown names fail before anything runs) and collect its record."""
    options = options or {}
    fns = {name: SUITES.get(name) for name in suites}
    extra = sorted(set(options) - set(suites))
    if extra:
        raise ConfigError(f"eval.options has options for suite(s) {', '.join(extra)} that are not in "
                          f"eval.suites ({', '.join(suites)})")
    out: dict[str, Any] = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        try:
            record = fn(ctx, **options.get(name, {}))
        except TypeError as e:
            raise ConfigError(f"eval.options.{name}: {e}") from None
        record["time_s"] = time.perf_counter() - t0
        out[name] = record
    return out


def evaluate_model(model: nn.Module, images, labels, class_names: Sequence[str] | None = None,
                   suites: Sequence[str] = ("clean",), options: dict[str, dict[str, Any]] | None = None,
                   device: str | torch.device = "cpu", precision: str = "fp32", batch_size: int = 256,
                   tasks: dict[str, nn.Module] | None = None, seed: int = 0, progress: bool = True,
                   layout: str = "auto", allow_extra_outputs: bool = False) -> dict[str, Any]:
    """Evaluate any classifier mapping ``[B,3,H,W]`` images in [0,1] to logits ``[B, K]``.

    ``images``: numpy array or tensor, ``[N, H, W, 3]`` or ``[N, 3, H, W]`` (``layout`` "auto" tells
    them apart by the axis of size 3; "NHWC"/"NCHW" to state it), either uint8 in 0..255 or float
    in [0, 1] (used as given). ``labels``: ``[N]`` integer class ids. ``class_names`` default to the
    model's ``K`` outputs; a model with fewer outputs than classes is an error, one with more only
    with ``allow_extra_outputs=True``. Bad input raises a one-line :class:`~ssrobust.errors.DataError`.
    Returns ``{suite: record}`` as stored under ``"suites"`` in ``results.json``.
    """
    device = torch.device(device)
    images = as_eval_images(images, layout)
    labels = as_eval_labels(labels, int(images.shape[0]))
    model = model.to(device)
    names = resolve_classes(labels, count_outputs(model, images, device), class_names, allow_extra_outputs)
    ctx = EvalContext(model=model, images=images, labels=labels, class_names=names,
                      device=device, batch_size=batch_size, precision=Precision.resolve(precision, device).name,
                      tasks=dict(tasks or {}), seed=seed, progress=progress)
    return run_suites(ctx, suites, options)


def evaluate_network(run_dir: Path, cfg: RunConfig, net: Network, splits, device: torch.device,
                     precision: Precision | str,
                     train_info: dict | None = None, suites: Sequence[str] | None = None,
                     options: dict[str, dict[str, Any]] | None = None, verify: bool = True) -> dict[str, Any]:
    """Evaluate a trained :class:`~ssrobust.runs.network.Network` and merge into ``results.json``.

    ``verify=False`` skips the checksum check of -C folders (``corruptions`` option ``verify``).
    With ``cfg.eval.tta`` other than ``none`` every suite sees the backbone wrapped in
    :class:`~ssrobust.models.tta.TestTimeAugmentation` (clean and attacked images alike), and each
    suite record says so under ``"tta"``."""
    precision = precision.name if isinstance(precision, Precision) else precision
    suites = list(cfg.eval.suites if suites is None else suites)
    if options is None:
        options = {k: v for k, v in cfg.eval.options.items() if k in suites}
    if not verify and "corruptions" in suites:
        options = {**options, "corruptions": {**options.get("corruptions", {}), "verify": False}}
    test = splits.test
    if cfg.eval.max_images is not None:
        test = test.subset(torch.arange(min(cfg.eval.max_images, len(test))).numpy())
    extra: dict[str, Any] = {}
    if splits.held_out is not None:  # data.classes: the other classes' test images (OOD for `ood`)
        extra["held_out_images"] = splits.held_out.images
    model = with_tta(net.model, cfg.eval.tta)
    ctx = EvalContext(model=model, images=test.images, labels=torch.as_tensor(test.labels),
                      class_names=list(splits.class_names), device=device,
                      batch_size=cfg.data.eval_batch_size, precision=precision,
                      tasks=dict(net.tasks.items()), seed=cfg.seed, progress=cfg.progress,
                      train_images=splits.train.images, train_labels=torch.as_tensor(splits.train.labels),
                      extra=extra)
    records = run_suites(ctx, suites, options)
    for record in records.values():
        record["tta"] = cfg.eval.tta
    path = Path(run_dir) / RESULTS
    results = read_json(path) if path.exists() else {}
    results.update({
        "schema_version": RESULTS_SCHEMA_VERSION,
        "run": cfg.name,
        "run_dir": str(run_dir),
        "config": to_dict(cfg),
        "meta": read_json(Path(run_dir) / "meta.json") if (Path(run_dir) / "meta.json").exists() else {},
        "data": {"source": splits.source, "num_train": len(splits.train),
                 "num_val": len(splits.val) if splits.val is not None else 0,
                 "num_test": len(test), "class_names": list(splits.class_names),
                 **splits.info},  # e.g. "label_noise": the realized noise rate of the train labels
        "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    if train_info is not None:
        results["train"] = train_info
    results.setdefault("suites", {}).update(records)
    write_json(path, results)
    return results


def evaluate_run(run_dir: str | Path, suites: Sequence[str] | None = None,
                 options: dict[str, dict[str, Any]] | None = None, device: str | None = None,
                 verify: bool = True) -> dict:
    """Load a finished run (``model.pt`` + ``config.yaml``) and run suites on its test split
    (``verify=False``: do not checksum -C folders against their manifest).

    The run directory is locked meanwhile (like training it): ``results.json`` has one writer."""
    run_dir = Path(run_dir)
    load_run_config(run_dir)  # not a run directory: say so before creating a lock file in it
    with DirLock(run_dir, "run directory"):
        return _evaluate_run_locked(run_dir, suites, options, device, verify)


def _evaluate_run_locked(run_dir: Path, suites: Sequence[str] | None,
                         options: dict[str, dict[str, Any]] | None, device: str | None,
                         verify: bool) -> dict:
    run = load_run(run_dir, device)  # read again under the lock: a run being overwritten may have changed
    return evaluate_network(run_dir, run.cfg, run.net, run.splits, run.device, run.precision,
                            suites=suites, options=options, verify=verify)
