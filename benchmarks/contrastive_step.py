"""Time of one AdvCL training step: views encoded once per step (ours) against a naive step that
re-encodes every view at every attack step inside the autograd graph (as the AdvCL reference code,
``pretraining_advCL.py``), in the same run.

Both modes are the package's ``contrastive`` strategy (mode ``advcl``: two SimCLR views, the
high-frequency view, the contrastive PGD and the pseudo-label PGD, dual BatchNorm) with
``reuse_views=True`` / ``False``, from identical initial weights, data, pseudo-labels and
generators; one step = strategy call + backward + SGD step. Modes take turns step by step so that
machine load drifts affect them alike. For each attack BatchNorm mode (``train``: the reference
code's, which runs its attack with ``net.train()``; ``eval``: the package's default) it reports
ms per full step and ms of the contrastive attack, both as CPU time of this process (what the
step costs; robust on a shared machine) and wall time, the speed-ups, and the largest difference
of the training losses (must be <= 1e-5).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/contrastive_step.py`` (ResNet-18, batch 32, 5 attack
steps; writes ``benchmarks/results/contrastive_step.json``). Smoke: ``--model tiny --steps 1``.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ssrobust.models import create_model
from ssrobust.runs.network import Network
from ssrobust.train.contrastive import ContrastivePretraining
from ssrobust.train.pseudo_label_source import PSEUDO_LABELS

KS = (2, 10, 50, 100, 500)
MODES = ("ours", "naive")


def smooth_images(n: int, generator: torch.Generator, size: int = 32) -> torch.Tensor:
    """Random images with spatial structure (upsampled low-resolution noise), ``[n, 3, size, size]``."""
    low = torch.rand(n, 3, size // 4, size // 4, generator=generator)
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


class Clock:
    """CPU time of this process and wall time, in ms, summed over the timed calls."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def timed(self, fn, *args, **kwargs):
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.cpu += 1000 * (time.process_time() - c0)
            self.wall += 1000 * (time.perf_counter() - w0)


class Setup:
    """Network with the AdvCL heads, strategy and optimizer of one mode, from a shared state."""

    def __init__(self, mode: str, net: Network, args: argparse.Namespace, bn_mode: str) -> None:
        self.net = copy.deepcopy(net)
        self.strategy = ContrastivePretraining(mode="advcl", steps=args.attack_steps, dual_bn=True,
                                               pseudo_label_run="(benchmark: random pseudo-labels)",
                                               hfc_clip=False, base_temperature=0.07, bn_mode=bn_mode,
                                               reuse_views=(mode == "ours"))
        self.strategy.ks = KS
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        attack = self.strategy._contrastive_attack
        self.attack_clock = Clock()  # the contrastive attack inside the step (views + PGD)
        self.strategy._contrastive_attack = lambda *a, **k: self.attack_clock.timed(attack, *a, **k)

    def step(self, x: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
        out = self.strategy(self.net, x, labels.new_zeros(len(x)), torch.Generator().manual_seed(seed),
                            {PSEUDO_LABELS: labels})
        self.opt.zero_grad(set_to_none=True)
        out.main_loss.backward()
        self.opt.step()
        return float(out.main_loss.detach())


def build_network(args: argparse.Namespace) -> Network:
    torch.manual_seed(args.seed)
    kwargs = {"width": 8} if args.model == "tiny" else {}
    net = Network(create_model(args.model, 10, **kwargs), {})
    ContrastivePretraining(mode="advcl", dual_bn=True, pseudo_label_run="-").attach(net, KS, torch.device("cpu"))
    net.train()
    return net


def run_bn_mode(args: argparse.Namespace, bn_mode: str) -> dict:
    """Both modes, step by step, from the same weights and data; times and losses."""
    gen = torch.Generator().manual_seed(args.seed)
    n = args.steps + args.warmup_steps
    xs = smooth_images(n * args.batch_size, gen).split(args.batch_size)
    labels = torch.stack([torch.randint(0, k, (n * args.batch_size,), generator=gen) for k in KS], 1)
    labels = labels.split(args.batch_size)
    net = build_network(args)
    setups = {m: Setup(m, net, args, bn_mode) for m in MODES}
    times: dict[str, dict[str, list[float]]] = {m: {k: [] for k in TIMES} for m in MODES}
    losses: dict[str, list[float]] = {m: [] for m in MODES}
    for i in range(n):
        for m, s in setups.items():
            clock, attack0 = Clock(), (s.attack_clock.cpu, s.attack_clock.wall)
            losses[m].append(clock.timed(s.step, xs[i], labels[i], args.seed + i))
            if i >= args.warmup_steps:
                for key, value in zip(TIMES, (clock.cpu, clock.wall, s.attack_clock.cpu - attack0[0],
                                              s.attack_clock.wall - attack0[1])):
                    times[m][key].append(value)
    return summarize(times, losses)


TIMES = ("cpu_ms_per_step", "wall_ms_per_step", "cpu_ms_contrastive_attack", "wall_ms_contrastive_attack")


def summarize(times: dict, losses: dict) -> dict:
    mean = {key: {m: statistics.mean(times[m][key]) for m in MODES} for key in TIMES}
    diff = max(abs(a - b) for a, b in zip(losses["ours"], losses["naive"]))
    return {
        **mean,
        "speedup_step_cpu": mean["cpu_ms_per_step"]["naive"] / mean["cpu_ms_per_step"]["ours"],
        "speedup_step_wall": mean["wall_ms_per_step"]["naive"] / mean["wall_ms_per_step"]["ours"],
        "speedup_contrastive_attack_cpu": (mean["cpu_ms_contrastive_attack"]["naive"]
                                           / mean["cpu_ms_contrastive_attack"]["ours"]),
        "losses": losses, "max_abs_loss_diff": diff, "loss_identical_1e-5": diff <= 1e-5,
    }


def run(args: argparse.Namespace) -> dict:
    result = {
        "benchmark": "contrastive_step", "model": args.model, "batch_size": args.batch_size,
        "image_size": 32, "attack_steps": args.attack_steps, "steps": args.steps,
        "warmup_steps": args.warmup_steps, "threads": torch.get_num_threads(),
        "note": "speed-ups from CPU time of the process (1 thread); wall time on a shared machine "
                "includes waiting for the CPU",
        "torch": torch.__version__, "machine": platform.machine(),
        "bn_modes": {mode: run_bn_mode(args, mode) for mode in args.bn_modes},
    }
    ok = [r["speedup_step_cpu"] >= 1.5 and r["loss_identical_1e-5"] for r in result["bn_modes"].values()]
    result["target_step_speedup_1.5x_met"] = {m: v for m, v in zip(args.bn_modes, ok)}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--attack-steps", type=int, default=5)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bn-modes", nargs="+", default=["train", "eval"], choices=["train", "eval"],
                   help="attack BatchNorm modes to time (train: the AdvCL code's)")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "contrastive_step.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({m: {k: v for k, v in r.items() if k != "losses"}
                      for m, r in result["bn_modes"].items()}, indent=2))


if __name__ == "__main__":
    main()
