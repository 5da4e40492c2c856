"""Time of one AdvCL training step: views encoded once per step (ours) against a naive step that
re-encodes every view at every attack step (as the AdvCL reference code), in the same run.

Both modes are the package's ``contrastive`` strategy (mode ``advcl``: two SimCLR views, the
high-frequency view, the contrastive PGD and the pseudo-label PGD, dual BatchNorm) with
``reuse_views=True`` / ``False``, from identical initial weights, data, pseudo-labels and
generators; one step = strategy call + backward + SGD step. Modes take turns step by step so that
machine load drifts affect them alike. Reported: ms per full step, ms of the contrastive attack
alone, the speed-ups, and the largest difference of the training losses (must be <= 1e-5).

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


class Setup:
    """Network with the AdvCL heads, strategy and optimizer of one mode, from a shared state."""

    def __init__(self, mode: str, net: Network, args: argparse.Namespace) -> None:
        self.net = copy.deepcopy(net)
        self.strategy = ContrastivePretraining(mode="advcl", steps=args.attack_steps, dual_bn=True,
                                               pseudo_label_run="(benchmark: random pseudo-labels)",
                                               hfc_clip=False, base_temperature=0.07,
                                               reuse_views=(mode == "ours"))
        self.strategy.ks = KS
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)

    def step(self, x: torch.Tensor, labels: torch.Tensor, seed: int) -> float:
        out = self.strategy(self.net, x, labels.new_zeros(len(x)), torch.Generator().manual_seed(seed),
                            {PSEUDO_LABELS: labels})
        self.opt.zero_grad(set_to_none=True)
        out.main_loss.backward()
        self.opt.step()
        return float(out.main_loss.detach())

    def attack_only(self, x: torch.Tensor, seed: int) -> None:
        """The contrastive attack of a step (views, cached or not, plus PGD), no update."""
        gen = torch.Generator().manual_seed(seed)
        s, model, head = self.strategy, self.net.model, self.net.contrastive.projection
        clean = [s._hfc(x)] + [x.flip(3), x.flip(2)]  # fixed stand-ins for the two SimCLR views
        s._contrastive_attack(model, head, x, clean, gen)


def build_network(args: argparse.Namespace) -> Network:
    torch.manual_seed(args.seed)
    kwargs = {"width": 8} if args.model == "tiny" else {}
    net = Network(create_model(args.model, 10, **kwargs), {})
    ContrastivePretraining(mode="advcl", dual_bn=True, pseudo_label_run="-").attach(net, KS, torch.device("cpu"))
    net.train()
    return net


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = fn()
    return 1000 * (time.perf_counter() - t0), value


def run(args: argparse.Namespace) -> dict:
    gen = torch.Generator().manual_seed(args.seed)
    n = args.steps + args.warmup_steps
    xs = smooth_images(n * args.batch_size, gen).split(args.batch_size)
    labels = torch.stack([torch.randint(0, k, (n * args.batch_size,), generator=gen) for k in KS], 1)
    labels = labels.split(args.batch_size)
    net = build_network(args)
    setups = {m: Setup(m, net, args) for m in MODES}
    step_ms: dict[str, list[float]] = {m: [] for m in MODES}
    attack_ms: dict[str, list[float]] = {m: [] for m in MODES}
    losses: dict[str, list[float]] = {m: [] for m in MODES}
    for i in range(n):
        for m, s in setups.items():
            ms, loss = _timed(lambda: s.step(xs[i], labels[i], args.seed + i))
            losses[m].append(loss)
            ms_attack, _ = _timed(lambda: s.attack_only(xs[i], args.seed + i))
            if i >= args.warmup_steps:
                step_ms[m].append(ms)
                attack_ms[m].append(ms_attack)
    return report(args, step_ms, attack_ms, losses)


def report(args, step_ms, attack_ms, losses) -> dict:
    mean = {m: statistics.mean(v) for m, v in step_ms.items()}
    attack = {m: statistics.mean(v) for m, v in attack_ms.items()}
    diff = max(abs(a - b) for a, b in zip(losses["ours"], losses["naive"]))
    return {
        "benchmark": "contrastive_step", "model": args.model, "batch_size": args.batch_size,
        "attack_steps": args.attack_steps, "steps": args.steps, "warmup_steps": args.warmup_steps,
        "threads": torch.get_num_threads(),
        "note": "run with 1 thread on a 2-core machine shared with other jobs; ratios are what counts",
        "torch": torch.__version__, "machine": platform.machine(),
        "ms_per_step_mean": mean, "ms_per_step_median": {m: statistics.median(v) for m, v in step_ms.items()},
        "speedup_step": mean["naive"] / mean["ours"],
        "ms_contrastive_attack_mean": attack, "speedup_contrastive_attack": attack["naive"] / attack["ours"],
        "losses": losses, "max_abs_loss_diff": diff, "loss_identical_1e-5": diff <= 1e-5,
        "target_step_speedup_1.5x_met": mean["naive"] / mean["ours"] >= 1.5,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="resnet18")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--attack-steps", type=int, default=5)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "contrastive_step.json"))
    args = p.parse_args()
    torch.set_num_threads(1)
    result = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "losses"}, indent=2))


if __name__ == "__main__":
    main()
