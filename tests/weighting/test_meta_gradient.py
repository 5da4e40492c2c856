"""The first-order meta-gradient equals finite differences and the second-order autograd value."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from meta_helpers import TASK_NAMES, make_problem

from ssrobust.weighting.meta import meta_gradient, meta_gradient_second_order, trainable_parameters

LR = 0.5


def _meta_loss_at(problem, lam: torch.Tensor) -> float:
    """L_meta(lambda) from scratch: fresh losses, SGD step of psi on a model copy, main CE on val."""
    main, aux = problem.losses()
    total = main + sum(lam[i] * aux[n] for i, n in enumerate(TASK_NAMES))
    names, psi = trainable_parameters(problem.model)
    grads = torch.autograd.grad(total, psi, allow_unused=True)
    virtual = copy.deepcopy(problem.model)
    with torch.no_grad():
        params = dict(virtual.named_parameters())
        for n, g in zip(names, grads):
            if g is not None:
                params[n].sub_(LR * g)
        return float(F.cross_entropy(virtual(problem.x_val), problem.y_val))


@pytest.mark.parametrize("train_mode,joint", [(True, True), (False, True), (True, False)],
                         ids=["bn-train", "bn-eval", "bn-train-separate-views"])
def test_meta_gradient_matches_finite_differences_and_second_order(train_mode, joint):
    problem = make_problem(train_mode, joint=joint)
    lam = torch.tensor([0.5, 0.3, 0.8], dtype=torch.float64)
    main, aux = problem.losses()
    losses = [aux[n] for n in TASK_NAMES]
    ours = meta_gradient(problem.model, main, losses, lam, LR, problem.x_val, problem.y_val).grad_lambda
    second = meta_gradient_second_order(problem.model, main, losses, lam, LR, problem.x_val, problem.y_val)
    eps = 1e-5
    fd = torch.tensor([(_meta_loss_at(problem, lam + eps * e) - _meta_loss_at(problem, lam - eps * e))
                       / (2 * eps) for e in torch.eye(3, dtype=torch.float64)], dtype=torch.float64)
    assert fd.abs().min() > 1e-7  # far above the ~1e-11 round-off of the difference quotient
    for ref in (fd, second):
        assert torch.all((ours - ref).abs() <= 1e-3 * ref.abs()), (ours, ref)


def test_meta_gradient_leaves_model_and_bn_statistics_untouched():
    problem = make_problem(train_mode=True)
    main, aux = problem.losses()
    state = {k: v.clone() for k, v in problem.model.state_dict().items()}
    mg = meta_gradient(problem.model, main, [aux[n] for n in TASK_NAMES],
                       torch.full((3,), 0.5, dtype=torch.float64), LR, problem.x_val, problem.y_val)
    after = problem.model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert all(p.grad is None for p in problem.model.parameters())  # nothing accumulated
    assert mg.meta_loss > 0


def test_meta_gradient_of_an_unrelated_task_is_zero():
    """A task loss that does not depend on psi has g_i = 0, hence dL_meta/dlambda_i = 0 exactly."""
    problem = make_problem()
    main, aux = problem.losses()
    head_only = (problem.tasks["jigsaw"].head.weight ** 2).sum()
    mg = meta_gradient(problem.model, main, [aux["jigsaw"], head_only],
                       torch.tensor([0.5, 0.5], dtype=torch.float64), LR, problem.x_val, problem.y_val)
    assert mg.grad_lambda[1] == 0 and mg.grad_lambda[0] != 0
