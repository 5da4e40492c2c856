"""Adversarial-training strategies (pgd_at, trades): attack geometry, losses against hand-computed
values, SS in the attack, BatchNorm modes, precision, DDP exactness, end-to-end runs."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.attacks import ball_excess, ball_tolerance
from ssrobust.errors import ConfigError
from ssrobust.models import create_model
from ssrobust.tasks.base import build_task
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.runs.network import Network
from ssrobust.train.strategies import build_strategy

EPS = 8 / 255


def make_net(seed: int = 0, tasks: tuple[str, ...] = ("rotation",)) -> Network:
    """Tiny 3-class network with rotation head; BatchNorm statistics set from one random batch so
    eval-mode attacks see an input-sensitive model."""
    torch.manual_seed(seed)
    model = create_model("tiny", 3, width=4)
    net = Network(model, {t: build_task(t, model.num_features) for t in tasks})
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.momentum = 1.0
    with torch.no_grad():
        model(torch.rand(32, 3, 16, 16, generator=torch.Generator().manual_seed(seed)))
    for bn in bns:
        bn.momentum = 0.1
    return net.train()


def batch(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 16, 16, generator=g)
    x[:, 0, :2] = 0.0  # pixels on the box edges: the projection onto [0, 1] must hold there too
    x[:, 1, :2] = 1.0
    return x, torch.randint(0, 3, (n,), generator=g)


def gen(seed: int = 5) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- geometry, grads

@pytest.mark.parametrize("name, options", [
    ("pgd_at", {"norm": "linf", "eps": EPS}),
    ("pgd_at", {"norm": "l2", "eps": 0.5, "step_size": 0.125, "attack_ss_weight": 1.0}),
    ("trades", {"norm": "linf", "eps": EPS, "attack_ss_weight": 0.5}),
])
def test_examples_lie_in_the_ball_and_box_and_no_param_grad(name, options):
    net, (x, y) = make_net(), batch()
    out = build_strategy(name, steps=5, **options)(net, x, y, gen())
    x_adv = out.inputs
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    tol = ball_tolerance(options["eps"], options["norm"], x[0].numel())
    assert float(ball_excess(x_adv, x, options["eps"], options["norm"]).max()) <= tol
    assert float((x_adv - x).abs().max()) > 0.5 * (EPS if options["norm"] == "linf" else 0.01)
    # The attack asks autograd for the input gradient only: no parameter gradient exists yet.
    assert all(p.grad is None for p in net.parameters())
    assert out.main_loss.requires_grad and out.logits.shape == (8, 3)


def test_ss_in_the_attack_changes_the_examples():
    """Hendrycks et al. / Kucer et al.: with attack_ss_weight > 0 PGD also maximizes the rotation
    loss, so its examples differ from the CE-only ones and have a higher rotation loss."""
    x, y = batch()
    # A fresh copy per call: the step's training forward updates the BN statistics the next
    # (eval-mode) attack would use.
    ce_only = build_strategy("pgd_at", steps=10)(make_net(), x, y, gen()).inputs
    with_ss = build_strategy("pgd_at", steps=10, attack_ss_weight=1.0)(make_net(), x, y, gen()).inputs
    again = build_strategy("pgd_at", steps=10, attack_ss_weight=1.0)(make_net(), x, y, gen()).inputs
    assert torch.equal(with_ss, again)  # same weights and generator, same examples
    net = make_net()
    assert float((with_ss - ce_only).abs().max()) >= 2 / 255

    def rotation_loss(images):
        net.eval()
        with torch.no_grad():
            _, _, aux = net(images, y)
        net.train()
        return float(aux["rotation"])

    assert rotation_loss(with_ss) > rotation_loss(ce_only) + 0.05


@pytest.mark.parametrize("tasks_on", ["adv", "clean"])
def test_pgd_at_loss_and_which_images_the_tasks_see(tasks_on):
    """tasks_on="adv" is Hendrycks et al. eq. (3): CE and L_SS on PGD(x), one network forward;
    "clean": CE on PGD(x) (backbone forward) and L_SS on x. Recomputed here from out.inputs."""
    net, (x, y) = make_net(), batch()
    out = build_strategy("pgd_at", steps=3, tasks_on=tasks_on, clean_weight=0.25)(net, x, y, gen())
    x_adv = out.inputs
    task_images = x_adv if tasks_on == "adv" else x
    logits_t, _, aux = net(task_images, y)          # train mode: BN batch statistics, as in the step
    logits_other = net.model(x if tasks_on == "adv" else x_adv).float()
    logits_adv, logits_clean = (logits_t, logits_other) if tasks_on == "adv" else (logits_other, logits_t)
    expected = 0.75 * F.cross_entropy(logits_adv, y) + 0.25 * F.cross_entropy(logits_clean, y)
    torch.testing.assert_close(out.main_loss, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.aux_losses["rotation"], aux["rotation"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.logits, logits_adv, rtol=1e-5, atol=1e-5)


def test_trades_loss_is_ce_clean_plus_beta_kl_by_hand():
    net, (x, y) = make_net(tasks=()), batch()
    out = build_strategy("trades", beta=6.0, steps=5)(net, x, y, gen())
    zc, za = net.model(x).float(), net.model(out.inputs).float()
    pc, pa = zc.softmax(1), za.softmax(1)
    ce = -torch.log(pc[torch.arange(len(y)), y]).mean()
    kl = (pc * (pc.log() - pa.log())).sum(1).mean()
    manual = ce + 6.0 * kl
    torch.testing.assert_close(out.main_loss, manual, rtol=1e-5, atol=1e-6)
    assert float(kl.detach()) > 1e-4  # the attack moved the prediction
    # Gradients flow through both distributions (the clean prediction is not detached).
    params = [p for p in net.model.parameters()]
    g_out = torch.autograd.grad(out.main_loss, params, retain_graph=True)
    g_man = torch.autograd.grad(manual, params)
    for a, b in zip(g_out, g_man):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    beta0 = build_strategy("trades", beta=0.0, steps=5)(net, x, y, gen())
    ce_clean = F.cross_entropy(net.model(x).float(), y)
    torch.testing.assert_close(beta0.main_loss, ce_clean, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- modes, precision

@pytest.mark.parametrize("name, bn_mode", [("pgd_at", "eval"), ("trades", "train")])
def test_strategies_restore_every_module_mode(name, bn_mode):
    net, (x, y) = make_net(), batch()
    frozen = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)][0]
    frozen.eval()  # a deliberately mixed state must come back exactly
    before = [m.training for m in net.modules()]
    build_strategy(name, steps=2, bn_mode=bn_mode, attack_ss_weight=1.0)(net, x, y, gen())
    assert [m.training for m in net.modules()] == before


def _running_means(net: nn.Module) -> list[torch.Tensor]:
    return [m.running_mean.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]


def test_bn_mode_eval_attack_leaves_statistics_train_mode_updates_them():
    net_a, (x, y) = make_net(), batch()
    net_b = copy.deepcopy(net_a)
    out = build_strategy("pgd_at", steps=3, bn_mode="eval")(net_a, x, y, gen())
    net_b(out.inputs, y)  # the step's single training forward, without any attack forward
    assert all(torch.equal(a, b) for a, b in zip(_running_means(net_a), _running_means(net_b)))
    net_c = copy.deepcopy(net_b)
    out = build_strategy("pgd_at", steps=3, bn_mode="train")(net_b, x, y, gen())
    net_c(out.inputs, y)
    assert not all(torch.equal(a, b) for a, b in zip(_running_means(net_b), _running_means(net_c)))


def test_attack_precision_fp32_ignores_the_runs_autocast():
    x, y = batch()
    nets = [make_net() for _ in range(3)]  # built outside autocast: identical BN statistics
    plain = build_strategy("pgd_at", steps=3)(nets[0], x, y, gen()).inputs
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fp32 = build_strategy("pgd_at", steps=3, attack_precision="fp32")(nets[1], x, y, gen()).inputs
        run = build_strategy("pgd_at", steps=3, attack_precision="run")(nets[2], x, y, gen()).inputs
    assert torch.equal(plain, fp32)
    assert not torch.equal(plain, run)  # bf16 forwards do change some gradient signs


# --------------------------------------------------------------------------- options

def test_ss_in_loss_false_keeps_the_heads_out_of_the_update():
    net, (x, y) = make_net(), batch()
    out = build_strategy("pgd_at", steps=2, attack_ss_weight=1.0, ss_in_loss=False)(net, x, y, gen())
    assert float(out.aux_losses["rotation"]) > 0 and not out.aux_losses["rotation"].requires_grad
    (out.main_loss + 0.5 * out.aux_losses["rotation"]).backward()
    assert all(p.grad is None for p in net.tasks.parameters())
    assert all(p.grad is not None for p in net.model.parameters())


@pytest.mark.parametrize("name, options, message", [
    ("pgd_at", {"tasks_on": "both"}, "tasks_on"),
    ("pgd_at", {"norm": "l1"}, "norm"),
    ("pgd_at", {"bn_mode": "frozen"}, "bn_mode"),
    ("pgd_at", {"clean_weight": 1.5}, "clean_weight"),
    ("pgd_at", {"attack_ss_weight": -1.0}, "attack_ss_weight"),
    ("pgd_at", {"attack_precision": "fp16"}, "attack_precision"),
    ("trades", {"beta": -1.0}, "beta"),
    ("trades", {"eps": -0.1}, "eps"),
    ("pgd_at", {"eps": 8}, r"strategy.options.eps must be a finite number in \[0, 1\], got 8"),
    ("trades", {"eps": float("nan")}, "strategy.options.eps must be a finite number"),
    ("pgd_at", {"step_size": float("inf")}, "strategy.options.step_size must be a finite number >= 0"),
    ("pgd_at", {"steps": -1}, "strategy.options.steps must be a finite number >= 0"),
])
def test_bad_options_fail_at_construction(name, options, message):
    with pytest.raises(ConfigError, match=message):
        build_strategy(name, **options)


def test_ss_attack_without_tasks_is_an_error():
    net, (x, y) = make_net(tasks=()), batch()
    with pytest.raises(ConfigError, match="needs pretext tasks"):
        build_strategy("pgd_at", attack_ss_weight=1.0)(net, x, y, gen())


# --------------------------------------------------------------------------- runs through the loop

def shortcut_npz(tmp_path: Path, n_train: int = 192, n_test: int = 64, size: int = 16) -> Path:
    """3 classes with a robust and a non-robust feature (after Ilyas et al. 2019): channel ``y`` is
    30 grey levels brighter (robust at ε = 8/255, but weak: every image also gets a random
    per-channel offset of up to ±40), and a class texture (vertical / horizontal stripes /
    checkerboard) of amplitude 5 < 8 grey levels (reliable, but an ε = 8/255 attack can erase it).
    Standard training leans on the texture; adversarial training has to use the brightness."""
    path = tmp_path / "shortcut.npz"
    rng = np.random.default_rng(0)
    i, j = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    textures = np.stack([(-1) ** j, (-1) ** i, (-1) ** (i + j)])[..., None]

    def make(n):
        y = np.arange(n) % 3
        x = (128 + rng.integers(-20, 21, size=(n, size, size, 3))
             + rng.integers(-40, 41, size=(n, 1, 1, 3)) + 5 * textures[y])
        x[np.arange(n), :, :, y] += 30
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    (xtr, ytr), (xte, yte) = make(n_train), make(n_test)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte, class_names=np.array(["v", "h", "c"]))
    return path


SMALL_ADVERSARIAL = {"max_images": 64, "pgd20_steps": 10, "pgd20_step_size": 2 / 255, "pgd100_steps": 20,
                     "pgd100_step_size": 0.8 / 255, "sweep_linf": [0.0, 4 / 255, 8 / 255],
                     "sweep_l2": [0.0, 0.25],
                     "sweep_steps": 5, "autoattack": False, "spsa": False, "square": False}


def test_pgd_at_run_is_more_robust_than_a_standard_run(tmp_path):
    data = {"source": "npz", "root": str(shortcut_npz(tmp_path)), "val_size": 16, "batch_size": 32,
            "augment": False}  # a crop or flip would shift the textures' phase
    results = {}
    for strategy in ({"name": "standard"}, {"name": "pgd_at", "options": {"steps": 5}}):
        cfg = tiny_run_config(tmp_path, name=strategy["name"], epochs=8, data=data, strategy=strategy,
                              eval={"suites": ["clean", "adversarial"],
                                    "options": {"adversarial": SMALL_ADVERSARIAL}})
        res = json.loads((fit(make_config(cfg)) / "results.json").read_text())["suites"]
        checks = res["adversarial"]["sanity_checks"]
        assert all(c["passed"] for c in checks), checks
        results[strategy["name"]] = res["adversarial"]["attacks"]["pgd20"]["robust_accuracy"]
    # Measured: standard 0.08, pgd_at 0.59 (seed 0; over seeds 0-2 standard <= 0.16, pgd_at >= 0.39).
    assert results["pgd_at"] >= results["standard"] + 0.2, results


@pytest.mark.parametrize("strategy", [
    {"name": "pgd_at", "options": {"steps": 3, "attack_ss_weight": 1.0, "clean_weight": 0.5}},
    {"name": "trades", "options": {"steps": 3, "attack_ss_weight": 0.5, "tasks_on": "clean"}},
])
def test_identical_runs_give_identical_weights(tmp_path, strategy):
    base = tiny_run_config(tmp_path, epochs=2, tasks=["rotation:0.5"], strategy=strategy,
                           model={"name": "tiny", "kwargs": {"width": 4, "dropout": 0.2}})
    a, b = (torch.load(fit(make_config(dict(base, name=n))) / "model.pt", weights_only=True)["network"]
            for n in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = torch.load(fit(make_config(dict(base, name="c", seed=1))) / "model.pt", weights_only=True)["network"]
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_ss_pretraining_then_at_with_ss_only_in_the_attack(tmp_path):
    """Kucer et al.'s "pretrain, then SS in the attack only": rotation-only pretraining, then PGD-AT
    initialised from it whose attack uses the pretrained rotation head, which stays frozen."""
    pre = fit(make_config(tiny_run_config(tmp_path, name="pre", epochs=1, tasks=["rotation:1.0"],
                                          strategy={"name": "ss_only"})))
    at = fit(make_config(tiny_run_config(
        tmp_path, name="at", epochs=1, tasks=["rotation:0.5"], init_from=str(pre),
        strategy={"name": "pgd_at", "options": {"steps": 3, "attack_ss_weight": 1.0, "ss_in_loss": False}})))
    w_pre = torch.load(pre / "model.pt", weights_only=True)["network"]
    w_at = torch.load(at / "model.pt", weights_only=True)["network"]
    heads = [k for k in w_pre if k.startswith("tasks.rotation.")]
    assert heads and all(torch.equal(w_pre[k], w_at[k]) for k in heads)
    assert not torch.equal(w_pre["model.fc.weight"], w_at["model.fc.weight"])
    recs = [json.loads(r) for r in (at / "metrics.jsonl").read_text().splitlines()]
    assert all(r["aux_losses"]["rotation"] > 0 for r in recs if r["kind"] == "epoch")


# --------------------------------------------------------------------------- DDP

DDP_CASES = [("pgd_at", {"steps": 2, "tasks_on": "clean", "attack_ss_weight": 1.0}),
             ("trades", {"steps": 2, "tasks_on": "adv"})]


def _step_grads(net: nn.Module, name: str, options: dict, x, y, seed: int) -> dict[str, np.ndarray]:
    """Gradients of one training step (main + 0.5 * rotation) of strategy ``name`` on ``net``."""
    core = getattr(net, "module", net)
    out = build_strategy(name, **options)(net, x, y, gen(seed))
    (out.main_loss + 0.5 * out.aux_losses["rotation"]).backward()
    return {n: p.grad.numpy().copy() for n, p in core.named_parameters()}


def _ddp_worker(rank: int, port: int, queue) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    x, y = batch(8)
    for name, options in DDP_CASES:
        ddp = nn.parallel.DistributedDataParallel(make_net())
        queue.put((rank, name, _step_grads(ddp, name, options, x[4 * rank: 4 * rank + 4],
                                           y[4 * rank: 4 * rank + 4], seed=rank)))
    dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_ddp_step_gradients_equal_the_average_of_the_ranks():
    """The extra backbone forward outside DDP (TRADES' pair, tasks_on="clean") is synchronized
    exactly: each rank's gradients equal the mean of the single-process gradients of the halves."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = {}
    for _ in range(2 * len(DDP_CASES)):
        rank, name, grads = queue.get(timeout=120)
        got[rank, name] = grads
    for p in procs:
        p.join(timeout=60)
    assert all(p.exitcode == 0 for p in procs)
    x, y = batch(8)
    for name, options in DDP_CASES:
        halves = [_step_grads(make_net(), name, options, x[4 * r: 4 * r + 4], y[4 * r: 4 * r + 4], seed=r)
                  for r in range(2)]
        assert any(np.abs(halves[0][k] - halves[1][k]).max() > 1e-3 for k in halves[0])  # not vacuous
        for rank in range(2):
            for k, g in got[rank, name].items():
                np.testing.assert_allclose(g, (halves[0][k] + halves[1][k]) / 2, rtol=1e-5, atol=1e-6,
                                           err_msg=f"{name} rank {rank} {k}")
