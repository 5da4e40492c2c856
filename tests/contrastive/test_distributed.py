"""Negatives gathered across 2 gloo processes: loss and gradients equal the single-process ones."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ssrobust
from ssrobust.contrastive import gather_with_grad, nt_xent, sup_con
from ssrobust.distributed import rank, world_size

WORKER = Path(__file__).with_name("ddp_gather_worker.py")
sys.path.insert(0, str(WORKER.parent))
from ddp_gather_worker import B, D, D_IN, V, problem  # noqa: E402


def test_without_process_group_gather_is_the_identity():
    t = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(t) is t and rank() == 0 and world_size() == 1
    z = torch.randn(4, 2, 5)
    torch.testing.assert_close(nt_xent(z, 0.5, gather_distributed=True), nt_xent(z, 0.5))


def single_process() -> dict[str, torch.Tensor]:
    encoder, x, labels = problem()
    out = {}
    for name, loss_fn in (("nt_xent", lambda z: nt_xent(z, 0.5)),
                          ("sup_con", lambda z: sup_con(z, labels, 0.5))):
        encoder.zero_grad()
        z = encoder(x.reshape(-1, D_IN)).reshape(B, V, D)
        z.retain_grad()
        loss = loss_fn(z)
        loss.backward()
        out.update({f"{name}_loss": loss.detach(), f"{name}_z_grad": z.grad.clone(),
                    f"{name}_weight_grad": encoder.weight.grad.clone(),
                    f"{name}_bias_grad": encoder.bias.grad.clone()})
    return out


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_ranks_match_the_concatenated_batch(tmp_path):
    src = str(Path(ssrobust.__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    init = tmp_path / "rendezvous"
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(r), "2", str(init), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=180)
        assert p.returncode == 0, err[-3000:]
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz", allow_pickle=False)) for r in range(2)]
    ref = single_process()
    _, x, _ = problem()
    for r in ranks:  # all_gather puts rank 0's rows first
        np.testing.assert_array_equal(r["gathered"], x.numpy())
    half = B // 2
    for name in ("nt_xent", "sup_con"):
        # Each rank's loss covers its own anchors; their mean is the loss of the whole batch.
        mean_loss = (ranks[0][f"{name}_loss"] + ranks[1][f"{name}_loss"]) / 2
        np.testing.assert_allclose(mean_loss, ref[f"{name}_loss"].numpy(), rtol=1e-12)
        for r, part in enumerate(ranks):
            # DDP-averaged parameter gradients equal the single-process gradients on every rank,
            np.testing.assert_allclose(part[f"{name}_weight_grad"], ref[f"{name}_weight_grad"].numpy(),
                                       rtol=1e-10, atol=1e-14)
            np.testing.assert_allclose(part[f"{name}_bias_grad"], ref[f"{name}_bias_grad"].numpy(),
                                       rtol=1e-10, atol=1e-14)
            # because each rank's embeddings receive world x dL/dz of their rows (see distributed.py).
            rows = ref[f"{name}_z_grad"][r * half:(r + 1) * half].numpy()
            np.testing.assert_allclose(part[f"{name}_z_grad"], 2 * rows, rtol=1e-10, atol=1e-14)
