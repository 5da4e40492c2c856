"""Test-time augmentation: the wrapper equals the weighted mean of explicitly transformed predictions."""

import pytest
import torch

from ssrobust.models import create_model
from ssrobust.models.tta import TestTimeAugmentation, tta_views, with_tta


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    m = create_model("tiny", 5, width=4).eval()
    with torch.no_grad():  # non-trivial BN statistics: a flip-symmetric net would hide mistakes
        for bn in (b for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return m


def shifted(x: torch.Tensor, s: int) -> torch.Tensor:
    """Content moved ``s`` pixels down and right, reflected border, built pixel by pixel."""
    h, w = x.shape[-2:]

    def src(i: int, n: int) -> int:
        j = i - s
        return -j if j < 0 else (2 * (n - 1) - j if j >= n else j)  # reflect without the edge

    rows = torch.tensor([src(i, h) for i in range(h)])
    cols = torch.tensor([src(i, w) for i in range(w)])
    return x[..., rows, :][..., cols]


def test_flip_equals_mean_of_the_image_and_its_mirror():
    m, x = model(), torch.rand(4, 3, 16, 16)
    expected = 0.5 * m(x) + 0.5 * m(torch.flip(x, dims=[3]))
    assert torch.allclose(TestTimeAugmentation(m, "flip")(x), expected, atol=1e-6)


def test_flip_translate_equals_weighted_mean_of_the_six_explicit_views():
    m, x = model(), torch.rand(3, 3, 16, 16)
    views = []
    for img in (x, torch.flip(x, dims=[3])):
        views += [(0.25, img), (0.125, shifted(img, -1)), (0.125, shifted(img, 1))]
    expected = sum(w * m(v) for w, v in views)
    tta = TestTimeAugmentation(m, "flip_translate")
    assert torch.allclose(tta(x), expected, atol=1e-6)
    assert sum(v.weight for v in tta_views("flip_translate")) == pytest.approx(1.0)
    # features average the same way, and the affine head maps them to the same logits
    feats = sum(w * m.forward_features(v) for w, v in views)
    assert torch.allclose(tta.forward_features(x), feats, atol=1e-6)
    assert torch.allclose(tta.forward_head(tta.forward_features(x)), expected, atol=1e-5)


def test_shift_moves_content_by_one_pixel():
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 2, 3] = 1.0
    assert shifted(x, 1)[0, 0, 3, 4] == 1.0 and shifted(x, -1)[0, 0, 1, 2] == 1.0


def test_tta_is_deterministic_and_differentiable_for_attacks():
    m, x = model(), torch.rand(2, 3, 16, 16, requires_grad=True)
    tta = TestTimeAugmentation(m, "flip_translate")
    a = tta(x)
    assert torch.equal(a, tta(x))
    a[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert tta.num_features == m.num_features and tta.num_classes == 5


def test_none_is_the_model_itself_and_unknown_modes_fail():
    m = model()
    assert with_tta(m, "none") is m
    with pytest.raises(ValueError, match="flip_translate"):
        TestTimeAugmentation(m, "rotate")
