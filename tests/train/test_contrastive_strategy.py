"""The ``contrastive`` strategy (SimCLR, ACL, AdvCL pretraining) in the one training loop."""

import json

import pytest
import torch

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.data import load_splits
from ssrobust.errors import ConfigError
from ssrobust.runs.network import build_network
from ssrobust.train import fit
from ssrobust.train.contrastive import ContrastivePretraining
from ssrobust.train.strategies import PrepareContext


def pretrain_config(tmp_path, mode, **options):
    """A 2-epoch contrastive pretraining run of the tiny net on the toy data."""
    opts = {"mode": mode, "steps": 2, **options}
    if mode == "advcl" and "pseudo_label_run" not in options:
        opts["pseudo_label_run"] = str(simclr_run(tmp_path))
    cfg = tiny_run_config(tmp_path, name=f"pre_{mode}", strategy={"name": "contrastive", "options": opts})
    cfg["data"] = dict(cfg["data"], val_size=0)
    return cfg


def simclr_run(tmp_path):
    """The non-adversarial encoder the AdvCL pseudo-labels come from (trained once per test)."""
    run = tmp_path / "runs" / "encoder"
    if not (run / "model.pt").exists():
        cfg = tiny_run_config(tmp_path, name="encoder", epochs=1,
                              strategy={"name": "contrastive", "options": {"mode": "simclr"}})
        fit(make_config(cfg))
    return run


def _epochs(run):
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == "epoch"]


@pytest.mark.parametrize("mode", ["simclr", "acl", "advcl"])
def test_pretraining_runs_in_the_loop_and_stores_its_heads(tmp_path, mode):
    run = fit(make_config(pretrain_config(tmp_path, mode)))
    epochs = _epochs(run)
    assert len(epochs) == 2
    for r in epochs:  # labels unused: no accuracy is recorded
        assert "train_acc" not in r and "val_acc" not in r
        assert torch.isfinite(torch.tensor(r["loss"])) and r["aux_losses"]["contrastive"] > 0
        assert ("pseudo_labels" in r["aux_losses"]) == (mode == "advcl")
    state = torch.load(run / "model.pt", weights_only=True)["network"]
    ck = torch.load(run / "checkpoint.pt", weights_only=True)["network"]
    for weights in (state, ck):
        assert any(k.startswith("contrastive.projection.") for k in weights)
        assert any(k.startswith("contrastive.pseudo_labels.") for k in weights) == (mode == "advcl")
    if mode == "advcl":
        assert len(list((run / "pseudo_labels").glob("pseudo_labels-*.npz"))) == 1


def _strategy_and_net(tmp_path, mode, **options):
    cfg = make_config(pretrain_config(tmp_path, mode, **options))
    splits = load_splits(cfg.data)
    torch.manual_seed(0)
    net = build_network(cfg, splits.num_classes)
    strategy = ContrastivePretraining(**cfg.strategy.options)
    strategy.prepare(PrepareContext(net, splits, tmp_path / "runs" / cfg.name, torch.device("cpu"), 0))
    x = torch.as_tensor(splits.train.images[:16]).permute(0, 3, 1, 2).float() / 255
    extras = {k: torch.as_tensor(v[:16]) for k, v in splits.train.extras.items()}
    return strategy, net, x, torch.as_tensor(splits.train.labels[:16]), extras


@pytest.mark.parametrize("mode", ["simclr", "acl", "advcl"])
def test_loss_decreases_on_a_fixed_batch(tmp_path, mode):
    strategy, net, x, y, extras = _strategy_and_net(tmp_path, mode)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(8):  # the same views and attack starts every step: one fixed function
        out = strategy(net, x, y, torch.Generator().manual_seed(3), extras)
        assert torch.isfinite(out.main_loss)
        opt.zero_grad()
        out.main_loss.backward()
        opt.step()
        losses.append(float(out.main_loss.detach()))
    assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.parametrize("dual_bn, bn_mode", [(False, "eval"), (True, "eval"), (True, "train"), (False, "train")])
def test_reused_views_give_the_loss_and_gradients_of_recomputed_ones(tmp_path, dual_bn, bn_mode):
    """``train``: the clean views' training forward is the one the attack uses (no re-encoding)."""
    results = []
    for reuse in (True, False):
        strategy, net, x, y, extras = _strategy_and_net(tmp_path, "advcl", dual_bn=dual_bn,
                                                        reuse_views=reuse, bn_mode=bn_mode)
        out = strategy(net, x, y, torch.Generator().manual_seed(5), extras)
        out.main_loss.backward()
        results.append((float(out.main_loss.detach()), [p.grad.clone() for p in net.parameters() if p.grad is not None]))
    (la, ga), (lb, gb) = results
    assert abs(la - lb) < 1e-5 and len(ga) == len(gb)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in zip(ga, gb))


@pytest.mark.parametrize("reuse, bn_mode, expected", [
    # images through the backbone per step, B images and s = 2 attack steps, 3 clean views:
    (True, "train", 3 + 2 + 2 + 1 + 1),       # clean views once (also the attack's), attacks, x_cl, x_ce
    (True, "eval", 3 + 3 + 2 + 2 + 1 + 1),    # + the clean views once without gradient in eval mode
    (False, "eval", 2 * (3 + 1) + 2 + 3 + 1 + 1),  # the clean views again at every contrastive step
])
def test_images_forwarded_per_step(tmp_path, monkeypatch, reuse, bn_mode, expected):
    strategy, net, x, y, extras = _strategy_and_net(tmp_path, "advcl", reuse_views=reuse, bn_mode=bn_mode)
    seen = []
    forward = net.model.forward_features
    monkeypatch.setattr(net.model, "forward_features", lambda v: seen.append(len(v)) or forward(v))
    strategy(net, x, y, torch.Generator().manual_seed(5), extras)
    assert sum(seen) == expected * len(x), seen


def test_dual_bn_resume_is_exact_heads_included(tmp_path):
    base = pretrain_config(tmp_path, "advcl", dual_bn=True)
    base["epochs"] = 3
    straight = fit(make_config(dict(base, name="straight")))
    cfg = make_config(dict(base, name="resumed"))
    run = fit(cfg, stop_after=1)
    assert not (run / "model.pt").exists()
    fit(cfg)
    a = torch.load(straight / "model.pt", weights_only=True)["network"]
    b = torch.load(run / "model.pt", weights_only=True)["network"]
    assert any(".bns.pgd_ce." in k for k in a) and any(k.startswith("contrastive.pseudo_labels.") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("options, match", [
    ({"mode": "moco"}, "mode must be one of"),
    ({"mode": "advcl"}, "pseudo_label_run"),
    ({"mode": "acl", "dual_bn": True}, "dual_bn needs mode 'advcl'"),
])
def test_bad_options_are_one_line_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        ContrastivePretraining(**options)


def test_pseudo_label_run_without_model_is_refused_before_any_run_file(tmp_path):
    cfg = make_config(pretrain_config(tmp_path, "advcl", pseudo_label_run=str(tmp_path / "nothing")))
    with pytest.raises(ConfigError, match="model.pt does not exist"):
        fit(cfg)
    assert not (tmp_path / "runs" / cfg.name / "config.yaml").exists()


def test_tasks_are_refused(tmp_path):
    cfg = make_config(dict(pretrain_config(tmp_path, "simclr"), tasks=["rotation"]))
    with pytest.raises(ConfigError, match="trains no pretext tasks"):
        fit(cfg)


def test_evaluating_a_pretraining_run_says_to_finetune_it(tmp_path):
    from ssrobust.runs.load import load_run
    run = fit(make_config(pretrain_config(tmp_path, "simclr")))
    with pytest.raises(ConfigError, match="is a contrastive pretraining run .*finetune it"):
        load_run(run)
