"""Adversarial-training strategies, combinable with the run's pretext tasks.

* ``pgd_at``: PGD adversarial training (Madry et al. 2018): the classifier is trained on PGD
  examples of the batch. With pretext tasks this is Hendrycks et al. (2019, Sec. 3.1, eq. 3):
  ``CE(y, f(PGD(x))) + λ·L_SS(PGD(x))``, the attack maximizing ``CE + w·L_SS`` during training.
* ``trades``: TRADES (Zhang et al. 2019): ``CE(y, f(x)) + β·KL(p(x) ‖ p(x_adv))`` with ``x_adv``
  maximizing the KL term, plus the pretext-task losses.
* ``fast_at``: fast adversarial training (Wong et al. 2020): ``pgd_at`` with one FGSM step of
  1.25·ε from a random start, and a per-epoch catastrophic-overfitting check that stops training.

All expose the four ways Kucer et al. (2021) combine self-supervision with adversarial training:
SS pretraining then AT (an ``ss_only`` run, then this strategy with ``init_from``); the joint SS
loss (``tasks`` of the run, weighted by the run's weighting); SS in the attack
(``attack_ss_weight > 0``, with ``ss_in_loss=False`` to keep it out of the weight update); both.

The attack runs on the unwrapped backbone (``Strategy.unwrap(net).model``) and asks autograd for
the input gradient only, so it never touches a parameter's ``.grad`` and never goes through DDP.
The losses then come from one forward of the (possibly DDP-wrapped) network on the images the
tasks see, plus, where the loss also needs the other images (TRADES' clean/adversarial pair, the
optional clean CE), one forward of the backbone on those. That second forward bypasses DDP, which
is still exact: the DDP forward uses every parameter, and autograd sums both contributions into
each parameter's gradient before DDP's all-reduce hook fires (checked with two gloo processes).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import ContextManager, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import PGD, CrossEntropy, Objective, TradesKL
from ..errors import ConfigError
from ..images import unit_float
from ..modes import eval_mode
from ..tasks.base import PretextTask
from ..tasks.objectives import CrossEntropyPlusTasks, per_task_weights, task_term
from ..typedconfig import check_number
from .strategies import STRATEGIES, EpochCheck, StepOutput, Strategy

TASK_INPUTS = ("adv", "clean")
ATTACK_PRECISIONS = ("run", "fp32")
SsWeight = float | Mapping[str, float]


# --------------------------------------------------------------------------- objectives, losses

@dataclass(frozen=True)
class TradesKLPlusTasks(Objective):
    """KL(p(x) ‖ p(x_adv)) + λ·Σ_t L_t(x_adv): the TRADES attack with the pretext-task losses added
    (Kucer et al.'s "SS in the attack" for TRADES). One :func:`forward_with_tasks` pass per step
    gives both terms. ``weight`` is one λ or ``{task: λ}``; task views are re-drawn from ``seed``
    at every step so the attack maximizes one fixed function. Per-sample values: each sample's KL
    plus its own task losses (see :class:`~ssrobust.tasks.objectives.CrossEntropyPlusTasks`)."""

    tasks: Mapping[str, PretextTask] = field(default_factory=dict)
    weight: SsWeight = 1.0
    seed: int = 0

    def modules(self) -> list[nn.Module]:
        return list(self.tasks.values())

    def bind(self, model, x_clean, y):
        weights = per_task_weights(self.tasks, self.weight, "attack_ss_weight")
        with torch.no_grad():
            p_clean = F.softmax(model(x_clean).float(), dim=1)

        def loss(x_adv: torch.Tensor) -> torch.Tensor:
            feats, task_loss = task_term(model, x_adv, self.tasks, weights, self.seed)
            log_q = F.log_softmax(model.forward_head(feats).float(), dim=1)
            kl = F.kl_div(log_q, p_clean, reduction="none").sum(dim=1)
            return kl + task_loss

        return loss


def trades_kl(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """Batch mean of KL(p_clean ‖ p_adv) from logits ``[B, K]``; gradients flow through both
    distributions, as in the TRADES training loss (the clean prediction is not detached)."""
    log_p = F.log_softmax(logits_clean.float(), dim=1)
    log_q = F.log_softmax(logits_adv.float(), dim=1)
    return F.kl_div(log_q, log_p, reduction="batchmean", log_target=True)


def _draw_seed(generator: torch.Generator | None, device: torch.device) -> int:
    """A seed for the attack's pretext views, drawn from the step's generator (reproducible)."""
    dev = generator.device if generator is not None else device
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=dev))


# --------------------------------------------------------------------------- shared machinery

class AdversarialStrategy(Strategy):
    """Options shared by ``pgd_at`` and ``trades``; subclasses choose the attack objective and loss.

    Args:
        eps, step_size, steps, norm, random_start: the training attack, on the [0, 1] pixel scale
            (Hendrycks et al. 2019 / Madry et al. 2018: ℓ∞, 8/255, 2/255, 10 steps, random start).
        bn_mode: train/eval mode of the model *during the attack* (``"eval"`` default; ``"train"``
            as the Hendrycks et al. code, where the attack's forwards also update BN statistics).
            The mode of every submodule is restored afterwards.
        attack_ss_weight: ``0``: the attack maximizes the classification objective alone; ``w > 0``
            (or ``{task: w}``): it also maximizes ``w·L_SS`` of the run's tasks.
        tasks_on: which images the pretext tasks see in the weight update: ``"adv"`` (the
            attack's output, Hendrycks et al. eq. 3) or ``"clean"`` (the batch).
        ss_in_loss: ``False`` keeps the task losses out of the weight update (they are logged
            detached, their heads get no gradient): the tasks then only shape the attack.
        attack_precision: ``"run"``: the attack's forwards run under the run's autocast (bf16/fp16
            when the run uses it); ``"fp32"``: autocast is switched off during the attack.
    """

    name = "adversarial"  # the registered name, for messages
    uses_classification_loss = True  # the CE terms take the run's label smoothing

    def __init__(self, eps: float = 8 / 255, step_size: float = 2 / 255, steps: int = 10,
                 norm: str = "linf", bn_mode: str = "eval", attack_ss_weight: SsWeight = 0.0,
                 tasks_on: str = "adv", random_start: bool = True, ss_in_loss: bool = True,
                 attack_precision: str = "run") -> None:
        name = self.name
        if tasks_on not in TASK_INPUTS:
            raise ConfigError(f"{name}: tasks_on {tasks_on!r} is not one of {', '.join(TASK_INPUTS)}")
        if attack_precision not in ATTACK_PRECISIONS:
            raise ConfigError(f"{name}: attack_precision {attack_precision!r} is not one of "
                              f"{', '.join(ATTACK_PRECISIONS)}")
        ws = attack_ss_weight.values() if isinstance(attack_ss_weight, Mapping) else [attack_ss_weight]
        if not all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in ws):
            raise ConfigError(f"{name}: attack_ss_weight must be >= 0 (or a mapping task -> weight >= 0)")
        # Named as the config spells them; PGD repeats the checks for direct use.
        check_number("strategy.options.eps", eps, 0.0, 1.0 if norm == "linf" else None)
        check_number("strategy.options.step_size", step_size, low=0.0)
        check_number("strategy.options.steps", steps, low=0)
        try:  # PGD validates norm and bn_mode at construction
            self.template = PGD(eps=float(eps), step_size=float(step_size), steps=int(steps), norm=norm,
                                random_start=bool(random_start), bn_mode=bn_mode)
        except ValueError as e:
            raise ConfigError(f"{name}: {e}") from None
        self.attack_ss_weight = attack_ss_weight
        self.uses_ss_attack = any(w > 0 for w in ws)
        self.tasks_on = tasks_on
        self.ss_in_loss = bool(ss_in_loss)
        self.attack_precision = attack_precision

    def objective(self, tasks: dict[str, PretextTask], seed: int) -> Objective:
        raise NotImplementedError

    def attack(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
               generator: torch.Generator | None) -> torch.Tensor:
        """``x_adv`` ``[B, C, H, W]`` for the batch: PGD on the unwrapped backbone (and task heads)."""
        core = self.unwrap(net)
        tasks = dict(core.tasks.items())
        if self.uses_ss_attack and not tasks:
            raise ConfigError(f"{self.name}: attack_ss_weight > 0 needs pretext tasks in `tasks`")
        seed = _draw_seed(generator, x.device)
        attack = replace(self.template, objective=self.objective(tasks, seed))
        with self._precision(x.device):
            return attack(core.model, x, y, generator)

    def _precision(self, device: torch.device) -> ContextManager:
        if self.attack_precision == "fp32":
            return torch.autocast(device_type=device.type, enabled=False)
        return nullcontext()  # the loop's autocast context is already active around the strategy

    def forward_pair(self, net: nn.Module, x_adv: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                     generator: torch.Generator | None, need_other: bool
                     ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """``(logits_adv [B, K], logits_clean [B, K] or None, task losses)``.

        The network (trunk + task heads, through DDP if wrapped) runs on the images the tasks see
        (``tasks_on``; ``x_adv`` when the run has no tasks); the other images go through the
        backbone alone, and the clean ones only if ``need_other``.
        """
        core = self.unwrap(net)
        if not self.ss_in_loss and isinstance(net, nn.parallel.DistributedDataParallel):
            raise ConfigError(f"{self.name}: ss_in_loss=false leaves the task heads without "
                              "gradients, which DDP (find_unused_parameters=False) rejects; "
                              "train in one process")
        if self.tasks_on == "adv" or not core.tasks:
            logits_adv, _, aux = net(x_adv, y, generator)
            logits_clean = core.model(x).float() if need_other else None
        else:
            logits_clean, _, aux = net(x, y, generator)
            logits_adv = core.model(x_adv).float()
        if not self.ss_in_loss:
            aux = {k: v.detach() for k, v in aux.items()}
        return logits_adv, logits_clean, aux


# --------------------------------------------------------------------------- the strategies

@STRATEGIES.register("pgd_at")
class PGDAdversarialTraining(AdversarialStrategy):
    """PGD adversarial training, optionally with the run's pretext tasks (Hendrycks et al. 2019).

    Loss: ``(1 - c)·CE(y, f(x_adv)) + c·CE(y, f(x))`` with ``c = clean_weight`` (default 0: pure
    Madry et al.; 0.5 is Goodfellow et al.'s mix), plus the task losses through the run's
    weighting. ``x_adv`` maximizes ``CE`` (``attack_ss_weight = 0``) or ``CE + w·L_SS``.
    ``StepOutput.logits`` are on ``x_adv`` (the logged ``train_acc`` is adversarial accuracy);
    ``StepOutput.inputs`` is ``x_adv``. See :class:`AdversarialStrategy` for the other options.
    """

    name = "pgd_at"

    def __init__(self, clean_weight: float = 0.0, **options) -> None:
        super().__init__(**options)
        if not 0.0 <= float(clean_weight) <= 1.0:
            raise ConfigError(f"pgd_at: clean_weight must be in [0, 1], got {clean_weight}")
        self.clean_weight = float(clean_weight)

    def objective(self, tasks, seed):
        if not self.uses_ss_attack:
            return CrossEntropy()
        return CrossEntropyPlusTasks(tasks=tasks, weight=self.attack_ss_weight, seed=seed)

    def __call__(self, net, x, y, generator, extras=None):
        x_adv = self.attack(net, x, y, generator)
        c = self.clean_weight
        logits_adv, logits_clean, aux = self.forward_pair(net, x_adv, x, y, generator, need_other=c > 0)
        ce = self.unwrap(net).classification_loss
        main = ce(logits_adv, y)
        if logits_clean is not None:
            # With tasks_on="clean" and c = 0 the clean term is kept with weight 0: it holds the
            # classifier head in the DDP forward's graph (DDP expects every parameter used there).
            main = (1.0 - c) * main + c * ce(logits_clean, y)
        return StepOutput(logits_adv, main, aux, inputs=x_adv)


@STRATEGIES.register("trades")
class TRADES(AdversarialStrategy):
    """TRADES (Zhang et al. 2019) with optional pretext tasks.

    Loss: ``CE(y, f(x)) + β·KL(p(x) ‖ p(x_adv))`` (KL summed over classes, averaged over the batch;
    gradients through both distributions), plus the task losses through the run's weighting.
    ``x_adv`` maximizes ``KL(p(x) ‖ p(x_adv))`` with the clean prediction fixed
    (``attack_ss_weight = 0``) or ``KL + w·L_SS``. The KL is 0 with zero gradient at ``x``, so
    keep ``random_start`` (TRADES' code starts at ``x + 0.001·N(0, 1)``; ours uniform in the ball).
    ``StepOutput.logits`` are on ``x_adv``.
    """

    name = "trades"

    def __init__(self, beta: float = 6.0, **options) -> None:
        super().__init__(**options)
        if not (float(beta) >= 0 and math.isfinite(float(beta))):
            raise ConfigError(f"trades: beta must be a finite number >= 0, got {beta}")
        self.beta = float(beta)

    def objective(self, tasks, seed):
        if not self.uses_ss_attack:
            return TradesKL()
        return TradesKLPlusTasks(tasks=tasks, weight=self.attack_ss_weight, seed=seed)

    def __call__(self, net, x, y, generator, extras=None):
        x_adv = self.attack(net, x, y, generator)
        logits_adv, logits_clean, aux = self.forward_pair(net, x_adv, x, y, generator, need_other=True)
        ce = self.unwrap(net).classification_loss(logits_clean, y)
        main = ce + self.beta * trades_kl(logits_clean, logits_adv)
        return StepOutput(logits_adv, main, aux, inputs=x_adv)


@STRATEGIES.register("fast_at")
class FastAdversarialTraining(PGDAdversarialTraining):
    """Fast adversarial training (Wong, Rice & Kolter 2020): ``pgd_at`` with one FGSM step of size
    ``step_size`` (default 1.25·ε) from a uniform random start in the ε-ball, with the pretext
    tasks and the other options of :class:`PGDAdversarialTraining`.

    FGSM training can collapse within an epoch ("catastrophic overfitting": FGSM accuracy soars
    while PGD accuracy drops to ~0). After every epoch the strategy therefore measures PGD
    accuracy (``check_steps`` steps of ``ε/4``, one fixed random start) on the first
    ``check_images`` validation images; when it falls by more than ``check_drop`` below the previous
    epoch's (absolute, Wong et al.'s early stopping), or by more than the fraction
    ``check_drop_relative`` of the previous epoch's value and by more than three binomial standard
    errors of it (so a model whose PGD accuracy is itself below ``check_drop`` cannot collapse
    unnoticed, while noise at low accuracies does not stop it), training stops and the run keeps the
    previous epoch's weights. ``check_images=0`` switches the check off.
    """

    name = "fast_at"

    def __init__(self, eps: float = 8 / 255, step_size: float | None = None, check_images: int = 256,
                 check_steps: int = 10, check_drop: float = 0.2, check_drop_relative: float = 0.5,
                 **options) -> None:
        if "steps" in options:
            raise ConfigError("fast_at takes exactly one FGSM step; use strategy pgd_at for more steps")
        if options.get("random_start") is False:
            raise ConfigError("fast_at needs random_start (FGSM from x itself is what collapses)")
        step = 1.25 * float(eps) if step_size is None else float(step_size)
        super().__init__(eps=eps, step_size=step, steps=1, **options)
        if int(check_images) < 0 or int(check_steps) < 1 or not 0.0 < float(check_drop) <= 1.0:
            raise ConfigError("fast_at: check_images must be >= 0, check_steps >= 1 and check_drop "
                              f"in (0, 1]; got {check_images}, {check_steps}, {check_drop}")
        if not 0.0 < float(check_drop_relative) <= 1.0:
            raise ConfigError(f"fast_at: check_drop_relative must lie in (0, 1]; got {check_drop_relative}")
        self.check_drop_relative = float(check_drop_relative)
        self.held_out_images = int(check_images)
        self.check = PGD(eps=float(eps), step_size=float(eps) / 4, steps=int(check_steps),
                         norm=self.template.norm, random_start=True)
        self.check_drop = float(check_drop)
        self.previous: float | None = None  # PGD accuracy after the last epoch that passed

    def end_of_epoch(self, model, held_out, autocast):
        if not self.held_out_images:
            return None
        if held_out is None:
            raise ConfigError("fast_at's overfitting check needs validation images: set "
                              "data.val_size > 0 or strategy.options.check_images=0")
        acc = robust_accuracy(model, self.check, held_out, self.held_out_images, autocast)
        n = min(self.held_out_images, len(held_out[1]))
        prev = self.previous
        collapsed = prev is not None and collapse(prev, acc, n, self.check_drop, self.check_drop_relative)
        metrics = {"overfit_check": {"pgd_accuracy": acc, "previous": prev, "images": n}}
        if collapsed:
            return EpochCheck(metrics, stop=f"catastrophic overfitting: PGD accuracy on held-out images "
                                            f"fell from {prev:.3f} to {acc:.3f}")
        self.previous = acc
        return EpochCheck(metrics)

    def state_dict(self):
        return {"previous": self.previous}

    def load_state_dict(self, state):
        self.previous = state.get("previous")


def collapse(previous: float, current: float, n: int, drop: float = 0.2, relative: float = 0.5) -> bool:
    """Whether PGD accuracy on ``n`` held-out images falling from ``previous`` to ``current`` is a
    catastrophic collapse: a fall of more than ``drop`` (absolute), or of more than ``relative`` x
    ``previous`` that is also larger than three binomial standard errors of ``previous`` on ``n``
    images (noise of the check itself never stops training)."""
    fall = previous - current
    if fall > drop:
        return True
    noise = 3.0 * math.sqrt(max(previous * (1.0 - previous), 0.0) / max(n, 1))
    return fall > relative * previous and fall > noise


def robust_accuracy(model: nn.Module, attack: PGD, held_out: tuple[torch.Tensor, torch.Tensor], n: int,
                    autocast) -> float:
    """Accuracy of ``model`` (eval mode; mode restored) on ``attack``'s examples of the first ``n``
    held-out images (uint8 ``[N, 3, H, W]``, labels ``[N]``), from a fixed random start."""
    x = unit_float(held_out[0][:n])
    y = held_out[1][:n]
    gen = torch.Generator(device=x.device).manual_seed(20_200_112)  # the same start every epoch
    x_adv = replace(attack, autocast=autocast)(model, x, y, gen)  # the attack restores the modes
    with eval_mode(model), torch.no_grad(), autocast():
        return float((model(x_adv).float().argmax(1) == y).float().mean())
