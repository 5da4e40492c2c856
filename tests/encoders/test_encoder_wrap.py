"""The encoder interface: backbones, user modules by method or layer, freezing and restored modes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from encoder_helpers import FakeTimmCNN, FakeViT, sequential_encoder
from ssrobust.encoders import Encoder, FeatureShapes, NoSpatialMap, as_encoder, probe
from ssrobust.errors import ConfigError
from ssrobust.models import MODELS, create_model

X = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))


SMALL = {"wrn": {"depth": 10, "widen": 1}, "resnet18": {"width": 4}, "tiny": {"width": 4}}


@pytest.mark.parametrize("name", MODELS.names())
def test_backbones_give_their_map_and_its_pooling(name):
    model = create_model(name, 10, **SMALL.get(name, {})).eval()
    enc = as_encoder(model)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # fastnet: a 3x3 map
    fmap, pooled = enc.spatial(x), enc.pooled(x)
    assert fmap.dim() == 4 and fmap.shape[:2] == (2, model.num_features)
    assert fmap.shape[2] * fmap.shape[3] > 1  # else every pooling is the same and this tests nothing
    # pooled is the backbone's own feature vector (fastnet: global max, not the map's mean)
    torch.testing.assert_close(pooled, model.forward_features(x), rtol=0, atol=0)
    torch.testing.assert_close(fmap, model.forward_feature_map(x), rtol=0, atol=0)


def test_fastnet_probe_gives_a_spatial_map_for_seg_and_depth_heads():
    enc = as_encoder(create_model("fastnet", 10, widths=[8, 16, 16]))
    assert probe(enc, (32, 32)) == FeatureShapes(16, 16, (3, 3))


def test_sequential_by_layer_matches_the_truncated_network_and_skips_the_rest():
    model = sequential_encoder()
    enc = as_encoder(model, layer="5")
    expected = model[:6](X)
    torch.testing.assert_close(enc.spatial(X), expected, rtol=0, atol=0)
    torch.testing.assert_close(enc.pooled(X), expected.mean(dim=(2, 3)), rtol=0, atol=0)

    calls = []
    model[8].register_forward_hook(lambda *a: calls.append(1))  # the classifier after the layer
    enc.pooled(X)
    assert calls == []  # the forward stopped at layer 5
    assert not model[5]._forward_hooks  # the capture hook is removed after every call


def test_timm_style_cnn_by_method_and_pre_logits():
    model = FakeTimmCNN()
    enc = as_encoder(model, method="forward_features")
    fmap = enc.spatial(X)
    assert fmap.shape == (3, 16, 8, 8)
    torch.testing.assert_close(enc.pooled(X), model.forward_head(fmap, pre_logits=True), rtol=0, atol=1e-7)
    assert probe(enc, (16, 16)) == FeatureShapes(16, 16, (8, 8))


def test_vit_tokens_become_a_grid_and_the_class_token_is_pooled():
    model = FakeViT(dim=8, patch=4)
    enc = as_encoder(model, method="forward_features", prefix_tokens=1)
    tokens = model.forward_features(X)  # [3, 1 + 16, 8]
    fmap = enc.spatial(X)
    assert fmap.shape == (3, 8, 4, 4)
    # token k (after the class token) is grid cell (k // 4, k % 4), as in the patch order
    torch.testing.assert_close(fmap[:, :, 1, 2], tokens[:, 1 + 1 * 4 + 2], rtol=0, atol=0)
    torch.testing.assert_close(enc.pooled(X), tokens[:, 0], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="square grid"):
        as_encoder(model, method="forward_features").spatial(X)  # 17 tokens without prefix


def test_a_pooled_only_method_has_no_map():
    enc = as_encoder(FakeTimmCNN(), method="forward")  # logits [B, 5]
    assert enc.pooled(X).shape == (3, 5)
    with pytest.raises(NoSpatialMap, match="no spatial map"):
        enc.spatial(X)
    assert probe(enc, (16, 16)) == FeatureShapes(5, None, None)


@pytest.mark.parametrize("kwargs, match", [
    ({}, "not an ssrobust backbone"),
    ({"layer": "nope"}, "layer 'nope' is not a submodule of Sequential; its top-level children are: 0, 1"),
    ({"method": "nope"}, "method 'nope'"),
    ({"prefix_tokens": -1, "layer": "2"}, "prefix_tokens"),
])
def test_bad_options_are_one_line_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as err:
        as_encoder(sequential_encoder(), **kwargs)
    assert "\n" not in str(err.value)


def test_a_layer_that_returns_no_tensor_is_named():
    class TupleOut(nn.Module):
        def forward(self, x):
            return x, x

    enc = as_encoder(nn.Sequential(TupleOut()), layer="0")
    with pytest.raises(ConfigError, match="layer '0' returned tuple"):
        enc.pooled(X)


def test_frozen_by_default_modes_restored_and_release():
    model = sequential_encoder()
    model.train()
    model[1].eval()  # the user left the network half in train mode on purpose
    flags = {n: m.training for n, m in model.named_modules()}
    stats = model[4].running_mean.clone()
    enc = as_encoder(model, layer="5")
    assert not any(p.requires_grad for p in model.parameters())
    enc.pooled(X)
    assert {n: m.training for n, m in model.named_modules()} == flags
    enc.train()  # even asked to train, a frozen encoder runs in eval mode
    enc.pooled(X)
    torch.testing.assert_close(model[4].running_mean, stats, rtol=0, atol=0)
    assert enc.release() is model and all(p.requires_grad for p in model.parameters())


def test_input_gradients_flow_through_a_frozen_encoder():
    enc = as_encoder(sequential_encoder(), layer="5")
    x = X.clone().requires_grad_(True)
    enc.pooled(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())


def test_unfrozen_encoder_trains_in_the_callers_mode():
    model = sequential_encoder()
    enc = as_encoder(model, layer="5", frozen=False)
    assert all(p.requires_grad for p in model.parameters())
    enc.train()
    stats = model[1].running_mean.clone()
    enc.pooled(X)
    assert not torch.equal(model[1].running_mean, stats)


def test_an_encoder_is_returned_as_is_and_is_a_module():
    enc = as_encoder(create_model("tiny", 10, width=4))
    assert as_encoder(enc) is enc and isinstance(enc, Encoder)
    assert enc.features(X, "pooled").shape == enc(X).shape == enc.forward_features(X).shape
    with pytest.raises(ConfigError, match="feature kind 'tokens'"):
        enc.features(X, "tokens")
