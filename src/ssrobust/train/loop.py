"""The one training loop, for every model, task set, weighting, strategy, precision and device."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.base import DatasetSplits, load_splits
from ..data.loader import DeviceLoader, to_device_uint8
from ..errors import CheckpointError, ConfigError, DivergenceError
from ..models.base import create_model
from ..tasks.base import build_task
from ..weighting.base import StepContext, Weighting, build_weighting
from . import distributed as dist
from .averaging import WeightAveraging
from .checkpoint import load_checkpoint, load_state_strict, save_atomic
from .config import RunConfig
from .network import Network
from .precision import autocast_context, make_grad_scaler, resolve_precision
from .recipe import (apply_threads, check_label_smoothing, init_model_from_data, parameter_groups,
                     resolve_channels_last)
from .rundir import CHECKPOINT, CONFIG, METRICS, MODEL, RESULTS, MetricsLog, make_meta, same_config, write_json
from .runstart import RunStart
from .strategies import build_strategy


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} but CUDA is not available; use device=cpu or auto")
    return dev


def cosine_lr(step: int, total: int, lr: float, lr_min: float, warmup: int = 0) -> float:
    """Per-step cosine decay from ``lr`` to ``lr_min`` after an optional linear warm-up."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * min(1.0, t)))


def resolve_task_forward(task_forward: str, weighting: Weighting) -> str:
    """``joint`` or ``separate`` for ``RunConfig.task_forward`` (``auto`` asks the weighting)."""
    if task_forward == "auto":
        return "separate" if weighting.wants_separate_views() else "joint"
    return task_forward


def build_network(cfg: RunConfig, num_classes: int) -> Network:
    try:
        model = create_model(cfg.model.name, num_classes, **cfg.model.kwargs)
    except TypeError as e:
        raise TypeError(f"model {cfg.model.name!r} with kwargs {cfg.model.kwargs}: {e}") from None
    tasks = {name: build_task(name, model.num_features, **cfg.task_options.get(name, {}))
             for name in cfg.task_weights()}
    return Network(model, tasks)


def init_from_run(net: Network, source: str | Path) -> None:
    """Load another run's ``model.pt`` (``source`` is the file or its run directory) into ``net``:
    the backbone strictly, and each task head that both runs have strictly; heads of tasks the
    source run did not train keep their fresh initialisation."""
    path = Path(source)
    path = path / MODEL if path.is_dir() else path
    state = load_checkpoint(path)["network"]

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    load_state_strict(net.model, part("model."), f"init_from {path}: backbone")
    for name, task in net.tasks.items():
        head = part(f"tasks.{name}.")
        if head:
            load_state_strict(task, head, f"init_from {path}: task {name!r}")


def build_optimizer(cfg: RunConfig, net: nn.Module, weighting: Weighting) -> torch.optim.SGD:
    skip = set(getattr(weighting, "no_weight_decay", lambda: [])())
    w_params = list(weighting.named_parameters())
    groups = parameter_groups(net, cfg.optim.bias_lr_scale, cfg.optim.bias_weight_decay)
    decay = [p for n, p in w_params if n not in skip]
    no_decay = [p for n, p in w_params if n in skip]
    if decay:
        groups[0]["params"] += decay
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    o = cfg.optim
    return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0,
                           weight_decay=o.weight_decay)


def _seed_epoch(seed: int, epoch: int, rank: int, device: torch.device) -> torch.Generator:
    """Everything random in an epoch derives from (seed, epoch, rank): exact resume at epoch bounds."""
    base = (seed * 1_000_003 + epoch) * 1_009 + rank
    torch.manual_seed(base)  # dropout and other global-RNG users
    return torch.Generator(device=device).manual_seed(base + 7)


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0
    early_stop: dict | None = None  # set when a strategy's end-of-epoch check stopped the run


@torch.no_grad()
def accuracy_on(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int,
                autocast) -> tuple[float, float]:
    """Accuracy and mean CE of ``model`` on device-resident uint8 images [N,3,H,W]."""
    was = model.training
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(labels), batch):
        x = images[i: i + batch].float().div_(255.0)
        with autocast():
            logits = model(x).float()
        correct += int((logits.argmax(1) == labels[i: i + batch]).sum())
        loss += float(nn.functional.cross_entropy(logits, labels[i: i + batch], reduction="sum"))
    model.train(was)
    return correct / len(labels), loss / len(labels)


def fit(cfg: RunConfig, overwrite: bool = False, stop_after: int | None = None,
        splits: DatasetSplits | None = None) -> Path:
    """Train ``cfg`` into ``<out_dir>/<name>``, resuming from its checkpoint if one exists, then run
    the configured evaluation suites. ``stop_after`` ends the call after that many epochs (as if
    the process had been killed; used to test resuming). Returns the run directory.

    The run directory is locked for this process (rank 0 under torchrun) until the call returns;
    config, data and model are validated before anything is written into it, and a failed start
    leaves it as it was (with ``overwrite``: the old run is restored)."""
    device = resolve_device(cfg.device)
    distributed = dist.init_from_env(device)
    apply_threads(cfg.threads, dist.world_size())
    if distributed and device.type == "cuda":
        device = torch.device("cuda", dist.rank() % torch.cuda.device_count())
    start, resume = _open_run(cfg, overwrite, device)
    try:
        run_dir = _fit(cfg, start, resume, device, distributed, stop_after, splits)
    except BaseException:
        if start is not None:
            start.close(failed=True)
        raise
    if start is not None:
        start.close(failed=False)
    return run_dir


def _open_run(cfg: RunConfig, overwrite: bool, device: torch.device) -> tuple[RunStart | None, bool]:
    """Rank 0 locks and checks the run directory (the other ranks never write it). Every rank
    learns whether the run resumes, and every rank raises if rank 0 could not open it, so no rank
    is left waiting in a collective."""
    start, error = None, None
    if dist.rank() == 0:
        try:
            start = RunStart(cfg, overwrite).open()
        except Exception as e:  # re-raised below, after the other ranks have heard of it
            error = e
    flags = torch.tensor([float(error is not None), float(bool(start and start.resume))], device=device)
    dist.all_reduce_sum(flags)  # only rank 0 contributes
    if error is not None:
        raise error
    if flags[0]:
        raise CheckpointError(f"rank 0 could not open the run directory {Path(cfg.out_dir) / cfg.name} "
                              f"(see its error)")
    return start, bool(flags[1])


def _fit(cfg: RunConfig, start: RunStart | None, resume: bool, device: torch.device, distributed: bool,
         stop_after: int | None, splits: DatasetSplits | None) -> Path:
    """:func:`fit` once the run directory is open (``start`` is None on ranks other than 0)."""
    rank, world = dist.rank(), dist.world_size()
    precision = resolve_precision(cfg.precision, device)
    channels_last = resolve_channels_last(cfg.channels_last, device, precision)
    run_dir = Path(cfg.out_dir) / cfg.name
    torch.manual_seed(cfg.seed)
    # Everything that can be wrong with the config or the data fails here, before any file is written.
    splits = splits or load_splits(cfg.data)
    net = build_network(cfg, splits.num_classes).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.label_smoothing = cfg.optim.label_smoothing
    weighting = build_weighting(cfg.weighting.name, cfg.task_weights(), **cfg.weighting.options).to(device)
    net.joint_views = resolve_task_forward(cfg.task_forward, weighting) == "joint"
    strategy = build_strategy(cfg.strategy.name, **cfg.strategy.options)
    check_label_smoothing(cfg.optim.label_smoothing, cfg.strategy.name, strategy.uses_classification_loss)
    optimizer = build_optimizer(cfg, net, weighting)
    scaler = make_grad_scaler(device, precision)
    state = TrainState()
    if not resume:  # e.g. fastnet's whitening layer from training patches (saved with the weights)
        init_model_from_data(net.model, splits.train.images, cfg.seed)
    if cfg.init_from and not resume:  # on resume the checkpoint already holds the weights
        init_from_run(net, cfg.init_from)
    missing = [k for k in strategy.batch_extras if k not in splits.train.extras]
    if missing:
        raise ValueError(f"strategy {cfg.strategy.name!r} needs per-image {', '.join(missing)} that the "
                         f"{cfg.data.source} training split does not provide")
    loader = DeviceLoader(splits.train.images, splits.train.labels, cfg.data.batch_size, device,
                          augment=cfg.data.augment, seed=cfg.seed, rank=rank, world_size=world,
                          extras={k: splits.train.extras[k] for k in strategy.batch_extras},
                          flip=cfg.data.flip)
    if len(loader) == 0:
        raise ValueError(f"data.batch_size={cfg.data.batch_size} is larger than the training set "
                         f"({len(splits.train)} images)")
    if start is not None:
        start.commit()
    dist.barrier()
    if resume:
        ck = load_checkpoint(run_dir / CHECKPOINT, map_location=device)
        load_state_strict(net, ck["network"], f"{run_dir / CHECKPOINT}: network")
        load_state_strict(weighting, ck["weighting"], f"{run_dir / CHECKPOINT}: weighting")
        optimizer.load_state_dict(ck["optimizer"])
        scaler.load_state_dict(ck["scaler"])
        strategy.load_state_dict(ck.get("strategy", {}))
        state = TrainState(**ck["state"])
    if rank == 0:
        meta = make_meta(cfg, str(device), precision, world)
        meta["resumed_from_epoch"] = state.epoch if resume else None
        meta["task_forward"] = "joint" if net.joint_views else "separate"
        meta["threads"], meta["channels_last"] = torch.get_num_threads(), channels_last
        write_json(run_dir / "meta.json", meta)
    log = MetricsLog(run_dir / METRICS, keep_before_epoch=state.epoch if resume else None, enabled=rank == 0)
    val = meta_pool = None  # val: clean held-out images (val_acc); meta_pool: as the weighting wants
    if splits.val is not None:
        val = (to_device_uint8(splits.val.images, device),
               torch.as_tensor(splits.val.labels, dtype=torch.long, device=device))
        meta_pool = (weighting.prepare_validation(val[0], cfg.seed), val[1])
    if strategy.held_out_images and val is None:
        raise ConfigError(f"strategy {cfg.strategy.name!r} checks every epoch on validation images; "
                          f"set data.val_size > 0")
    ddp_net = net
    if distributed:
        ddp_net = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = lambda: autocast_context(device, precision)  # noqa: E731
    total_steps = cfg.epochs * len(loader)
    warmup = int(cfg.optim.warmup_epochs * len(loader))
    averager = WeightAveraging(cfg.optim.averaging, total_steps)
    if resume and averager.enabled:
        averager.load_state_dict(ck.get("averaging"), f"{run_dir / CHECKPOINT}")
    epochs_run = 0
    bar = tqdm(total=cfg.epochs, initial=state.epoch, desc=f"train {cfg.name}", unit="epoch",
               disable=not (cfg.progress and rank == 0), dynamic_ncols=True)
    for epoch in range(state.epoch, cfg.epochs if state.early_stop is None else state.epoch):
        gen = _seed_epoch(cfg.seed, epoch, rank, device)
        vgen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
        ctx_val = _validation_sampler(meta_pool, vgen)
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        correct = seen = 0
        ddp_net.train()
        for x, y, extras in loader.epoch(epoch):
            lr = cosine_lr(state.step, total_steps, cfg.optim.lr, cfg.optim.lr_min, warmup)
            for g in optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast():
                out = strategy(ddp_net, x, y, gen, extras)
            weighting.before_step(StepContext(net.model, dict(net.tasks.items()), x, y, out.main_loss,
                                              out.aux_losses, lr, epoch, state.step, optimizer,
                                              ctx_val, autocast))
            loss = weighting.combine(out.main_loss, out.aux_losses)
            if not torch.isfinite(loss):
                raise _diverged(f"loss became {loss.item()}", epoch, state.step, run_dir)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            _accumulate(sums, loss, out)
            correct += int((out.logits.argmax(1) == y).sum())
            seen += len(y)
            if rank == 0 and cfg.log_every and state.step % cfg.log_every == 0:
                log.write({"kind": "step", "epoch": epoch, "step": state.step, "lr": lr,
                           "loss": float(loss.detach()), "weights": weighting.weights()})
            state.step += 1
            averager.after_step(net, state.step, epoch)
        averager.end_epoch(net)
        dt = time.perf_counter() - t0
        state.elapsed += dt
        state.epoch = epoch + 1
        record = _epoch_record(epoch, state, lr, sums, len(loader), correct, seen, world, dt, weighting)
        if val is not None:
            record["val_acc"], record["val_loss"] = accuracy_on(net.model, val[0], val[1], cfg.data.eval_batch_size, autocast)
        if not _all_finite(net, weighting):  # never overwrite the last good checkpoint with NaNs
            raise _diverged("the weights became non-finite", epoch, state.step - 1, run_dir)
        check = strategy.end_of_epoch(net.model, val, autocast)
        if check is not None:
            record.update(check.metrics)
            if check.stop:  # keep the weights of the last epoch that passed the check
                state.early_stop = _restore_last_epoch(run_dir / CHECKPOINT, epoch, check.stop, net, averager)
        if rank == 0:
            log.write(record)
            if state.early_stop is not None:
                log.write({"kind": "early_stop", **state.early_stop})
            ck_out = {"network": net.state_dict(), "weighting": weighting.state_dict(),
                      "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                      "state": vars(state).copy(), "strategy": strategy.state_dict()}
            if averager.enabled:
                ck_out["averaging"] = averager.state_dict()
            save_atomic(ck_out, run_dir / CHECKPOINT)
            start.checkpointed()  # an overwritten run is deleted only now
            bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['train_acc']:.3f}",
                            val=f"{record.get('val_acc', float('nan')):.3f}")
            bar.update(1)
        dist.barrier()
        epochs_run += 1
        if stop_after is not None and epochs_run >= stop_after and state.epoch < cfg.epochs:
            bar.close()
            return run_dir
        if state.early_stop is not None:
            break
    bar.close()
    averager.finalize(net)
    if rank == 0:
        save_atomic({"network": net.state_dict(), "num_classes": splits.num_classes,
                     "class_names": list(splits.class_names)}, run_dir / MODEL)
        from ..eval.runner import evaluate_network

        evaluate_network(run_dir, cfg, net, splits, device, precision,
                         train_info={"epochs": cfg.epochs, "time_s": state.elapsed,
                                     "images_per_sec": _throughput(run_dir),
                                     **({"early_stop": state.early_stop} if state.early_stop else {})})
    dist.barrier()
    return run_dir


def _all_finite(*modules: nn.Module) -> bool:
    """Whether every parameter of ``modules`` is finite (one reduction per tensor)."""
    return all(bool(torch.isfinite(p).all()) for m in modules for p in m.parameters())


def _diverged(what: str, epoch: int, step: int, run_dir: Path) -> DivergenceError:
    """The one-line error for a diverged step; ``checkpoint.pt`` (written at the end of the last
    finished epoch, i.e. before ``epoch``) is left as it is."""
    ck = run_dir / CHECKPOINT
    kept = f"{ck} (after {epoch} epoch(s)) is kept" if epoch > 0 and ck.exists() else "no checkpoint was written"
    return DivergenceError(f"{what} at epoch {epoch} step {step}; {kept}; lower optim.lr or use "
                           f"precision=fp32")


def _restore_last_epoch(path: Path, epoch: int, reason: str, net: nn.Module,
                        averager: WeightAveraging) -> dict[str, Any]:
    """Load the weights (and averaged weights) saved after epoch ``epoch - 1`` into ``net``; returns
    the early-stop record. Only reached from epoch 1 on: a check needs a previous epoch to compare."""
    ck = load_checkpoint(path, map_location=next(net.parameters()).device)
    if ck["state"]["epoch"] != epoch:
        raise CheckpointError(f"{path} holds epoch {ck['state']['epoch']}, expected {epoch} to restore")
    load_state_strict(net, ck["network"], f"{path}: network")
    if averager.enabled:
        averager.load_state_dict(ck.get("averaging"), str(path))
    return {"epoch": epoch, "reason": reason, "weights_of_epoch": epoch - 1}


def _validation_sampler(val, generator: torch.Generator):
    if val is None:
        return None

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(val[1]), (n,), generator=generator).to(val[1].device)
        return val[0][idx].float().div_(255.0), val[1][idx]

    return sample


def _accumulate(sums: dict[str, float], loss: torch.Tensor, out: Any) -> None:
    sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
    sums["main_loss"] = sums.get("main_loss", 0.0) + float(out.main_loss.detach())
    for k, v in out.aux_losses.items():
        sums[f"aux/{k}"] = sums.get(f"aux/{k}", 0.0) + float(v.detach())


def _epoch_record(epoch, state, lr, sums, steps, correct, seen, world, dt, weighting) -> dict:
    rec = {"kind": "epoch", "epoch": epoch, "step": state.step, "lr": lr,
           "loss": sums.get("loss", 0.0) / steps, "main_loss": sums.get("main_loss", 0.0) / steps,
           "aux_losses": {k[4:]: v / steps for k, v in sums.items() if k.startswith("aux/")},
           "train_acc": correct / max(seen, 1), "images_per_sec": seen * world / dt, "epoch_time_s": dt,
           "weights": weighting.weights()}
    return rec


def _throughput(run_dir: Path) -> float | None:
    from .rundir import read_metrics

    recs = [r["images_per_sec"] for r in read_metrics(run_dir) if r.get("kind") == "epoch"]
    return sum(recs) / len(recs) if recs else None


def ensure_run(cfg: RunConfig, splits: DatasetSplits | None = None) -> dict[str, Any]:
    """Train ``cfg`` unless its run directory already holds results; return ``results.json``.

    Sweeps use it to be resumable: an unfinished run resumes from its checkpoint (inside
    :func:`fit`); a finished one with another config raises rather than mixing two experiments.
    """
    run_dir = Path(cfg.out_dir) / cfg.name
    if (run_dir / RESULTS).is_file():
        if not same_config((run_dir / CONFIG).read_text(), cfg):
            raise ConfigError(f"{run_dir} holds a finished run with a different config; use "
                              f"another sweep folder (--out) or delete that run")
        return json.loads((run_dir / RESULTS).read_text())
    return json.loads((fit(cfg, splits=splits) / RESULTS).read_text())
