"""Averaged weights during training: an exponential moving average (EMA) or lookahead.

Every ``every`` optimizer steps from epoch ``start_epoch`` on, a shadow copy of the network's
floating-point state (parameters and BatchNorm running statistics) moves towards the live one,
``shadow <- rho * shadow + (1 - rho) * live`` with ``rho = decay**every * (step / total)**power``
(``power > 0`` ramps the averaging up over the run: move fast early, average strongly at the end).

* ``ema``: training continues on the live weights; the final model (``model.pt`` and the
  evaluation) gets the shadow weights.
* ``lookahead``: after each update the live weights are reset to the shadow (the slow weights of
  Lookahead, Zhang et al. 2019, as used by airbench), and once more at the end of every epoch.

The shadow is part of ``checkpoint.pt``, so a resumed run ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CheckpointError
from ..runs.config import AveragingConfig  # the config lives with RunConfig

class WeightAveraging:
    """The shadow weights of one run (``total_steps``: optimizer steps of the whole run)."""

    def __init__(self, cfg: AveragingConfig, total_steps: int) -> None:
        self.cfg, self.total_steps = cfg, max(1, total_steps)
        self.shadow: dict[str, torch.Tensor] = {}  # empty until the first update

    @property
    def enabled(self) -> bool:
        return self.cfg.kind != "none"

    def rho(self, step: int) -> float:
        """Weight of the shadow at the update after optimizer step ``step`` (1-based)."""
        return self.cfg.decay ** self.cfg.every * (step / self.total_steps) ** self.cfg.power

    @torch.no_grad()
    def after_step(self, net: nn.Module, step: int, epoch: int) -> None:
        """Call after optimizer step number ``step`` (1-based, counted over the run) of ``epoch``."""
        if not self.enabled or epoch < self.cfg.start_epoch or step % self.cfg.every:
            return
        live = net.state_dict()
        if not self.shadow:
            self.shadow = {k: v.detach().clone() for k, v in live.items() if v.is_floating_point()}
            return
        rho = self.rho(step)
        for k, s in self.shadow.items():
            s.lerp_(live[k], 1.0 - rho)
        if self.cfg.kind == "lookahead":
            self._copy_into(net)

    def end_epoch(self, net: nn.Module) -> None:
        """Lookahead: the epoch ends on the slow weights."""
        if self.cfg.kind == "lookahead":
            self._copy_into(net)

    def finalize(self, net: nn.Module) -> None:
        """Put the averaged weights into ``net`` for saving and evaluation."""
        if self.enabled:
            self._copy_into(net)

    @torch.no_grad()
    def _copy_into(self, net: nn.Module) -> None:
        live = net.state_dict()
        for k, s in self.shadow.items():
            live[k].copy_(s)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict | None, where: str = "checkpoint") -> None:
        if not isinstance(state, dict) or not isinstance(state.get("shadow"), dict):
            raise CheckpointError(f"{where} has no averaged weights (optim.averaging is "
                                  f"{self.cfg.kind}); it was written by a run without them")
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}
