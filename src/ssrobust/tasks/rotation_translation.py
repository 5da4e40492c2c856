"""Rotation + translation prediction for one-class OOD detection (Hendrycks et al. 2019, §4.2).

Three linear heads on the pooled trunk features predict the rotation (4-way), the vertical
translation (3-way) and the horizontal translation (3-way) of one of the 36 transformations of
:mod:`ssrobust.ood.transforms` (shifts ``{0, -8, +8}`` px, reflect padding). The loss is the mean of
the three cross-entropies, as in the authors' code.

Which transformed copies are trained on each step (``mode``):

* ``"rotations"`` (default, the authors' code): each image gets one random translation pair and is
  seen under all 4 rotations -> ``4 B`` extra images per step;
* ``"random"``: each image gets one of the 36 transformations uniformly at random -> ``B`` images
  (cheapest; the same expectation as ``"all"``, with more variance);
* ``"all"``: all 36 transformations of every image -> ``36 B`` images (exact, expensive).

The clean batch is not reused (the identity transform is only one of the 36). Random choices use
the ``generator`` passed to :meth:`prepare`, so a step is reproducible.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ood.transforms import NUM_TRANSFORMS, geometric_transforms, transform_per_sample, transform_table
from .base import TASKS, PretextTask, TaskBatch, TaskHead, mean_per_image

MODES = ("rotations", "random", "all")


def _randint(high: int, n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """``n`` integers in ``[0, high)`` drawn on the generator's device, returned on ``device``."""
    gen_device = generator.device if generator is not None else device
    return torch.randint(high, (n,), generator=generator, device=gen_device).to(device)


@TASKS.register("rotation_translation")
class RotationTranslationPrediction(PretextTask):
    """Heads ``r`` (4), ``v`` (3), ``h`` (3); targets are the labels of the applied transformation."""

    name = "rotation_translation"
    ood_scores = ("rotation_translation",)
    one_class_scores = ("rotation_translation",)
    provides = frozenset({"geometric"})  # head logits on the 36 geometric transforms

    def __init__(self, num_features: int, mode: str = "rotations", shift: int = 8,
                 translate_first: bool = False) -> None:
        super().__init__(num_features)
        if mode not in MODES:
            raise ValueError(f"rotation_translation mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        self.shift = shift
        self.translate_first = translate_first
        self.head_r = TaskHead(num_features, 4)
        self.head_v = TaskHead(num_features, 3)
        self.head_h = TaskHead(num_features, 3)

    def prepare(self, x: torch.Tensor, generator: torch.Generator | None = None) -> TaskBatch:
        b = x.shape[0]
        if self.mode == "all":
            imgs, r, v, h = geometric_transforms(x, self.shift, self.translate_first)
            return TaskBatch(imgs, (r, v, h))
        if self.mode == "random":
            t = _randint(NUM_TRANSFORMS, b, generator, x.device)
        else:  # "rotations": one translation pair per image, all four rotations of it
            pair = _randint(9, b, generator, x.device)
            t = (9 * torch.arange(4, device=x.device)[:, None] + pair[None, :]).flatten()
            x = x.repeat(4, 1, 1, 1)
        labels = transform_table(x.device)[t]
        imgs = transform_per_sample(x, t, self.shift, self.translate_first)
        return TaskBatch(imgs, (labels[:, 0], labels[:, 1], labels[:, 2]))

    def logits(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rotation [N, 4], vertical [N, 3], horizontal [N, 3])`` logits for pooled features."""
        return self.head_r(features), self.head_v(features), self.head_h(features)

    def loss(self, features: torch.Tensor | None, clean_features: torch.Tensor,
             batch: TaskBatch) -> torch.Tensor:
        assert features is not None
        r, v, h = batch.targets
        lr, lv, lh = (z.float() for z in self.logits(features))
        return (F.cross_entropy(lr, r) + F.cross_entropy(lv, v) + F.cross_entropy(lh, h)) / 3.0

    def per_sample_loss(self, features: torch.Tensor | None, clean_features: torch.Tensor,
                        batch: TaskBatch) -> torch.Tensor:
        assert features is not None
        r, v, h = batch.targets
        lr, lv, lh = (z.float() for z in self.logits(features))
        per_view = (F.cross_entropy(lr, r, reduction="none") + F.cross_entropy(lv, v, reduction="none")
                    + F.cross_entropy(lh, h, reduction="none")) / 3.0
        return mean_per_image(per_view, clean_features.shape[0])  # every mode stacks views t-major


def oe_uniform_loss(logits_r: torch.Tensor, logits_v: torch.Tensor, logits_h: torch.Tensor
                    ) -> torch.Tensor:
    """Outlier Exposure term: push the three heads to uniform on transformed outlier images.

    For each head, the cross-entropy from the uniform distribution, ``-1/K sum_k log p_k``, averaged
    over the images; the result is the mean over the three heads (same scale as the task loss). Its
    minimum, reached by uniform predictions, is ``(log 4 + 2 log 3) / 3``. Feed it the head logits
    of outlier images transformed exactly like the in-distribution ones (Hendrycks et al. 2019,
    §4.2: "we applied the aforementioned geometric transformations to the outlier images").
    """
    def uniform_ce(z: torch.Tensor) -> torch.Tensor:
        return -F.log_softmax(z.float(), dim=1).mean(dim=1).mean()

    return (uniform_ce(logits_r) + uniform_ce(logits_v) + uniform_ce(logits_h)) / 3.0
