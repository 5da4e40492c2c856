"""OOD scores (higher = more anomalous), selected by name through ``OOD_SCORES``.

A score has an optional ``fit(model, batches, tasks) -> self`` and ``score(model, x, tasks) ->
[N]``. All scores read a shared :class:`ScoreInputs` cache (logits, features, rotation-head logits
for the 4 rotations, three-head logits for the 36 rotation+translation transforms) computed by
**one** :func:`compute_score_inputs` call per batch for the union of what the scores need, so
evaluating five scores costs one clean forward plus the extra views, not five.

Multi-class scores (Hendrycks et al. 2019, §4.1; the model is a classifier, optionally with a
``rotation`` task):

* ``msp``: ``-max_k p(k|x)`` (Hendrycks & Gimpel 2017);
* ``kl_uniform``: ``-KL[U || p(y|x)]`` (confident predictions are far from uniform);
* ``energy``: ``-T logsumexp(z / T)`` (Liu et al. 2020), a modern extra;
* ``rotation``: ``1/4 sum_r CE(r, rot_head(R_r x))``;
* ``kl_rotation``: ``-KL[U || p(y|x)] + rotation``, the paper's detector.

One-class scores (§4.2):

* ``rotnet``: ``-sum_r p_R(r | R_r x)`` (rotation head only);
* ``rotation_translation``: ``-sum over the 36 transforms g of p_R(r_g|g x) + p_Tv(v_g|g x) +
  p_Th(h_g|g x)`` with the heads of the ``rotation_translation`` task.

Natural logarithms throughout (the authors' code uses log2 for both terms of ``kl_rotation``, which
scales the sum by a constant and leaves every metric unchanged).
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..images import to_float_images
from ..modes import eval_mode
from ..registry import Registry
from ..tasks.base import TASKS, PretextTask
from ..tasks.rotation import rotate_batch
from .transforms import NUM_TRANSFORMS, geometric_transforms, transform_table

OOD_SCORES: Registry = Registry("OOD score")

# What a score may need beyond logits/features; the task whose head provides it says so in
# ``PretextTask.provides``.
NEEDS_ROTATION = "rotation"
NEEDS_GEOMETRIC = "geometric"


@dataclass
class ScoreInputs:
    """Model outputs for one batch of ``N`` images, shared by all scores.

    ``logits [N, K]`` and ``features [N, D]`` (float32); ``rotation_logits [4, N, 4]``: row ``k`` is
    the rotation head on ``R_k x`` (``k`` quarter turns); ``geometric_logits``: rotation ``[36, N,
    4]``, vertical ``[36, N, 3]`` and horizontal ``[36, N, 3]`` head logits on the 36 transforms,
    whose labels are ``geometric_labels [36, 3]`` (``(r, v, h)`` per transform).
    """

    logits: torch.Tensor
    features: torch.Tensor
    rotation_logits: torch.Tensor | None = None
    geometric_logits: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    geometric_labels: torch.Tensor | None = None


def _provider(tasks: Mapping[str, nn.Module], need: str) -> nn.Module | None:
    """The task of ``tasks`` that declares it provides ``need`` (``PretextTask.provides``)."""
    for name, module in tasks.items():
        cls = type(module) if isinstance(module, PretextTask) else (TASKS.get(name) if name in TASKS else None)
        if need in getattr(cls, "provides", ()):
            return module
    return None


def _missing(tasks: Mapping[str, nn.Module], need: str, who: str) -> ConfigError:
    providers = " or ".join(repr(n) for n in TASKS.names() if need in TASKS.get(n).provides)
    have = ", ".join(sorted(tasks)) or "(none)"
    return ConfigError(f"{who} needs the {providers} pretext task; the model has: {have}")


def _task(tasks: Mapping[str, nn.Module], need: str) -> nn.Module:
    task = _provider(tasks, need)
    if task is None:
        raise _missing(tasks, need, "this OOD score")
    return task


def _features(model: nn.Module, imgs: torch.Tensor, chunk: int, autocast: Callable) -> torch.Tensor:
    parts = []
    for i in range(0, imgs.shape[0], chunk):
        with autocast():
            parts.append(model.forward_features(imgs[i: i + chunk]).float())
    return torch.cat(parts)


@torch.no_grad()
def compute_score_inputs(model: nn.Module, x: torch.Tensor, tasks: Mapping[str, nn.Module],
                         needs: Iterable[str] = (), autocast: Callable = nullcontext,
                         max_forward: int | None = None) -> ScoreInputs:
    """Forward a float batch ``x [N, 3, H, W]`` in [0, 1] once per view and fill the cache.

    Model and tasks run in eval mode (modes restored). The 0-degree rotation reuses the clean
    features. ``max_forward`` caps images per trunk forward (default ``4 N``), which bounds memory
    for the ``36 N`` geometric views.
    """
    needs = set(needs)
    n = x.shape[0]
    chunk = max_forward or 4 * max(n, 1)
    mods = [model] + [_task(tasks, need) for need in sorted(needs)]
    with eval_mode(*mods):
        feats = _features(model, x, chunk, autocast)
        with autocast():
            logits = model.forward_head(feats).float()
        out = ScoreInputs(logits=logits, features=feats)
        if NEEDS_ROTATION in needs:
            head = _task(tasks, NEEDS_ROTATION)
            rotated, _ = rotate_batch(x, (1, 2, 3))
            f = torch.cat([feats, _features(model, rotated, chunk, autocast)])
            out.rotation_logits = head.logits(f).float().view(4, n, -1)
        if NEEDS_GEOMETRIC in needs:
            task = _task(tasks, NEEDS_GEOMETRIC)
            imgs, _, _, _ = geometric_transforms(x, task.shift, task.translate_first)
            f = _features(model, imgs, chunk, autocast)
            out.geometric_logits = tuple(z.float().view(NUM_TRANSFORMS, n, -1) for z in task.logits(f))
            out.geometric_labels = transform_table(x.device)
    return out


class OODScore:
    """Base class: subclasses set ``name`` and ``needs`` and implement :meth:`from_inputs`."""

    name: ClassVar[str] = "score"
    needs: ClassVar[frozenset[str]] = frozenset()

    def fit(self, model: nn.Module, batches: Iterable[torch.Tensor],
            tasks: Mapping[str, nn.Module]) -> "OODScore":
        """Fit on in-distribution training batches (float ``[b, 3, H, W]``); default: nothing."""
        return self

    @property
    def needs_fit(self) -> bool:
        return type(self).fit is not OODScore.fit

    def from_inputs(self, inputs: ScoreInputs) -> torch.Tensor:
        raise NotImplementedError

    def score(self, model: nn.Module, x: torch.Tensor, tasks: Mapping[str, nn.Module]) -> torch.Tensor:
        """Anomaly scores ``[N]`` for a float batch ``x [N, 3, H, W]`` in [0, 1]."""
        return self.from_inputs(compute_score_inputs(model, x, tasks, self.needs))


@OOD_SCORES.register("msp")
class MaxSoftmax(OODScore):
    name = "msp"

    def from_inputs(self, inputs: ScoreInputs) -> torch.Tensor:
        return -F.softmax(inputs.logits, dim=1).amax(dim=1)


@OOD_SCORES.register("kl_uniform")
class KLUniform(OODScore):
    """``-KL[U || p] = log K + 1/K sum_k log p_k``."""

    name = "kl_uniform"

    def from_inputs(self, inputs: ScoreInputs) -> torch.Tensor:
        k = inputs.logits.shape[1]
        return F.log_softmax(inputs.logits, dim=1).mean(dim=1) + math.log(k)


@OOD_SCORES.register("energy")
class Energy(OODScore):
    """Free energy ``-T logsumexp(z / T)`` (Liu et al., NeurIPS 2020)."""

    name = "energy"

    def __init__(self, temperature: float = 1.0) -> None:
        if temperature <= 0:
            raise ConfigError(f"energy temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def from_inputs(self, inputs: ScoreInputs) -> torch.Tensor:
        t = self.temperature
        return -t * torch.logsumexp(inputs.logits / t, dim=1)


def _true_class_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``[T, N, K]`` logits and ``[T]`` labels -> ``[T, N]`` log-probability of label ``t``."""
    logp = F.log_softmax(logits, dim=2)
    idx = labels.view(-1, 1, 1).expand(-1, logits.shape[1], 1)
    return logp.gather(2, idx).squeeze(2)


def _rotation_log_probs(inputs: ScoreInputs) -> torch.Tensor:
    z = inputs.rotation_logits
    assert z is not None, "rotation logits were not computed"
    return _true_class_log_probs(z, torch.arange(4, device=z.device))


@OOD_SCORES.register("rotation")
class RotationScore(OODScore):
    """Mean rotation cross-entropy ``1/4 sum_r -log p_R(r | R_r x)``."""

    name = "rotation"
    needs = frozenset({NEEDS_ROTATION})

    def from_inputs(self, inputs: ScoreInputs) -> torch.Tensor:
        return -_rotation_log_probs(inputs).mean(dim=0)


@OOD_SCORES.register("kl_rotation")
class KLRotation(OODScore):
    """Hendrycks et al.'s multi-class detector: ``-KL[U || p(y|x)] + rotation score``."""

    name = "kl_rotation"
    needs = frozenset({NEEDS_ROTATION})

    def from_inputs(self, inputs: ScoreInputs) -> torch.Tensor:
        return KLUniform().from_inputs(inputs) + RotationScore().from_inputs(inputs)


@OOD_SCORES.register("rotnet")
class RotNetScore(OODScore):
    """One-class RotNet baseline: ``-sum_r p_R(r | R_r x)``."""

    name = "rotnet"
    needs = frozenset({NEEDS_ROTATION})

    def from_inputs(self, inputs: ScoreInputs) -> torch.Tensor:
        return -_rotation_log_probs(inputs).exp().sum(dim=0)


@OOD_SCORES.register("rotation_translation")
class RotationTranslationScore(OODScore):
    """``-sum_g [p_R(r_g|g x) + p_Tv(v_g|g x) + p_Th(h_g|g x)]`` over the 36 transforms ``g``."""

    name = "rotation_translation"
    needs = frozenset({NEEDS_GEOMETRIC})

    def from_inputs(self, inputs: ScoreInputs) -> torch.Tensor:
        assert inputs.geometric_logits is not None and inputs.geometric_labels is not None
        total = torch.zeros(inputs.logits.shape[0], device=inputs.logits.device)
        for head, z in enumerate(inputs.geometric_logits):
            labels = inputs.geometric_labels[:, head]
            total += _true_class_log_probs(z, labels).exp().sum(dim=0)
        return -total


def build_score(name: str, **options: Any) -> OODScore:
    """Instantiate a registered score; unknown options raise a ConfigError naming the score."""
    return OOD_SCORES.build(name, **options)


def check_tasks(scores: Mapping[str, OODScore], tasks: Mapping[str, nn.Module]) -> None:
    """Raise a ConfigError before any work if a score needs a pretext task the model lacks."""
    for name, s in scores.items():
        for need in s.needs:
            if _provider(tasks, need) is None:
                raise _missing(tasks, need, f"OOD score {name!r}")


def score_batch(model: nn.Module, x: torch.Tensor, tasks: Mapping[str, nn.Module],
                scores: Mapping[str, OODScore], autocast: Callable = nullcontext
                ) -> dict[str, torch.Tensor]:
    """All ``scores`` for one float batch from a single shared :class:`ScoreInputs`."""
    needs = set().union(*(s.needs for s in scores.values())) if scores else set()
    inputs = compute_score_inputs(model, x, tasks, needs, autocast)
    return {name: s.from_inputs(inputs) for name, s in scores.items()}


def score_images(model: nn.Module, images: Any, tasks: Mapping[str, nn.Module],
                 scores: Mapping[str, OODScore], batch_size: int = 256,
                 device: torch.device | None = None, autocast: Callable = nullcontext
                 ) -> dict[str, np.ndarray]:
    """Score a uint8 ``[N, H, W, 3]`` image set batch by batch: ``{name: float64 [N]}``."""
    check_tasks(scores, tasks)
    device = device or next(model.parameters()).device
    out: dict[str, list[np.ndarray]] = {name: [] for name in scores}
    for i in range(0, len(images), batch_size):
        x = to_float_images(images[i: i + batch_size], device)
        for name, s in score_batch(model, x, tasks, scores, autocast).items():
            out[name].append(s.detach().to("cpu", torch.float64).numpy())
    return {name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in out.items()}
