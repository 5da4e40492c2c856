"""The typed run configuration. YAML presets in ``configs/`` and ``key=value`` overrides fill it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from ..data.base import DataConfig
from ..errors import ConfigError
from ..models.tta import TTA_MODES
from ..paths import check_run_name
from ..typedconfig import check_number

AVERAGING_KINDS = ("none", "ema", "lookahead")


@dataclass
class AveragingConfig:
    """``kind``: none | ema | lookahead; ``decay`` per optimizer step in [0, 1); ``every``: steps
    between updates; ``start_epoch``: first epoch that updates; ``power``: ramp exponent (0: none)."""

    kind: Literal["none", "ema", "lookahead"] = "none"
    decay: float = 0.95
    every: int = 5
    start_epoch: int = 0
    power: float = 0.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.decay < 1.0):
            raise ConfigError(f"optim.averaging.decay must lie in [0, 1), got {self.decay}")
        if self.every < 1:
            raise ConfigError(f"optim.averaging.every must be >= 1, got {self.every}")
        if self.start_epoch < 0:
            raise ConfigError(f"optim.averaging.start_epoch must be >= 0, got {self.start_epoch}")
        if not (math.isfinite(self.power) and self.power >= 0):
            raise ConfigError(f"optim.averaging.power must be a finite number >= 0, got {self.power}")


@dataclass
class MuonConfig:
    """Orthogonalized (Muon) steps for every trainable conv filter (4-d weight); ``lr`` 0 = off.

    ``lr``: the filters' peak step, scheduled like ``optim.lr`` (same warm-up and decay, scaled by
    ``lr / optim.lr``); with ``normalize`` each step moves a filter bank by about ``lr`` times its
    norm. ``momentum`` / ``nesterov`` of the filters' momentum; ``ns_steps``: Newton-Schulz
    iterations; ``normalize``: keep each filter bank at Frobenius norm ``sqrt(out_channels)`` (right
    for convs followed by normalization, which makes their scale irrelevant). The filters get no
    weight decay; every other parameter keeps ``optim``'s SGD settings."""

    lr: float = 0.0
    momentum: float = 0.6
    nesterov: bool = True
    ns_steps: int = 3
    normalize: bool = True

    def __post_init__(self) -> None:
        check_number("optim.muon.lr", self.lr, low=0.0)
        check_number("optim.muon.momentum", self.momentum, 0.0, 1.0, high_open=True)
        if self.nesterov and self.momentum <= 0:
            raise ConfigError("optim.muon.nesterov needs optim.muon.momentum > 0")
        if not 1 <= self.ns_steps <= 20:
            raise ConfigError(f"optim.muon.ns_steps must lie in [1, 20], got {self.ns_steps}")


TASK_FORWARDS = ("auto", "joint", "separate")
FREEZE_MODES = ("none", "backbone")  # what a run does not train (see ssrobust.train.freeze)
DEFAULT_TASK_WEIGHT = 0.5


@dataclass(frozen=True)
class TaskSpec:
    """One entry of ``RunConfig.tasks``: ``"rotation:0.5"`` -> ``TaskSpec("rotation", 0.5)``."""

    name: str
    weight: float = DEFAULT_TASK_WEIGHT


def parse_task_specs(specs: Sequence[str]) -> list[TaskSpec]:
    """The one parser of ``name`` / ``name:weight`` task strings (weight 0.5 when omitted); a bad,
    empty or repeated entry is a one-line ConfigError naming it."""
    out: list[TaskSpec] = []
    for spec in specs:
        name, _, w = spec.partition(":")
        name = name.strip()
        try:
            weight = float(w) if w else DEFAULT_TASK_WEIGHT
        except ValueError:
            raise ConfigError(f"tasks: {spec!r} is not of the form name or name:weight") from None
        if not math.isfinite(weight):
            raise ConfigError(f"tasks: the weight in {spec!r} must be a finite number")
        if not name or name in {t.name for t in out}:
            raise ConfigError(f"tasks: {spec!r} is empty or repeated")
        out.append(TaskSpec(name, weight))
    return out


@dataclass
class ModelConfig:
    """``name`` from the model registry (wrn, wrn40_2, wrn16_4, resnet18, tiny); ``kwargs`` go to its
    constructor (e.g. ``{depth: 40, widen: 2, dropout: 0.3}`` for ``wrn``)."""

    name: str = "wrn40_2"
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    """SGD with (Nesterov) momentum and a per-step decay from ``lr`` to ``lr_min`` after an
    optional linear warm-up: ``schedule`` cosine (default) or linear (warm-up then a straight line
    down, the triangle of fast recipes such as airbench).

    Recipe options (all off by default): ``label_smoothing`` of the classifier's cross-entropy;
    ``bias_lr_scale`` / ``bias_weight_decay``: lr multiplier and weight decay (None: the run's) of
    biases and normalization parameters; ``averaging``: EMA or lookahead weights; ``muon``:
    orthogonalized steps for the conv filters (:class:`MuonConfig`)."""

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_min: float = 1e-6
    warmup_epochs: float = 0.0
    schedule: Literal["cosine", "linear"] = "cosine"
    label_smoothing: float = 0.0
    bias_lr_scale: float = 1.0
    bias_weight_decay: float | None = None
    averaging: AveragingConfig = field(default_factory=AveragingConfig)
    muon: MuonConfig = field(default_factory=MuonConfig)

    def __post_init__(self) -> None:
        # A NaN/inf/zero rate would train for hours and then fail (or silently not train at all).
        check_number("optim.lr", self.lr, low=0.0, low_open=True)
        check_number("optim.momentum", self.momentum, 0.0, 1.0, high_open=True)  # 1: no decay
        check_number("optim.weight_decay", self.weight_decay, low=0.0)
        check_number("optim.lr_min", self.lr_min, low=0.0)
        check_number("optim.warmup_epochs", self.warmup_epochs, low=0.0)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"optim.label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if not self.bias_lr_scale > 0:
            raise ConfigError(f"optim.bias_lr_scale must be > 0, got {self.bias_lr_scale}")
        if self.bias_weight_decay is not None and not self.bias_weight_decay >= 0:
            raise ConfigError(f"optim.bias_weight_decay must be >= 0 (or null), got {self.bias_weight_decay}")


@dataclass
class ComponentConfig:
    """A registered component by ``name`` with constructor ``options``."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalConfig:
    """Suites run at the end of training (``ssrobust eval`` can run more later), with per-suite
    options, e.g. ``options: {corruptions: {max_images: 500}}``."""

    suites: list[str] = field(default_factory=lambda: ["clean"])
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_images: int | None = None
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.tta not in TTA_MODES:
            raise ConfigError(f"eval.tta must be one of {', '.join(TTA_MODES)}, got {self.tta!r}")
        if self.max_images is not None and self.max_images < 1:  # 0 would record accuracy 0.0 on n=0
            raise ConfigError(f"eval.max_images must be >= 1 (or null for the whole test set), "
                              f"got {self.max_images}")


@dataclass
class RunConfig:
    """One training run. ``tasks`` are ``"name:weight"`` strings (weight defaults to 0.5), with
    constructor options per task in ``task_options`` (e.g. ``{rotation: {separate_clean: true}}``).
    ``init_from``: a run directory (or its ``model.pt``) whose backbone, and the heads of the tasks
    both runs have, initialise this run (e.g. rotation-only pretraining, then fine-tuning).
    ``freeze``: ``none`` or ``backbone`` (train only the classifier ``fc`` on the frozen,
    eval-mode backbone: linear finetuning, e.g. from ``init_from``).
    ``task_forward``: ``joint`` (one concatenated trunk forward for the batch and all task views;
    BatchNorm sees them together), ``separate`` (one forward per view group; each task's gradient
    only traverses its own views) or ``auto`` (``separate`` when the weighting needs per-task
    gradients, i.e. first-order ``meta``; ``joint`` otherwise).
    ``threads``: torch threads of this process (null: PyTorch's default for one process, the
    host's cores divided among the processes of a multi-process run). ``channels_last``: NHWC
    memory format, or ``auto`` (see :func:`~ssrobust.train.recipe.resolve_channels_last`)."""

    name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    epochs: int = 100
    device: str = "auto"
    precision: str = "auto"
    channels_last: bool | Literal["auto"] = False
    threads: int | None = None
    progress: bool = True
    log_every: int = 50
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    tasks: list[str] = field(default_factory=list)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    weighting: ComponentConfig = field(default_factory=lambda: ComponentConfig("fixed"))
    strategy: ComponentConfig = field(default_factory=lambda: ComponentConfig("standard"))
    eval: EvalConfig = field(default_factory=EvalConfig)
    init_from: str | None = None
    freeze: str = "none"
    task_forward: str = "auto"

    def __post_init__(self) -> None:
        check_run_name(self.name)  # the run directory out_dir/name must stay inside out_dir
        if self.task_forward not in TASK_FORWARDS:
            raise ConfigError(f"task_forward must be one of {', '.join(TASK_FORWARDS)}, "
                              f"got {self.task_forward!r}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.freeze not in FREEZE_MODES:
            raise ConfigError(f"freeze must be one of {', '.join(FREEZE_MODES)}, got {self.freeze!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 (or null: automatic), got {self.threads}")
        if self.data.batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {self.data.batch_size}")
        self.task_weights()  # validates the task strings early
        unknown = sorted(set(self.task_options) - {n for n, _ in self.task_weights().items()})
        if unknown:
            raise ConfigError(f"task_options for {', '.join(unknown)} but tasks lists only "
                              f"{', '.join(self.task_weights()) or 'none'}")

    def task_weights(self) -> dict[str, float]:
        """``{task name: weight}`` of ``tasks`` (see :func:`parse_task_specs`)."""
        return {spec.name: spec.weight for spec in parse_task_specs(self.tasks)}
