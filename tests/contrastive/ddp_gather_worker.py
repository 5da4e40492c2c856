"""One rank of the 2-process gloo test in test_distributed.py (run as a script, not collected).

Usage: python ddp_gather_worker.py RANK WORLD INIT_FILE OUT_DIR. Writes OUT_DIR/rank<RANK>.npz.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ssrobust.contrastive import gather_with_grad, nt_xent, sup_con

B, V, D_IN, D = 8, 3, 6, 4


def problem() -> tuple[nn.Linear, torch.Tensor, torch.Tensor]:
    """The same encoder, inputs [B, V, D_IN] and labels [B] on every process (and in the test)."""
    torch.manual_seed(0)
    encoder = nn.Linear(D_IN, D).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, V, D_IN, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 3, 2])
    return encoder, x, labels


def main(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    encoder, x, labels = problem()
    local = slice(rank * B // world, (rank + 1) * B // world)
    ddp = DistributedDataParallel(encoder)
    out: dict[str, np.ndarray] = {}
    for name, loss_fn in (("nt_xent", lambda z: nt_xent(z, 0.5, gather_distributed=True)),
                          ("sup_con", lambda z: sup_con(z, labels[local], 0.5, gather_distributed=True))):
        ddp.zero_grad()
        z = ddp(x[local].reshape(-1, D_IN)).reshape(-1, V, D)
        z.retain_grad()
        loss = loss_fn(z)
        loss.backward()  # DDP averages the parameter gradients over the ranks
        out[f"{name}_loss"] = loss.detach().numpy()
        out[f"{name}_z_grad"] = z.grad.numpy()
        out[f"{name}_weight_grad"] = encoder.weight.grad.numpy()
        out[f"{name}_bias_grad"] = encoder.bias.grad.numpy()
    out["gathered"] = gather_with_grad(x[local]).detach().numpy()
    np.savez(f"{out_dir}/rank{rank}.npz", **out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
    # gloo's threads can abort the interpreter's teardown ("terminate called without an active
    # exception", exit -6) after everything is saved: leave without that teardown
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(0)
