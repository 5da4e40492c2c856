"""``RunConfig.freeze``: which parameters a run does not train (linear finetuning).

``none`` trains everything. ``backbone`` trains only the classifier ``fc`` of the backbone (and
any pretext-task or strategy heads): every other backbone parameter gets ``requires_grad=False``
before the optimizer is built (so it is neither updated nor weight-decayed), and every backbone
submodule except ``fc`` is kept in eval mode during training (BatchNorm statistics stay those of
the pretrained encoder). This is SLF / ALF of AdvCL: a linear head on a frozen encoder.
"""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from ..runs.config import FREEZE_MODES
TRAINED = "fc"  # the backbone's classifier layer (every model in ssrobust names it so)


def _frozen_children(model: nn.Module) -> list[nn.Module]:
    if not isinstance(getattr(model, TRAINED, None), nn.Module):
        raise ConfigError(f"freeze=backbone: model {type(model).__name__} has no classifier layer "
                          f"{TRAINED!r} to train")
    return [m for name, m in model.named_children() if name != TRAINED]


def freeze_parameters(net: nn.Module, mode: str) -> None:
    """Switch off gradients of the frozen parameters of ``net`` (a Network) for ``mode``."""
    if mode not in FREEZE_MODES:
        raise ConfigError(f"freeze must be one of {', '.join(FREEZE_MODES)}, got {mode!r}")
    if mode == "none":
        return
    for child in _frozen_children(net.model):
        for p in child.parameters():
            p.requires_grad_(False)


def keep_frozen_in_eval(net: nn.Module, mode: str) -> None:
    """After ``net.train()``: put the frozen backbone modules back in eval mode."""
    if mode == "backbone":
        for child in _frozen_children(net.model):
            child.eval()
