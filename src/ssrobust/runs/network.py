"""The module the optimizer trains: a backbone plus its pretext-task heads.

Wrapping both in one module lets DDP synchronize the task heads' gradients with the trunk's and
makes a checkpoint one state dict. ``joint_views`` chooses between one concatenated trunk forward
for the clean batch and all task views (default) and one forward per view group (see
:func:`~ssrobust.tasks.base.forward_with_tasks`); the loop sets it from ``RunConfig.task_forward``,
and ``label_smoothing`` (of the default classifier loss) from ``optim.label_smoothing``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ComponentError
from ..models.base import MODELS
from ..tasks.base import build_task, forward_with_tasks
from .checkpoint import load_checkpoint, load_state_strict
from .config import RunConfig
from .rundir import MODEL

MainLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Network(nn.Module):
    def __init__(self, model: nn.Module, tasks: dict[str, nn.Module], joint_views: bool = True) -> None:
        super().__init__()
        self.model = model
        self.tasks = nn.ModuleDict(tasks)
        self.joint_views = joint_views
        self.label_smoothing = 0.0

    def forward(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator | None = None,
                main_loss: MainLoss | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Returns ``(logits [B, K] float32, main loss, {task: loss})`` from the trunk forward(s).

        ``main_loss(logits, y)`` defaults to :meth:`classification_loss`; strategies such as GLC
        pass their own.
        """
        feats, aux = forward_with_tasks(self.model, x, dict(self.tasks.items()), generator,
                                       joint=self.joint_views)
        logits = self.model.forward_head(feats).float()
        loss = self.classification_loss(logits, y) if main_loss is None else main_loss(logits, y)
        return logits, loss, {k: v.float() for k, v in aux.items()}

    def classification_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of logits ``[B, K]`` and labels ``[B]``, with the run's label smoothing."""
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)


def build_network(cfg: RunConfig, num_classes: int) -> Network:
    """The configured backbone with ``num_classes`` outputs and one head per configured task."""
    constructor = MODELS.get(cfg.model.name)
    try:
        model = constructor(num_classes=num_classes, **cfg.model.kwargs)
    except TypeError as e:  # name the config key, not only the constructor
        raise ComponentError(f"model {cfg.model.name!r} with kwargs {cfg.model.kwargs}: {e}") from None
    tasks = {name: build_task(name, model.num_features, **cfg.task_options.get(name, {}))
             for name in cfg.task_weights()}
    for task in tasks.values():
        task.match_backbone(model)
    return Network(model, tasks)


INIT_BN_BRANCH = "pgd"  # the BatchNorm branch a plain backbone takes from a per-branch one


def fold_batchnorm_branches(state: dict, target_keys, branch: str = INIT_BN_BRANCH) -> dict:
    """A backbone state with per-branch BatchNorm (``<bn>.bns.<name>.*``, AdvCL's ``dual_bn``)
    as plain BatchNorm keys of branch ``branch`` (the adversarial one, as ACL's finetuning), when
    the target has plain BatchNorm; otherwise ``state`` unchanged."""
    if any(".bns." in k for k in target_keys) or not any(".bns." in k for k in state):
        return state
    marker = f".bns.{branch}."
    return {k.replace(marker, "."): v for k, v in state.items() if ".bns." not in k or marker in k}


CLASSIFIER = "fc."  # every backbone's classifier (ssrobust.models): [num_features] -> [num_classes]


def _split_classifier(backbone: dict, net: Network, same_classes: bool) -> tuple[dict, dict]:
    """``(backbone without the classifier, the classifier state to load)``: the classifier is
    loaded only when the two runs share their classes and its shapes match, else it stays fresh."""
    head = {k: v for k, v in backbone.items() if k.startswith(CLASSIFIER)}
    own = {k: v for k, v in net.model.state_dict().items() if k.startswith(CLASSIFIER)}
    fits = head.keys() == own.keys() and all(head[k].shape == own[k].shape for k in own)
    trunk = {k: v for k, v in backbone.items() if not k.startswith(CLASSIFIER)}
    return trunk, (head if same_classes and fits else {})


def init_from_run(net: Network, source: str | Path, class_names: list[str] | None = None) -> None:
    """Load another run's ``model.pt`` (``source`` is the file or its run directory) into ``net``:
    the backbone strictly, and each task head that both runs have strictly; heads of tasks the
    source run did not train keep their fresh initialisation, and other heads of the source (e.g.
    contrastive pretraining's ``contrastive.*``) are not read. A per-branch BatchNorm backbone
    loads its ``pgd`` branch into a plain one (:func:`fold_batchnorm_branches`).

    The classifier ``fc`` is loaded only when it has this run's shape and, with ``class_names``
    given, the source was trained on the same class names (cross-dataset or other-classes
    transfer keeps a fresh classifier). Everything else must match: a one-line
    :class:`~ssrobust.errors.CheckpointError` naming ``init_from`` otherwise."""
    path = Path(source)
    path = path / MODEL if path.is_dir() else path
    saved = load_checkpoint(path)
    state = saved["network"]

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    backbone = fold_batchnorm_branches(part("model."), net.model.state_dict().keys())
    same = class_names is None or list(saved.get("class_names") or []) == list(class_names)
    trunk, head = _split_classifier(backbone, net, same)
    fresh = {k: v.clone() for k, v in net.model.state_dict().items() if k.startswith(CLASSIFIER)}
    load_state_strict(net.model, {**fresh, **trunk, **head}, f"init_from {path}: backbone")
    for name, task in net.tasks.items():
        head_state = part(f"tasks.{name}.")
        if head_state:
            load_state_strict(task, head_state, f"init_from {path}: task {name!r}")
