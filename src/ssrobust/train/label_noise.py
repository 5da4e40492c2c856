"""Training strategies for label noise (Hendrycks et al. 2019, §3.3).

* ``glc``: the second stage of Gold Loss Correction (Hendrycks et al. 2018): CE on the trusted
  images of the batch (``extras["trusted"]``) and ``-log Σ_j p(j|x) Ĉ[j, ỹ]`` on the others.
* ``forward``: forward correction (Patrini et al. 2017) with a fixed matrix on every image.
* ``ss_only``: self-supervised pretraining: the pretext-task losses alone (the classifier term
  is zero), e.g. the paper's 100 epochs of rotation-only pretraining before fine-tuning.

A matrix is a strategy option: either the nested list itself (``matrix``, recorded in the run's
``config.yaml``) or ``matrix_from``, the directory of the finished first-stage run. Then the run
estimates the matrix itself when it starts (:func:`matrix_from_run`: the first-stage model's
softmax on this run's training images) and caches it in its own folder (``corruption_matrix.json``),
so the config is the same on every invocation and a resumed run trains with the same matrix. The
pretext-task losses still go through the run's weighting: the strategies only replace the
classifier's loss (``Network(..., main_loss=...)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .. import distributed as dist
from ..errors import ConfigError
from ..images import to_float_images
from ..label_noise.correction import (ForwardCorrection, GoldLossCorrection, estimate_corruption_matrix,
                                      estimate_forward_matrix)
from ..runfiles import read_json, write_json
from .strategies import STRATEGIES, PrepareContext, StepOutput, Strategy, no_classifier_loss

MATRIX_FILE = "corruption_matrix.json"  # the estimate, in the folder of the run that uses it


@torch.no_grad()
def _softmax_of_run(source: Path, images: Any, index: torch.Tensor, device: torch.device,
                    batch_size: int = 256) -> torch.Tensor:
    """``[len(index), K]`` float32 softmax of ``source``'s trained classifier (eval mode, no
    augmentation) on ``images[index]`` (uint8 ``[N, H, W, 3]``)."""
    from ..runs.load import load_network

    _, net = load_network(source, device)
    out = [torch.softmax(net.model(to_float_images(images[index[i: i + batch_size].numpy()], device)).float(), 1).cpu()
           for i in range(0, len(index), batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


def _estimate(correction: str, source: Path, splits: Any, device: torch.device,
              quantile: float) -> tuple[list[list[float]], int]:
    """The matrix and the number of images it was estimated on (see :func:`matrix_from_run`)."""
    extras, k = splits.train.extras, splits.num_classes
    if "trusted" not in extras or (correction == "glc" and "clean_labels" not in extras):
        raise ConfigError(f"strategy {correction!r} with matrix_from needs data.label_noise (the "
                          f"trusted split and the clean labels of the training images)")
    trusted = torch.as_tensor(extras["trusted"], dtype=torch.bool)
    index = torch.nonzero(trusted if correction == "glc" else ~trusted).flatten()
    probs = _softmax_of_run(source, splits.train.images, index, device)
    if probs.shape[1:] != (k,) and len(index):
        raise ConfigError(f"matrix_from {source} predicts {probs.shape[1]} classes; this run has {k}")
    if correction == "glc":
        matrix = estimate_corruption_matrix(probs, torch.as_tensor(extras["clean_labels"])[index], k)
    else:
        matrix = estimate_forward_matrix(probs, k, quantile)
    m = matrix.double()  # float64 rows renormalized after the float32 estimate: they sum to 1
    return (m / m.sum(1, keepdim=True)).tolist(), len(index)


def matrix_from_run(correction: str, source: str | Path, ctx: PrepareContext,
                    quantile: float = 0.97) -> list[list[float]]:
    """The correction matrix of a second-stage run, from the finished first-stage run ``source``.

    ``glc``: ``Ĉ`` from ``source``'s softmax on the trusted training images and their clean
    labels (:func:`estimate_corruption_matrix`); ``forward``: the anchor points of its softmax on
    the untrusted training images (:func:`estimate_forward_matrix`, ``quantile``). Deterministic;
    cached in ``<run_dir>/corruption_matrix.json`` and reused while ``correction``, ``source`` and
    ``quantile`` are the same (so a resumed run keeps its matrix). ``source`` is only read.
    """
    source = Path(source)
    key = {"correction": correction, "source": str(source), "quantile": quantile}
    cache = ctx.run_dir / MATRIX_FILE
    if cache.is_file():
        old = read_json(cache)
        if {k: old.get(k) for k in key} == key:
            return old["matrix"]
    if not (source / "model.pt").is_file():
        raise ConfigError(f"strategy {correction!r}: matrix_from {source} holds no finished run "
                          f"(no model.pt); train that run first")
    matrix, n = _estimate(correction, source, ctx.splits, ctx.device, quantile)
    if dist.rank() == 0:
        write_json(cache, {**key, "num_images": n, "matrix": matrix})
    return matrix


def _matrix_option(name: str, matrix: Any, matrix_from: Any) -> None:
    """Exactly one of ``matrix`` and ``matrix_from`` must be given."""
    if (matrix is None) == (matrix_from is None):
        raise ConfigError(f"strategy {name!r} needs exactly one of options.matrix (a [K, K] nested "
                          f"list) and options.matrix_from (the first-stage run directory)")
    if matrix_from is not None and not isinstance(matrix_from, str):
        raise ConfigError(f"strategy {name!r}: options.matrix_from must be a run directory, got {matrix_from!r}")


@STRATEGIES.register("glc")
class GoldLossCorrectionStrategy(Strategy):
    """GLC stage 2 with the estimate ``matrix`` (``[K, K]``, rows sum to 1), or with the estimate
    from the first-stage run ``matrix_from`` (made when the run starts, :func:`matrix_from_run`).

    Needs the per-image bool ``trusted`` mask from the training split (``data.label_noise`` with
    ``trusted_fraction > 0`` provides it). The batch loss is the GLC code's: the sum of the
    per-image losses divided by the batch size.
    """

    batch_extras = ("trusted",)

    def __init__(self, matrix: Sequence[Sequence[float]] | None = None, matrix_from: str | None = None) -> None:
        _matrix_option("glc", matrix, matrix_from)
        self.matrix_from = matrix_from
        self.loss = GoldLossCorrection(matrix) if matrix is not None else None

    def prepare(self, ctx: PrepareContext) -> None:
        if self.matrix_from is not None:
            self.loss = GoldLossCorrection(matrix_from_run("glc", self.matrix_from, ctx))

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None,
                 extras: dict[str, torch.Tensor] | None = None) -> StepOutput:
        if not extras or "trusted" not in extras:
            raise ConfigError("strategy 'glc' needs the per-image 'trusted' mask in the batch")
        trusted = extras["trusted"]
        logits, main, aux = net(x, y, generator,
                                main_loss=lambda z, labels: self.loss(z, labels, trusted))
        return StepOutput(logits, main, aux)


@STRATEGIES.register("forward")
class ForwardCorrectionStrategy(Strategy):
    """Forward-corrected loss ``-log (p(·|x)ᵀ C)[ỹ]`` on every image (Patrini et al. 2017).

    With ``use_trusted=True`` the images marked ``trusted`` get plain CE instead (their labels are
    clean); Patrini et al. have no trusted data, so the default is False. ``matrix_from``:
    estimate ``C`` when the run starts from the first-stage run's softmax (anchor ``quantile``).
    """

    def __init__(self, matrix: Sequence[Sequence[float]] | None = None, use_trusted: bool = False,
                 matrix_from: str | None = None, quantile: float = 0.97) -> None:
        _matrix_option("forward", matrix, matrix_from)
        if not 0.0 <= quantile <= 1.0:
            raise ConfigError(f"strategy 'forward': options.quantile must be in [0, 1], got {quantile}")
        self.matrix_from, self.quantile = matrix_from, quantile
        self.loss = ForwardCorrection(matrix) if matrix is not None else None
        self.use_trusted = use_trusted
        self.batch_extras = ("trusted",) if use_trusted else ()

    def prepare(self, ctx: PrepareContext) -> None:
        if self.matrix_from is not None:
            self.loss = ForwardCorrection(matrix_from_run("forward", self.matrix_from, ctx, self.quantile))

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None,
                 extras: dict[str, torch.Tensor] | None = None) -> StepOutput:
        trusted = extras.get("trusted") if (extras and self.use_trusted) else None
        if self.use_trusted and trusted is None:
            raise ConfigError("strategy 'forward' with use_trusted=true needs the 'trusted' mask")
        logits, main, aux = net(x, y, generator,
                                main_loss=lambda z, labels: self.loss(z, labels, trusted))
        return StepOutput(logits, main, aux)


@STRATEGIES.register("ss_only")
class SelfSupervisedOnly(Strategy):
    """Pretext-task losses only: the labels are ignored (rotation-only pretraining)."""

    def __call__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 generator: torch.Generator | None,
                 extras: dict[str, torch.Tensor] | None = None) -> StepOutput:
        logits, main, aux = net(x, y, generator, main_loss=no_classifier_loss)
        if not aux:
            raise ConfigError("strategy 'ss_only' needs at least one pretext task in tasks")
        return StepOutput(logits, main, aux)
