"""Orthogonalized (Muon) steps for conv filters: the Newton-Schulz map, the optimizer, the config and
the loop with them (exact resume, one-line errors)."""

import json

import pytest
import torch

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.errors import ConfigError
from ssrobust.experiments.run import train_and_evaluate as fit
from ssrobust.models import create_model
from ssrobust.runs.config import MuonConfig
from ssrobust.train.muon import OrthoSGD, orthogonalize
from ssrobust.train.recipe import parameter_groups, split_filter_group


def _weights(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)["network"]


@pytest.mark.parametrize("shape", [(16, 72), (72, 16), (8, 4, 3, 3)])
def test_orthogonalize_keeps_the_singular_vectors_and_pulls_the_values_towards_one(shape):
    """g = U diag(s) V^T with singular values spread over 1..4: the result is U diag(f(s)) V^T with
    every f(s) in the band the published coefficients reach in five steps."""
    gen = torch.Generator().manual_seed(0)
    rows, cols = shape[0], int(torch.tensor(shape[1:]).prod())
    k = min(rows, cols)
    u, _ = torch.linalg.qr(torch.randn(rows, k, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(cols, k, generator=gen, dtype=torch.float64))
    s = torch.linspace(1.0, 4.0, k, dtype=torch.float64)
    g = (u @ torch.diag(s) @ v.T).reshape(shape)
    out = orthogonalize(g, steps=5)
    assert out.shape == g.shape and out.dtype == g.dtype
    d = u.T @ out.reshape(rows, cols) @ v  # diagonal if out = U f(S) V^T
    off = d - torch.diag(torch.diagonal(d))
    assert off.abs().max() < 1e-5
    diag = torch.diagonal(d)
    assert diag.min() > 0.6 and diag.max() < 1.25  # the iteration's band, not exactly 1
    assert torch.linalg.matrix_norm(out.reshape(rows, cols) - u @ v.T, ord=2) < 0.4


def test_orthogonalize_ignores_scale_and_transposes_consistently():
    g = torch.randn(12, 30, generator=torch.Generator().manual_seed(1))
    out = orthogonalize(g)
    assert torch.allclose(orthogonalize(7.5 * g), out, atol=1e-5)
    assert torch.allclose(orthogonalize(g.T), out.T, atol=1e-5)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        orthogonalize(torch.ones(3))


@pytest.mark.parametrize("nesterov, wd", [(True, 5e-4), (False, 0.0), (True, 0.0)])
def test_plain_groups_step_exactly_like_torch_sgd(nesterov, wd):
    torch.manual_seed(0)
    a = torch.nn.Linear(5, 3)
    b = torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    ours = OrthoSGD(a.parameters(), lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=wd)
    ref = torch.optim.SGD(b.parameters(), lr=0.1, momentum=0.9, nesterov=nesterov, weight_decay=wd)
    for step in range(4):
        x = torch.randn(8, 5, generator=torch.Generator().manual_seed(step))
        for net, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            net(x).pow(2).sum().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_orthogonalized_step_is_the_hand_computed_one():
    w0 = torch.randn(6, 2, 3, 3, generator=torch.Generator().manual_seed(2))
    grads = [torch.randn(6, 2, 3, 3, generator=torch.Generator().manual_seed(10 + i)) for i in range(2)]
    p = torch.nn.Parameter(w0.clone())
    opt = OrthoSGD([{"params": [p], "orthogonalize": True, "normalize": True, "ns_steps": 3}],
                   lr=0.2, momentum=0.5, nesterov=True)
    w, buf = w0.clone(), None
    for g in grads:
        p.grad = g.clone()
        opt.step()
        buf = g.clone() if buf is None else 0.5 * buf + g
        w = w * (6 ** 0.5 / w.norm())  # each filter bank is put back to norm sqrt(out_channels)
        w = w - 0.2 * orthogonalize(g + 0.5 * buf, 3)
        assert torch.allclose(p.detach(), w, atol=1e-6)
    assert p.norm().item() != pytest.approx(6 ** 0.5)  # the step itself moved it off the sphere


def test_optimizer_refuses_1d_weights_in_orthogonalized_groups():
    with pytest.raises(ValueError, match="orthogonalized groups need weights of >= 2 dimensions"):
        OrthoSGD([{"params": [torch.nn.Parameter(torch.ones(4))], "orthogonalize": True}], lr=0.1)


def test_filter_group_takes_exactly_the_conv_filters():
    net = create_model("fastnet", 10, widths=[8, 16])
    groups = split_filter_group(parameter_groups(net, 4.0, 0.0), 0.5, MuonConfig(lr=0.1, momentum=0.7))
    filters = groups[-1]
    conv = [p for n, p in net.named_parameters() if p.requires_grad and p.ndim == 4]
    assert filters["params"] == conv and filters["orthogonalize"] and filters["weight_decay"] == 0.0
    assert filters["lr_scale"] == pytest.approx(0.2) and filters["momentum"] == 0.7
    rest = [p for g in groups[:-1] for p in g["params"]]
    assert all(p.ndim != 4 for p in rest)
    assert len(rest) + len(conv) == len([p for p in net.parameters() if p.requires_grad])
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 3))
    with pytest.raises(ConfigError, match="no trainable conv filters"):
        split_filter_group(parameter_groups(mlp, 1.0, None), 0.5, MuonConfig(lr=0.1))


@pytest.mark.parametrize("bad, match", [
    ({"lr": -0.1}, "optim.muon.lr must be"),
    ({"momentum": 1.0}, "optim.muon.momentum must be"),
    ({"ns_steps": 0}, "optim.muon.ns_steps"),
    ({"momentum": 0.0}, "nesterov needs"),
])
def test_bad_muon_values_are_one_line_config_errors(tmp_path, bad, match):
    with pytest.raises(ConfigError, match=match):
        make_config(tiny_run_config(tmp_path, optim={"lr": 0.05, "muon": bad}))


def _fast_muon(tmp_path):
    return tiny_run_config(
        tmp_path, epochs=3, model={"name": "fastnet", "kwargs": {"widths": [8, 16]}},
        optim={"lr": 0.05, "label_smoothing": 0.2, "bias_lr_scale": 4.0, "bias_weight_decay": 0.0,
               "averaging": {"kind": "lookahead", "decay": 0.8, "every": 2, "start_epoch": 1},
               "muon": {"lr": 0.1, "momentum": 0.6}})


def test_loop_with_muon_learns_records_the_groups_and_resumes_bit_exactly(tmp_path):
    base = _fast_muon(tmp_path)
    straight = fit(make_config(dict(base, name="straight")))
    groups = torch.load(straight / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    filt = groups[-1]
    assert filt["orthogonalize"] and filt["lr"] == pytest.approx(2.0 * groups[0]["lr"])
    assert json.loads((straight / "results.json").read_text())["suites"]["clean"]["accuracy"] > 0.6  # chance 1/3
    cfg = make_config(dict(base, name="resumed"))
    fit(cfg, stop_after=1)
    run = fit(cfg, stop_after=1)
    fit(cfg)
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_muon_off_keeps_torch_sgd(tmp_path):
    run = fit(make_config(tiny_run_config(tmp_path, epochs=1)))
    groups = torch.load(run / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    assert "orthogonalize" not in groups[0]
