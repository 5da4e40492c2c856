"""Separate BatchNorm statistics per input branch (clean / adversarial), switchable at run time.

Adversarial and clean images have different activation statistics; AdvCL (Fan et al. 2021, after
Xie et al. 2020 "AdvProp") keeps one BatchNorm per branch — ``normal`` for the clean views, ``pgd``
for the contrastive adversarial view, ``pgd_ce`` for the pseudo-label one — and shares every other
weight. :class:`MultiBatchNorm` holds one BatchNorm per branch name and normalizes with the
*active* one; :func:`convert_batchnorm` swaps every BatchNorm of any backbone or head for one, and
:func:`use_branch` selects the branch for a forward pass and restores the previous one.

State-dict keys change from ``<bn>.weight`` to ``<bn>.bns.<branch>.weight``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator, Sequence

import torch
from torch import nn

_BN = nn.modules.batchnorm._BatchNorm


def _check_branches(branches: Sequence[str]) -> tuple[str, ...]:
    names = tuple(branches)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"BatchNorm branches must be distinct names, got {list(names)}")
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"BatchNorm branch name {name!r} is not an identifier (e.g. 'clean', 'adv')")
    return names


class MultiBatchNorm(nn.Module):
    """One copy of ``template`` (a BatchNorm1d/2d/3d) per branch; ``forward`` uses ``active``.

    Every copy starts with the template's parameters and running statistics. Shapes are those of
    the template (``[B, C]`` or ``[B, C, H, W]``).
    """

    def __init__(self, template: _BN, branches: Sequence[str] = ("clean", "adv")) -> None:
        super().__init__()
        self.branches = _check_branches(branches)
        self.bns = nn.ModuleDict({name: copy.deepcopy(template) for name in self.branches})
        self.active = self.branches[0]

    def set_branch(self, name: str) -> None:
        if name not in self.bns:
            raise KeyError(f"unknown BatchNorm branch {name!r}; known: {', '.join(self.branches)}")
        self.active = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bns[self.active](x)

    def extra_repr(self) -> str:
        return f"branches={list(self.branches)}, active={self.active!r}"


def convert_batchnorm(module: nn.Module, branches: Sequence[str] = ("clean", "adv")) -> nn.Module:
    """Replace every BatchNorm inside ``module`` (in place) by a :class:`MultiBatchNorm` with these
    branches and return ``module`` (a new :class:`MultiBatchNorm` if ``module`` itself is one
    BatchNorm). Modules that are already :class:`MultiBatchNorm` are left alone."""
    names = _check_branches(branches)
    if isinstance(module, _BN):
        return MultiBatchNorm(module, names)
    for child_name, child in module.named_children():
        if isinstance(child, MultiBatchNorm):
            continue
        if isinstance(child, _BN):
            setattr(module, child_name, MultiBatchNorm(child, names))
        else:
            convert_batchnorm(child, names)
    return module


def set_branch(module: nn.Module, name: str) -> None:
    """Make ``name`` the active branch of every :class:`MultiBatchNorm` inside ``module``."""
    for m in module.modules():
        if isinstance(m, MultiBatchNorm):
            m.set_branch(name)


@contextmanager
def _branch(modules: Sequence[nn.Module], name: str) -> Iterator[None]:
    saved = [(m, m.active) for top in modules for m in top.modules() if isinstance(m, MultiBatchNorm)]
    try:
        for m, _ in saved:
            m.set_branch(name)
        yield
    finally:
        for m, active in saved:
            m.active = active


def use_branch(modules: nn.Module | Sequence[nn.Module], name: str | None) -> ContextManager:
    """Context: every :class:`MultiBatchNorm` in ``modules`` uses branch ``name``; the previous
    branches come back afterwards. ``name=None`` changes nothing (models with plain BatchNorm)."""
    if name is None:
        return nullcontext()
    return _branch([modules] if isinstance(modules, nn.Module) else list(modules), name)
