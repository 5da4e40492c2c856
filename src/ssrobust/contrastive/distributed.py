"""All-gather with gradients for contrastive negatives across ranks; the identity without a
process group.

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
"""

from __future__ import annotations

import torch
import torch.distributed as dist

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
