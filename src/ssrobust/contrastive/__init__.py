"""Components of adversarial contrastive pretraining (AdvCL, Fan et al. 2021), no training loop.

* :mod:`.losses` — NT-Xent and supervised-contrastive losses over ``[B, V, D]`` (registry
  ``CONTRASTIVE_LOSSES``);
* :mod:`.heads` — projection head, pseudo-label heads; :mod:`.batchnorm` — per-branch BatchNorm;
* :mod:`.views` — seeded, replayable SimCLR views (kornia); :mod:`.frequency` — the HFC view;
* :mod:`.pseudo_labels` — K-means pseudo-labels with an on-disk cache; :mod:`.features` — encoder
  features of an image set;
* :mod:`.attack` — the contrastive and pseudo-label attack objectives for ``PGD``;
* :mod:`.distributed` — all-gather with gradients for negatives across ranks.

See ``docs/contrastive.md``.
"""

from .attack import ContrastiveObjective, PseudoLabelObjective, attack_with, encode_views
from .batchnorm import MultiBatchNorm, convert_batchnorm, set_branch, use_branch
from .distributed import gather_with_grad
from .features import encode_dataset
from .frequency import high_frequency_component, low_frequency_disk
from .heads import ProjectionHead, PseudoLabelHeads
from .losses import (CONTRASTIVE_LOSSES, ContrastiveLoss, NTXentLoss, SupConLoss,
                     build_contrastive_loss, nt_xent, sup_con)
from .pseudo_labels import ADVCL_KS, cached_pseudo_labels, kmeans_pseudo_labels, scale_ks
from .views import SimCLRViewConfig, SimCLRViewParams, apply_simclr_view, sample_simclr_view, simclr_view

__all__ = [
    "CONTRASTIVE_LOSSES", "ContrastiveLoss", "NTXentLoss", "SupConLoss", "build_contrastive_loss",
    "nt_xent", "sup_con", "ProjectionHead", "PseudoLabelHeads", "MultiBatchNorm",
    "convert_batchnorm", "set_branch", "use_branch", "SimCLRViewConfig", "SimCLRViewParams",
    "sample_simclr_view", "apply_simclr_view", "simclr_view", "high_frequency_component",
    "low_frequency_disk", "ADVCL_KS", "scale_ks", "kmeans_pseudo_labels", "cached_pseudo_labels",
    "encode_dataset", "ContrastiveObjective", "PseudoLabelObjective", "encode_views",
    "attack_with", "gather_with_grad",
]
