"""Orthogonalized momentum updates for conv filters (Muon, Jordan et al. 2024), next to plain SGD.

:class:`OrthoSGD` is one optimizer for the whole network: parameter groups with
``orthogonalize=True`` (the loop puts every trainable conv filter there when ``optim.muon.lr > 0``)
step along an approximately orthogonalized momentum, the others exactly as
``torch.optim.SGD`` (coupled weight decay, momentum without dampening, optional Nesterov).
PyTorch's own ``torch.optim.Muon`` takes 2-d weights only; the filters here are 4-d and are
orthogonalized as the matrix ``out_channels x (in_channels * kh * kw)``.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch

# Quintic Newton-Schulz coefficients published with Muon: they push every singular value of the
# normalized input into roughly [0.7, 1.2] within a few steps (not exactly to 1, which does not hurt).
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(g: torch.Tensor, steps: int = 3, eps: float = 1e-7) -> torch.Tensor:
    """An approximation of ``U @ V.T`` for the SVD ``U S V.T`` of ``g`` viewed as a matrix
    ``g.shape[0] x rest``, by ``steps`` quintic Newton-Schulz iterations in fp32; same shape as ``g``.

    Scaling ``g`` by any positive factor leaves the result unchanged (up to ``eps``)."""
    if g.ndim < 2:
        raise ValueError(f"orthogonalize needs a tensor of at least 2 dimensions, got shape {tuple(g.shape)}")
    a, b, c = NS_COEFFICIENTS
    x = g.reshape(g.shape[0], -1).float()
    x = x / (x.norm() + eps)  # spectral norm <= Frobenius norm = 1: inside the iteration's range
    wide = x.shape[0] <= x.shape[1]
    if not wide:
        x = x.T  # iterate on the smaller Gram matrix
    for _ in range(steps):  # x <- a x + (b G + c G^2) x with G = x x^T, as two fused matmuls
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    if not wide:
        x = x.T
    return x.reshape(g.shape).to(g.dtype)


class OrthoSGD(torch.optim.Optimizer):
    """SGD with momentum whose ``orthogonalize`` groups take Muon steps.

    Per group: ``lr``, ``momentum``, ``nesterov``, ``weight_decay`` (coupled, added to the gradient,
    as in SGD), ``orthogonalize`` (default False), ``ns_steps`` (3) and ``normalize`` (True: before
    each orthogonalized step, rescale each such weight to Frobenius norm ``sqrt(out_channels)``, so
    the step's relative size is set by ``lr`` alone, as in airbench's Muon recipe).
    Groups without ``orthogonalize`` update exactly as ``torch.optim.SGD`` with the same settings.
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        if not lr >= 0:
            raise ValueError(f"OrthoSGD: lr must be >= 0, got {lr}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay,
                        orthogonalize=False, ns_steps=3, normalize=True)
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["nesterov"] and group["momentum"] <= 0:
                raise ValueError("OrthoSGD: nesterov needs momentum > 0")
            if group["orthogonalize"]:
                bad = [tuple(p.shape) for p in group["params"] if p.ndim < 2]
                if bad:
                    raise ValueError(f"OrthoSGD: orthogonalized groups need weights of >= 2 dimensions, got {bad}")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if wd:
                    d = d.add(p, alpha=wd)
                if mom:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.detach().clone()
                    else:
                        buf.mul_(mom).add_(d)
                    d = d.add(buf, alpha=mom) if group["nesterov"] else buf
                if group["orthogonalize"]:
                    if group["normalize"]:
                        p.mul_(p.shape[0] ** 0.5 / p.norm().clamp_min(1e-12))
                    d = orthogonalize(d, group["ns_steps"])
                p.add_(d, alpha=-lr)
        return loss
