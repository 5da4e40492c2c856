"""MetaWeighting as the training loop drives it: warm-up, the lambda update, clamping, and the
real step assembled from the stored per-loss gradients."""

from __future__ import annotations

import json

import pytest
import torch
from meta_helpers import TASK_NAMES, make_problem

from ssrobust.errors import ConfigError
from ssrobust.weighting import build_weighting
from ssrobust.weighting.base import StepContext
from ssrobust.weighting.meta import MetaWeighting, meta_gradient

LR = 0.5


def _ctx(problem, main, aux, epoch: int = 5, step: int = 0, val=True) -> StepContext:
    def validation_batch(n: int):
        assert n == 5
        return problem.x_val, problem.y_val

    def forbidden(n: int):
        raise AssertionError("the validation pool must not be touched during warm-up")

    sampler = validation_batch if val is True else (forbidden if val == "forbidden" else None)
    return StepContext(model=problem.model, tasks=problem.tasks, x=problem.x, y=problem.y,
                       main_loss=main, aux_losses=aux, lr=LR, epoch=epoch, step=step,
                       validation_batch=sampler)


def _weighting(**kw) -> MetaWeighting:
    w = MetaWeighting({n: 0.5 for n in TASK_NAMES}, meta_batch=5, **kw)
    return w.double()


def test_warmup_keeps_lambda_fixed_then_updates_by_the_meta_gradient():
    problem = make_problem()
    w = _weighting(warmup_epochs=2, beta=0.5)
    for epoch in (0, 1):
        main, aux = problem.losses()
        w.before_step(_ctx(problem, main, aux, epoch=epoch, val="forbidden"))
        assert w.weights() == {n: 0.5 for n in TASK_NAMES}
    main, aux = problem.losses()
    expected = meta_gradient(problem.model, main, [aux[n] for n in TASK_NAMES], w.lam, LR,
                             problem.x_val, problem.y_val).grad_lambda
    w.before_step(_ctx(problem, main, aux, epoch=2))
    assert torch.allclose(w.lam, (0.5 - 0.5 * expected).clamp(min=0), rtol=0, atol=1e-12)
    assert not torch.equal(w.lam, torch.full((3,), 0.5, dtype=torch.float64))
    assert w.last_meta_loss is not None and w.last_meta_loss > 0


def test_lambda_is_clamped_at_zero():
    problem = make_problem()
    w = _weighting(warmup_epochs=0, beta=1e4)
    main, aux = problem.losses()
    g = meta_gradient(problem.model, main, [aux[n] for n in TASK_NAMES], w.lam, LR,
                      problem.x_val, problem.y_val).grad_lambda
    assert (g > 0).any() and (g < 0).any()  # both branches are exercised by this problem
    w.before_step(_ctx(problem, main, aux))
    assert torch.all(w.lam >= 0)
    assert torch.all(w.lam[g > 0] == 0)
    assert torch.allclose(w.lam[g < 0], 0.5 - 1e4 * g[g < 0])


def test_second_order_method_gives_the_same_lambda():
    lams = []
    for method in ("first_order", "second_order"):
        problem = make_problem()
        w = _weighting(warmup_epochs=0, beta=3.0, method=method)
        main, aux = problem.losses()
        w.before_step(_ctx(problem, main, aux))
        lams.append(w.lam.clone())
        w.combine(main, aux).backward()  # the graph is still there for the real step
    assert torch.allclose(lams[0], lams[1], rtol=1e-9, atol=0)
    assert not torch.equal(lams[0], torch.full((3,), 0.5, dtype=torch.float64))


def test_meta_every_skips_steps_and_missing_validation_pool_raises():
    problem = make_problem()
    w = _weighting(warmup_epochs=0, meta_every=3)
    main, aux = problem.losses()
    w.before_step(_ctx(problem, main, aux, step=1, val="forbidden"))
    assert w.weights() == {n: 0.5 for n in TASK_NAMES}
    with pytest.raises(ConfigError, match="validation"):
        w.before_step(_ctx(problem, main, aux, step=3, val=None))


def _real_step_grads(reuse: bool):
    problem = make_problem(seed=3)
    w = _weighting(warmup_epochs=0, beta=2.0, reuse_grads=reuse)
    main, aux = problem.losses()
    w.before_step(_ctx(problem, main, aux))
    loss = w.combine(main, aux)
    loss.backward()
    grads = {f"model.{n}": p.grad for n, p in problem.model.named_parameters()}
    for t, task in problem.tasks.items():
        grads.update({f"{t}.{n}": p.grad for n, p in task.named_parameters()})
    return problem, w, main, aux, float(loss.detach()), grads


def test_reused_gradients_equal_the_gradient_of_the_weighted_loss_with_the_new_lambda():
    _, w_fast, _, _, loss_fast, fast = _real_step_grads(reuse=True)
    problem, w_slow, main, aux, loss_slow, slow = _real_step_grads(reuse=False)
    assert torch.equal(w_fast.lam, w_slow.lam)
    assert loss_fast == pytest.approx(loss_slow, rel=1e-12)
    assert fast.keys() == slow.keys()
    for k in fast:
        assert (fast[k] is None) == (slow[k] is None), k
        if fast[k] is not None:
            assert torch.allclose(fast[k], slow[k], rtol=1e-9, atol=1e-12), k
    # and both are d/dpsi (main + sum_i lambda_new_i L_i), recomputed from a fresh forward
    main, aux = problem.losses()
    total = main + sum(w_slow.lam[i] * aux[n] for i, n in enumerate(TASK_NAMES))
    ref = torch.autograd.grad(total, list(problem.model.parameters()))
    for (n, _), r in zip(problem.model.named_parameters(), ref):
        assert torch.allclose(slow[f"model.{n}"], r, rtol=1e-9, atol=1e-12)


def test_combine_falls_back_to_the_plain_weighted_loss_for_other_losses():
    problem = make_problem()
    w = _weighting(warmup_epochs=0)
    main, aux = problem.losses()
    w.before_step(_ctx(problem, main, aux))
    main2, aux2 = problem.losses()  # new tensors: not the ones before_step saw
    total = w.combine(main2, aux2)
    expected = main2
    for i, n in enumerate(TASK_NAMES):  # same summation order as combine: bitwise comparable
        expected = expected + w.lam[i] * aux2[n]
    assert torch.equal(total, expected) and total.grad_fn is not None


def test_registered_and_lambda_is_a_checkpointed_buffer():
    w = build_weighting("meta", {"a": 0.5, "b": 0.25}, warmup_epochs=1)
    assert isinstance(w, MetaWeighting) and w.weights() == {"a": 0.5, "b": 0.25}
    assert "lam" in w.state_dict() and not list(w.parameters())
    with pytest.raises(ConfigError):
        build_weighting("meta", {"a": -0.1})


def test_meta_weighting_through_the_training_loop(tmp_path):
    """Two tiny epochs with warm-up 1: lambda fixed in epoch 0, moving (and >= 0) in epoch 1."""
    from _helpers import tiny_run_config

    from ssrobust.api import make_config
    from ssrobust.experiments.run import train_and_evaluate as fit

    cfg = tiny_run_config(tmp_path, tasks=["rotation:0.5", "reconstruction:0.5"],
                          task_options={"reconstruction": {"image_size": 16, "channels": [8, 4]}},
                          weighting={"name": "meta", "options": {"warmup_epochs": 1, "meta_batch": 8,
                                                                  "beta": 1.0}})
    run = fit(make_config(cfg))
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r["kind"] == "step"]
    first = [r["weights"] for r in steps if r["epoch"] == 0]
    second = [r["weights"] for r in steps if r["epoch"] == 1]
    assert first and all(wt == {"rotation": 0.5, "reconstruction": 0.5} for wt in first)
    assert second[-1] != {"rotation": 0.5, "reconstruction": 0.5}
    assert all(v >= 0 for wt in second for v in wt.values())
    # task_forward: auto gives first-order meta one trunk forward per view group.
    assert json.loads((run / "meta.json").read_text())["task_forward"] == "separate"


def test_validation_pool_corruptions_are_validation_only_and_applied_once_seeded():
    import ssrobust.corruptions as C

    with pytest.raises(ConfigError, match="validation-only"):
        MetaWeighting({"a": 0.5}, val_corruptions=["fog"])  # a test-benchmark corruption
    with pytest.raises(ConfigError, match="val_severities"):
        MetaWeighting({"a": 0.5}, val_corruptions=["spatter"], val_severities=[0])
    pool = (torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    assert MetaWeighting({"a": 0.5}).prepare_validation(pool, seed=0) is pool
    w = MetaWeighting({"a": 0.5}, val_corruptions=["speckle_noise", "spatter"], val_severities=[4, 5])
    out = w.prepare_validation(pool, seed=3)
    assert torch.equal(out, C.corrupt_mixture(pool, ["speckle_noise", "spatter"], [4, 5], seed=3))
    assert not torch.equal(out, pool)


def test_meta_pool_corruptions_through_the_loop_leave_val_accuracy_on_clean_images(tmp_path):
    """val_acc is measured on the clean held-out images; only the meta batches are corrupted."""
    from _helpers import tiny_run_config

    from ssrobust.api import make_config
    from ssrobust.experiments.run import train_and_evaluate as fit

    def run(name, beta, **options):
        cfg = tiny_run_config(tmp_path, name=name, epochs=1, tasks=["rotation:0.5"],
                              eval={"suites": []},
                              weighting={"name": "meta", "options": {"warmup_epochs": 0, "meta_batch": 8,
                                                                      "beta": beta, **options}})
        run_dir = fit(make_config(cfg))
        recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        return [r for r in recs if r["kind"] == "step"], [r for r in recs if r["kind"] == "epoch"]

    corrupt = dict(val_corruptions=["saturate"], val_severities=[5])
    # beta = 0: lambda never moves, so training is identical and so is val_acc: it is measured on
    # the clean held-out images, not on the corrupted meta pool
    _, clean_epochs = run("clean0", 0.0)
    _, corr_epochs = run("corrupted0", 0.0, **corrupt)
    assert corr_epochs[0]["val_acc"] == clean_epochs[0]["val_acc"]
    assert corr_epochs[0]["val_loss"] == clean_epochs[0]["val_loss"]
    # beta > 0: the meta batches differ, so lambda follows another path
    clean_steps, _ = run("clean1", 1.0)
    corr_steps, _ = run("corrupted1", 1.0, **corrupt)
    assert clean_steps[-1]["weights"] != corr_steps[-1]["weights"]
