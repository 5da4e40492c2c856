"""All-gather with gradients for contrastive negatives across ranks (the identity without a
process group), and the gradient averaging of the contrastive strategy under ``torchrun``.

With data parallelism each rank holds ``b`` of the global ``B = world * b`` images. Contrastive
losses need every other image of the *global* batch as a negative, so the embeddings are gathered
from all ranks; the gathered copies must stay differentiable so that the gradient of rank ``j``'s
loss with respect to rank ``r``'s embeddings reaches rank ``r``. :class:`_GatherWithGrad` does
this with one ``all_gather`` forward and one ``all_reduce`` backward (both supported by gloo and
nccl; ``torch.distributed.nn.functional.all_gather`` uses ``all_to_all`` on gloo, which gloo
builds do not all provide).

Gradient bookkeeping: rank ``r`` computes the loss of its own anchors against all gathered
embeddings, ``loss_r``. The backward sums ``∂loss_j/∂z_r`` over ranks ``j``, so the gradient that
reaches ``z_r`` is ``world × ∂L/∂z_r`` with ``L = mean_r loss_r`` (the single-process loss of the
concatenated batch). DistributedDataParallel then *averages* parameter gradients over ranks,
which divides by ``world`` again: the parameter gradients equal the single-process ones.

:class:`GradientAverager` does that averaging without DDP's forward: the contrastive strategy
runs many forwards per step on the unwrapped network (views, attacks, BatchNorm branches), so DDP's
reducer is never armed. Instead a post-accumulate hook on every trainable parameter queues one
callback at the end of the backward, which averages all gradients in one ``all_reduce`` per
dtype. Autograd has summed every forward's contribution into ``.grad`` by then; the attacks'
``autograd.grad`` calls (input gradients only) never accumulate into a parameter, so they never
trigger it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.autograd import Variable

from ..distributed import is_distributed, world_size


class _GatherWithGrad(torch.autograd.Function):
    """``[b, ...]`` on each rank -> ``[world * b, ...]`` (rank-major), differentiable."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        t = t.contiguous()
        parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, t)
        ctx.local = t.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        # Every rank's loss may depend on every rank's embeddings: sum the gradients of all ranks'
        # losses, then keep the rows that belong to this rank.
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.local
        return grad[start: start + ctx.local]


def gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """Concatenate ``t [b, ...]`` from every rank into ``[world * b, ...]`` (rank 0's rows first),
    keeping the gradient path to every rank's input. Returns ``t`` itself without a process group.

    Every rank must pass the same shape (``all_gather`` needs equal sizes): use equal per-rank
    batches (``drop_last``), as the package's loader does.
    """
    if not is_distributed() or world_size() == 1:
        return t
    return _GatherWithGrad.apply(t)


def gather_no_grad(t: torch.Tensor) -> torch.Tensor:
    """Like :func:`gather_with_grad` for tensors that need no gradient (labels)."""
    if not is_distributed() or world_size() == 1:
        return t
    parts = [torch.empty_like(t) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


def _flat_collective(tensors: Sequence[torch.Tensor], op: Callable[[torch.Tensor], object]) -> None:
    """Apply the collective ``op`` to ``tensors`` in place, one flat buffer per (dtype, device)."""
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        op(flat)
        for t, chunk in zip(group, flat.split([t.numel() for t in group])):
            t.copy_(chunk.view_as(t))


def broadcast_state(module: nn.Module, parameters: bool = True, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (e.g. BatchNorm running statistics) and, with ``parameters``,
    its parameters to every rank, as DDP does at construction and (buffers) before every forward.
    Nothing without a process group."""
    if not is_distributed() or world_size() == 1:
        return
    tensors = list(module.buffers()) + (list(module.parameters()) if parameters else [])
    with torch.no_grad():
        _flat_collective(tensors, lambda flat: dist.broadcast(flat, src))


class GradientAverager:
    """Averages the gradients of ``module``'s trainable parameters over the ranks at the end of
    every backward that follows :meth:`arm` (one armed step = one backward, like DDP).

    The set of parameters that received a gradient must be the same on every rank (the same code
    runs on every rank); a mismatch raises instead of mixing up gradients. Parameters frozen
    before construction are left alone; ``.grad`` of parameters outside the graph stays ``None``.
    """

    def __init__(self, module: nn.Module) -> None:
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.armed = self.queued = False
        self.handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in self.params]

    def arm(self) -> None:
        """Average the gradients of the next backward."""
        self.armed = True

    def remove(self) -> None:
        """Unregister the hooks (the parameters' gradients are no longer averaged)."""
        for h in self.handles:
            h.remove()

    def _on_grad(self, _param: torch.Tensor) -> None:
        if self.armed and not self.queued:
            self.queued = True
            Variable._execution_engine.queue_callback(self._average)  # runs once, after the backward

    def _average(self) -> None:
        self.armed = self.queued = False
        grads = [p.grad for p in self.params if p.grad is not None]
        world = world_size()
        count = torch.tensor([len(grads), -len(grads)], device=self.params[0].device if self.params else None)
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        if int(count[0]) != len(grads) or -int(count[1]) != len(grads):
            raise RuntimeError(f"gradient averaging: this rank has gradients for {len(grads)} parameters, "
                               f"others for {int(-count[1])} to {int(count[0])}; every rank must run the same step")
        with torch.no_grad():
            _flat_collective(grads, lambda flat: (dist.all_reduce(flat), flat.div_(world)))
