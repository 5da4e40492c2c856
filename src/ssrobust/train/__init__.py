"""The training loop (:mod:`.trainer`) and its strategies. Training never evaluates: see
:mod:`ssrobust.experiments.run` for train + evaluate."""

from . import label_noise  # noqa: F401  (registers glc, forward, ss_only)
from . import adversarial  # noqa: F401  (registers pgd_at, trades)
from . import one_class  # noqa: F401  (registers one_class_oe)
from . import encoder_finetune  # noqa: F401  (registers encoder_finetune)
from . import contrastive  # noqa: F401  (registers contrastive: simclr, acl, advcl)
from .strategies import STRATEGIES, StepOutput, Strategy
from .trainer import FitResult, cosine_lr, fit, fit_run

__all__ = ["FitResult", "cosine_lr", "fit", "fit_run", "STRATEGIES", "StepOutput", "Strategy"]
