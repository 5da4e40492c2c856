"""End-to-end GLC on a toy problem: 2-D Gaussian blobs, linear softmax model, flip noise.

Flip noise with s = 0.45 pulls each class's noisy labels towards one other class; a linear model
trained with plain CE on those labels moves its decision boundaries, while GLC (Hendrycks et al.
2018) with 5% trusted labels recovers nearly the clean-label accuracy.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ssrobust.label_noise import estimate_corruption_matrix, flip_matrix, glc_loss, make_noisy_dataset

K = 4


def _blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centers = 1.5 * torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    y = torch.randint(0, K, (n,), generator=g)
    return centers[y] + torch.randn(n, 2, generator=g), y


def _train(x: torch.Tensor, loss_fn: Callable[[torch.Tensor], torch.Tensor],
           steps: int = 200, lr: float = 0.5, momentum: float = 0.9) -> torch.nn.Linear:
    """Full-batch gradient descent with heavy-ball momentum on a linear softmax model."""
    torch.manual_seed(0)
    model = torch.nn.Linear(2, K)
    params = list(model.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    for _ in range(steps):
        grads = torch.autograd.grad(loss_fn(model(x)), params)
        with torch.no_grad():
            for p, v, g in zip(params, velocity, grads):
                v.mul_(momentum).add_(g)
                p.sub_(lr * v)
    return model


@torch.no_grad()
def _error(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(1) != y).float().mean().item()


def test_glc_beats_no_correction_under_flip_noise() -> None:
    x, y = _blobs(3000, seed=1)
    x_test, y_test = _blobs(3000, seed=101)
    c = flip_matrix(K, 0.45, seed=1)
    data = make_noisy_dataset(y, c, trusted_fraction=0.05, seed=1)
    noisy, trusted = data.labels_noisy, data.trusted_mask

    clean = _train(x, lambda z: F.cross_entropy(z, y))
    no_correction = _train(x, lambda z: F.cross_entropy(z, noisy))
    # GLC stage 1: a model on the untrusted data; its softmax on trusted examples gives Ĉ.
    stage1 = _train(x[~trusted], lambda z: F.cross_entropy(z, noisy[~trusted]))
    with torch.no_grad():
        probs = F.softmax(stage1(x[trusted]), dim=1)
    c_hat = estimate_corruption_matrix(probs, y[trusted], K)
    # Stage 2: CE on trusted, corrected loss on untrusted.
    glc = _train(x, lambda z: glc_loss(z, noisy, c_hat, trusted))

    err_clean, err_ce, err_glc = (_error(m, x_test, y_test) for m in (clean, no_correction, glc))
    assert err_ce - err_glc > 0.15, (err_clean, err_ce, err_glc)
    assert err_glc < err_clean + 0.03, (err_clean, err_ce, err_glc)
    # Ĉ finds each class's flip target (its largest off-diagonal entry).
    off_hat, off_true = c_hat.clone().fill_diagonal_(-1), c.clone().fill_diagonal_(-1)
    assert torch.equal(off_hat.argmax(1), off_true.argmax(1))
