"""Encoder robustness across downstream tasks (the layer6 benchmark): the cross-task table.

For each encoder (a run directory of this package, or any ``nn.Module`` / :class:`Encoder` through
the Python API), light heads (``cls``, ``seg``, ``depth``) are trained on the frozen encoder on the
train split (the built-in scenes, or a dense folder), then every head is scored on the test split

* ``clean``;
* ``embedding_attack``: one attacked image set per encoder (ℓ∞ PGD maximizing the embedding
  distance; task-agnostic, so every head scores the same images);
* ``task_attack``: each task's own attack (classification CE PGD, SegPGD, PGD on the depth loss);
  ``autoattack`` (classification only) when asked.

The result, ``{encoder: {task: {condition: metrics}}}`` plus a headline table, is written to
``OUT/results.json`` (atomic, with ``OUT`` locked) in the form the report reads (suite
``encoders``). Every encoder's ``state_dict`` is checked to be bit-identical after its evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import torch
from torch import nn

from ..attacks import PGD
from ..data.dense import DenseFolderConfig, load_dense_folder, synthetic_dense
from ..encoders import (Encoder, HeadTrainConfig, SegPGD, TaskModel, as_encoder, attack_embeddings,
                        build_head, embedding_pgd, evaluate_head, probe, task_pgd, train_head)
from ..errors import CheckpointError, ConfigError
from ..locking import DirLock
from ..paths import check_folder_path, make_dir, remove_if_empty
from ..runfiles import RESULTS, read_json, write_json
from ..runs.checkpoint import load_checkpoint
from ..runs.load import PRETRAINING_HEADS, load_network
from ..runs.network import build_network, init_from_run
from ..runs.rundir import MODEL, load_run_config
from ..typedconfig import check_number, to_dict

TASK_NAMES: tuple[str, ...] = ("cls", "seg", "depth")
HEADLINE: dict[str, str] = {"cls": "accuracy", "seg": "miou", "depth": "delta1"}
CONDITIONS: tuple[str, ...] = ("clean", "embedding_attack", "task_attack")
SUITE = "encoders"
SCHEMA = 1
EncoderSource = Union[str, Path, nn.Module]


@dataclass
class EncoderEvalConfig:
    """Options of the cross-task evaluation (``key=value`` on the command line).

    Data: the built-in scenes (``train_images``/``test_images`` of ``image_size``, ``num_classes``
    image classes, seeded by ``data_seed``), or dense folders ``train_dir`` + ``test_dir`` (layout in
    docs/data.md; ``seg_classes``, ``void``, ``depth_scale`` as in ``DenseFolderConfig``). Heads:
    ``head_epochs``, ``head_lr``, ``head_batch_size``; depth bins over ``[depth_min, depth_max]``
    (default: the train split's valid range). Attacks (embedding and task): ℓ∞ ``eps``,
    ``step_size``, ``steps``; ``embedding_metric`` ``l2`` or ``cosine``; ``autoattack`` adds
    AutoAttack on the classification head."""

    tasks: list[str] = field(default_factory=lambda: list(TASK_NAMES))
    train_images: int = 512
    test_images: int = 256
    image_size: int = 32
    num_classes: int = 10
    data_seed: int = 0
    train_dir: str | None = None
    test_dir: str | None = None
    seg_classes: int | None = None
    void: int = 255
    depth_scale: float = 1000.0
    depth_min: float | None = None
    depth_max: float | None = None
    depth_bins: int = 64
    head_epochs: int = 10
    head_lr: float = 1e-3
    head_batch_size: int = 64
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 20
    embedding_metric: str = "l2"
    autoattack: bool = False
    batch_size: int = 128
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASK_NAMES]
        if not self.tasks or bad or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks must be distinct names among {', '.join(TASK_NAMES)}, got "
                              f"{','.join(map(str, self.tasks)) or 'none'}")
        if (self.train_dir is None) != (self.test_dir is None):
            raise ConfigError("give both train_dir and test_dir (dense folders), or neither (built-in scenes)")
        if self.embedding_metric not in ("l2", "cosine"):
            raise ConfigError(f"embedding_metric must be l2 or cosine, got {self.embedding_metric!r}")
        for key in ("train_images", "test_images", "image_size", "head_epochs", "head_batch_size",
                    "batch_size", "depth_bins"):
            check_number(key, getattr(self, key), low=1)
        check_number("num_classes", self.num_classes, low=2)
        check_number("eps", self.eps, 0.0, 1.0)
        check_number("step_size", self.step_size, low=0.0)
        check_number("steps", self.steps, low=0)
        check_number("head_lr", self.head_lr, low=0.0, low_open=True)


@dataclass
class Split:
    """Float images ``[N, 3, H, W]`` in [0, 1] and targets by task name."""

    x: torch.Tensor
    y: dict[str, torch.Tensor]


def load_data(cfg: EncoderEvalConfig) -> tuple[Split, Split]:
    """The train and test splits with the targets of every requested task (one-line errors)."""
    if cfg.train_dir is None:
        arrays = [synthetic_dense(cfg.train_images, seed=2 * cfg.data_seed, size=cfg.image_size,
                                  num_classes=cfg.num_classes),
                  synthetic_dense(cfg.test_images, seed=2 * cfg.data_seed + 1, size=cfg.image_size,
                                  num_classes=cfg.num_classes)]
    else:
        arrays = [load_dense_folder(DenseFolderConfig(str(root), cfg.seg_classes, cfg.void, cfg.depth_scale))
                  for root in (cfg.train_dir, cfg.test_dir)]
    splits = []
    for name, a in zip(("train", "test"), arrays):
        x, y = a.tensors()
        missing = [t for t in cfg.tasks if t not in y]
        if missing:
            raise ConfigError(f"task {missing[0]} needs {_NEEDS[missing[0]]}, but the {name} data "
                              f"({_where(cfg, name)}) has none; drop it from --tasks")
        splits.append(Split(x, {t: y[t] for t in cfg.tasks}))
    if splits[0].x.shape[1:] != splits[1].x.shape[1:]:
        raise ConfigError(f"train images are {tuple(splits[0].x.shape[2:])} but test images "
                          f"{tuple(splits[1].x.shape[2:])}; expected one size")
    return splits[0], splits[1]


_NEEDS = {"cls": "image labels", "seg": "masks (a labels/ folder)", "depth": "depth maps (a depth/ folder)"}


def _where(cfg: EncoderEvalConfig, split: str) -> str:
    return str(getattr(cfg, f"{split}_dir") or "built-in scenes")


def _seg_classes(cfg: EncoderEvalConfig) -> int:
    """Mask classes: the folder's ``seg_classes``; the scenes' background + one per image class."""
    return int(cfg.seg_classes) if cfg.train_dir is not None else cfg.num_classes + 1


def _depth_range(cfg: EncoderEvalConfig, depth: torch.Tensor) -> tuple[float, float]:
    """``[depth_min, depth_max]``, by default the valid range of the train split's depth."""
    valid = depth[torch.isfinite(depth) & (depth > 0)]
    if valid.numel() == 0:
        raise ConfigError(f"the train depth maps ({_where(cfg, 'train')}) have no valid pixel (> 0)")
    lo = cfg.depth_min if cfg.depth_min is not None else float(valid.min())
    hi = cfg.depth_max if cfg.depth_max is not None else float(valid.max())
    if not 0 < lo < hi:
        raise ConfigError(f"depth range must satisfy 0 < depth_min < depth_max, got {lo}, {hi}")
    return lo, hi


def _head_options(task: str, cfg: EncoderEvalConfig, train: Split) -> dict[str, Any]:
    if task == "cls":
        return {"num_classes": cfg.num_classes}
    if task == "seg":
        return {"num_classes": _seg_classes(cfg), "void": cfg.void}
    lo, hi = _depth_range(cfg, train.y["depth"])
    return {"min_depth": lo, "max_depth": hi, "num_bins": cfg.depth_bins}


def build_heads(enc: Encoder, cfg: EncoderEvalConfig, train: Split) -> dict[str, nn.Module]:
    """One head per task, sized by probing the encoder at the image size."""
    shapes = probe(enc, tuple(train.x.shape[-2:]), cfg.device)
    return {t: build_head(t, shapes, **_head_options(t, cfg, train)).to(cfg.device) for t in cfg.tasks}


def _task_attack(task: str, head: nn.Module, cfg: EncoderEvalConfig) -> Any:
    kw = {"eps": cfg.eps, "step_size": cfg.step_size, "steps": cfg.steps}
    if task == "cls":
        return PGD(norm="linf", random_start=True, **kw)
    if task == "seg":
        return SegPGD(void=cfg.void, **kw)
    return task_pgd(head.loss, **kw)


def _batched(attack: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, bs: int,
             gen: torch.Generator) -> torch.Tensor:
    """``attack`` over ``x`` in batches of ``bs`` (``y`` None: the label-free embedding attack)."""
    out = []
    for i in range(0, len(x), bs):
        xb = x[i: i + bs]
        out.append(attack_embeddings(model, xb, attack, gen) if y is None
                   else attack(model, xb, y[i: i + bs], gen))
    return torch.cat(out)


def _autoattack(head: nn.Module, enc: Encoder, test: Split, cfg: EncoderEvalConfig) -> dict[str, Any]:
    from ..attacks import AutoAttack

    attack = AutoAttack(eps=cfg.eps, norm="linf", seed=cfg.seed)
    x_adv = attack(TaskModel(enc, head), test.x, test.y["cls"])
    return evaluate_head(enc, head, x_adv, test.y["cls"], cfg.batch_size)


def evaluate_encoder(enc: Encoder, train: Split, test: Split, cfg: EncoderEvalConfig) -> dict[str, Any]:
    """``{task: {"clean", "embedding_attack", "task_attack"[, "autoattack"]: metrics}}`` for one
    encoder (splits already on ``cfg.device``)."""
    heads = build_heads(enc, cfg, train)
    head_cfg = HeadTrainConfig(epochs=cfg.head_epochs, batch_size=cfg.head_batch_size, lr=cfg.head_lr,
                               seed=cfg.seed)
    for task, head in heads.items():
        train_head(enc, head, train.x, train.y[task], head_cfg)
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed)
    emb = embedding_pgd(cfg.embedding_metric, eps=cfg.eps, step_size=cfg.step_size, steps=cfg.steps)
    x_emb = _batched(emb, enc, test.x, None, cfg.batch_size, gen)
    out: dict[str, Any] = {}
    for task, head in heads.items():
        y = test.y[task]
        x_task = _batched(_task_attack(task, head, cfg), TaskModel(enc, head), test.x, y, cfg.batch_size, gen)
        out[task] = {"clean": evaluate_head(enc, head, test.x, y, cfg.batch_size),
                     "embedding_attack": evaluate_head(enc, head, x_emb, y, cfg.batch_size),
                     "task_attack": evaluate_head(enc, head, x_task, y, cfg.batch_size)}
        if task == "cls" and cfg.autoattack:
            out[task]["autoattack"] = _autoattack(head, enc, test, cfg)
    return out


def load_backbone(run_dir: str | Path, device: str | torch.device) -> nn.Module:
    """The trained backbone of ``run_dir`` (eval mode, on ``device``). A contrastive pretraining run
    counts too (its encoder is the backbone; its classifier is never read here): its projection heads
    are skipped and a per-branch BatchNorm backbone gives its ``pgd`` branch, as ``init_from`` does."""
    cfg = load_run_config(Path(run_dir))  # first: "not a run directory" before any checkpoint error
    saved = load_checkpoint(Path(run_dir) / MODEL)
    if not any(k.startswith(PRETRAINING_HEADS) for k in saved.get("network", {})):
        return load_network(run_dir, device)[1].model
    if not isinstance(saved.get("num_classes"), int):
        raise CheckpointError(f"{Path(run_dir) / MODEL} records no num_classes; expected a model.pt written by ssrobust")
    net = build_network(cfg, saved["num_classes"])
    init_from_run(net, run_dir)
    return net.model.to(device).eval()


def resolve_encoders(sources: Sequence[EncoderSource] | Mapping[str, EncoderSource], device: str
                     ) -> dict[str, tuple[Encoder, str]]:
    """``{name: (frozen Encoder on device, where it came from)}``. Run directories are named by
    their folder (made unique); modules by their mapping key or ``module<i>``."""
    items = list(sources.items()) if isinstance(sources, Mapping) else [(None, s) for s in sources]
    if not items:
        raise ConfigError("give at least one encoder (a run directory or an nn.Module)")
    out: dict[str, tuple[Encoder, str]] = {}
    for i, (name, src) in enumerate(items):
        if isinstance(src, nn.Module):
            enc, origin = as_encoder(src.to(device)), type(src).__name__
            name = name or f"module{i}"
        elif isinstance(src, (str, Path)):
            enc, origin = as_encoder(load_backbone(src, device)), str(src)
            name = name or Path(src).resolve().name
        else:
            raise ConfigError(f"encoder {i}: expected a run directory or an nn.Module, got {type(src).__name__}")
        base, k = str(name), 2
        while name in out:
            name, k = f"{base} ({k})", k + 1
        out[str(name)] = (enc, origin)
    return out


def headline_table(records: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per encoder and task: the task's headline metric under each condition."""
    rows = []
    for enc, tasks in records.items():
        for task, rec in tasks.items():
            metric = HEADLINE[task]
            rows.append({"encoder": enc, "task": task, "metric": metric,
                         **{c: rec[c].get(metric) for c in rec}})
    return rows


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _check_unchanged(name: str, module: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = module.state_dict()
    changed = [k for k, v in before.items() if not torch.equal(v, after[k])]
    if changed or set(after) != set(before):
        raise RuntimeError(f"encoder {name}: its state_dict changed during evaluation ({changed[:3]})")


def _check_out(out: Path) -> None:
    """Refuse an output folder whose ``results.json`` was not written by this experiment."""
    path = out / RESULTS
    if path.exists():
        old = read_json(path)
        if not (isinstance(old, dict) and SUITE in old.get("suites", {}) and old.get("run") == SUITE):
            raise ConfigError(f"{path} exists and was not written by `ssrobust encoders`; choose another --out")


def _evaluate_all(encs: dict[str, tuple[Encoder, str]], data: tuple[Split, Split], cfg: EncoderEvalConfig
                  ) -> dict[str, Any]:
    train, test = data
    train = Split(train.x.to(cfg.device), {k: v.to(cfg.device) for k, v in train.y.items()})
    test = Split(test.x.to(cfg.device), {k: v.to(cfg.device) for k, v in test.y.items()})
    records = {}
    for name, (enc, _) in encs.items():
        before = _snapshot(enc.module)
        records[name] = evaluate_encoder(enc, train, test, cfg)
        _check_unchanged(name, enc.module, before)
    return records


def run_encoder_eval(encoders: Sequence[EncoderSource] | Mapping[str, EncoderSource], out: str | Path,
                     cfg: EncoderEvalConfig | None = None) -> dict[str, Any]:
    """Evaluate every encoder on every task into ``out/results.json``; returns its content.

    Inputs are checked (encoders loaded, data read) before ``out`` is created; ``out`` is locked
    while the evaluation runs and ``results.json`` appears only when every encoder is done."""
    cfg = cfg or EncoderEvalConfig()
    out = check_folder_path(Path(out), "encoders output folder")
    encs = resolve_encoders(encoders, cfg.device)
    data = load_data(cfg)  # bad data fails before anything is created
    created = make_dir(out, "encoders output folder")
    try:
        with DirLock(out, "encoders output folder"):
            _check_out(out)
            records = _evaluate_all(encs, data, cfg)
            suite = {"schema": SCHEMA, "tasks": list(cfg.tasks), "conditions": list(CONDITIONS),
                     "headline": {t: HEADLINE[t] for t in cfg.tasks}, "config": to_dict(cfg),
                     "sources": {n: origin for n, (_, origin) in encs.items()},
                     "encoders": records, "table": headline_table(records)}
            result = {"run": SUITE, "suites": {SUITE: suite}}
            write_json(out / RESULTS, result)
    except BaseException:
        if created:
            remove_if_empty(out)
        raise
    return result

