"""Heads on a frozen encoder: shapes, depth bins, losses that ignore void / invalid pixels, training."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from encoder_helpers import FakeTimmCNN, sequential_encoder, square_scenes
from ssrobust.encoders import (HEADS, DepthBins, DepthHead, HeadTrainConfig, LinearHead, NoSpatialMap,
                               SegmentationHead, as_encoder, build_head, evaluate_head, probe,
                               train_head)
from ssrobust.errors import ConfigError


def test_registry_and_build_head_sizes():
    assert HEADS.names() == ["cls", "depth", "seg"]
    shapes = probe(as_encoder(FakeTimmCNN(), method="forward_features"), (16, 16))
    assert build_head("cls", shapes, num_classes=5).fc.in_features == 16
    assert build_head("seg", shapes, num_classes=3).conv.in_channels == 16
    pooled_only = probe(as_encoder(FakeTimmCNN(), method="forward"), (16, 16))
    with pytest.raises(NoSpatialMap, match="'seg' head needs a spatial feature map"):
        build_head("seg", pooled_only, num_classes=3)


def test_segmentation_head_is_bn_conv1x1_upsampled():
    head = SegmentationHead(4, 3).eval()
    f = torch.randn(2, 4, 5, 5)
    out = head(f, (20, 20))
    expected = F.interpolate(head.conv(head.bn(f)), size=(20, 20), mode="bilinear", align_corners=False)
    assert out.shape == (2, 3, 20, 20)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert sum(p.numel() for p in head.parameters()) == 2 * 4 + 4 * 3 + 3  # BN affine + 1x1 conv


def test_segmentation_loss_ignores_void_pixels():
    head = SegmentationHead(4, 3)
    target = torch.tensor([[[0, 255], [2, 1]], [[255, 255], [255, 255]]])
    out = torch.zeros(2, 3, 2, 2)
    loss = head.loss(out, target)
    torch.testing.assert_close(loss, torch.tensor([math.log(3), 0.0]))  # all-void image: 0
    out[0, :, 0, 1] = torch.tensor([9.0, -9.0, 4.0])  # logits at the void pixel do not matter
    torch.testing.assert_close(head.loss(out, target), loss)


def test_depth_bins_by_hand():
    lin = DepthBins(1.0, 3.0, num_bins=4, spacing="linear")
    torch.testing.assert_close(lin.edges(), torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0], dtype=torch.float64))
    torch.testing.assert_close(lin.centers(), torch.tensor([1.25, 1.75, 2.25, 2.75], dtype=torch.float64))
    log = DepthBins(0.1, 10.0, num_bins=2)
    torch.testing.assert_close(log.edges(), torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64))
    torch.testing.assert_close(log.centers(), torch.tensor([0.1, 10.0], dtype=torch.float64).sqrt())
    assert log.index(torch.tensor([0.01, 0.5, 1.0, 20.0])).tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="0 < min_depth < max_depth"):
        DepthBins(0.0, 1.0)


def test_depth_readouts():
    head = DepthHead(4, 1.0, 3.0, num_bins=2, spacing="linear")  # centres 1.5, 2.5
    out = torch.tensor([0.0, math.log(3.0)]).view(1, 2, 1, 1)  # p = (1/4, 3/4)
    assert head.predict(out).item() == pytest.approx(0.25 * 1.5 + 0.75 * 2.5)
    head.readout = "argmax"
    assert head.predict(out).item() == pytest.approx(2.5)
    reg = DepthHead(4, 1.0, 3.0, mode="regression")
    assert reg(torch.randn(1, 4, 2, 2), (6, 6)).shape == (1, 1, 6, 6)
    torch.testing.assert_close(reg.predict(torch.full((1, 1, 2, 2), 1.7)), torch.full((1, 2, 2), 1.7))
    with pytest.raises(ValueError, match="mode must be"):
        DepthHead(4, 1.0, 3.0, mode="ordinal")


@pytest.mark.parametrize("mode", ["bins", "regression"])
def test_depth_loss_ignores_invalid_pixels(mode):
    head = DepthHead(4, 0.1, 1.0, num_bins=8, mode=mode)
    target = torch.tensor([[[0.3, 0.0], [math.nan, 0.9]]])
    out = torch.randn(1, head.conv.out_channels, 2, 2, generator=torch.Generator().manual_seed(0))
    loss = head.loss(out, target)
    changed = out.clone()
    changed[:, :, 0, 1] += 5.0
    changed[:, :, 1, 0] -= 5.0
    torch.testing.assert_close(head.loss(changed, target), loss)
    if mode == "regression":
        expected = ((out[0, 0, 0, 0] - 0.3).abs() + (out[0, 0, 1, 1] - 0.9).abs()) / 2
        torch.testing.assert_close(loss, expected.view(1))


def test_train_head_trains_only_the_head():
    torch.manual_seed(0)  # the head's initialization
    model = sequential_encoder()
    enc = as_encoder(model, layer="5")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, labels, masks, _ = square_scenes(64)
    head = build_head("seg", probe(enc, (16, 16)), num_classes=2)
    head_before = [p.detach().clone() for p in head.parameters()]
    history = train_head(enc, head, x, masks, HeadTrainConfig(epochs=15, lr=3e-2))
    assert len(history) == 15 and history[-1] < 0.8 * history[0]
    assert all(not torch.equal(p, q) for p, q in zip(head.parameters(), head_before))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical, BN buffers too
    assert head.training  # the fresh head's mode is given back


def test_train_head_with_sgd_classifies():
    torch.manual_seed(0)
    enc = as_encoder(sequential_encoder(), layer="5")
    x, labels, _, _ = square_scenes(64)
    head = LinearHead(probe(enc, (16, 16)).pooled_dim, 2)
    train_head(enc, head, x, labels, HeadTrainConfig(epochs=40, optimizer="sgd", lr=0.5))
    assert evaluate_head(enc, head, x, labels)["accuracy"] >= 0.9


@pytest.mark.parametrize("kwargs, match", [
    ({"optimizer": "lbfgs"}, "head optimizer 'lbfgs'"), ({"epochs": 0}, "epochs >= 1"),
    ({"lr": -1.0}, "lr > 0"),
])
def test_head_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        HeadTrainConfig(**kwargs)


def test_bad_batches_are_refused():
    enc, head = as_encoder(sequential_encoder(), layer="5"), LinearHead(8, 2)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        train_head(enc, head, torch.full((2, 3, 16, 16), 2.0), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="2 images but targets of shape \\(3,\\)"):
        train_head(enc, head, torch.rand(2, 3, 16, 16), torch.zeros(3, dtype=torch.long))
