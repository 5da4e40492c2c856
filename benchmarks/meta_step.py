"""Time per training step of Kim et al.'s meta task weighting against fixed weights.

WRN-16-4 with the four tasks of Kim's meta run (rotation, deblurring, colorization,
reconstruction), one step = task views + trunk forward, main CE, weighting, backward, SGD step.
Modes, all in the same run on identical data and initial weights:

- ``fixed``: constant lambda, one concatenated forward of all views (the baseline; what
  ``task_forward: auto`` does for fixed weights);
- ``fixed_separate``: the same with one forward per view group (``task_forward: separate``);
- ``meta``: :class:`ssrobust.weighting.meta.MetaWeighting` as the training loop runs it
  (``task_forward: auto`` = one forward per view group, so each task's gradient only traverses
  its own views; first-order meta-gradient; real step assembled from the per-loss gradients);
- ``meta_joint``: the same on one concatenated forward (every per-loss gradient traverses all
  views: the previous default);
- ``meta_backward``: ``meta`` with ``reuse_grads=False`` (the loop's backward recomputes the real
  gradient) -- shows what the gradient reuse saves;
- ``second_order``: :func:`meta_gradient_second_order` (``create_graph`` through the virtual step,
  one concatenated forward, as Kim's code differentiates), then the real step;
- ``meta_every<n>`` (with ``--meta-every n``, n > 1): ``meta`` with a meta update every n-th step
  only (time it over a multiple of n steps).

Ratios use the mean time per step (periodic modes have uneven steps); medians are reported too.

Usage: ``python benchmarks/meta_step.py --batch-size 64 --steps 10`` (writes JSON with ms/step and
ratios to ``benchmarks/results/meta_step.json``). Small check: ``--batch-size 8 --steps 2``
(add ``--widen 1 --meta-every 1`` for a smoke run well under a minute).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ssrobust.models import create_model
from ssrobust.tasks import (  # noqa: F401 (registration)
    build_task,
    colorization,
    deblurring,
    forward_with_tasks,
    reconstruction,
)
from ssrobust.weighting.base import FixedWeighting, StepContext, Weighting
from ssrobust.weighting.meta import MetaWeighting, meta_gradient, meta_gradient_second_order

TASK_NAMES = ("rotation", "deblurring", "colorization", "reconstruction")
MODES = ("fixed", "fixed_separate", "meta", "meta_joint", "meta_backward", "second_order")
DEFAULT_MODES = ("fixed", "fixed_separate", "meta", "meta_joint", "second_order")
SEPARATE = ("fixed_separate", "meta", "meta_backward")  # modes with one forward per view group
EVERY_PREFIX = "meta_every"


def smooth_images(n: int, generator: torch.Generator, size: int = 32) -> torch.Tensor:
    """Random images with spatial structure (upsampled low-resolution noise), ``[n, 3, size, size]``."""
    low = torch.rand(n, 3, size // 4, size // 4, generator=generator)
    return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)


class Setup:
    """Model, tasks, weighting and optimizer for one mode, from a shared initial state."""

    def __init__(self, mode: str, model: torch.nn.Module, tasks: torch.nn.ModuleDict, args) -> None:
        self.mode = mode
        self.joint = mode not in SEPARATE and not mode.startswith(EVERY_PREFIX)
        self.model = copy.deepcopy(model)
        self.tasks = copy.deepcopy(tasks)
        weights = {n: 0.5 for n in TASK_NAMES}
        self.weighting: Weighting
        if mode.startswith("fixed"):
            self.weighting = FixedWeighting(weights)
        else:  # second_order uses MetaWeighting only as the lambda holder + combine
            every = int(mode[len(EVERY_PREFIX):]) if mode.startswith(EVERY_PREFIX) else 1
            self.weighting = MetaWeighting(weights, warmup_epochs=0, meta_batch=args.meta_batch,
                                           reuse_grads=(mode != "meta_backward"), meta_every=every)
        params = list(self.model.parameters()) + list(self.tasks.parameters())
        self.opt = torch.optim.SGD(params, lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, lr: float,
             val: Callable[[int], tuple[torch.Tensor, torch.Tensor]], step: int) -> None:
        tasks = dict(self.tasks.items())
        clean, aux = forward_with_tasks(self.model, x, tasks, gen, joint=self.joint)
        main = F.cross_entropy(self.model.forward_head(clean), y)
        w = self.weighting
        if self.mode == "second_order":
            assert isinstance(w, MetaWeighting)
            xv, yv = val(w.meta_batch)
            g = meta_gradient_second_order(self.model, main, [aux[n] for n in w.task_names],
                                           w.lam, lr, xv, yv)
            with torch.no_grad():
                w.lam.copy_((w.lam - w.beta * g).clamp_(min=0.0))
        else:
            w.before_step(StepContext(model=self.model, tasks=tasks, x=x, y=y, main_loss=main,
                                      aux_losses=aux, lr=lr, epoch=0, step=step,
                                      optimizer=self.opt, validation_batch=val))
        loss = w.combine(main, aux)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def agreement(model: torch.nn.Module, tasks: torch.nn.ModuleDict, x: torch.Tensor, y: torch.Tensor,
              pool: tuple[torch.Tensor, torch.Tensor], lr: float) -> dict:
    """First-order and second-order dL_meta/dlambda on the same step (float32, one forward per
    view group as in ``meta``), and their max relative difference."""
    model, tasks = copy.deepcopy(model), copy.deepcopy(tasks)
    clean, aux = forward_with_tasks(model, x, dict(tasks.items()), torch.Generator().manual_seed(0),
                                    joint=False)
    main = F.cross_entropy(model.forward_head(clean), y)
    losses = [aux[n] for n in TASK_NAMES]
    lam = torch.full((len(TASK_NAMES),), 0.5)
    xv, yv = pool[0][:25], pool[1][:25]
    ours = meta_gradient(model, main, losses, lam, lr, xv, yv).grad_lambda
    ref = meta_gradient_second_order(model, main, losses, lam, lr, xv, yv)
    rel = float(((ours - ref).abs() / ref.abs().clamp_min(1e-12)).max())
    return {"first_order": ours.tolist(), "second_order": ref.tolist(), "max_rel_diff": rel}


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    data_gen = torch.Generator().manual_seed(args.seed)
    n_batches = args.steps + args.warmup_steps
    xs = smooth_images(n_batches * args.batch_size, data_gen).split(args.batch_size)
    ys = torch.randint(0, 10, (n_batches * args.batch_size,), generator=data_gen).split(args.batch_size)
    pool_x, pool_y = smooth_images(256, data_gen), torch.randint(0, 10, (256,), generator=data_gen)
    model = create_model("wrn", 10, depth=args.depth, widen=args.widen)
    tasks = torch.nn.ModuleDict({n: build_task(n, model.num_features) for n in TASK_NAMES})
    modes = list(args.modes) + ([f"{EVERY_PREFIX}{args.meta_every}"] if args.meta_every > 1 else [])
    setups = {m: Setup(m, model, tasks, args) for m in modes}
    times: dict[str, list[float]] = {m: [] for m in modes}
    # Modes take turns step by step so that machine load drifts affect them alike.
    for i in range(n_batches):
        for m, s in setups.items():
            task_gen = torch.Generator().manual_seed(args.seed + i)
            val_gen = torch.Generator().manual_seed(args.seed + 10_000 + i)

            def val(n: int, g: torch.Generator = val_gen) -> tuple[torch.Tensor, torch.Tensor]:
                idx = torch.randint(0, pool_x.shape[0], (n,), generator=g)
                return pool_x[idx], pool_y[idx]

            t0 = time.perf_counter()
            s.step(xs[i], ys[i], task_gen, args.lr, val, i)
            if i >= args.warmup_steps:
                times[m].append(1000.0 * (time.perf_counter() - t0))
    ms = {m: statistics.fmean(t) for m, t in times.items()}
    base = ms.get("fixed")
    return {
        "benchmark": "meta_step",
        "model": f"wrn-{args.depth}-{args.widen}", "tasks": list(TASK_NAMES), "batch_size": args.batch_size,
        "meta_batch": args.meta_batch, "steps": args.steps, "warmup_steps": args.warmup_steps,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "machine": platform.machine(),
        "ms_per_step_mean": ms, "ms_per_step_median": {m: statistics.median(t) for m, t in times.items()},
        "ms_per_step_all": times,
        "ratio_to_fixed": {m: v / base for m, v in ms.items()} if base else None,
        "meta_vs_second_order": (ms["meta"] / ms["second_order"]
                                 if {"meta", "second_order"} <= ms.keys() else None),
        "final_lambda": {m: s.weighting.weights() for m, s in setups.items()},
        "meta_gradient_check": agreement(model, tasks, xs[0], ys[0],
                                                            (pool_x, pool_y), args.lr),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=10, help="timed steps per mode")
    p.add_argument("--warmup-steps", type=int, default=1, help="untimed steps per mode first")
    p.add_argument("--meta-batch", type=int, default=25)
    p.add_argument("--depth", type=int, default=16, help="WRN depth (16 as in the target)")
    p.add_argument("--widen", type=int, default=4, help="WRN widen factor (4 as in the target)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--modes", nargs="+", default=list(DEFAULT_MODES), choices=MODES)
    p.add_argument("--meta-every", type=int, default=1,
                   help="also time meta with a meta update every n steps (1: skip this mode)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/meta_step.json"))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("ms_per_step_mean", "ratio_to_fixed",
                                              "meta_vs_second_order")}, indent=2))


if __name__ == "__main__":
    main()
