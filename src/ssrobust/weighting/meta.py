"""Meta-learned task weights (Kim, Lee & Suh 2019, Algorithm 1), without a second-order graph.

Per step, after a warm-up of ``warmup_epochs`` epochs with fixed weights:

1. virtual SGD step on psi = all model parameters (trunk and main head; task heads are not in psi)
   with the weighted loss and the *actual* learning rate alpha of this step:
   ``psi' = psi - alpha * (g_main + sum_i lambda_i g_i)``, with ``g_i = d L_aux,i / d psi``;
2. meta loss: main-task cross-entropy of ``psi'`` on a held-out minibatch (``meta_batch`` images);
3. ``lambda_i <- max(0, lambda_i - beta * dL_meta/dlambda_i)``;
4. the real step with the new lambda (the loop calls :meth:`combine` after :meth:`before_step`).

Because ``psi'`` is linear in lambda, ``dL_meta/dlambda_i = -alpha <grad_{psi'} L_meta, g_i>``
exactly, so only first-order gradients are needed: one ``autograd.grad`` per loss on the step's
graph, one forward/backward of the small meta batch at ``psi'``, and k inner products.
:func:`meta_gradient_second_order` is the direct transcription with ``create_graph=True`` through
the virtual step (what Kim's public code does), kept as a test oracle and benchmark baseline.

Each per-loss gradient costs a backward pass over the part of the graph its loss depends on. On one
concatenated forward, train-mode BatchNorm makes that the whole multi-view graph for every loss;
the loop therefore forwards each view group separately for this weighting (``task_forward:
auto``), so a task's gradient only traverses its own views and a meta step costs about a fixed one.

The per-loss gradients also give the real step for free: with ``reuse_grads=True`` (default)
:meth:`combine` returns a loss whose value is the weighted loss and whose gradient is exactly
``g_main + sum_i lambda_i^new g_i`` (task heads included), assembled from the stored gradients, so
the loop's ``backward()`` does not traverse the network a further time.

BatchNorm during the virtual evaluation: the model's current mode is used (train mode: batch
statistics of the meta batch), but running statistics are updated on throw-away copies, so the
evaluation leaves no trace in the model. Differences from Kim's code: alpha is the real lr (the
code used the schedule factor, ~1); psi excludes the task heads (as in the paper); the meta batch
comes from a held-out split of the training data (the code drew it from CIFAR-10-C); the virtual
step is plain SGD without momentum or weight decay (as in the paper).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..errors import ConfigError
from .base import WEIGHTINGS, StepContext, Weighting

Grads = list[torch.Tensor | None]


def trainable_parameters(model: nn.Module) -> tuple[list[str], list[nn.Parameter]]:
    """psi: names and tensors of the model's parameters that require grad."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [n for n, _ in named], [p for _, p in named]


def virtual_meta_loss(model: nn.Module, params: dict[str, torch.Tensor], x_val: torch.Tensor,
                      y_val: torch.Tensor, autocast: Any = None) -> torch.Tensor:
    """Main-task CE of ``model`` evaluated with the parameter tensors ``params`` on ``(x_val, y_val)``.

    Buffers are passed as copies: in train mode BatchNorm uses the meta batch's statistics but its
    running-stat update lands on the copies, not on the model.
    """
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    with autocast() if autocast is not None else nullcontext():
        logits = functional_call(model, (params, buffers), (x_val,))
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), y_val)


def _grads(loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> Grads:
    return list(torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True))


def _dot(a: Grads, b: Grads, device: torch.device) -> torch.Tensor:
    """Sum over parameters of <a_p, b_p> in float64; ``None`` entries are zero gradients."""
    terms = [(x.double() * y.double()).sum() for x, y in zip(a, b) if x is not None and y is not None]
    return torch.stack(terms).sum() if terms else torch.zeros((), dtype=torch.float64, device=device)


@dataclass
class MetaGradient:
    """Result of one meta-gradient evaluation.

    ``grad_lambda [k]``: dL_meta/dlambda_i. ``main_grads``/``aux_grads``: d L / d(psi + extra)
    per loss (``None`` where a parameter is unused), aligned with ``params``.
    """

    grad_lambda: torch.Tensor
    meta_loss: float
    params: list[torch.Tensor]
    main_grads: Grads
    aux_grads: list[Grads]


def meta_gradient(model: nn.Module, main_loss: torch.Tensor, aux_losses: Sequence[torch.Tensor],
                  lam: torch.Tensor, lr: float, x_val: torch.Tensor, y_val: torch.Tensor,
                  extra_params: Sequence[torch.Tensor] = (), autocast: Any = None) -> MetaGradient:
    """dL_meta/dlambda by the first-order identity ``-lr * <grad_{psi'} L_meta, g_i>``.

    Args:
        model: the backbone (psi = its trainable parameters).
        main_loss, aux_losses: scalar losses of this step, with their graphs (kept).
        lam: ``[k]`` current weights; lr: the step's learning rate alpha.
        x_val, y_val: the meta minibatch.
        extra_params: further parameters (task heads) whose per-loss gradients should be returned
            for the real step; they are not part of the virtual step.
    """
    names, psi = trainable_parameters(model)
    params = list(psi) + [p for p in extra_params if all(p is not q for q in psi)]
    main_grads = _grads(main_loss, params)
    aux_grads = [_grads(loss, params) for loss in aux_losses]
    with torch.no_grad():
        virtual = {}
        for j, (name, p) in enumerate(zip(names, psi)):
            step = torch.zeros_like(p) if main_grads[j] is None else main_grads[j].clone()
            for lam_i, g in zip(lam.tolist(), aux_grads):
                if g[j] is not None:
                    step.add_(g[j], alpha=lam_i)
            virtual[name] = (p - lr * step).requires_grad_(True)
    meta_loss = virtual_meta_loss(model, virtual, x_val, y_val, autocast)
    v = list(torch.autograd.grad(meta_loss, list(virtual.values()), allow_unused=True))
    grad_lambda = torch.stack([-lr * _dot(v, g[: len(psi)], lam.device) for g in aux_grads])
    return MetaGradient(grad_lambda.to(lam.dtype), meta_loss.item(), params, main_grads, aux_grads)


def meta_gradient_second_order(model: nn.Module, main_loss: torch.Tensor,
                               aux_losses: Sequence[torch.Tensor], lam: torch.Tensor, lr: float,
                               x_val: torch.Tensor, y_val: torch.Tensor,
                               autocast: Any = None) -> torch.Tensor:
    """dL_meta/dlambda ``[k]`` by differentiating through the virtual step (``create_graph=True``).

    The straightforward implementation (as in Kim's public code); the graphs of the losses are kept.
    """
    names, psi = trainable_parameters(model)
    lam_var = lam.detach().clone().requires_grad_(True)
    total = main_loss
    for i, loss in enumerate(aux_losses):
        total = total + lam_var[i] * loss
    grads = torch.autograd.grad(total, psi, create_graph=True, retain_graph=True, allow_unused=True)
    virtual = {n: p if g is None else p - lr * g for n, p, g in zip(names, psi, grads)}
    meta_loss = virtual_meta_loss(model, virtual, x_val, y_val, autocast)
    return torch.autograd.grad(meta_loss, lam_var)[0].detach()


@WEIGHTINGS.register("meta")
class MetaWeighting(Weighting):
    """Kim et al.'s meta weighting. ``lambda`` is a buffer (never touched by the optimizer).

    Options: ``warmup_epochs`` (tau, 5; epochs ``0..tau-1`` keep lambda fixed), ``meta_batch`` (25
    images), ``beta`` (meta learning rate, 0.01), ``meta_every`` (1: a meta update every step),
    ``reuse_grads`` (True: the real step reuses the per-loss gradients; False: normal backward),
    ``method`` (``"first_order"``: one gradient per loss, cheap with ``task_forward: separate``;
    ``"second_order"``: create_graph through the virtual step -- the same value, more memory; real
    step via the normal backward), ``val_corruptions`` (names among the 4 validation-only
    corruptions, e.g. ``["speckle_noise", "gaussian_blur", "spatter", "saturate"]``: each image of
    the held-out pool is corrupted once, at a random one of ``val_severities``, before training, so
    lambda is tuned for robustness without touching the 15 test corruptions).
    """

    def __init__(self, weights: dict[str, float], warmup_epochs: int = 5, meta_batch: int = 25,
                 beta: float = 0.01, meta_every: int = 1, reuse_grads: bool = True,
                 method: str = "first_order", val_corruptions: Sequence[str] = (),
                 val_severities: Sequence[int] = (1, 2, 3, 4, 5)) -> None:
        super().__init__(weights)
        from ..corruptions import SEVERITIES, VALIDATION

        leaking = [c for c in val_corruptions if c not in VALIDATION]
        if leaking:
            raise ConfigError(f"meta weighting: val_corruptions {leaking} are not validation-only "
                              f"corruptions; use some of {', '.join(VALIDATION)} (the other 15 are "
                              "the test benchmark, which lambda must not be tuned on)")
        if not val_severities or any(s not in SEVERITIES for s in val_severities):
            raise ConfigError(f"meta weighting: val_severities must be among 1..5, got {list(val_severities)}")
        self.val_corruptions, self.val_severities = list(val_corruptions), list(val_severities)
        if method not in ("first_order", "second_order"):
            raise ConfigError("meta weighting: method must be 'first_order' or 'second_order', "
                              f"got {method!r}")
        self.method = method
        if any(w < 0 for w in weights.values()):
            raise ConfigError(f"meta weighting: initial task weights must be >= 0, got {weights}")
        if warmup_epochs < 0 or meta_batch < 1 or beta < 0 or meta_every < 1:
            raise ConfigError("meta weighting: need warmup_epochs >= 0, meta_batch >= 1, beta >= 0, "
                              f"meta_every >= 1; got {warmup_epochs}, {meta_batch}, {beta}, {meta_every}")
        self.warmup_epochs, self.meta_batch, self.beta = warmup_epochs, meta_batch, beta
        self.meta_every, self.reuse_grads = meta_every, reuse_grads
        self.register_buffer("lam", torch.tensor([float(weights[n]) for n in self.task_names]))
        self.last_meta_loss: float | None = None
        self._pending: tuple[torch.Tensor, list[torch.Tensor], MetaGradient] | None = None

    def weights(self) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.task_names, self.lam.tolist())}

    def wants_separate_views(self) -> bool:
        return self.method == "first_order" and bool(self.task_names)

    def prepare_validation(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        if not self.val_corruptions:
            return images
        from ..corruptions import corrupt_mixture

        return corrupt_mixture(images, self.val_corruptions, self.val_severities, seed)

    def before_step(self, ctx: StepContext) -> None:
        self._pending = None
        if not self.task_names or ctx.epoch < self.warmup_epochs or ctx.step % self.meta_every:
            return
        if ctx.validation_batch is None:
            raise ConfigError("meta weighting needs a held-out validation pool "
                              "(StepContext.validation_batch); configure a validation split")
        x_val, y_val = ctx.validation_batch(self.meta_batch)
        aux = [ctx.aux_losses[n] for n in self.task_names]
        mg = None
        if self.method == "second_order":
            grad = meta_gradient_second_order(ctx.model, ctx.main_loss, aux, self.lam, ctx.lr,
                                              x_val, y_val, autocast=ctx.autocast)
        else:
            heads = [p for t in ctx.tasks.values() for p in t.parameters() if p.requires_grad]
            mg = meta_gradient(ctx.model, ctx.main_loss, aux, self.lam, ctx.lr, x_val, y_val,
                               extra_params=heads, autocast=ctx.autocast)
            grad = mg.grad_lambda
        grad = grad.to(self.lam.device, self.lam.dtype)
        if dist.is_available() and dist.is_initialized():
            # Each rank has its own batch and meta batch: average so lambda stays identical.
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
        with torch.no_grad():
            self.lam.copy_((self.lam - self.beta * grad).clamp_(min=0.0))
        if mg is not None:
            self.last_meta_loss = mg.meta_loss
            if self.reuse_grads:
                self._pending = (ctx.main_loss, aux, mg)

    def combine(self, main_loss: torch.Tensor, aux_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total = main_loss
        for i, n in enumerate(self.task_names):
            total = total + self.lam[i] * aux_losses[n]
        pending, self._pending = self._pending, None
        if pending is None or pending[0] is not main_loss or any(
                a is not aux_losses[n] for a, n in zip(pending[1], self.task_names)):
            return total
        return total.detach() + _linear_surrogate(pending[2], self.lam)


def _linear_surrogate(mg: MetaGradient, lam: torch.Tensor) -> torch.Tensor:
    """A zero-valued scalar whose gradient w.r.t. each parameter is ``g_main + sum_i lam_i g_i``."""
    weights = lam.tolist()
    terms = []
    for j, p in enumerate(mg.params):
        parts = [(1.0, mg.main_grads[j])] + [(w, g[j]) for w, g in zip(weights, mg.aux_grads)]
        parts = [(w, g) for w, g in parts if g is not None]
        if not parts:
            continue  # unused by every loss: leave .grad untouched, as a normal backward would
        grad = sum(w * g for w, g in parts)
        terms.append((p * grad).sum())
    if not terms:
        return torch.zeros((), device=lam.device)
    s = torch.stack(terms).sum()
    return s - s.detach()
