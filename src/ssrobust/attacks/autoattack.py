"""Thin adapter around AutoAttack (Croce & Hein 2020) from its authors' PyPI package.

Numbers reported as "AutoAttack" come only from this adapter, i.e. from the ``pyautoattack``
package (a core dependency pinned to ``pyautoattack==0.2.0``; it installs the module
``pyautoattack`` with ``AutoAttack(model, *, attacks, device, eps, norm, seed, version)`` and
``run_standard_evaluation(x, y, *, batch_size)``). Our own PGD is never substituted for it: in an
install without the package, :func:`autoattack_available` says why and the evaluation suite
records AutoAttack as skipped and says so first in its warnings.

What the adapter adds: the [0, 1] / float32-logits contract (the model is wrapped so autocast
outputs are cast to float32), eval mode with every module's flag restored, the global torch RNG
restored (the package reseeds it), the package's own reliability flags re-emitted as Python
warnings (:class:`AutoAttackWarning`) instead of log lines, and the per-member breakdown
(:meth:`AutoAttack.run`: how many images were still robust after APGD-CE, after APGD-T, ...),
read from the package's progress log, which the adapter captures during the call instead of letting
it reach the application's log handlers.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Literal

import torch
from torch import nn

from .base import (ATTACKS, AutocastFactory, BnMode, Norm, attack_mode, autocast_or_null,
                   check_attack_args, check_inputs)

PACKAGE = "pyautoattack"
PINNED_VERSION = "0.2.0"
_NORM_NAMES = {"linf": "Linf", "l2": "L2"}
_LOGGER = "auto-attack"  # the logger name the package writes its checks to


class AutoAttackWarning(UserWarning):
    """A reliability flag raised by the AutoAttack package itself (randomized/dynamic defense,
    zero gradients, Square beating the white-box attacks, ...)."""


def autoattack_available() -> tuple[bool, str]:
    """``(True, "pyautoattack <version>")`` or ``(False, reason it cannot be used)``."""
    try:
        module = importlib.import_module(PACKAGE)
    except ImportError as e:
        return False, (f"{PACKAGE}, a dependency of ssrobust, is not installed ({e}); "
                       f"install it with: pip install {PACKAGE}=={PINNED_VERSION}")
    version = getattr(module, "__version__", "unknown")
    return True, f"{PACKAGE} {version}"


class _FloatLogits(nn.Module):
    """``model`` with the forward pass under autocast and float32 logits out (AutoAttack's losses
    and its probability-output check expect float logits)."""

    def __init__(self, model: nn.Module, autocast: AutocastFactory | None) -> None:
        super().__init__()
        self.model = model
        self.autocast = autocast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast_or_null(self.autocast):
            return self.model(x).float()


class _CaptureLog(logging.Handler):
    """Every record of the package's logger: ``flags`` (WARNING and above) and ``progress`` (all)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.flags: list[str] = []
        self.progress: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        self.progress.append(msg)
        if record.levelno >= logging.WARNING:
            self.flags.append(msg)


_INITIAL = re.compile(r"^initial accuracy: ([0-9.]+)%")
_AFTER = re.compile(r"^robust accuracy after ([A-Za-z0-9-]+): ([0-9.]+)%")


def parse_breakdown(lines: list[str], members: list[str], n: int) -> dict[str, int]:
    """Robust-image counts ``{"clean": k0, member: k after it, ...}`` from the package's progress log
    of one call on ``n`` images (percentages with two decimals: exact counts for n < 10,000).
    Members the package skipped because no robust image was left keep the last count (0)."""
    counts: dict[str, int] = {}
    for line in lines:
        if m := _INITIAL.match(line):
            counts["clean"] = round(float(m.group(1)) * n / 100)
        elif m := _AFTER.match(line):
            counts[m.group(1).lower()] = round(float(m.group(2)) * n / 100)
    if "clean" not in counts:
        raise RuntimeError("AutoAttack: the package's log did not report its initial accuracy; "
                           f"the per-attack breakdown cannot be read (got {lines[:3]})")
    last = counts["clean"]
    out = {"clean": last}
    for member in members:
        last = counts.get(member, last)
        out[member] = last
    return out


@ATTACKS.register("autoattack")
@dataclass(frozen=True)
class AutoAttack:
    """AutoAttack through the ``pyautoattack`` package.

    Args:
        eps, norm, bn_mode, autocast: as in :class:`~ssrobust.attacks.pgd.PGD`.
        version: ``"standard"`` (APGD-CE, APGD-T, FAB-T, Square; the leaderboard setting),
            ``"plus"``, ``"rand"`` or ``"custom"`` (then ``attacks`` lists the members).
        attacks: members for ``version="custom"``, e.g. ``("square",)``.
        seed: the package's seed; when a ``generator`` is passed to the call, the seed is drawn
            from it instead.
        batch_size: images per batch inside the package.
        square_queries: override of Square's query budget (package default 5000).
    """

    eps: float = 8 / 255
    norm: Norm = "linf"
    version: Literal["standard", "plus", "rand", "custom"] = "standard"
    attacks: tuple[str, ...] | None = None
    seed: int = 0
    batch_size: int = 250
    square_queries: int | None = None
    bn_mode: BnMode = "eval"
    autocast: AutocastFactory | None = None

    def __post_init__(self) -> None:
        check_attack_args(self.eps, self.norm, self.bn_mode)
        if (self.version == "custom") != (self.attacks is not None):
            raise ValueError("AutoAttack: give `attacks` exactly when version='custom'")
        if self.batch_size < 1 or (self.square_queries is not None and self.square_queries < 1):
            raise ValueError(f"AutoAttack needs batch_size >= 1 and square_queries >= 1 (or None), got "
                             f"batch_size={self.batch_size!r}, square_queries={self.square_queries!r}")

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` ``[B, C, H, W]`` in [0, 1], ``y`` ``[B]`` -> ``x_adv`` like ``x``.

        Raises ``ImportError`` with the install command when the package is missing.
        """
        return self.run(model, x, y, generator)[0]

    def run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, int]]:
        """Like calling the attack, and also the per-member breakdown of this batch:
        ``{"clean": images correct before, "apgd-ce": still robust after APGD-CE, ...}`` in the
        order the package ran them (counts of the package's own evaluation); ``{}`` with a
        ``RuntimeWarning`` if the package's log could not be read."""
        check_inputs(x, y, dense_targets=False)
        ok, reason = autoattack_available()
        if not ok:
            raise ImportError(reason)
        # Contiguous: the package reshapes gradients with .view(), which fails on the
        # channels-last strides of images converted from [N, H, W, 3] arrays.
        x = x.detach().contiguous()
        if self.eps == 0 or x.shape[0] == 0:
            return x.clone(), {}
        seed = self.seed if generator is None else int(
            torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device).item())
        with attack_mode([model], self.bn_mode), _own_global_rng(x.device), \
                _captured_log() as log, _kept_trace():
            wrapped = _FloatLogits(model, self.autocast)
            with torch.no_grad():
                num_classes = wrapped(x[:1]).shape[1]
            adversary = self._build(wrapped, x.device, seed, num_classes)
            x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=self.batch_size)
        for msg in dict.fromkeys(log.flags):  # de-duplicated, in order
            warnings.warn(f"AutoAttack: {msg}", AutoAttackWarning, stacklevel=2)
        try:
            breakdown = parse_breakdown(log.progress, list(adversary.attacks_to_run), x.shape[0])
        except RuntimeError as e:  # a changed log format must not cost the attack result itself
            warnings.warn(str(e), RuntimeWarning, stacklevel=2)
            breakdown = {}
        return x_adv.detach().to(dtype=x.dtype).clamp(0.0, 1.0), breakdown

    def _build(self, model: nn.Module, device: torch.device, seed: int, num_classes: int):
        """The package's ``AutoAttack`` object. With fewer than 10 classes the targeted members
        (APGD-T, FAB-T) target all ``num_classes - 1`` other classes instead of the package's fixed
        9, which would index past the logits; their DLR losses need at least 4 classes."""
        members = self.attacks if self.attacks is not None else ("apgd-t",)
        if num_classes < 4 and any(a in ("apgd-t", "apgd-dlr", "fab-t") for a in members):
            raise ValueError(f"AutoAttack {self.version!r} needs at least 4 classes (DLR losses); "
                             f"the model has {num_classes}: use version='custom' with e.g. "
                             "attacks=('apgd-ce', 'square')")
        package = importlib.import_module(PACKAGE)
        kwargs = dict(device=device, eps=float(self.eps), norm=_NORM_NAMES[self.norm],
                      seed=seed, version=self.version)
        if self.attacks is not None:
            kwargs["attacks"] = list(self.attacks)
        adversary = package.AutoAttack(model, **kwargs)
        adversary.apgd_targeted.n_target_classes = min(adversary.apgd_targeted.n_target_classes,
                                                       num_classes - 1)
        adversary.fab.n_target_classes = min(adversary.fab.n_target_classes, num_classes - 1)
        if self.square_queries is not None:
            adversary.square.n_queries = int(self.square_queries)
        return adversary


@contextmanager
def _own_global_rng(device: torch.device) -> Iterator[None]:
    """Fork the global torch RNG: the package calls ``torch.manual_seed`` with its seed."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        yield


@contextmanager
def _kept_trace() -> Iterator[None]:
    """The package's dynamic-defense check ends with ``sys.settrace(None)``, which would silently
    switch off a debugger or coverage tracer; put the previous tracer back."""
    previous = sys.gettrace()
    try:
        yield
    finally:
        sys.settrace(previous)


@contextmanager
def _captured_log() -> Iterator[_CaptureLog]:
    """Collect all of the package's log records for the duration of a call (its logger at DEBUG,
    not propagating to the application's handlers); level and propagation are restored after."""
    handler = _CaptureLog()
    logger = logging.getLogger(_LOGGER)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
