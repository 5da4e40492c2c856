"""The ``contrastive`` strategy under DDP: 2 gloo processes take one AdvCL step on half a batch
each; loss, parameter gradients and updated weights equal one process on the whole batch.

Exact comparison needs the same computation in both settings, so the network is in eval mode
(BatchNorm uses its running statistics, which every rank shares; in train mode each rank would
normalize with the statistics of its own half, as in any DDP run without SyncBatchNorm), the
views are deterministic (full-image crop, flip p=1, no jitter) and PGD starts at the image (the
random start and the views otherwise come from each rank's own generator). The network is
float64, but the strategy computes projections and losses in float32, so values agree to float32
rounding of sums taken in another order: rtol 1e-5 (observed ~1e-7)."""

import dataclasses
import os
import socket

import numpy as np
import pytest
import torch
from torch import nn

from ssrobust.contrastive import SimCLRViewConfig
from ssrobust.models import create_model
from ssrobust.runs.network import Network
from ssrobust.train.contrastive import ContrastivePretraining
from ssrobust.train.pseudo_label_source import PSEUDO_LABELS

KS = (2, 5)
B = 8  # the whole batch; each of the 2 ranks gets B // 2
LR = 0.1
EXACT_VIEWS = SimCLRViewConfig(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=1.0, jitter_p=0.0, grayscale_p=0.0)


def make_setup(exact: bool) -> tuple[ContrastivePretraining, Network]:
    """AdvCL (2 attack steps, dual BN) on the tiny net; ``exact``: the comparable setting above."""
    torch.manual_seed(0)
    net = Network(create_model("tiny", 3, width=4), {})
    strategy = ContrastivePretraining(mode="advcl", steps=2, dual_bn=True, pseudo_label_run="(test)")
    strategy.attach(net, KS, torch.device("cpu"))
    if exact:
        strategy.view_cfg = EXACT_VIEWS
        strategy.attack = dataclasses.replace(strategy.attack, random_start=False)
        return strategy, net.double().eval()
    return strategy, net.train()


def batch(dtype: torch.dtype) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(B, 3, 16, 16, generator=g, dtype=dtype)
    labels = torch.stack([torch.randint(0, k, (B,), generator=g) for k in KS], dim=1)
    return x, {PSEUDO_LABELS: labels}


def train_step(strategy: ContrastivePretraining, net: nn.Module, x: torch.Tensor,
               extras: dict[str, torch.Tensor], seed: int) -> dict[str, np.ndarray]:
    """One step as the loop takes it (strategy, backward, SGD); the loss, gradients, new weights."""
    core = getattr(net, "module", net)
    opt = torch.optim.SGD(core.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)
    out = strategy(net, x, torch.zeros(len(x), dtype=torch.long), torch.Generator().manual_seed(seed), extras)
    opt.zero_grad(set_to_none=True)
    out.main_loss.backward()
    res = {"loss": out.main_loss.detach().numpy(), "contrastive": out.aux_losses["contrastive"].numpy(),
           "pseudo_labels": out.aux_losses["pseudo_labels"].numpy()}
    res.update({f"grad/{n}": p.grad.numpy().copy() for n, p in core.named_parameters() if p.grad is not None})
    opt.step()
    res.update({f"weight/{n}": p.detach().numpy().copy() for n, p in core.named_parameters()})
    return res


def _worker(rank: int, port: int, queue) -> None:
    import traceback

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    half = slice(rank * B // 2, (rank + 1) * B // 2)
    try:
        for exact in (True, False):
            strategy, net = make_setup(exact)
            x, extras = batch(torch.float64 if exact else torch.float32)
            ddp = nn.parallel.DistributedDataParallel(net)  # as the loop wraps it
            # Distinct per-rank generators, as the loop seeds them (seed, epoch, rank).
            queue.put((rank, exact, train_step(strategy, ddp, x[half], {k: v[half] for k, v in extras.items()},
                                               seed=rank)))
    except Exception:  # reported to the test instead of leaving it waiting
        queue.put((rank, "error", traceback.format_exc()))
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks() -> dict[tuple[int, bool], dict[str, np.ndarray]]:
    """``{(rank, exact): train_step results}`` of the 2 gloo processes (run once per module)."""
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = {}
    try:
        for _ in range(4):
            rank, exact, res = queue.get(timeout=600)  # generous: a loaded CI machine
            assert exact != "error", f"rank {rank}: {res[-2000:]}"
            got[rank, exact] = res
        for p in procs:
            p.join(timeout=60)
        assert all(p.exitcode == 0 for p in procs)
    finally:
        for p in procs:  # a rank left waiting in a collective
            if p.is_alive():
                p.terminate()
    return got


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_ranks_take_the_single_process_step_of_the_concatenated_batch(two_ranks):
    got = two_ranks
    strategy, net = make_setup(exact=True)
    x, extras = batch(torch.float64)
    ref = train_step(strategy, net, x, extras, seed=0)
    halves = [train_step(*make_setup(exact=True), x[h], {k: v[h] for k, v in extras.items()}, seed=0)
              for h in (slice(0, B // 2), slice(B // 2, B))]
    grads = [k for k in ref if k.startswith("grad/")]
    assert any(k.startswith("grad/model.") for k in grads) and "grad/model.fc.weight" not in grads
    # Not vacuous: alone, a half's gradients are not the whole batch's.
    assert all(max(np.abs(h[k] - ref[k]).max() for k in grads) > 1e-3 for h in halves)
    for rank in range(2):
        res = got[rank, True]
        assert sorted(k for k in res if k.startswith("grad/")) == sorted(grads)  # fc: no gradient
        for k in [k for k in ref if k.startswith(("grad/", "weight/"))]:
            np.testing.assert_allclose(res[k], ref[k], rtol=1e-5, atol=1e-7, err_msg=f"rank {rank} {k}")
    # Each rank's loss is the mean over its own anchors / images: their mean is the whole batch's.
    for name in ("loss", "contrastive", "pseudo_labels"):
        np.testing.assert_allclose((got[0, True][name] + got[1, True][name]) / 2, ref[name], rtol=1e-5)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_train_mode_ranks_with_their_own_views_stay_identical(two_ranks):
    """Train-mode BatchNorm, random views and attack starts per rank: the averaged gradients keep
    the replicas identical after the update."""
    a, b = two_ranks[0, False], two_ranks[1, False]
    assert a["loss"] != b["loss"]  # the ranks did see different views of different images
    _, net = make_setup(exact=False)
    before = {f"weight/{n}": p.detach().numpy() for n, p in net.named_parameters()}
    assert any(np.abs(a[k] - before[k]).max() > 0 for k in before)
    for k in [k for k in a if k.startswith(("grad/", "weight/"))]:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_torchrun_advcl_run_rank0_writes_the_pseudo_labels(tmp_path):
    """The whole loop under torchrun (2 gloo processes): AdvCL with dual BN trains; rank 0 alone
    computes and caches the pseudo-labels, the other rank receives them."""
    import json
    import shutil
    import subprocess
    import sys

    from test_contrastive_strategy import pretrain_config  # the toy data and tiny net of those tests

    cfg = pretrain_config(tmp_path, "advcl", dual_bn=True, bn_mode="train")
    cfg = dict(cfg, name="ddp_advcl", epochs=1, eval={"suites": []})
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "ssrobust.cli", "train",
                           *[f"{k}={json.dumps(v)}" for k, v in cfg.items()]],
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "ddp_advcl"
    assert json.loads((run / "meta.json").read_text())["world_size"] == 2
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    last = [r for r in records if r["kind"] == "epoch"][-1]
    assert last["step"] == 6 and last["aux_losses"]["pseudo_labels"] > 0  # 96 images, global batch 16
    assert len(list((run / "pseudo_labels").glob("*.npz"))) == 1 and not list(run.rglob("*.tmp*"))
    assert any(".bns.pgd_ce." in k for k in torch.load(run / "model.pt", weights_only=True)["network"])
