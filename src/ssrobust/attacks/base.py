"""The attack interface and the geometry every attack shares.

An attack is a frozen dataclass called as ``attack(model, x, y, generator=None) -> x_adv``:

* ``x`` is a float batch ``[B, C, H, W]`` of images in [0, 1] (normalization is a layer inside the
  model, so the threat model is always stated on the [0, 1] pixel scale), ``y`` int64 ``[B]``
  (or one ``[H, W]`` target map per image for objectives of dense tasks, e.g. masks or depth);
* ``x_adv`` has the same shape, dtype and device, lies in [0, 1] and within the ``eps``-ball around
  ``x`` in the attack's norm (up to float32 rounding, see :func:`ball_tolerance`);
* the train/eval flag of every module of the model (and of any module the objective owns) is the
  same afterwards as before; during the attack it is set by ``bn_mode``;
* randomness comes only from ``generator`` (a ``torch.Generator`` on ``x``'s device) when given,
  so the result is reproducible; attacks never move anything to another device.

Attacks register under ``ATTACKS`` (``fgsm``, ``pgd``, ``spsa``, ``autoattack``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from typing import Callable, ContextManager, Iterable, Iterator, Literal, Protocol

import torch
from torch import nn

from ..modes import module_modes
from ..registry import Registry
from ..typedconfig import check_number

ATTACKS: Registry = Registry("attack")

Norm = Literal["linf", "l2"]
NORMS: tuple[str, ...] = ("linf", "l2")
BnMode = Literal["eval", "train"]
BN_MODES: tuple[str, ...] = ("eval", "train")
AutocastFactory = Callable[[], ContextManager]

# float32 has a 24-bit significand: rounding x + delta for x in [0, 1] is off by at most
# 2**-24 ~ 6e-8. 1e-6 leaves a 16x margin and is still 4000x below one 8-bit grey level (1/255).
BALL_ATOL = 1e-6


class Attack(Protocol):
    """What every attack looks like (the concrete classes are frozen dataclasses)."""

    eps: float

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor: ...


def build_attack(name: str, **options: object) -> Attack:
    """Instantiate a registered attack; unknown options raise a TypeError naming the attack."""
    return ATTACKS.build(name, **options)


# --------------------------------------------------------------------------- validation, modes

def check_attack_args(eps: float, norm: str, bn_mode: str) -> None:
    """Shared ``__post_init__`` checks (a wrong value fails at construction, not mid-evaluation).

    ℓ∞ ``eps`` must lie in [0, 1] (beyond 1 the ball holds the whole pixel box: ``eps=8`` is a
    typo for ``8/255``); an ℓ2 radius may exceed 1 (its box diagonal is ``sqrt(C*H*W)``).
    Every error is a ``ValueError`` (a bad ``eps`` a :class:`~ssrobust.errors.ConfigError`), which
    the CLI reports as one line with exit status 2.
    """
    if norm not in NORMS:
        raise ValueError(f"norm {norm!r} is not one of {', '.join(NORMS)}")
    if bn_mode not in BN_MODES:
        raise ValueError(f"bn_mode {bn_mode!r} is not one of {', '.join(BN_MODES)}")
    check_number("eps", eps, 0.0, 1.0 if norm == "linf" else None)


def check_inputs(x: torch.Tensor, y: torch.Tensor, dense_targets: bool = True) -> None:
    """Reject batches that are not float images in [0, 1] with one target per image.

    A target is a class label (``y`` ``[B]``) or, for objectives of dense tasks, a map per image
    (``y`` ``[B, H, W]``: segmentation masks, depth maps); ``dense_targets=False`` allows labels only.
    """
    if not x.is_floating_point():
        raise TypeError(f"attack inputs must be float images in [0, 1], got dtype {x.dtype}")
    per_image = y.dim() >= 1 and y.shape[0] == x.shape[0]
    if y.shape != x.shape[:1] and not (dense_targets and per_image and y.dim() == 3):
        raise ValueError(f"labels of shape {tuple(y.shape)} do not match a batch of {x.shape[0]}")
    if x.numel() and (bool(x.min() < 0) or bool(x.max() > 1)):
        raise ValueError("attack inputs must lie in [0, 1] (normalization belongs inside the model)")


@contextmanager
def attack_mode(modules: Iterable[nn.Module], bn_mode: str) -> Iterator[None]:
    """Put ``modules`` in eval (``bn_mode="eval"``) or train mode and restore every submodule's flag.

    ``"train"`` is what the Hendrycks et al. (2019) adversarial-training code does: BatchNorm uses
    batch statistics *and updates its running averages* during the attack, and dropout is active.
    Flags are restored per submodule, so a model that was deliberately half in eval mode (e.g.
    frozen BatchNorm during finetuning) comes back exactly as it was.
    """
    with module_modes(modules, bn_mode == "train"):
        yield


def autocast_or_null(autocast: AutocastFactory | None) -> ContextManager:
    return nullcontext() if autocast is None else autocast()


# --------------------------------------------------------------------------- geometry

def flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def per_sample_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """``[B, ...] -> [B]``: the ℓ∞ or ℓ2 norm of each sample's perturbation."""
    d = flat(delta)
    return d.abs().amax(dim=1) if norm == "linf" else d.norm(p=2, dim=1)


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Euclidean projection of each sample's ``delta`` onto the ``eps``-ball of ``norm``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    n = per_sample_norm(delta, "l2")
    factor = (eps / n.clamp_min(1e-12)).clamp(max=1.0)
    return delta * _view(factor, delta)


def into_box(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Shrink ``delta`` so that ``x + delta`` is in [0, 1].

    For ``x`` in [0, 1] clamping only moves coordinates of ``delta`` towards 0, so a ``delta``
    inside an ℓp ball stays inside it: projecting on the ball first and then on the box gives a
    point in the intersection (not the exact projection onto it, as in all standard PGD code).
    """
    return (x + delta).clamp(0.0, 1.0) - x


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent direction of unit ``norm``: sign(g) for ℓ∞, g / ||g||₂ for ℓ2 (0 if g = 0)."""
    if norm == "linf":
        return grad.sign()
    n = per_sample_norm(grad, "l2").clamp_min(1e-12)
    return grad / _view(n, grad)


def random_in_ball(x: torch.Tensor, eps: float, norm: str,
                   generator: torch.Generator | None) -> torch.Tensor:
    """A uniform random point of the ``eps``-ball (ℓ∞: uniform per coordinate; ℓ2: uniform in volume:
    Gaussian direction, radius ``eps * U^(1/d)``) for each sample, as a perturbation like ``x``."""
    if norm == "linf":
        u = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return (2 * u - 1) * eps
    g = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    d = flat(x).shape[1]
    r = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype) ** (1.0 / d)
    return ascent_direction(g, "l2") * _view(r * eps, x)


def ball_tolerance(eps: float, norm: str, dim: int) -> float:
    """Slack allowed when *checking* ``||x_adv - x|| <= eps`` after float32 arithmetic.

    ℓ∞: :data:`BALL_ATOL` per coordinate. ℓ2: the per-coordinate rounding errors add up to at most
    ``BALL_ATOL * sqrt(dim)``, plus a relative 1e-5 for the rounding of the norm in the projection.
    """
    if norm == "linf":
        return BALL_ATOL
    return BALL_ATOL * math.sqrt(dim) + 1e-5 * eps


def ball_excess(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """``[B]``: by how much each sample leaves its ball (``<= 0`` inside) or [0, 1] (distance to the box
    in ℓ∞), whichever is worse. Compare with :func:`ball_tolerance`."""
    over_ball = per_sample_norm(x_adv - x, norm) - eps
    over_box = flat(torch.maximum(x_adv - 1.0, -x_adv)).amax(dim=1)
    return torch.maximum(over_ball, over_box)


def is_identity(eps: float, steps: int) -> bool:
    """ε = 0 or no steps: every attack returns its input unchanged (no random start either, since a
    random point of the ball is not an attack)."""
    return eps == 0 or steps == 0
