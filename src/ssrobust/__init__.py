"""ssrobust: robust image models through self-supervised auxiliary tasks, and robustness evaluation.

Python API: :func:`train`, :func:`evaluate`, :func:`evaluate_model`, :func:`report`,
:func:`make_config`, :func:`model_card`, :func:`evaluate_encoders`. Components: ``ssrobust.models``, ``ssrobust.tasks``, ``ssrobust.attacks``,
``ssrobust.corruptions``, ``ssrobust.ood``, ``ssrobust.label_noise``.

The package root is lazy: the API functions are imported on first use, so importing a component
(``import ssrobust.attacks``) does not load the trainer.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from ._version import __version__

_API = {"train": ".api", "evaluate": ".api", "make_config": ".api", "model_card": ".api",
        "report": ".api", "evaluate_model": ".eval.evaluate", "evaluate_encoders": ".api"}

__all__ = ["train", "evaluate", "evaluate_model", "report", "make_config", "model_card",
           "evaluate_encoders", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _CallableSubpackage(types.ModuleType):
    """``ssrobust.train`` and ``ssrobust.report`` name both an API function and a subpackage.
    Once the subpackage is imported it is the attribute (so ``import ssrobust.report.render as r``
    works), and calling it calls the API function (so ``ssrobust.train(...)`` keeps working)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        api = importlib.import_module(".api", __name__)
        return getattr(api, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


class _Package(types.ModuleType):
    """The package root: gives its subpackages named like API functions a ``__call__``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _API and type(value) is types.ModuleType:
            value.__class__ = _CallableSubpackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
