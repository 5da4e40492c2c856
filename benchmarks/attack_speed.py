"""Cost of adversarial evaluation and adversarial training relative to their clean baselines.

WRN-16-4 (``create_model("wrn", 10, depth=16, widen=4)``) on random 32x32 images, in one run on
identical data and weights:

- ``eval_clean``: images/s of a plain eval-mode forward pass (baseline of the evaluation);
- ``eval_pgd``: images/s of PGD-20 evaluation (ℓ∞, ε 8/255, step 2/255, then the prediction);
- ``train_plain``: ms per training step through the ``standard`` strategy (the training loop's
  step: strategy, weighted loss, backward, SGD update; baseline of training);
- ``train_pgd``: ms per step through the ``pgd_at`` strategy with PGD-10 (the attack on the
  unwrapped backbone, then the training forward, backward, update), as in Madry et al. /
  Hendrycks et al. 2019 (step 2/255);
- ``train_trades``: the same through the ``trades`` strategy (β = 6).

``--tasks rotation`` adds the rotation head (loss weight 0.5) to every training step, and
``--attack-ss-weight 1.0`` puts its loss into the attacks too (Hendrycks et al. Sec. 3.1).
``--precision bf16`` runs the steps under autocast like the loop; ``--attack-precision fp32``
then keeps the attack in fp32 (compare the two to pick the faster one on a GPU).

What to expect: a PGD step is a forward plus a backward to the input (no weight gradients), about
2-3 forward passes, so PGD-20 evaluation costs roughly 40-60 no-grad forward passes per image, and
a PGD-10 training step roughly 7-11 plain training steps (a plain step is itself ~3 forwards).
TRADES adds one clean forward per step. Usage: ``python benchmarks/attack_speed.py`` (defaults:
batch 128, 5 timed iterations) writes ``benchmarks/results/attack_speed.json``. Small check:
``python benchmarks/attack_speed.py --batch-size 4 --iters 1 --warmup 0 --depth 10 --widen 1``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from ssrobust.attacks import PGD
from ssrobust.models import create_model
from ssrobust.tasks.base import build_task
from ssrobust.runs.network import Network
from ssrobust.runs.precision import autocast_context
from ssrobust.train.strategies import build_strategy


def timed(fn: Callable[[], object], iters: int, warmup: int) -> list[float]:
    """Wall-clock seconds of ``iters`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--eval-steps", type=int, default=20)
    p.add_argument("--eval-step-size", type=float, default=2 / 255)
    p.add_argument("--train-steps", type=int, default=10)
    p.add_argument("--train-step-size", type=float, default=2 / 255)
    p.add_argument("--eps", type=float, default=8 / 255)
    p.add_argument("--bn-mode", choices=("eval", "train"), default="eval")
    p.add_argument("--tasks", nargs="*", default=[], help="pretext tasks in the training steps")
    p.add_argument("--attack-ss-weight", type=float, default=0.0)
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--attack-precision", choices=("run", "fp32"), default="run")
    p.add_argument("--depth", type=int, default=16)
    p.add_argument("--widen", type=int, default=4)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/attack_speed.json"))
    return p.parse_args(argv)


def measure(args: argparse.Namespace) -> dict[str, list[float]]:
    """Seconds per call of the workloads on one model, one batch and one optimizer."""
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = create_model("wrn", 10, depth=args.depth, widen=args.widen)
    net = Network(model, {t: build_task(t, model.num_features) for t in args.tasks})
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=g)
    y = torch.randint(0, 10, (args.batch_size,), generator=g)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    eval_attack = PGD(eps=args.eps, step_size=args.eval_step_size, steps=args.eval_steps)
    attack = dict(eps=args.eps, step_size=args.train_step_size, steps=args.train_steps, bn_mode=args.bn_mode,
                  attack_ss_weight=args.attack_ss_weight, attack_precision=args.attack_precision)
    strategies = {"train_plain": build_strategy("standard"), "train_pgd": build_strategy("pgd_at", **attack),
                  "train_trades": build_strategy("trades", beta=6.0, **attack)}
    device = torch.device("cpu")

    def eval_clean() -> None:
        model.eval()
        with torch.no_grad():
            model(x).argmax(1)

    def eval_pgd() -> None:
        model.eval()
        x_adv = eval_attack(model, x, y, torch.Generator().manual_seed(1))
        with torch.no_grad():
            model(x_adv).argmax(1)

    def train_step(strategy) -> None:
        """What the training loop does per batch (fixed weighting 0.5 per task)."""
        net.train()
        with autocast_context(device, args.precision):
            out = strategy(net, x, y, torch.Generator().manual_seed(2))
        loss = out.main_loss + sum(0.5 * v for v in out.aux_losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = {"eval_clean": timed(eval_clean, args.iters, args.warmup),
             "eval_pgd": timed(eval_pgd, args.iters, args.warmup)}
    for name, strategy in strategies.items():
        times[name] = timed(lambda: train_step(strategy), args.iters, args.warmup)
    return times


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    times = measure(args)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "benchmark": "attack_speed",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                        "python": platform.python_version(), "machine": platform.machine()},
        "eval_clean_images_per_s": args.batch_size / med["eval_clean"],
        "eval_pgd_images_per_s": args.batch_size / med["eval_pgd"],
        "eval_pgd_slowdown": med["eval_pgd"] / med["eval_clean"],
        "train_plain_ms_per_step": 1000 * med["train_plain"],
        "train_pgd_ms_per_step": 1000 * med["train_pgd"],
        "train_pgd_slowdown": med["train_pgd"] / med["train_plain"],
        "train_trades_ms_per_step": 1000 * med["train_trades"],
        "train_trades_slowdown": med["train_trades"] / med["train_plain"],
        "raw_seconds": times,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("raw_seconds", "settings")},
                     indent=2))
    return result


if __name__ == "__main__":
    main()
