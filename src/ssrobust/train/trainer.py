"""The one training loop, for every model, task set, weighting, strategy, precision and device.

It trains and checkpoints; it does not evaluate (:mod:`ssrobust.experiments.run` trains, then
evaluates)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed as dist
from ..data.base import DatasetSplits
from ..errors import CheckpointError, DivergenceError
from ..images import unit_float
from ..modes import eval_mode
from ..runs.checkpoint import load_checkpoint, load_state_strict, save_atomic
from ..runs.config import RunConfig
from ..runs.device import resolve_device
from ..runs.network import Network
from ..runs.precision import Precision
from ..runs.rundir import CHECKPOINT, MODEL, read_metrics
from ..runs.runstart import RunStart
from ..seeds import epoch_seed
from ..weighting.base import StepContext
from .averaging import WeightAveraging
from .freeze import keep_frozen_in_eval
from .recipe import apply_threads
from .session import Session, setup


def cosine_lr(step: int, total: int, lr: float, lr_min: float, warmup: int = 0,
              schedule: str = "cosine") -> float:
    """Per-step decay from ``lr`` to ``lr_min`` after an optional linear warm-up: a half cosine
    (``schedule="cosine"``) or a straight line (``"linear"``)."""
    if warmup and step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return lr - (lr - lr_min) * t
    return lr_min + 0.5 * (lr - lr_min) * (1.0 + math.cos(math.pi * t))


def _seed_epoch(seed: int, epoch: int, rank: int, device: torch.device) -> torch.Generator:
    """Everything random in an epoch derives from (seed, epoch, rank): exact resume at epoch bounds."""
    base = epoch_seed(seed, epoch) * 1_009 + rank
    torch.manual_seed(base)  # dropout and other global-RNG users
    return torch.Generator(device=device).manual_seed(base + 7)


@torch.no_grad()
def accuracy_on(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int,
                autocast) -> tuple[float, float]:
    """Accuracy and mean CE of ``model`` on device-resident uint8 images [N,3,H,W]."""
    correct, loss = 0, 0.0
    with eval_mode(model):
        for i in range(0, len(labels), batch):
            x = unit_float(images[i: i + batch])
            with autocast():
                logits = model(x).float()
            correct += int((logits.argmax(1) == labels[i: i + batch]).sum())
            loss += float(nn.functional.cross_entropy(logits, labels[i: i + batch], reduction="sum"))
    return correct / len(labels), loss / len(labels)


@dataclass
class FitResult:
    """What :func:`fit_run` hands on: the run directory, whether training reached its end (not
    stopped by ``stop_after``), and on rank 0 of a finished run the trained network, its data
    splits, device, precision and ``train_info`` (the ``"train"`` record of ``results.json``)."""

    run_dir: Path
    finished: bool
    cfg: RunConfig | None = None
    net: Network | None = None
    splits: DatasetSplits | None = None
    device: torch.device | None = None
    precision: Precision | None = None
    train_info: dict[str, Any] = field(default_factory=dict)


def fit(cfg: RunConfig, overwrite: bool = False, stop_after: int | None = None,
        splits: DatasetSplits | None = None) -> Path:
    """Train ``cfg`` into ``<out_dir>/<name>`` (resuming from its checkpoint if one exists) and
    write ``model.pt``; returns the run directory. It does not evaluate: use
    :func:`ssrobust.experiments.run.train_and_evaluate` for train + evaluate + ``results.json``."""
    return fit_run(cfg, overwrite, stop_after, splits).run_dir


def fit_run(cfg: RunConfig, overwrite: bool = False, stop_after: int | None = None,
            splits: DatasetSplits | None = None,
            on_finished: Callable[[FitResult], None] | None = None) -> FitResult:
    """:func:`fit`, returning a :class:`FitResult`. ``stop_after`` ends the call after that many
    epochs (as if the process had been killed; used to test resuming). ``on_finished`` runs on
    rank 0 once training is finished, while the run directory is still locked (the evaluation of
    :mod:`ssrobust.experiments.run` writes ``results.json`` there, so the run has one writer).

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
        session = setup(cfg, start, resume, device, distributed, splits)
        result = _train(session, stop_after)
        if result.finished and start is not None and on_finished is not None:
            on_finished(result)
        dist.barrier()
    except BaseException:
        if start is not None:
            start.close(failed=True)
        raise
    if start is not None:
        start.close(failed=False)
    return result


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


def _train(s: Session, stop_after: int | None) -> FitResult:
    """The epochs still to run, then (unless ``stop_after`` ended the call first) ``model.pt``."""
    cfg, state = s.cfg, s.state
    bar = tqdm(total=cfg.epochs, initial=state.epoch, desc=f"train {cfg.name}", unit="epoch",
               disable=not (cfg.progress and dist.rank() == 0), dynamic_ncols=True)
    epochs_run = 0
    for epoch in range(state.epoch, cfg.epochs if state.early_stop is None else state.epoch):
        record = _train_epoch(s, epoch)
        _end_epoch(s, epoch, record, bar)
        epochs_run += 1
        if stop_after is not None and epochs_run >= stop_after and state.epoch < cfg.epochs:
            bar.close()
            return FitResult(s.run_dir, finished=False)
        if state.early_stop is not None:
            break
    bar.close()
    s.averager.finalize(s.net)
    if dist.rank() != 0:
        return FitResult(s.run_dir, finished=True)
    save_atomic({"network": s.net.state_dict(), "num_classes": s.splits.num_classes,
                 "class_names": list(s.splits.class_names)}, s.run_dir / MODEL)
    info = {"epochs": cfg.epochs, "time_s": state.elapsed, "images_per_sec": _throughput(s.run_dir),
            **({"early_stop": state.early_stop} if state.early_stop else {})}
    return FitResult(s.run_dir, True, cfg, s.net, s.splits, s.device, s.precision, info)


def _train_epoch(s: Session, epoch: int) -> dict[str, Any]:
    """One epoch of optimizer steps; returns the epoch's metrics record."""
    cfg, state, net = s.cfg, s.state, s.net
    gen = _seed_epoch(cfg.seed, epoch, dist.rank(), s.device)
    ctx_val = _validation_sampler(s.meta_pool, torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
    t0 = time.perf_counter()
    sums: dict[str, float] = {}
    correct = seen = 0
    lr = cfg.optim.lr
    s.ddp_net.train()
    keep_frozen_in_eval(s.net, cfg.freeze)
    for x, y, extras in s.loader.epoch(epoch):
        lr = cosine_lr(state.step, s.total_steps, cfg.optim.lr, cfg.optim.lr_min, s.warmup, cfg.optim.schedule)
        for g in s.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        if s.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with s.precision.autocast():
            out = s.strategy(s.ddp_net, x, y, gen, extras)
        s.weighting.before_step(StepContext(net.model, dict(net.tasks.items()), x, y, out.main_loss,
                                            out.aux_losses, lr, epoch, state.step, s.optimizer,
                                            ctx_val, s.precision.autocast))
        loss = s.weighting.combine(out.main_loss, out.aux_losses)
        if not torch.isfinite(loss):
            raise _diverged(f"loss became {loss.item()}", epoch, state.step, s.run_dir)
        s.optimizer.zero_grad(set_to_none=True)
        s.scaler.scale(loss).backward()
        s.scaler.step(s.optimizer)
        s.scaler.update()
        _accumulate(sums, loss, out)
        if s.strategy.trains_classifier:
            correct += int((out.logits.argmax(1) == y).sum())
        seen += len(y)
        if dist.rank() == 0 and cfg.log_every and state.step % cfg.log_every == 0:
            s.log.write({"kind": "step", "epoch": epoch, "step": state.step, "lr": lr,
                         "loss": float(loss.detach()), "weights": s.weighting.weights()})
        state.step += 1
        s.averager.after_step(net, state.step, epoch)
    s.averager.end_epoch(net)
    dt = time.perf_counter() - t0
    state.elapsed += dt
    state.epoch = epoch + 1
    return _epoch_record(epoch, state, lr, sums, len(s.loader), correct, seen, dist.world_size(), dt,
                         s.weighting)


def _end_epoch(s: Session, epoch: int, record: dict[str, Any], bar: tqdm) -> None:
    """Validation, the finiteness and strategy checks, the metrics line and the checkpoint."""
    if not s.strategy.trains_classifier:  # e.g. contrastive pretraining: the classifier is untrained
        record.pop("train_acc", None)
    elif s.val is not None:
        record["val_acc"], record["val_loss"] = accuracy_on(s.net.model, s.val[0], s.val[1],
                                                            s.cfg.data.eval_batch_size, s.precision.autocast)
    if not _all_finite(s.net, s.weighting):  # never overwrite the last good checkpoint with NaNs
        raise _diverged("the weights became non-finite", epoch, s.state.step - 1, s.run_dir)
    check = s.strategy.end_of_epoch(s.net.model, s.val, s.precision.autocast)
    if check is not None:
        record.update(check.metrics)
        if check.stop:  # keep the weights of the last epoch that passed the check
            s.state.early_stop = _restore_last_epoch(s.run_dir / CHECKPOINT, epoch, check.stop, s.net,
                                                     s.averager)
    if dist.rank() == 0:
        s.log.write(record)
        if s.state.early_stop is not None:
            s.log.write({"kind": "early_stop", **s.state.early_stop})
        _save_checkpoint(s)
        bar.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record.get('train_acc', float('nan')):.3f}",
                        val=f"{record.get('val_acc', float('nan')):.3f}")
        bar.update(1)
    dist.barrier()


def _save_checkpoint(s: Session) -> None:
    """``checkpoint.pt``: everything a resumed run needs to continue bit-identically."""
    ck_out = {"network": s.net.state_dict(), "weighting": s.weighting.state_dict(),
              "optimizer": s.optimizer.state_dict(), "scaler": s.scaler.state_dict(),
              "state": vars(s.state).copy(), "strategy": s.strategy.state_dict()}
    if s.averager.enabled:
        ck_out["averaging"] = s.averager.state_dict()
    save_atomic(ck_out, s.run_dir / CHECKPOINT)
    s.start.checkpointed()  # an overwritten run is deleted only now


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
        return unit_float(val[0][idx]), val[1][idx]

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
    """Mean training images per second over the epochs in ``metrics.jsonl``."""
    recs = [r["images_per_sec"] for r in read_metrics(run_dir) if r.get("kind") == "epoch"]
    return sum(recs) / len(recs) if recs else None
