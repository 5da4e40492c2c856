"""NT-Xent and supervised-contrastive losses: hand-computed values, invariances, gradients."""

import math

import pytest
import torch

from ssrobust.contrastive import (CONTRASTIVE_LOSSES, NTXentLoss, SupConLoss, build_contrastive_loss,
                                  nt_xent, sup_con)


def loop_loss(z: torch.Tensor, groups: list[int], tau: float) -> torch.Tensor:
    """Reference written with explicit loops over anchors, positives and the denominator:
    returns the per-anchor losses [B, V] (positives = same group, anchor excluded)."""
    b, v, _ = z.shape
    flat = [(i, j, z[i, j] / z[i, j].norm()) for i in range(b) for j in range(v)]
    out = torch.zeros(b, v, dtype=torch.float64)
    for ai, aj, a in flat:
        denom = 0.0
        for ci, cj, c in flat:
            if (ci, cj) != (ai, aj):
                denom += math.exp(float(a @ c) / tau)
        terms = []
        for pi, pj, p in flat:
            if (pi, pj) != (ai, aj) and groups[pi] == groups[ai]:
                terms.append(math.log(math.exp(float(a @ p) / tau) / denom))
        out[ai, aj] = -sum(terms) / len(terms)
    return out


def test_nt_xent_matches_closed_form_on_a_tiny_batch():
    # image 0: two identical views (1, 0); image 1: opposite views (0, 1) and (0, -1); tau = 1.
    # Anchors of image 0: positive sim 1, negatives sim 0, 0 -> -log(e / (e + 2)).
    # Anchors of image 1: positive sim -1, negatives sim 0, 0 -> -log(e^-1 / (e^-1 + 2)).
    z = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, -1.0]]])
    expected = (math.log(1 + 2 / math.e) + math.log(1 + 2 * math.e)) / 2
    assert nt_xent(z, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)
    per_anchor = nt_xent(z, temperature=1.0, reduction="none")
    assert per_anchor.shape == (2, 2)
    assert per_anchor[0, 0].item() == pytest.approx(math.log(1 + 2 / math.e), rel=1e-6)
    assert per_anchor[1, 1].item() == pytest.approx(math.log(1 + 2 * math.e), rel=1e-6)


@pytest.mark.parametrize("views", [2, 4])
def test_nt_xent_matches_loop_reference(views):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, views, 5, generator=g, dtype=torch.float64)
    ref = loop_loss(z, [0, 1, 2], tau=0.5)
    got = nt_xent(z, temperature=0.5, reduction="none")
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    assert nt_xent(z, 0.5).item() == pytest.approx(ref.mean().item(), rel=1e-10)


def test_sup_con_matches_loop_reference_and_reduces_to_nt_xent():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(4, 3, 6, generator=g, dtype=torch.float64)
    labels = torch.tensor([1, 0, 1, 2])
    ref = loop_loss(z, labels.tolist(), tau=0.3)
    torch.testing.assert_close(sup_con(z, labels, 0.3, reduction="none"), ref, rtol=1e-10, atol=1e-12)
    distinct = torch.tensor([5, 3, 9, 0])
    torch.testing.assert_close(sup_con(z, distinct, 0.3), nt_xent(z, 0.3))
    # Sharing a label adds positives, so the loss changes.
    assert not torch.allclose(sup_con(z, labels, 0.3), nt_xent(z, 0.3))


def test_base_temperature_scales_the_loss_like_khosla():
    z = torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(2))
    plain = nt_xent(z, 0.5)
    assert nt_xent(z, 0.5, base_temperature=0.07).item() == pytest.approx(plain.item() * 0.5 / 0.07, rel=1e-5)


def test_invariant_to_image_order_view_order_rotation_and_norm():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(5, 3, 4, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1])
    base = nt_xent(z, 0.5, reduction="none")
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(nt_xent(z[perm], 0.5, reduction="none"), base[perm])
    vperm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(nt_xent(z[:, vperm], 0.5, reduction="none"), base[:, vperm])
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    scales = torch.rand(5, 3, 1, generator=g, dtype=torch.float64) + 0.5
    torch.testing.assert_close(nt_xent((z @ q) * scales, 0.5, reduction="none"), base)
    torch.testing.assert_close(sup_con(z[perm], labels[perm], 0.5, reduction="none"),
                               sup_con(z, labels, 0.5, reduction="none")[perm])


def test_identical_views_give_lower_loss_than_random_ones():
    g = torch.Generator().manual_seed(4)
    base = torch.randn(8, 1, 16, generator=g)
    aligned = base.expand(8, 2, 16)
    random = torch.randn(8, 2, 16, generator=g)
    assert nt_xent(aligned, 0.5) < nt_xent(random, 0.5)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(3, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0])
    assert torch.autograd.gradcheck(lambda t: nt_xent(t, 0.7, reduction="none"), (z,))
    assert torch.autograd.gradcheck(lambda t: sup_con(t, labels, 0.7), (z,))


def test_modules_registry_and_bad_inputs():
    assert set(CONTRASTIVE_LOSSES.names()) == {"nt_xent", "sup_con"}
    z = torch.randn(4, 2, 3)
    labels = torch.tensor([0, 0, 1, 1])
    assert isinstance(build_contrastive_loss("nt_xent", temperature=0.2), NTXentLoss)
    torch.testing.assert_close(NTXentLoss(0.2)(z), nt_xent(z, 0.2))
    torch.testing.assert_close(SupConLoss(0.2)(z, labels), sup_con(z, labels, 0.2))
    with pytest.raises(KeyError, match="unknown contrastive loss 'simclr'; known: nt_xent, sup_con"):
        build_contrastive_loss("simclr")
    with pytest.raises(ValueError, match=r"\[B, V, D\] with V >= 2"):
        nt_xent(torch.randn(4, 1, 3))
    with pytest.raises(ValueError, match="temperature must be > 0"):
        nt_xent(z, 0.0)
    with pytest.raises(ValueError, match="nt_xent takes no labels"):
        NTXentLoss()(z, labels)
    with pytest.raises(ValueError, match="sup_con needs labels"):
        SupConLoss()(z)
    with pytest.raises(ValueError, match=r"integers of shape \[4\]"):
        sup_con(z, labels.float())
