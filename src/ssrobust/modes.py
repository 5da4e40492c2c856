"""The one train/eval-mode save-and-restore context for modules.

Flags are saved and restored per submodule, so a model that was deliberately half in eval mode
(e.g. frozen BatchNorm during finetuning) comes back exactly as it was, whatever ran inside."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

from torch import nn


@contextmanager
def module_modes(modules: Iterable[nn.Module], train: bool) -> Iterator[None]:
    """Put ``modules`` in train (``True``) or eval mode; restore every submodule's flag after."""
    modules = list(modules)
    saved = [(m, m.training) for top in modules for m in top.modules()]
    for top in modules:
        top.train(train)
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


def eval_mode(*modules: nn.Module):
    """``module_modes(modules, train=False)``."""
    return module_modes(modules, train=False)
