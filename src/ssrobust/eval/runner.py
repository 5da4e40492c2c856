"""Running evaluation suites on a trained run or on any PyTorch classifier, into ``results.json``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..models.tta import with_tta
from .base import SUITES, EvalContext

RESULTS_SCHEMA_VERSION = 1


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
                   tasks: dict[str, nn.Module] | None = None, seed: int = 0, progress: bool = True
                   ) -> dict[str, Any]:
    """Evaluate any classifier mapping ``[B,3,H,W]`` images in [0,1] to logits.

    ``images``: uint8 ``[N, H, W, 3]`` (numpy or tensor); ``labels``: ``[N]`` ints. Returns
    ``{suite: record}`` as stored under ``"suites"`` in ``results.json``.
    """
    from ..train.precision import resolve_precision

    device = torch.device(device)
    labels = torch.as_tensor(labels, dtype=torch.long)
    if class_names is None:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    ctx = EvalContext(model=model.to(device), images=images, labels=labels, class_names=list(class_names),
                      device=device, batch_size=batch_size, precision=resolve_precision(precision, device),
                      tasks=dict(tasks or {}), seed=seed, progress=progress)
    return run_suites(ctx, suites, options)


def evaluate_network(run_dir: Path, cfg, net, splits, device: torch.device, precision: str,
                     train_info: dict | None = None, suites: Sequence[str] | None = None,
                     options: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Evaluate a trained :class:`~ssrobust.train.network.Network` and merge into ``results.json``.

    With ``cfg.eval.tta`` other than ``none`` every suite sees the backbone wrapped in
    :class:`~ssrobust.models.tta.TestTimeAugmentation` (clean and attacked images alike), and each
    suite record says so under ``"tta"``."""
    from ..train.rundir import RESULTS, read_json, write_json
    from ..typedconfig import to_dict

    suites = list(cfg.eval.suites if suites is None else suites)
    if options is None:
        options = {k: v for k, v in cfg.eval.options.items() if k in suites}
    test = splits.test
    if cfg.eval.max_images is not None:
        test = test.subset(torch.arange(min(cfg.eval.max_images, len(test))).numpy())
    extra: dict[str, Any] = {"test_extras": test.extras}
    if splits.held_out is not None:  # data.classes: the other classes' test images (OOD for `ood`)
        extra.update(held_out_images=splits.held_out.images,
                     held_out_labels=torch.as_tensor(splits.held_out.labels))
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
                 options: dict[str, dict[str, Any]] | None = None, device: str | None = None) -> dict:
    """Load a finished run (``model.pt`` + ``config.yaml``) and run suites on its test split."""
    from ..data.base import load_splits
    from ..train.checkpoint import load_checkpoint, load_state_strict
    from ..train.loop import build_network, resolve_device
    from ..train.precision import resolve_precision
    from ..train.rundir import MODEL, load_run_config

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    dev = resolve_device(device or cfg.device)
    ck = load_checkpoint(run_dir / MODEL, map_location=dev)
    splits = load_splits(cfg.data)
    net = build_network(cfg, splits.num_classes).to(dev)
    load_state_strict(net, ck["network"], f"{run_dir / MODEL}")
    net.eval()
    return evaluate_network(run_dir, cfg, net, splits, dev, resolve_precision(cfg.precision, dev),
                            suites=suites, options=options)
