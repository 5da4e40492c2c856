"""Contract of the corruption engine, for every registered corruption: shapes, range, dtype,
determinism given the generator, exact replay from sampled params, errors."""

from __future__ import annotations

import pytest
import torch

import ssrobust.corruptions as C
from ssrobust.errors import ConfigError

from corruption_helpers import smooth_images

X = smooth_images(4, seed=1)


def test_names_list_benchmark_then_validation_and_match_registry():
    assert len(C.BENCHMARK) == 15 and len(C.VALIDATION) == 4
    assert C.NAMES == C.BENCHMARK + C.VALIDATION
    assert C.VALIDATION == ("speckle_noise", "gaussian_blur", "spatter", "saturate")
    assert sorted(C.NAMES) == C.CORRUPTIONS.names()
    random = {n for n in C.NAMES if C.CORRUPTIONS.get(n).random}
    assert random == {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise", "glass_blur",
                      "motion_blur", "snow", "frost", "fog", "spatter", "elastic_transform"}


@pytest.mark.parametrize("name", C.NAMES)
def test_every_corruption_keeps_shape_range_dtype_and_changes_the_image(name):
    for sev in (1, 5):
        y = C.corrupt(X, name, sev, torch.Generator().manual_seed(0))
        assert y.shape == X.shape and y.dtype == X.dtype
        assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
        assert (y - X).abs().mean() > 1e-3
    y64 = C.corrupt(X.double(), name, 3, torch.Generator().manual_seed(0))
    assert y64.dtype == torch.float64
    odd = C.corrupt(smooth_images(2, 20, 28), name, 2, torch.Generator().manual_seed(0))
    assert odd.shape == (2, 3, 20, 28) and odd.min() >= 0 and odd.max() <= 1


@pytest.mark.parametrize("name", C.NAMES)
def test_same_seed_same_output_and_params_replay_exactly(name):
    a = C.corrupt(X, name, 3, torch.Generator().manual_seed(7))
    b = C.corrupt(X, name, 3, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    params = C.sample(name, X.shape, 3, torch.Generator().manual_seed(7))
    assert torch.equal(C.apply(name, X, 3, params), a)
    assert torch.equal(C.apply(name, X, 3, params), C.apply(name, X, 3, params))
    if C.CORRUPTIONS.get(name).random:
        c = C.corrupt(X, name, 3, torch.Generator().manual_seed(8))
        assert not torch.equal(a, c)
        assert params and all(isinstance(v, torch.Tensor) for v in params.values())
    else:
        assert params == {}


def test_half_precision_input_is_computed_in_float32_and_returned_as_given():
    y = C.corrupt(X.bfloat16(), "gaussian_blur", 2)
    ref = C.corrupt(X.bfloat16().float(), "gaussian_blur", 2)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, ref.bfloat16())


def test_param_set_follows_height_and_can_be_overridden():
    assert C.resolve_param_set(32) == "cifar" and C.resolve_param_set(64) == "cifar"
    assert C.resolve_param_set(65) == "imagenet" and C.resolve_param_set(224, "cifar") == "cifar"
    x = smooth_images(2)
    # ImageNet contrast at severity 1 (0.4) is much stronger than CIFAR's (0.75)
    cifar = C.corrupt(x, "contrast", 1)
    imnet = C.corrupt(x, "contrast", 1, param_set="imagenet")
    m = x.mean((2, 3), keepdim=True)
    assert torch.allclose(cifar, ((x - m) * 0.75 + m).clamp(0, 1), atol=1e-6)
    assert torch.allclose(imnet, ((x - m) * 0.4 + m).clamp(0, 1), atol=1e-6)


def test_errors_are_clear():
    with pytest.raises(KeyError, match="known: .*brightness"):
        C.corrupt(X, "fogg", 1)
    with pytest.raises(ConfigError, match="severity"):
        C.corrupt(X, "fog", 6)
    with pytest.raises(ConfigError, match=r"\(B, 3, H, W\)"):
        C.corrupt(X[:, :1], "fog", 1)
    with pytest.raises(ConfigError, match="uint8"):
        C.corrupt((X * 255).byte(), "fog", 1)
    with pytest.raises(ConfigError, match="random"):
        C.apply("fog", X, 1, {})
    with pytest.raises(ConfigError, match="param_set"):
        C.corrupt(X, "fog", 1, param_set="tiny")


def test_to_uint8_like_official_truncates():
    values = [0.0, 0.5 / 255, 1.0 / 255, 254.99 / 255, 1.0, 1.2, -0.1]
    x = torch.tensor(values).view(1, 1, 1, 7).expand(1, 3, 1, 7)
    u = C.to_uint8_like_official(x)[0, 0, 0].tolist()
    assert u == [0, 0, 1, 254, 255, 255, 0]
    levels = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16).expand(1, 3, 16, 16) / 255
    assert torch.equal(C.to_uint8_like_official(levels)[0, 0].flatten().long(), torch.arange(256))


def test_sampling_happens_on_the_generator_device_and_params_move_to_x():
    params = C.sample("snow", X.shape, 2, torch.Generator().manual_seed(0), device="cpu")
    assert set(params) == {"layer", "angle"} and params["layer"].shape == (4, 32, 32)
    assert params["angle"].dtype == torch.float64
    assert ((params["angle"] >= -135) & (params["angle"] < -45)).all()


def test_shot_noise_off_the_8bit_grid_matches_the_on_grid_distribution():
    """The exact incomplete-gamma sampler (any input) and the table sampler (8-bit inputs) draw the
    same Poisson law: compare moments against Poisson(x * photons) / photons on the same levels."""
    level = torch.full((64, 3, 32, 32), 0.3)
    on = torch.full_like(level, round(0.3 * 255) / 255)
    g = torch.Generator().manual_seed(0)
    for sev, photons in ((1, 500.0), (5, 50.0)):
        for x in (level, on):
            y = C.corrupt(x, "shot_noise", sev, g).double() * photons
            lam = float(x[0, 0, 0, 0]) * photons
            n = y.numel()
            assert abs(float(y.mean()) - lam) < 4 * (lam / n) ** 0.5
            assert abs(float(y.var()) / lam - 1) < 4 * (2 / n) ** 0.5 + 0.01


def test_corrupt_mixture_assigns_one_corruption_and_severity_per_image():
    x = C.to_uint8_like_official(smooth_images(12, seed=4))
    out = C.corrupt_mixture(x, ["gaussian_blur"], [3], seed=7)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    # one corruption, one severity: exactly the batched corruption with its block generator
    ref = C.to_uint8_like_official(C.corrupt(x.float() / 255, "gaussian_blur", 3,
                                             generator=C.block_generator(7, "gaussian_blur", 3, 0)))
    assert torch.equal(out, ref)
    # a mixture: every image equals one of the candidates, both candidates occur, seeded
    mix = C.corrupt_mixture(x, ["gaussian_blur", "saturate"], [2], seed=1)
    assert torch.equal(mix, C.corrupt_mixture(x, ["gaussian_blur", "saturate"], [2], seed=1))
    blur = C.corrupt_mixture(x, ["gaussian_blur"], [2], seed=1)
    sat = C.corrupt_mixture(x, ["saturate"], [2], seed=1)  # deterministic corruption: no params
    is_sat = (mix == sat).flatten(1).all(1)
    assert is_sat.any() and (~is_sat).any()
    is_blur = (mix == blur).flatten(1).all(1)  # both corruptions are deterministic
    assert bool((is_sat | is_blur).all()) and not torch.equal(mix, x)
    with pytest.raises(ConfigError, match="severities"):
        C.corrupt_mixture(x, ["saturate"], [6], seed=0)
    with pytest.raises(ConfigError, match="uint8"):
        C.corrupt_mixture(x.float(), ["saturate"], [1], seed=0)
