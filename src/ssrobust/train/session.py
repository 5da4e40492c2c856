"""Setting up one training session: network, weighting, strategy, optimizer, loader, resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed as dist
from ..data.base import DatasetSplits
from ..runs.splits import load_splits
from ..data.loader import DeviceLoader, to_device_uint8
from ..errors import ConfigError
from ..runs.checkpoint import load_checkpoint, load_state_strict
from ..runs.config import RunConfig
from ..runs.network import Network, build_network, init_from_run
from ..runs.precision import Precision
from ..runs.rundir import CHECKPOINT, METRICS, MetricsLog, make_meta, write_json
from ..runs.runstart import RunStart
from ..weighting.base import Weighting, build_weighting
from .averaging import WeightAveraging
from .muon import OrthoSGD
from .recipe import (check_label_smoothing, init_model_from_data, parameter_groups, resolve_channels_last,
                     split_filter_group)
from .freeze import freeze_parameters
from .strategies import PrepareContext, Strategy, build_strategy


@dataclass
class TrainState:
    epoch: int = 0
    step: int = 0
    elapsed: float = 0.0
    early_stop: dict | None = None  # set when a strategy's end-of-epoch check stopped the run


def resolve_task_forward(task_forward: str, weighting: Weighting) -> str:
    """``joint`` or ``separate`` for ``RunConfig.task_forward`` (``auto`` asks the weighting)."""
    if task_forward == "auto":
        return "separate" if weighting.wants_separate_views() else "joint"
    return task_forward


def build_optimizer(cfg: RunConfig, net: nn.Module, weighting: Weighting) -> torch.optim.Optimizer:
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
    nesterov = o.nesterov and o.momentum > 0
    if not o.muon.lr:
        return torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum, nesterov=nesterov, weight_decay=o.weight_decay)
    return OrthoSGD(split_filter_group(groups, o.lr, o.muon), lr=o.lr, momentum=o.momentum, nesterov=nesterov,
                    weight_decay=o.weight_decay)


@dataclass
class Session:
    """Everything one :func:`fit_run` call trains with: built and resumed by :func:`setup`, then
    used by the epoch functions of :mod:`.trainer`."""

    cfg: RunConfig
    run_dir: Path
    start: RunStart | None  # None on ranks other than 0
    resume: bool
    device: torch.device
    precision: Precision
    channels_last: bool
    splits: DatasetSplits
    net: Network
    weighting: Weighting
    strategy: Strategy
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: DeviceLoader
    state: TrainState = field(default_factory=TrainState)
    ddp_net: nn.Module | None = None
    log: MetricsLog | None = None
    val: tuple[torch.Tensor, torch.Tensor] | None = None  # clean held-out images (val_acc)
    meta_pool: tuple[torch.Tensor, torch.Tensor] | None = None  # held-out images as the weighting wants
    averager: WeightAveraging | None = None
    total_steps: int = 0
    warmup: int = 0


def setup(cfg: RunConfig, start: RunStart | None, resume: bool, device: torch.device, distributed: bool,
           splits: DatasetSplits | None) -> Session:
    """Build (and on resume restore) everything; anything wrong with the config or the data fails
    here, before any file is written."""
    s = build_session(cfg, start, resume, device, splits)
    if start is not None:
        start.commit()
    dist.barrier()
    ck = load_checkpoint(s.run_dir / CHECKPOINT, map_location=device) if resume else None
    if ck is not None:
        _restore(s, ck)
    if dist.rank() == 0:
        _write_meta(s)
    s.log = MetricsLog(s.run_dir / METRICS, keep_before_epoch=s.state.epoch if resume else None,
                       enabled=dist.rank() == 0)
    if s.splits.val is not None:
        s.val = (to_device_uint8(s.splits.val.images, device),
                 torch.as_tensor(s.splits.val.labels, dtype=torch.long, device=device))
        s.meta_pool = (s.weighting.prepare_validation(s.val[0], cfg.seed), s.val[1])
    if s.strategy.held_out_images and s.val is None:
        raise ConfigError(f"strategy {cfg.strategy.name!r} checks every epoch on validation images; "
                          f"set data.val_size > 0")
    s.ddp_net = s.net
    if distributed:
        s.ddp_net = nn.parallel.DistributedDataParallel(
            s.net, device_ids=[device.index] if device.type == "cuda" else None)
    s.total_steps = cfg.epochs * len(s.loader)
    s.warmup = int(cfg.optim.warmup_epochs * len(s.loader))
    s.averager = WeightAveraging(cfg.optim.averaging, s.total_steps)
    if ck is not None and s.averager.enabled:
        s.averager.load_state_dict(ck.get("averaging"), f"{s.run_dir / CHECKPOINT}")
    return s


def build_session(cfg: RunConfig, start: RunStart | None, resume: bool, device: torch.device,
           splits: DatasetSplits | None) -> Session:
    """Network, weighting, strategy, optimizer and loader of a run, checked against each other."""
    precision = Precision.resolve(cfg.precision, device)
    channels_last = resolve_channels_last(cfg.channels_last, device, precision.name)
    torch.manual_seed(cfg.seed)
    splits = splits or load_splits(cfg.data)
    net = build_network(cfg, splits.num_classes).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    net.label_smoothing = cfg.optim.label_smoothing
    weighting = build_weighting(cfg.weighting.name, cfg.task_weights(), **cfg.weighting.options).to(device)
    net.joint_views = resolve_task_forward(cfg.task_forward, weighting) == "joint"
    strategy = build_strategy(cfg.strategy.name, **cfg.strategy.options)
    check_label_smoothing(cfg.optim.label_smoothing, cfg.strategy.name, strategy.uses_classification_loss)
    if not resume:  # e.g. fastnet's whitening layer from training patches (saved with the weights)
        init_model_from_data(net.model, splits.train.images, cfg.seed)
    if cfg.init_from and not resume:  # on resume the checkpoint already holds the weights
        init_from_run(net, cfg.init_from, list(splits.class_names))
    run_dir = Path(cfg.out_dir) / cfg.name
    strategy.prepare(PrepareContext(net, splits, run_dir, device, cfg.seed))
    freeze_parameters(net, cfg.freeze)  # before the optimizer: frozen parameters are not in it
    optimizer = build_optimizer(cfg, net, weighting)
    scaler = precision.grad_scaler()
    missing = [k for k in strategy.batch_extras if k not in splits.train.extras]
    if missing:
        raise ValueError(f"strategy {cfg.strategy.name!r} needs per-image {', '.join(missing)} that the "
                         f"{cfg.data.source} training split does not provide")
    loader = DeviceLoader(splits.train.images, splits.train.labels, cfg.data.batch_size, device,
                          augment=cfg.data.augment, seed=cfg.seed, rank=dist.rank(), world_size=dist.world_size(),
                          extras={k: splits.train.extras[k] for k in strategy.batch_extras},
                          flip=cfg.data.flip, translate=cfg.data.translate, pad_mode=cfg.data.pad_mode)
    if len(loader) == 0:
        raise ValueError(f"data.batch_size={cfg.data.batch_size} is larger than the training set "
                         f"({len(splits.train)} images)")
    return Session(cfg, run_dir, start, resume, device, precision, channels_last,
                    splits, net, weighting, strategy, optimizer, scaler, loader)


def _restore(s: Session, ck: dict[str, Any]) -> None:
    """Resume: weights, weighting, optimizer, scaler, strategy and counters from ``checkpoint.pt``."""
    where = s.run_dir / CHECKPOINT
    load_state_strict(s.net, ck["network"], f"{where}: network")
    load_state_strict(s.weighting, ck["weighting"], f"{where}: weighting")
    s.optimizer.load_state_dict(ck["optimizer"])
    s.scaler.load_state_dict(ck["scaler"])
    s.strategy.load_state_dict(ck.get("strategy", {}))
    s.state = TrainState(**ck["state"])


def _write_meta(s: Session) -> None:
    meta = make_meta(s.cfg, str(s.device), s.precision.name, dist.world_size())
    meta["resumed_from_epoch"] = s.state.epoch if s.resume else None
    meta["task_forward"] = "joint" if s.net.joint_views else "separate"
    meta["threads"], meta["channels_last"] = torch.get_num_threads(), s.channels_last
    write_json(s.run_dir / "meta.json", meta)
