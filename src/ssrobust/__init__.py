"""ssrobust: robust image models through self-supervised auxiliary tasks, and robustness evaluation.

Python API: :func:`train`, :func:`evaluate`, :func:`evaluate_model`, :func:`report`,
:func:`make_config`, :func:`model_card`. Components: ``ssrobust.models``, ``ssrobust.tasks``, ``ssrobust.attacks``,
``ssrobust.corruptions``, ``ssrobust.ood``, ``ssrobust.noise``.
"""

__version__ = "0.1.0"

from .api import evaluate, make_config, model_card, report, train  # noqa: E402
from .eval.runner import evaluate_model  # noqa: E402

__all__ = ["train", "evaluate", "evaluate_model", "report", "make_config", "model_card",
           "__version__"]
