"""Training strategies: how a batch becomes the step's losses.

``standard`` forwards the (augmented) batch; adversarial strategies (in
:mod:`ssrobust.train.adversarial`) first replace or extend it with attacked images. A strategy is
called as ``strategy(net, x, y, generator, extras) -> StepOutput`` where ``net`` may be DDP-wrapped
(the unwrapped :class:`~ssrobust.runs.network.Network` is ``strategy.unwrap(net)``) and ``extras``
holds per-sample side information from the loader (e.g. ``trusted`` for label-noise correction).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager

import torch
from torch import nn

from ..registry import Registry

STRATEGIES: Registry = Registry("training strategy")


@dataclass
class StepOutput:
    logits: torch.Tensor             # [B, K] for the labelled batch (training accuracy)
    main_loss: torch.Tensor
    aux_losses: dict[str, torch.Tensor]
    inputs: torch.Tensor | None = None  # the images the losses were computed on, if not the batch (x_adv)


@dataclass
class EpochCheck:
    """What a strategy's end-of-epoch check reports: ``metrics`` go into the epoch's record;
    ``stop`` (a reason) ends training early."""

    metrics: dict[str, Any]
    stop: str | None = None


@dataclass
class PrepareContext:
    """What :meth:`Strategy.prepare` may use: the unwrapped network (not yet on the optimizer),
    the run's data splits, its run directory, device and seed."""

    net: nn.Module
    splits: Any  # DatasetSplits
    run_dir: Path
    device: torch.device
    seed: int


class Strategy:
    # Names of per-image arrays in the training split's ``extras`` that batches must carry.
    batch_extras: tuple[str, ...] = ()
    # Whether the classifier loss is the network's cross-entropy (so optim.label_smoothing applies).
    uses_classification_loss: bool = False
    # Validation images the end-of-epoch check needs (0: it needs none).
    held_out_images: int = 0
    # Whether the step trains the classifier (False: the loop records no train_acc / val_acc).
    trains_classifier: bool = True

    def prepare(self, ctx: PrepareContext) -> None:
        """Called once per session before the optimizer is built: a strategy may add modules to
        ``ctx.net`` (trained, checkpointed) or per-image extras to the training split. Default: none."""
        return None

    def end_of_epoch(self, model: nn.Module, held_out: tuple[torch.Tensor, torch.Tensor] | None,
                     autocast: Callable[[], ContextManager]) -> EpochCheck | None:
        """Optional check after every epoch on ``model`` (the backbone) and held-out images
        (uint8 ``[N, 3, H, W]`` and labels ``[N]`` on the device). Default: none."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """State the check carries across epochs (saved in the checkpoint)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None, extras: dict[str, torch.Tensor] | None = None) -> StepOutput:
        raise NotImplementedError

    @staticmethod
    def unwrap(net: nn.Module) -> nn.Module:
        return getattr(net, "module", net)


@STRATEGIES.register("standard")
class Standard(Strategy):
    """Plain training on the batch: CE + the pretext-task losses."""

    uses_classification_loss = True

    def __call__(self, net, x, y, generator, extras=None):
        logits, main, aux = net(x, y, generator)
        return StepOutput(logits, main, aux)


def build_strategy(name: str, **options: Any) -> Strategy:
    """A registered strategy (``STRATEGIES.build``)."""
    return STRATEGIES.build(name, **options)


def no_classifier_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The main loss of strategies that train no classifier (``ss_only``, ``one_class_oe``).

    Zero, but still connected to the classifier's parameters: DDP expects every parameter to take
    part in the graph, and the logged ``main_loss`` stays a tensor like in every run."""
    return logits.sum() * 0.0
