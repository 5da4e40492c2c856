"""The ``ood`` suite: OOD detection of a classifier against synthetic and user-given OOD sets.

The test set (``ctx.images``) is in-distribution. Each OOD set is scored with every selected score
from one shared forward per batch (:func:`ssrobust.ood.score_images`), and the suite records
AUROC, AUPR-in, AUPR-out and FPR at 95% TPR per score and set (fractions; OOD is the positive
class; see :mod:`ssrobust.ood.metrics`), the mean over sets, and ROC curves on a regular FPR grid.

OOD sets come from the synthetic generators, from arrays in ``ctx.extra["ood_sets"]``, from files,
folders or data sources (``ood_paths``, read by :func:`load_image_set`), and from the test images of
the classes a run did not train on (``held_out``, with ``data.classes``).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from ..data.ood_sets import SYNTHETIC_OOD, as_ood_images, default_seed, make_ood_set
from ..data.image_sets import image_set_config, load_image_set
from ..ood.metrics import METRIC_KEYS, metrics, roc_points
from ..images import to_float_images
from ..ood.scores import OODScore, build_score, check_tasks, score_images
from ..tasks.base import declared_scores
from .base import SUITES, EvalContext


DEFAULT_SYNTHETIC = ("gaussian", "rademacher", "blobs")


def default_scores(tasks: Mapping[str, Any]) -> list[str]:
    """msp, kl_uniform, energy; plus the scores each task declares (``PretextTask.ood_scores``:
    rotation and kl_rotation for ``rotation``, rotation_translation for ``rotation_translation``)."""
    return ["msp", "kl_uniform", "energy"] + declared_scores({k: tasks[k] for k in sorted(tasks)})


def _user_sets(ctx: EvalContext, ood_paths: Mapping[str, Any] | None, held_out: bool,
               size: tuple[int, int]) -> dict[str, tuple[Any, str]]:
    """``{name: (images, source label)}`` from ``ctx.extra["ood_sets"]``, ``ood_paths`` and the
    held-out classes, in that order (a later one replaces an earlier one of the same name)."""
    user = {k: (v, "user") for k, v in (ctx.extra.get("ood_sets") or {}).items()}
    for name, value in (ood_paths or {}).items():
        cfg = image_set_config(value, f"eval.options.ood.ood_paths.{name}")
        label = cfg.root if cfg.source == "path" else f"{cfg.source}:{cfg.split}"
        user[name] = (load_image_set(cfg, size, f"OOD set {name!r}"), str(label))
    if held_out:
        images = ctx.extra.get("held_out_images")
        if images is None:
            raise ConfigError("ood suite: held_out=true needs the test images of held-out classes: "
                              "train with data.classes set to a subset of the classes")
        user["held_out"] = (images, "held_out")
    return user


def _resolve_sets(user: Mapping[str, tuple[Any, str]], names: Sequence[str] | None, n: int,
                  max_images: int | None, size: tuple[int, int], seed: int
                  ) -> dict[str, tuple[np.ndarray, str]]:
    """``{name: (uint8 images, source)}``; user sets take precedence over synthetic ones with the
    same name and are cut to ``max_images``; synthetic sets have ``n`` images."""
    if names is None:
        names = list(DEFAULT_SYNTHETIC) + [k for k in user if k not in DEFAULT_SYNTHETIC]
    if not names:
        raise ConfigError("ood suite: ood_sets is empty")
    sets: dict[str, tuple[np.ndarray, str]] = {}
    for name in names:
        if name in user:
            images, source = user[name]
            sets[name] = (as_ood_images(images, f"OOD set {name!r}")[:max_images], source)
        elif name in SYNTHETIC_OOD:
            sets[name] = (make_ood_set(name, n, size, seed=default_seed(name, seed)), "synthetic")
        else:
            known = ", ".join(sorted(set(SYNTHETIC_OOD.names()) | set(user)))
            hint = " (set held_out=true)" if name == "held_out" else ""
            raise ConfigError(f"ood suite: unknown OOD set {name!r}{hint}; known: {known}")
    return sets


def _build_scores(names: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
                  ) -> dict[str, OODScore]:
    options = dict(options or {})
    unknown = set(options) - set(names)
    if unknown:
        raise ConfigError(f"ood suite: score_options for unselected scores: {sorted(unknown)}")
    return {name: build_score(name, **options.get(name, {})) for name in names}


def _fit_scores(ctx: EvalContext, scores: Mapping[str, OODScore]) -> None:
    """Call ``fit`` on the scores that define one, with batches of the training images."""
    to_fit = [s for s in scores.values() if s.needs_fit]
    if not to_fit:
        return
    if ctx.train_images is None:
        raise ConfigError("ood suite: a selected score needs fitting but ctx.train_images is None")

    def batches() -> Iterator[torch.Tensor]:
        for i in range(0, len(ctx.train_images), ctx.batch_size):
            yield to_float_images(ctx.train_images[i: i + ctx.batch_size], ctx.device)

    for s in to_fit:
        s.fit(ctx.model, batches(), ctx.tasks)


def _mean_metrics(per_set: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    return {m: float(np.mean([r[m] for r in per_set.values()])) for m in METRIC_KEYS}


def _summarize(per_set: dict[str, dict], sources: Mapping[str, str]) -> dict[str, Any]:
    """A score's record: ``per_set``, ``mean`` over all sets and ``mean_synthetic`` over the
    built-in synthetic sets (far-OOD; None when none was evaluated)."""
    far = {k: v for k, v in per_set.items() if sources[k] == "synthetic"}
    return {"per_set": per_set, "mean": _mean_metrics(per_set),
            "mean_synthetic": _mean_metrics(far) if far else None}


def _check_detector(detector: str | None, score_names: Sequence[str]) -> None:
    if detector is not None and detector not in score_names:
        raise ConfigError(f"ood suite: detector {detector!r} is not among the scores "
                          f"({', '.join(score_names)}); add it to scores")


@SUITES.register("ood")
def ood_detection(ctx: EvalContext, ood_sets: Sequence[str] | None = None,
                  scores: Sequence[str] | None = None, max_images: int | None = None,
                  roc_num: int = 101, score_options: Mapping[str, Mapping[str, Any]] | None = None,
                  ood_paths: Mapping[str, str | Mapping[str, Any]] | None = None,
                  held_out: bool = False, detector: str | None = None) -> dict:
    """Evaluate OOD detection with the test set as in-distribution.

    Args:
        ood_sets: names of synthetic sets (``gaussian``, ``rademacher``, ``blobs``) or of arrays in
            ``ctx.extra["ood_sets"]`` / ``ood_paths`` / ``"held_out"``; default: the three
            synthetic sets plus every other set. Synthetic sets have the test set's image size and
            count (after ``max_images``) and a seed derived from ``ctx.seed`` and the set name.
        scores: names in ``OOD_SCORES``; default :func:`default_scores` of ``ctx.tasks``.
        max_images: use at most this many test images and images per OOD set.
        roc_num: number of points of the recorded ROC curves.
        score_options: ``{score: {option: value}}``, e.g. ``{"energy": {"temperature": 2.0}}``.
        ood_paths: ``{name: path or ImageSetConfig mapping}``: OOD sets read by
            :func:`load_image_set` (e.g. ``{svhn: data/svhn/test_32x32.mat, cifar100: {source:
            cifar100, root: data/cifar-100-python}}``); they must have the test images' size.
        held_out: add the set ``"held_out"``: the test images of the classes the run did not train
            on (``ctx.extra["held_out_images"]``, provided when ``data.classes`` is set).
        detector: one of the scores, the method's own detector (e.g. ``msp`` for a plain
            classifier, ``kl_rotation`` with rotation): its record is repeated under
            ``"detector"`` so runs that use different scores share one metric path.
    Returns:
        ``{"n_in", "ood_sets": {set: {"n", "source"}}, "scores": {score: {"per_set": {set:
        metrics}, "mean": metrics, "mean_synthetic": metrics | None}}, "roc": {score: {set:
        {"fpr", "tpr"}}}, "options"}``, and ``"detector": {"score", "per_set", "mean",
        "mean_synthetic"}`` with ``detector``.
    """
    score_names = list(scores) if scores is not None else default_scores(ctx.tasks)
    _check_detector(detector, score_names)
    objs = _build_scores(score_names, score_options)
    check_tasks(objs, ctx.tasks)
    n_in = len(ctx.images) if max_images is None else min(int(max_images), len(ctx.images))
    if n_in == 0:
        raise ConfigError("ood suite: no in-distribution test images")
    images_in = ctx.images[:n_in]
    size = (int(images_in.shape[1]), int(images_in.shape[2]))
    user = _user_sets(ctx, ood_paths, held_out, size)
    sets = _resolve_sets(user, ood_sets, n_in, max_images, size, ctx.seed)
    _fit_scores(ctx, objs)

    def run(images: Any) -> dict[str, np.ndarray]:
        return score_images(ctx.model, images, ctx.tasks, objs, ctx.batch_size, ctx.device,
                            ctx.autocast)

    s_in = run(images_in)
    per_score: dict[str, dict] = {name: {"per_set": {}} for name in objs}
    roc: dict[str, dict] = {name: {} for name in objs}
    for set_name, (images, _) in sets.items():
        s_out = run(images)
        for name in objs:
            per_score[name]["per_set"][set_name] = metrics(s_in[name], s_out[name])
            roc[name][set_name] = roc_points(s_in[name], s_out[name], roc_num)
    sources = {k: v[1] for k, v in sets.items()}
    per_score = {name: _summarize(rec["per_set"], sources) for name, rec in per_score.items()}
    record = {
        "n_in": n_in,
        "ood_sets": {k: {"n": int(len(v[0])), "source": v[1]} for k, v in sets.items()},
        "scores": per_score,
        "roc": roc,
        "options": {"ood_sets": list(sets), "scores": score_names, "max_images": max_images,
                    "roc_num": roc_num, "score_options": dict(score_options or {}),
                    "ood_paths": dict(ood_paths or {}), "held_out": held_out, "detector": detector},
    }
    if detector is not None:
        record["detector"] = {"score": detector, **per_score[detector]}
    return record
