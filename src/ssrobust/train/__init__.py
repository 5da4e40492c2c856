"""The training loop, run directories and strategies."""

from . import label_noise, precision  # noqa: F401  (label_noise registers glc, forward, ss_only)
from . import adversarial  # noqa: F401  (registers pgd_at, trades)
from . import one_class  # noqa: F401  (registers one_class_oe)
from .config import ComponentConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig
from .loop import build_network, cosine_lr, ensure_run, fit
from .network import Network
from .strategies import STRATEGIES, StepOutput, Strategy

__all__ = ["ComponentConfig", "EvalConfig", "ModelConfig", "OptimConfig", "RunConfig", "build_network",
           "cosine_lr", "ensure_run", "fit", "Network", "STRATEGIES", "StepOutput", "Strategy"]
