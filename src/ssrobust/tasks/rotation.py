"""Rotation prediction (Gidaris et al. 2018) as used by Hendrycks et al. 2019.

L_SS = 1/4 * sum_{r in 0,90,180,270} CE(r, head(R_r x)), a linear 4-way head on the pooled features.
By default the 0-degree copy is the clean batch the classifier already sees (4B images per step,
as in the OOD code); ``separate_clean=True`` forwards its own 0-degree copy (5B, the adversarial
code's variant).

Cheaper variants (issue 18; which of them keeps the robustness gains is an empirical question):

* ``rotations="one"``: one rotation per image, drawn uniformly from the four with the step's
  generator; images that draw 0 degrees reuse the clean forward (about 1.75B images per step
  instead of 4B), unless ``separate_clean``.
* ``fraction=f`` (every task has it, see :mod:`ssrobust.tasks.base`): the task sees only the first
  ``round(f * B)`` images of the batch, e.g. 4 rotations on a quarter of the batch cost ~1.75B.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .base import TASKS, PretextTask, TaskBatch, TaskHead
from .decoder import at_least_float32

ROTATION_MODES = ("all", "one")


def rotate_batch(x: torch.Tensor, ks: tuple[int, ...] = (0, 1, 2, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``R_k x`` (k quarter turns counter-clockwise) for each k: returns ``[len(ks)*B, ...]``
    images and the matching labels ``k`` (``[len(ks)*B]`` int64), k-major."""
    imgs = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in ks])
    labels = torch.tensor(ks, device=x.device).repeat_interleave(x.shape[0])
    return imgs, labels


def rotate_each(x: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """``x`` ``[n, C, H, W]`` (square images) with image ``i`` turned ``ks[i]`` quarter turns."""
    out = x.clone()
    for k in (1, 2, 3):
        sel = ks == k
        if bool(sel.any()):
            out[sel] = torch.rot90(x[sel], k, dims=(2, 3))
    return out


@TASKS.register("rotation")
class RotationPrediction(PretextTask):
    """Args: ``separate_clean`` (forward an own 0-degree copy), ``rotations`` (``all``: the four
    rotations of each image; ``one``: one random rotation per image), ``fraction`` (share of the
    batch the task sees, in (0, 1])."""

    name = "rotation"
    ood_scores = ("rotation", "kl_rotation")
    one_class_scores = ("rotnet",)
    provides = frozenset({"rotation"})  # rotation logits of the four rotated copies
    applies_fraction = True  # prepare slices, per_sample_loss pads (combined with rotations="one")

    def __init__(self, num_features: int, separate_clean: bool = False, rotations: str = "all",
                 fraction: float = 1.0) -> None:
        super().__init__(num_features)
        if rotations not in ROTATION_MODES:
            raise ConfigError(f"rotation: rotations must be one of {', '.join(ROTATION_MODES)}, got {rotations!r}")
        self.set_fraction(fraction)
        self.separate_clean = separate_clean
        self.rotations = rotations
        self.head = TaskHead(num_features, 4)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        m = self.subset_size(x.shape[0])
        xs = x if m == x.shape[0] else x[:m]
        if self.rotations == "one":
            return self._prepare_one(xs, generator)
        ks = (0, 1, 2, 3) if self.separate_clean else (1, 2, 3)
        imgs, labels = rotate_batch(xs, ks)
        clean_rows = None
        if not self.separate_clean:  # the 0-degree copies are the first m clean images
            labels = torch.cat([torch.zeros(m, dtype=torch.long, device=x.device), labels])
            clean_rows = slice(0, m)
        image = torch.arange(m, device=x.device).repeat(4)  # k-major: prediction j*m+i is of image i
        return TaskBatch(imgs, labels, {"clean_rows": clean_rows, "image_index": image})

    def _prepare_one(self, xs: torch.Tensor, generator: torch.Generator | None) -> TaskBatch:
        """One rotation ``k_i`` per image; targets are ``[k of the clean-shared images (all 0),
        k of the forwarded views]``, matching the order :meth:`loss` concatenates features in."""
        ks = torch.randint(0, 4, (xs.shape[0],), generator=generator, device=xs.device)
        if self.separate_clean:
            return TaskBatch(rotate_each(xs, ks), ks,
                             {"clean_rows": None, "image_index": torch.arange(len(ks), device=xs.device)})
        clean_idx = (ks == 0).nonzero().flatten()
        view_idx = (ks != 0).nonzero().flatten()
        imgs = rotate_each(xs[view_idx], ks[view_idx]) if len(view_idx) else None
        return TaskBatch(imgs, torch.cat([ks[clean_idx], ks[view_idx]]),
                         {"clean_rows": clean_idx, "image_index": torch.cat([clean_idx, view_idx])})

    def _predictions(self, features, clean_features, batch) -> torch.Tensor:
        """Rotation logits in the order of ``batch.targets``."""
        rows = batch.extra.get("clean_rows")  # which clean features serve as 0-degree predictions
        parts = [] if rows is None else [clean_features[rows]]
        if features is not None:
            parts.append(features)
        f = parts[0] if len(parts) == 1 else torch.cat(parts)
        return at_least_float32(self.head(f))

    def loss(self, features, clean_features, batch):
        # Mean over all predictions == 1/4 sum over rotations of the per-rotation mean CE (mode all).
        return F.cross_entropy(self._predictions(features, clean_features, batch), batch.targets)

    def per_sample_loss(self, features, clean_features, batch):
        """``[B]``: each image's mean CE over its rotations. With ``fraction < 1`` the images outside
        the subset get 0 and those inside are scaled by ``B / m``, so the mean still equals :meth:`loss`."""
        ce = F.cross_entropy(self._predictions(features, clean_features, batch), batch.targets,
                             reduction="none")
        b, image = clean_features.shape[0], batch.extra["image_index"]
        sums = torch.zeros(b, dtype=ce.dtype, device=ce.device).index_add_(0, image, ce)
        counts = torch.zeros(b, dtype=ce.dtype, device=ce.device).index_add_(0, image, torch.ones_like(ce))
        seen = counts > 0
        return torch.where(seen, sums / counts.clamp_min(1), torch.zeros_like(sums)) * (b / int(seen.sum()))

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Rotation logits ``[N, 4]`` for pooled features (used by OOD scores)."""
        return self.head(features)
