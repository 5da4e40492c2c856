"""Recipe options of the loop: label smoothing, alternating flips, bias/BN groups, weight
averaging, threads, memory format and the data-init hook."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from _helpers import tiny_run_config
from ssrobust.api import make_config
from ssrobust.cli import main
from ssrobust.data.loader import DeviceLoader
from ssrobust.errors import ConfigError
from ssrobust.models import create_model
from ssrobust.experiments.run import train_and_evaluate as fit  # train + evaluate, as `ssrobust train`
from ssrobust.runs.config import AveragingConfig
from ssrobust.train.averaging import WeightAveraging
from ssrobust.runs.network import Network
from ssrobust.train.recipe import (apply_threads, init_model_from_data, parameter_groups,
                                   resolve_channels_last, resolve_threads, usable_cores)


def test_label_smoothing_matches_the_hand_computed_loss():
    net = Network(create_model("tiny", 3, width=4), {})
    net.label_smoothing = 0.2
    logits, y = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 3.0]]), torch.tensor([0, 1])
    logp = F.log_softmax(logits, 1)
    target = torch.full((2, 3), 0.2 / 3)
    target[torch.arange(2), y] += 0.8
    expected = -(target * logp).sum(1).mean()
    assert torch.allclose(net.classification_loss(logits, y), expected, atol=1e-6)


def test_label_smoothing_is_refused_for_strategies_with_their_own_loss(tmp_path):
    cfg = make_config(tiny_run_config(tmp_path, optim={"lr": 0.05, "label_smoothing": 0.1},
                                      strategy={"name": "ss_only"}, tasks=["rotation"]))
    with pytest.raises(ConfigError, match="label_smoothing=0.1 but strategy 'ss_only'"):
        fit(cfg)


def _flips(loader, epoch):
    """{image id: mirrored?} for one epoch of a loader over the left-bright test images."""
    out = {}
    for x, _, extras in loader.epoch(epoch):
        mirrored = x[:, 0, 16, 8] < x[:, 0, 16, 24]  # crops move content by <= 4 px: halves stay apart
        out.update(zip(extras["id"].tolist(), mirrored.tolist()))
    return out


def test_alternating_flips_mirror_each_image_on_every_other_epoch():
    n = 48
    images = np.zeros((n, 32, 32, 3), np.uint8)
    images[:, :, :16] = 200  # bright left half
    images[:, :, 16:] = 40
    args = (images, np.zeros(n, np.int64), 8, torch.device("cpu"))
    alt = DeviceLoader(*args, seed=3, flip="alternating", extras={"id": np.arange(n)})
    e0, e1, e2 = (_flips(alt, e) for e in range(3))
    assert len(e0) == n and all(e1[i] != e0[i] for i in range(n)) and e2 == e0
    assert 0 < sum(e0.values()) < n  # the first choice is random per image
    rand = DeviceLoader(*args, seed=3, extras={"id": np.arange(n)})
    r0, r1 = _flips(rand, 0), _flips(rand, 1)
    assert any(r0[i] == r1[i] for i in range(n))  # random flips do repeat
    with pytest.raises(ValueError, match="flip 'sometimes'"):
        DeviceLoader(*args, flip="sometimes")


def test_bias_and_norm_parameters_get_their_own_group_and_scaled_lr(tmp_path):
    net = create_model("tiny", 3, width=4)
    (only,) = parameter_groups(net, 1.0, None)
    assert len(only["params"]) == len(list(net.parameters())) and set(only) == {"params"}
    big, small = parameter_groups(net, 8.0, 0.0)
    assert all(p.ndim > 1 for p in big["params"]) and all(p.ndim <= 1 for p in small["params"])
    assert small["lr_scale"] == 8.0 and small["weight_decay"] == 0.0
    assert len(big["params"]) + len(small["params"]) == len(list(net.parameters()))
    cfg = make_config(tiny_run_config(tmp_path, epochs=1, optim={"lr": 0.05, "bias_lr_scale": 8.0,
                                                                 "bias_weight_decay": 0.0}))
    run = fit(cfg)
    groups = torch.load(run / "checkpoint.pt", weights_only=True)["optimizer"]["param_groups"]
    assert groups[1]["lr"] == pytest.approx(8.0 * groups[0]["lr"]) and groups[1]["weight_decay"] == 0.0
    assert groups[0]["weight_decay"] == 5e-4


def test_ema_shadow_follows_the_hand_computed_average():
    p = torch.nn.Linear(1, 1, bias=False)
    avg = WeightAveraging(AveragingConfig(kind="ema", decay=0.5, every=2, start_epoch=0), total_steps=8)
    values, expected = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], None
    for step, v in enumerate(values, start=1):
        with torch.no_grad():
            p.weight.fill_(v)
        avg.after_step(p, step, epoch=0)
        if step % 2 == 0:  # updates at steps 2, 4, 6 with rho = 0.5**2
            expected = v if expected is None else 0.25 * expected + 0.75 * v
    assert avg.shadow["weight"].item() == pytest.approx(expected)
    assert p.weight.item() == 6.0  # EMA leaves the live weights alone
    avg.finalize(p)
    assert p.weight.item() == pytest.approx(expected)


def test_lookahead_resets_the_live_weights_to_the_slow_ones():
    p = torch.nn.Linear(1, 1, bias=False)
    avg = WeightAveraging(AveragingConfig(kind="lookahead", decay=0.5, every=1, power=1.0), total_steps=4)
    with torch.no_grad():
        p.weight.fill_(2.0)
    avg.after_step(p, 1, 0)  # first update: the shadow starts at the live weights
    with torch.no_grad():
        p.weight.fill_(4.0)
    avg.after_step(p, 2, 0)  # rho = 0.5 * (2/4)**1 = 0.25: 0.25*2 + 0.75*4
    assert p.weight.item() == pytest.approx(3.5) and avg.shadow["weight"].item() == pytest.approx(3.5)


@pytest.mark.parametrize("bad, match", [
    ({"optim": {"label_smoothing": 1.0}}, "optim.label_smoothing must lie in"),
    ({"optim": {"bias_lr_scale": 0}}, "optim.bias_lr_scale must be > 0"),
    ({"optim": {"averaging": {"kind": "swa"}}}, "optim.averaging.kind"),
    ({"optim": {"averaging": {"kind": "ema", "decay": 1.0}}}, "optim.averaging.decay"),
    ({"data": {"flip": "vertical"}}, "data.flip"),
    ({"threads": 0}, "threads must be >= 1"),
    ({"channels_last": "fast"}, "channels_last"),
])
def test_bad_recipe_values_are_one_line_config_errors(tmp_path, bad, match):
    with pytest.raises(ConfigError, match=match):
        make_config(tiny_run_config(tmp_path, **bad))


def test_cli_reports_a_bad_recipe_value_with_status_2(capsys):
    assert main(["train", "optim.averaging.every=0", "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: optim.averaging.every must be >= 1, got 0"


def test_thread_rules():
    assert resolve_threads(3, 1) == 3 and resolve_threads(None, 1) is None
    assert resolve_threads(None, 2) == max(1, min(torch.get_num_threads(), usable_cores() // 2))
    before = torch.get_num_threads()
    try:
        assert apply_threads(1, 1) == 1 and torch.get_num_threads() == 1
        assert apply_threads(None, 1) == 1  # left alone for a single process
    finally:
        torch.set_num_threads(before)


def test_channels_last_auto_rule_and_record(tmp_path):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_channels_last("auto", cpu, "fp32") is True
    assert resolve_channels_last("auto", cuda, "fp32") is False
    assert resolve_channels_last("auto", cuda, "bf16") is True
    assert resolve_channels_last(False, cpu, "fp32") is False
    before = torch.get_num_threads()
    try:
        run = fit(make_config(tiny_run_config(tmp_path, epochs=1, channels_last="auto", threads=1,
                                              eval={"suites": []})))
    finally:
        torch.set_num_threads(before)
    meta = json.loads((run / "meta.json").read_text())
    assert meta["channels_last"] is True and meta["threads"] == 1


def test_the_loop_builds_the_whitening_layer_from_the_seeded_training_subset(tmp_path):
    cfg = make_config(tiny_run_config(tmp_path, epochs=1, eval={"suites": []},
                                      model={"name": "fastnet",
                                             "kwargs": {"widths": [8, 16], "whiten_images": 20}}))
    run = fit(cfg)
    saved = torch.load(run / "model.pt", weights_only=True)["network"]["model.whiten.weight"]
    from ssrobust.data.base import load_splits

    ref = create_model("fastnet", 3, widths=(8, 16), whiten_images=20)
    assert init_model_from_data(ref, load_splits(cfg.data).train.images, cfg.seed) == 20
    assert torch.equal(saved, ref.whiten.weight)  # a buffer: set once from data, never trained
    assert not torch.equal(saved, create_model("fastnet", 3, widths=(8, 16)).whiten.weight)
