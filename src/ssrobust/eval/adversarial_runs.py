"""Running one attack over the first n test images for the ``adversarial`` suite.

:class:`AttackRunner` attacks batch by batch and keeps, per run, the per-sample robust flags and
the ε-ball audit (:class:`Outcome`). What it guarantees, whatever the attack does:

* the model is not adapted to the test set: every attack call runs with the normalization layers'
  running statistics frozen (an attack in ``bn_mode="train"`` normalizes with batch statistics but
  leaves the running averages, and the batch counter, bit-identical), and any other buffer a
  train-mode forward updates (e.g. spectral norm's power iteration) is put back afterwards;
* randomness is replayable: the global torch RNG (which randomized models draw from) is seeded per
  run, batch and prediction pass from ``ctx.seed`` inside a fork, so the caller's RNG is untouched,
  a randomized model gives the same numbers twice, and the ε = 0 point sees the same model draws as
  the clean pass;
* stochastic models can be re-run: with ``reruns = r`` every prediction is made r times and a point
  counts as correct (robust) only if it is correct in every pass.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from tqdm.auto import tqdm

from ..attacks.base import Attack, ball_excess, ball_tolerance
from ..seeds import derived_seed
from ..tasks.base import frozen_running_stats
from .base import EvalContext, predict


@dataclass
class Outcome:
    """One attack run: per-sample robust flags (CPU bool ``[n]``, correct in every pass), correct
    predictions summed over passes, the ε-ball audit, and the threat model it ran at."""

    robust: torch.Tensor
    correct_passes: int
    passes: int
    violations: int
    max_excess: float
    seconds: float
    eps: float
    norm: str

    @property
    def n(self) -> int:
        return int(self.robust.numel())

    @property
    def accuracy(self) -> float | None:
        """Fraction of points correct in every prediction pass."""
        return int(self.robust.sum()) / self.n if self.n else None

    @property
    def mean_accuracy(self) -> float | None:
        """Accuracy averaged over the prediction passes (equals :attr:`accuracy` with one pass)."""
        return self.correct_passes / (self.n * self.passes) if self.n else None


@contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block with the global torch RNG (CPU, and ``device`` if CUDA) seeded, then restore it."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.default_generator.manual_seed(seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        yield


@contextmanager
def kept_buffers(model: torch.nn.Module) -> Iterator[None]:
    """Every buffer of ``model`` has its values back after the block, whatever ran inside."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                if not torch.equal(buf, value):
                    buf.copy_(value)


class AttackRunner:
    """Attacks the first ``n`` images of ``ctx`` and stores each run's :class:`Outcome` by name."""

    def __init__(self, ctx: EvalContext, reruns: int = 1) -> None:
        self.ctx, self.reruns = ctx, reruns
        self.outcomes: dict[str, Outcome] = {}

    def generator(self, name: str) -> torch.Generator:
        """The attack's own generator, seeded from ``ctx.seed`` and its name."""
        return torch.Generator(device=self.ctx.device).manual_seed(derived_seed(self.ctx.seed, name))

    def run(self, name: str, attack: Attack | None, n: int, eps: float, norm: str) -> Outcome:
        """Attack (``None``: clean) the first ``n`` images, audit the ball, store and return it."""
        ctx, start = self.ctx, time.perf_counter()
        gen = self.generator(name)
        robust, correct, violations, max_excess = [], 0, 0, float("-inf")
        batches = ctx.batches(ctx.images[:n], ctx.labels[:n])
        for i, (x, y) in enumerate(tqdm(batches, desc=f"adversarial: {name}", leave=False,
                                        total=math.ceil(n / ctx.batch_size),
                                        disable=not ctx.progress)):
            x_adv = x if attack is None else self._attack(attack, name, i, x, y, gen)
            excess = ball_excess(x_adv, x, eps, norm)
            violations += int((excess > ball_tolerance(eps, norm, x[0].numel())).sum())
            max_excess = max(max_excess, float(excess.max()))
            every, hits = self.correct(x_adv, y, i)
            robust.append(every)
            correct += hits
        flags = torch.cat(robust) if robust else torch.zeros(0, dtype=torch.bool)
        out = Outcome(flags, correct, self.reruns, violations, max_excess,
                      time.perf_counter() - start, eps, norm)
        self.outcomes[name] = out
        return out

    def _attack(self, attack: Attack, name: str, batch: int, x: torch.Tensor, y: torch.Tensor,
                gen: torch.Generator) -> torch.Tensor:
        # Frozen statistics: an attack in train mode must not adapt BatchNorm to the test set.
        with kept_buffers(self.ctx.model), frozen_running_stats(self.ctx.model), \
                seeded_global_rng(derived_seed(self.ctx.seed, "attack", name, batch), self.ctx.device):
            return attack(self.ctx.model, x, y, gen)

    def correct(self, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[torch.Tensor, int]:
        """``(correct in every pass, CPU bool [b]; correct predictions summed over passes)``.

        Pass ``r`` of batch ``i`` draws the same model randomness in every run of the suite."""
        every = torch.ones(y.shape[0], dtype=torch.bool)
        total = 0
        for r in range(self.reruns):
            with seeded_global_rng(derived_seed(self.ctx.seed, "predict", batch, r), self.ctx.device):
                hit = (predict(self.ctx.model, x, self.ctx.autocast).argmax(1) == y).cpu()
            every &= hit
            total += int(hit.sum())
        return every, total

    def output_variation(self, n: int) -> float:
        """Largest change of any logit between two passes over the same first ``n`` clean images
        under different model randomness, relative to the largest logit (0 for a deterministic model)."""
        x, _ = next(iter(self.ctx.batches(self.ctx.images[:n], self.ctx.labels[:n])))
        logits = []
        for r in range(2):
            with seeded_global_rng(derived_seed(self.ctx.seed, "randomness", r), self.ctx.device):
                logits.append(predict(self.ctx.model, x, self.ctx.autocast))
        scale = max(float(logits[0].abs().max()), 1e-12)
        return float((logits[0] - logits[1]).abs().max()) / scale
