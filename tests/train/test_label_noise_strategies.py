"""Label-noise strategies (glc, forward, ss_only) and initialising a run from another (init_from)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.errors import CheckpointError, ConfigError
from ssrobust.models import create_model
from ssrobust.label_noise import GoldLossCorrection, flip_matrix, forward_corrected_loss, uniform_matrix
from ssrobust.tasks import build_task
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.runs.network import Network, init_from_run
from ssrobust.train.strategies import build_strategy

K = 3


def _net(tasks: tuple[str, ...] = (), width: int = 4, seed: int = 0) -> Network:
    """Tiny network; a task named ``rotation_b`` is a second rotation head (a task that a source
    run without it cannot initialise)."""
    torch.manual_seed(seed)
    model = create_model("tiny", K, width=width)
    return Network(model, {t: build_task(t.removesuffix("_b"), model.num_features) for t in tasks})


def _batch(n: int = 12):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, 16, 16, generator=g)
    y = torch.randint(0, K, (n,), generator=g)
    trusted = torch.arange(n) % 3 == 0
    return x, y, trusted


def _matrix() -> list[list[float]]:
    return (0.5 * flip_matrix(K, 0.6, seed=2) + 0.5 * uniform_matrix(K, 0.3)).tolist()


def test_glc_strategy_loss_is_gold_loss_correction_on_the_batch():
    net, (x, y, trusted) = _net(("rotation",)), _batch()
    strategy = build_strategy("glc", matrix=_matrix())
    assert strategy.batch_extras == ("trusted",)
    net.eval()  # no dropout/BN-statistics drift between the two forwards
    out = strategy(net, x, y, torch.Generator().manual_seed(0), {"trusted": trusted})
    expected = GoldLossCorrection(_matrix())(net.model(x).float(), y, trusted)
    torch.testing.assert_close(out.main_loss, expected)
    assert set(out.aux_losses) == {"rotation"} and out.aux_losses["rotation"] > 0
    # Per example: CE where trusted, -log Σ_j p(j|x) C[j, ỹ] elsewhere; mean over the whole batch.
    logits, c = out.logits.detach(), torch.tensor(_matrix())
    manual = torch.where(trusted, F.cross_entropy(logits, y, reduction="none"),
                         -torch.log((F.softmax(logits, 1) @ c)[torch.arange(len(y)), y]))
    torch.testing.assert_close(out.main_loss.detach(), manual.mean(), rtol=1e-5, atol=1e-6)
    out.main_loss.backward()
    assert net.model.fc.weight.grad is not None and net.model.fc.weight.grad.abs().sum() > 0


def test_glc_strategy_limits_are_plain_cross_entropy():
    net, (x, y, trusted) = _net(), _batch()
    net.eval()
    ce = F.cross_entropy(net.model(x).float(), y)
    all_trusted = build_strategy("glc", matrix=_matrix())(net, x, y, None, {"trusted": torch.ones_like(trusted)})
    identity = build_strategy("glc", matrix=torch.eye(K).tolist())(net, x, y, None, {"trusted": trusted})
    torch.testing.assert_close(all_trusted.main_loss, ce)
    torch.testing.assert_close(identity.main_loss, ce)
    with pytest.raises(ConfigError, match="trusted"):
        build_strategy("glc", matrix=_matrix())(net, x, y, None, {})
    with pytest.raises(ValueError, match="rows must sum to 1"):
        build_strategy("glc", matrix=[[0.5, 0.4, 0.0]] * K)


def test_forward_strategy_corrects_every_image_unless_trusted_is_used():
    net, (x, y, trusted) = _net(), _batch()
    net.eval()
    logits = net.model(x).float()
    plain = build_strategy("forward", matrix=_matrix())
    assert plain.batch_extras == ()
    out = plain(net, x, y, None, {})
    torch.testing.assert_close(out.main_loss, forward_corrected_loss(logits, y, torch.tensor(_matrix())))
    masked = build_strategy("forward", matrix=_matrix(), use_trusted=True)
    assert masked.batch_extras == ("trusted",)
    torch.testing.assert_close(masked(net, x, y, None, {"trusted": trusted}).main_loss,
                               GoldLossCorrection(_matrix())(logits, y, trusted))


def test_ss_only_trains_the_pretext_task_alone():
    net, (x, y, _) = _net(("rotation",)), _batch()
    out = build_strategy("ss_only")(net, x, y, torch.Generator().manual_seed(0), {})
    assert out.main_loss.item() == 0.0 and out.aux_losses["rotation"] > 0
    (out.main_loss + out.aux_losses["rotation"]).backward()
    assert torch.count_nonzero(net.model.fc.weight.grad) == 0  # the classifier gets no signal
    assert net.tasks["rotation"].head.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.model.body.parameters())
    with pytest.raises(ConfigError, match="at least one pretext task"):
        build_strategy("ss_only")(_net(), x, y, None, {})


def test_glc_run_without_a_trusted_mask_fails_before_training(tmp_path):
    cfg = make_config(tiny_run_config(tmp_path, strategy={"name": "glc", "options": {"matrix": _matrix()}}))
    with pytest.raises(ValueError, match="needs per-image trusted"):
        fit(cfg)


def test_init_from_loads_backbone_and_shared_task_heads(tmp_path):
    source = fit(make_config(tiny_run_config(tmp_path, name="src", epochs=1, tasks=["rotation"])))
    saved = torch.load(source / "model.pt", weights_only=True)["network"]
    net = _net(("rotation", "rotation_b"), seed=5)
    other_before = {k: v.clone() for k, v in net.tasks["rotation_b"].state_dict().items()}
    init_from_run(net, source)  # a run directory or its model.pt
    for k, v in net.state_dict().items():
        if k.startswith(("model.", "tasks.rotation.")):
            assert torch.equal(v, saved[k]), k
    assert all(torch.equal(v, other_before[k]) for k, v in net.tasks["rotation_b"].state_dict().items())
    with pytest.raises(CheckpointError, match="backbone does not match"):
        init_from_run(_net(width=8), source / "model.pt")


def test_fit_with_init_from_starts_from_the_source_weights(tmp_path):
    source = fit(make_config(tiny_run_config(tmp_path, name="src", epochs=1, tasks=["rotation"],
                                             strategy={"name": "ss_only"})))
    # lr must be > 0; 1e-300 rounds to an update of exactly 0 in float32, so the weights stay put.
    frozen = {"lr": 1e-300, "lr_min": 0.0, "weight_decay": 0.0, "momentum": 0.0}
    run = fit(make_config(tiny_run_config(tmp_path, name="tuned", epochs=1, tasks=["rotation"],
                                          init_from=str(source), optim=frozen)))
    a = dict(_net(("rotation",)).named_parameters())  # parameter names only (no BN buffers)
    before = torch.load(source / "model.pt", weights_only=True)["network"]
    after = torch.load(run / "model.pt", weights_only=True)["network"]
    assert all(torch.equal(before[k], after[k]) for k in a)  # lr ~ 0: the loaded weights survive
    assert "init_from" in (run / "config.yaml").read_text()
    recs = [json.loads(x) for x in (source / "metrics.jsonl").read_text().splitlines()]
    assert all(r["main_loss"] == 0.0 for r in recs if r["kind"] == "epoch")


def test_a_matrix_or_the_run_to_estimate_it_from_exactly_one(tmp_path):
    from types import SimpleNamespace

    from ssrobust.train.strategies import PrepareContext

    for name in ("glc", "forward"):
        with pytest.raises(ConfigError, match=f"strategy '{name}' needs exactly one of options.matrix"):
            build_strategy(name)
        with pytest.raises(ConfigError, match="exactly one of"):
            build_strategy(name, matrix=_matrix(), matrix_from=str(tmp_path))
    with pytest.raises(ConfigError, match="quantile must be in"):
        build_strategy("forward", matrix_from=str(tmp_path), quantile=1.5)
    # The stage-1 folder is read when the run starts: without a finished run there, one line.
    strategy = build_strategy("glc", matrix_from=str(tmp_path / "stage1"))
    ctx = PrepareContext(None, SimpleNamespace(), tmp_path / "run", torch.device("cpu"), 0)
    with pytest.raises(ConfigError, match=f"matrix_from {tmp_path / 'stage1'} holds no finished run"):
        strategy.prepare(ctx)
    assert not (tmp_path / "run").exists()
