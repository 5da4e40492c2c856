"""fastnet: the whitening layer built from patch statistics, identity-style init, data-init hook."""

import numpy as np
import pytest
import torch

from ssrobust.models import create_model
from ssrobust.models.fastnet import PatchWhitening, _dirac_conv
from ssrobust.train.recipe import init_model_from_data


def correlated_images(n: int = 64, size: int = 12, seed: int = 0) -> torch.Tensor:
    """Images whose neighbouring pixels and channels are strongly correlated (like photographs)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, 1, size, size, generator=g).cumsum(-1).cumsum(-2) / size
    return torch.cat([base, 0.7 * base + 0.3 * torch.rand(n, 1, size, size, generator=g),
                      torch.rand(n, 1, size, size, generator=g)], dim=1)


def first_half_outputs(layer: PatchWhitening, x: torch.Tensor) -> torch.Tensor:
    """The whitening conv's first-half channels on every patch of ``x``: ``[P, C*k*k]``."""
    out = layer(x.float())[:, : layer.out_channels // 2]
    return out.permute(0, 2, 3, 1).reshape(-1, layer.out_channels // 2).double()


@pytest.mark.parametrize("kernel", [2, 3])
def test_whitened_patches_have_identity_covariance_and_the_filters_encode_it(kernel):
    x = correlated_images()
    layer = PatchWhitening(3, kernel, eps=0.0)
    mean, cov = layer.fit(x)
    d = 3 * kernel * kernel
    # the covariance returned is the one of the patches, computed independently here
    p = layer.patches(x.double())
    ref = torch.cov(p.T, correction=0)
    assert torch.allclose(cov.double(), ref, rtol=1e-4, atol=1e-7)
    assert torch.allclose(mean.double(), p.mean(0), atol=1e-6)
    # the layer's output on those patches: zero mean, identity covariance
    z = first_half_outputs(layer, x)
    assert torch.allclose(z.mean(0), torch.zeros(d, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(torch.cov(z.T, correction=0), torch.eye(d, dtype=torch.float64), atol=2e-3)
    # and the filters reproduce the covariance they were built from: W^-1 W^-T = Σ
    w = layer.weight[:d].reshape(d, d).double()
    w_inv = torch.linalg.inv(w)
    assert torch.allclose(w_inv @ w_inv.T, ref, rtol=1e-3, atol=1e-6)
    # the second half is the negation (GELU then keeps both signs)
    assert torch.equal(layer.weight[d:], -layer.weight[:d])


def test_eps_shrinks_weak_directions_as_documented():
    x = correlated_images(seed=1)
    eps = 1e-2
    layer = PatchWhitening(3, 2, eps=eps)
    _, cov = layer.fit(x)
    lam = torch.linalg.eigvalsh(cov.double()).flip(0)  # the layer orders directions strongest first
    z = first_half_outputs(layer, x)
    assert torch.allclose(torch.cov(z.T, correction=0), torch.diag(lam / (lam + eps)), atol=2e-3)


def test_dirac_init_passes_the_input_channels_through():
    conv = _dirac_conv(4, 6)
    x = torch.rand(2, 4, 5, 5)
    with torch.no_grad():
        out = conv(x)
    assert torch.allclose(out[:, :4], x, atol=1e-6)
    assert not torch.allclose(out[:, 4:], torch.zeros_like(out[:, 4:]))


def test_fastnet_init_from_data_is_deterministic_and_changes_only_the_whitening_layer():
    images = (correlated_images(n=40, size=16) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    nets = []
    for _ in range(2):
        torch.manual_seed(0)
        nets.append(create_model("fastnet", 4, widths=(8, 16)))
    before = {k: v.clone() for k, v in nets[0].state_dict().items()}
    used = [init_model_from_data(m, images, seed=3) for m in nets]
    assert used == [40, 40]
    a, b = nets[0].state_dict(), nets[1].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    changed = sorted(k for k in a if not torch.equal(a[k], before[k]))
    assert changed == ["whiten.bias", "whiten.weight"]
    # a backbone without the hook is left alone
    assert init_model_from_data(create_model("tiny", 4, width=4), images, seed=3) == 0


def test_fastnet_uses_a_seeded_subset_of_the_requested_size():
    images = np.random.default_rng(0).integers(0, 256, (30, 16, 16, 3), dtype=np.uint8)
    seen = []
    model = create_model("fastnet", 3, widths=(8,), whiten_images=10)
    model.init_from_data = lambda x: seen.append(x.clone())
    init_model_from_data(model, images, seed=1)
    init_model_from_data(model, images, seed=1)
    init_model_from_data(model, images, seed=2)
    assert seen[0].shape == (10, 3, 16, 16) and 0.0 <= seen[0].min() and seen[0].max() <= 1.0
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])


def test_fastnet_rejects_bad_options():
    with pytest.raises(ValueError, match="dropout"):
        create_model("fastnet", 10, dropout=0.1)
    with pytest.raises(ValueError, match="widths"):
        create_model("fastnet", 10, widths=())


def test_only_convs_head_and_bn_shifts_train_by_default():
    model = create_model("fastnet", 10, widths=(8, 16))
    trained = sorted({n.split(".")[-1] for n, p in model.named_parameters() if p.requires_grad})
    assert trained == ["bias", "weight"]
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert frozen and all(n.endswith((".bn1.weight", ".bn2.weight")) for n in frozen)
    assert "whiten.weight" in dict(model.named_buffers()) and "whiten.bias" in dict(model.named_buffers())
    both = create_model("fastnet", 10, widths=(8, 16), train_bn_scale=True)
    assert all(p.requires_grad for p in both.parameters())
