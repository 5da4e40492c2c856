"""Contrastive pretraining as a strategy of the one training loop (SimCLR, ACL, AdvCL).

Strategy ``contrastive`` with ``mode``:

* ``simclr``: NT-Xent over two SimCLR views of the batch.
* ``acl``: the batch (the loader's crop + flip, the "original" view) is attacked with ℓ∞ PGD
  (ε 8/255, step 2/255, 5 steps) maximizing its contrastive loss against the two SimCLR views;
  the loss is NT-Xent over ``[x_adv, view1, view2]``.
* ``advcl`` (Fan et al. 2021): adds the high-frequency view of the original image to the views,
  pseudo-label heads (one linear head per K-means K, CE weight ``pseudo_label_weight``) and a second
  attack maximizing the pseudo-label CE; optional per-branch BatchNorm (``dual_bn``: branches
  ``normal`` / ``pgd`` / ``pgd_ce``).

The views that are not attacked are encoded once per step and reused at every attack step
(``reuse_views=False`` re-encodes them at every step, in the autograd graph, as the AdvCL code
does; same loss, used by ``benchmarks/contrastive_step.py``). When the attack runs in the mode of
the training forward (``bn_mode="train"`` in a training network, as the AdvCL code), that one
encoding is the training forward of the clean views itself: the attack contrasts against its
detached copy. Otherwise (default ``bn_mode="eval"``) they are encoded once more without gradient.

The heads live in the :class:`~ssrobust.runs.network.Network` as the submodule ``contrastive``
(added by :meth:`ContrastivePretraining.prepare`), so the optimizer trains them and
``checkpoint.pt`` / ``model.pt`` store them; ``init_from`` of a finetuning run reads only the
backbone. Labels are not used; the classifier head gets no gradient (``trains_classifier`` is
False: the loop records no ``train_acc`` / ``val_acc``).

Under ``torchrun`` (DDP) the forwards still use the unwrapped network (many forwards per step,
BatchNorm branches, attacks), so DDP's reducer is never armed; instead the strategy itself
averages the parameter gradients over the ranks at the end of the step's backward
(:class:`~ssrobust.contrastive.distributed.GradientAverager`) and copies rank 0's buffers to every
rank before each step, as DDP does. The NT-Xent negatives (in the loss and in the attack) are
gathered from all ranks with gradients, so the step equals the single-process step on the
concatenated batch, except for BatchNorm batch statistics, which stay per rank as in plain DDP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .. import distributed as dist
from ..attacks import PGD, attack_mode
from ..attacks.objectives import Objective
from ..contrastive import (ADVCL_KS, ContrastiveObjective, NTXentLoss, ProjectionHead,
                           PseudoLabelHeads, PseudoLabelObjective, SimCLRViewConfig, attack_with,
                           convert_batchnorm, high_frequency_component, simclr_view, use_branch)
from ..contrastive.distributed import GradientAverager, broadcast_state
from ..errors import ConfigError
from ..typedconfig import check_number
from .pseudo_label_source import PSEUDO_LABELS, shared_pseudo_labels
from .strategies import STRATEGIES, PrepareContext, StepOutput, Strategy

MODES = ("simclr", "acl", "advcl")
BRANCHES = ("normal", "pgd", "pgd_ce")  # AdvCL's BatchNorm branches: clean views, two attacks
HEADS = "contrastive"  # the Network submodule holding the heads


Views = list[tuple[torch.Tensor, "str | None"]]  # (images [B, 3, H, W], BatchNorm branch)


@dataclass(frozen=True, eq=False)
class RecomputedContrastiveObjective(Objective):
    """:class:`~ssrobust.contrastive.ContrastiveObjective` that re-encodes the other views
    ``[V-1] x [B, 3, H, W]`` at every attack step, inside the autograd graph (the AdvCL code's
    way; the naive baseline of the benchmark). ``encode(views) -> [B, V-1, P]`` is the strategy's
    own encoder, so the projections equal the ones encoded once."""

    head: nn.Module
    views: tuple[torch.Tensor, ...]
    criterion: nn.Module
    encode: Callable[[Views], torch.Tensor]
    branch: str | None = None
    other_branch: str | None = None

    def modules(self) -> list[nn.Module]:
        return [self.head]

    def bind(self, model, x_clean, y):
        def loss(x_adv: torch.Tensor) -> torch.Tensor:
            others = self.encode([(v, self.other_branch) for v in self.views])
            with use_branch([model, self.head], self.branch):
                attacked = self.head(model.forward_features(x_adv)).float()
            z = torch.cat([attacked[:, None], others], dim=1)
            return self.criterion(z, None, reduction="none").mean(dim=1)

        return loss


@STRATEGIES.register("contrastive")
class ContrastivePretraining(Strategy):
    """Self-supervised contrastive pretraining (no labels); see the module docstring.

    Args:
        mode: ``simclr`` | ``acl`` | ``advcl``.
        eps, step_size, steps, bn_mode: the ℓ∞ PGD of ``acl`` / ``advcl`` ([0, 1] pixel scale);
            ``bn_mode`` is the model's train/eval mode during the attack.
        temperature, base_temperature: of NT-Xent (``base_temperature`` None: scale 1).
        projection_dim: output width of the projection head (hidden width = backbone features).
        hfc_radius, hfc_clip: the high-frequency view (``advcl``): radius of the removed disk;
            ``hfc_clip=False`` keeps the raw real part as the AdvCL code does.
        pseudo_label_run: run directory of a separately pretrained non-adversarial encoder
            (``advcl``), whose features of this run's training images are clustered.
        pseudo_label_ks, min_cluster_size: the Ks (capped by :func:`scale_ks` to the dataset).
        pseudo_label_weight: weight of the mean pseudo-label CE (AdvCL: 0.2).
        pseudo_label_cache: folder of the K-means cache (None: ``<run_dir>/pseudo_labels``).
        dual_bn: per-branch BatchNorm in backbone and projection head (``advcl``).
        reuse_views: encode the non-attacked views once per step (False: at every attack step).
    """

    trains_classifier = False

    def __init__(self, mode: str = "advcl", eps: float = 8 / 255, step_size: float = 2 / 255,
                 steps: int = 5, bn_mode: str = "eval", temperature: float = 0.5,
                 base_temperature: float | None = None, projection_dim: int = 128,
                 hfc_radius: float = 8.0, hfc_clip: bool = True, pseudo_label_run: str | None = None,
                 pseudo_label_ks: Sequence[int] = ADVCL_KS, min_cluster_size: int = 10,
                 pseudo_label_weight: float = 0.2, pseudo_label_cache: str | None = None,
                 dual_bn: bool = False, reuse_views: bool = True) -> None:
        if mode not in MODES:
            raise ConfigError(f"strategy.options.mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "advcl" and not pseudo_label_run:
            raise ConfigError("strategy.options.pseudo_label_run: mode 'advcl' needs the run directory "
                              "of a pretrained non-adversarial encoder (e.g. a 'simclr' run)")
        if dual_bn and mode != "advcl":
            raise ConfigError(f"strategy.options.dual_bn needs mode 'advcl', got mode {mode!r}")
        check_number("strategy.options.pseudo_label_weight", pseudo_label_weight, low=0.0)
        check_number("strategy.options.projection_dim", projection_dim, low=1)
        self.mode, self.dual_bn, self.reuse_views = mode, bool(dual_bn), bool(reuse_views)
        # Negatives from every rank (identity in one process), in the loss and in the attack.
        self.criterion = NTXentLoss(temperature, base_temperature, gather_distributed=True)
        self.attack = PGD(eps=eps, step_size=step_size, steps=int(steps), norm="linf", bn_mode=bn_mode)
        self.view_cfg = SimCLRViewConfig()
        self.projection_dim = int(projection_dim)
        self.hfc_radius, self.hfc_clip = float(hfc_radius), bool(hfc_clip)
        self.pl_run, self.pl_cache = pseudo_label_run, pseudo_label_cache
        self.pl_ks, self.min_cluster_size = tuple(int(k) for k in pseudo_label_ks), int(min_cluster_size)
        self.pl_weight = float(pseudo_label_weight)
        self.ks: tuple[int, ...] = ()
        self._synced: tuple[nn.Module, GradientAverager] | None = None  # (network, its averager)

    # ------------------------------------------------------------------ set-up

    def prepare(self, ctx: PrepareContext) -> None:
        """Add the heads (and BatchNorm branches) to the network; for ``advcl`` compute (or read
        from the cache) the pseudo-labels and hand them to the loader as the extra
        ``pseudo_labels`` (int64 ``[N, len(ks)]``, column ``i`` for ``K = ks[i]``)."""
        if len(ctx.net.tasks):
            raise ConfigError(f"strategy 'contrastive' trains no pretext tasks; remove tasks "
                              f"{', '.join(ctx.net.tasks)}")
        ks: tuple[int, ...] = ()
        if self.mode == "advcl":
            labels = shared_pseudo_labels(self.pl_run, ctx, self.pl_ks, self.min_cluster_size, self.pl_cache)
            ks = tuple(sorted(labels))
            ctx.splits.train.extras[PSEUDO_LABELS] = torch.stack(
                [torch.as_tensor(labels[k]) for k in ks], dim=1).numpy()
            self.batch_extras = (PSEUDO_LABELS,)
        self.attach(ctx.net, ks, ctx.device)

    def attach(self, net: nn.Module, ks: Sequence[int], device: torch.device) -> None:
        """Add the projection head, the pseudo-label heads for ``ks`` (``advcl``) and the
        BatchNorm branches (``dual_bn``) to ``net`` as the submodule ``contrastive``."""
        branches = BRANCHES if self.dual_bn else None
        heads = nn.ModuleDict({"projection": ProjectionHead.for_backbone(net.model, self.projection_dim,
                                                                         branches)})
        if self.mode == "advcl":
            self.ks = tuple(int(k) for k in ks)
            heads["pseudo_labels"] = PseudoLabelHeads(net.model.num_features, self.ks)
        if self.dual_bn:
            convert_batchnorm(net.model, BRANCHES)
        net.add_module(HEADS, heads.to(device))
        net.model.to(device)

    # ------------------------------------------------------------------ one step

    def __call__(self, net, x, y, generator, extras=None):
        core = self.unwrap(net)
        self._sync_ranks(core)
        model, heads = core.model, getattr(core, HEADS)
        x1 = simclr_view(x, generator, self.view_cfg)
        x2 = simclr_view(x, generator, self.view_cfg)
        if self.mode == "simclr":
            z = self._project(model, heads.projection, [(x1, None), (x2, None)])
            return self._output(model, y, self.criterion(z), None)
        normal, adv = ("normal", "pgd") if self.dual_bn else (None, None)
        clean = [(v, normal) for v in [x1, x2] + ([self._hfc(x)] if self.mode == "advcl" else [])]
        z_clean = None
        if self.reuse_views and self._attack_mode_is_current([model, heads.projection]):
            # The attack would encode the clean views exactly as the training forward: do it once.
            z_clean = self._project(model, heads.projection, clean)
        x_cl = self._contrastive_attack(model, heads.projection, x, clean, generator, z_clean)
        if z_clean is None:
            z_clean = self._project(model, heads.projection, clean)
        z = torch.cat([self._project(model, heads.projection, [(x_cl, adv)]), z_clean], dim=1)
        pl = None
        if self.mode == "advcl":
            pl = self._pseudo_label_loss(model, heads.pseudo_labels, x, extras, generator)
        return self._output(model, y, self.criterion(z), pl)

    def _sync_ranks(self, core: nn.Module) -> None:
        """Under torchrun: on first use average this network's gradients over the ranks (see the
        module docstring) and copy rank 0's weights; every step copy rank 0's buffers (BatchNorm
        running statistics), as DDP does before each forward, and arm the averaging."""
        if dist.world_size() == 1:
            return
        if self._synced is None or self._synced[0] is not core:
            if self._synced is not None:
                self._synced[1].remove()
            self._synced = (core, GradientAverager(core))
            broadcast_state(core, parameters=True)
        else:
            broadcast_state(core, parameters=False)
        self._synced[1].arm()

    def _attack_mode_is_current(self, modules: list[nn.Module]) -> bool:
        """Whether every submodule is already in the train/eval mode the attack uses."""
        training = self.attack.bn_mode == "train"
        return all(m.training == training for top in modules for m in top.modules())

    def _hfc(self, x: torch.Tensor) -> torch.Tensor:
        return high_frequency_component(x.float(), self.hfc_radius, clip=self.hfc_clip).to(x.dtype)

    def _contrastive_attack(self, model: nn.Module, head: nn.Module, x: torch.Tensor, clean: Views,
                            generator: torch.Generator | None,
                            z_clean: torch.Tensor | None = None) -> torch.Tensor:
        """PGD on ``x`` maximizing its NT-Xent against the ``clean`` views: their projections
        ``z_clean [B, V-1, P]`` (detached), else encoded once here without gradient in the
        attack's mode, or (``reuse_views=False``) re-encoded at every attack step."""
        branch = "pgd" if self.dual_bn else None
        if not self.reuse_views:
            objective: Objective = RecomputedContrastiveObjective(
                head, tuple(v for v, _ in clean), self.criterion,
                lambda views: self._project(model, head, views), branch, clean[0][1])
        else:
            if z_clean is None:
                with attack_mode([model, head], self.attack.bn_mode), torch.no_grad():
                    z_clean = self._project(model, head, clean)
            objective = ContrastiveObjective(head, z_clean.detach(), self.criterion, branch=branch)
        return attack_with(self.attack, objective, model, x, generator).detach()

    def _pseudo_label_loss(self, model: nn.Module, heads: PseudoLabelHeads, x: torch.Tensor,
                           extras: dict[str, torch.Tensor] | None, generator) -> torch.Tensor:
        """``pseudo_label_weight ×`` mean CE of the heads on the PGD example maximizing it."""
        ids = (extras or {}).get(PSEUDO_LABELS)
        if ids is None:
            raise ConfigError("strategy 'contrastive' (advcl): the batch carries no pseudo-labels")
        labels = {k: ids[:, i] for i, k in enumerate(self.ks)}
        branch = "pgd_ce" if self.dual_bn else None
        x_ce = attack_with(self.attack, PseudoLabelObjective(heads, labels, branch), model, x, generator)
        with use_branch([model], branch):
            feats = model.forward_features(x_ce.detach())
        return self.pl_weight * heads.loss(feats, labels)

    @staticmethod
    def _project(model: nn.Module, head: nn.Module, views: Views) -> torch.Tensor:
        """Projections ``[B, V, P]`` of ``views`` (image, BatchNorm branch), with gradients
        unless under ``no_grad``. Views of one branch go through the network in one concatenated
        forward (one set of batch statistics over the group; the AdvCL code forwards every view
        on its own). The step calls it for the attacked view and the clean views separately."""
        out: list[torch.Tensor | None] = [None] * len(views)
        for branch in dict.fromkeys(b for _, b in views):
            idx = [i for i, (_, b) in enumerate(views) if b == branch]
            with use_branch([model, head], branch):
                p = head(model.forward_features(torch.cat([views[i][0] for i in idx]))).float()
            for j, chunk in zip(idx, p.chunk(len(idx))):
                out[j] = chunk
        return torch.stack(out, dim=1)  # type: ignore[arg-type]

    @staticmethod
    def _output(model: nn.Module, y: torch.Tensor, contrastive: torch.Tensor,
                pseudo_label: torch.Tensor | None) -> StepOutput:
        """The step's output: main loss = contrastive (+ weighted pseudo-label CE); both terms
        are logged (detached) as ``aux_losses``, which the weighting does not add (no task has
        these names). Logits are zeros: the classifier is not trained, no accuracy is recorded."""
        logits = torch.zeros(len(y), model.num_classes, device=y.device)
        aux = {"contrastive": contrastive.detach()}
        main = contrastive
        if pseudo_label is not None:
            aux["pseudo_labels"] = pseudo_label.detach()
            main = contrastive + pseudo_label
        return StepOutput(logits, main, aux)

    def state_dict(self) -> dict[str, Any]:
        return {"ks": list(self.ks)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("ks") is not None and list(state["ks"]) != list(self.ks):
            raise ConfigError(f"checkpoint pseudo-label Ks {state['ks']} differ from this run's {list(self.ks)}")


__all__ = ["ContrastivePretraining", "RecomputedContrastiveObjective", "MODES", "BRANCHES", "HEADS"]
