"""The AdvCL attack objectives run through the package's PGD."""

import pytest
import torch

from ssrobust.attacks import PGD, ball_excess, ball_tolerance
from ssrobust.attacks.objectives import Objective
from ssrobust.contrastive import (ContrastiveObjective, MultiBatchNorm, ProjectionHead, PseudoLabelHeads,
                                  PseudoLabelObjective, SupConLoss, attack_with, convert_batchnorm,
                                  encode_views, high_frequency_component, nt_xent, simclr_view)
from ssrobust.models import create_model

EPS = 8 / 255


def setup(seed=0, b=8, size=16):
    """A tiny backbone with BatchNorm statistics from one batch, a projection head, and the four
    AdvCL views of a batch: original (attacked), two SimCLR views, the high-frequency view."""
    torch.manual_seed(seed)
    model = create_model("tiny", 10, width=4)
    head = ProjectionHead.for_backbone(model, out_dim=8)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, size, size, generator=g)
    model.train(), head.train()
    with torch.no_grad():
        head(model.forward_features(x))  # BatchNorm statistics of this batch
        model.eval(), head.eval()
        # An untrained network maps every image to nearly one direction; centring the projections
        # makes the cosines (and so the loss) depend on the input.
        head.net[-1].bias -= head(model.forward_features(x)).mean(0)
    views = [simclr_view(x, g), simclr_view(x, g), high_frequency_component(x)]
    return model, head, x, views


class Recomputing(Objective):
    """The reference code's way: every view re-encoded at every evaluation."""

    def __init__(self, head, views):
        self.head, self.views = head, views

    def bind(self, model, x_clean, y):
        def loss(x_adv):
            z = torch.stack([self.head(model.forward_features(v)).float() for v in [x_adv, *self.views]], 1)
            return nt_xent(z, 0.5, reduction="none").mean(1)
        return loss


def value_and_grad(objective, model, x, point):
    point = point.clone().requires_grad_(True)
    loss = objective.bind(model, x, torch.zeros(len(x), dtype=torch.long))(point)
    (grad,) = torch.autograd.grad(loss.sum(), point)
    return loss.detach(), grad


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_cached_views_give_the_same_loss_and_gradient_as_recomputing(mode):
    model, head, x, views = setup()
    model.train(mode == "train"), head.train(mode == "train")
    cached = ContrastiveObjective(head, encode_views(model, head, views))
    point = (x + EPS * (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(1)) - 1)).clamp(0, 1)
    loss_c, grad_c = value_and_grad(cached, model, x, point)
    loss_r, grad_r = value_and_grad(Recomputing(head, views), model, x, point)
    torch.testing.assert_close(loss_c, loss_r, atol=1e-6, rtol=0)
    torch.testing.assert_close(grad_c, grad_r, atol=1e-6, rtol=0)
    assert grad_c.abs().max() > 1e-4  # a real gradient, not two zeros


def test_attack_increases_the_contrastive_loss_and_stays_in_the_ball():
    model, head, x, views = setup()
    others = encode_views(model, head, views)
    objective = ContrastiveObjective(head, others)
    attack = PGD(eps=EPS, step_size=2 / 255, steps=5)
    x_adv = attack_with(attack, objective, model, x, torch.Generator().manual_seed(0))
    assert ball_excess(x_adv, x, EPS, "linf").max() <= ball_tolerance(EPS, "linf", x[0].numel())
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and not torch.equal(x_adv, x)
    with torch.no_grad():
        def full_loss(first):
            return nt_xent(torch.cat([head(model.forward_features(first))[:, None], others], 1), 0.5)
        noise = (x + EPS * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(2)))).clamp(0, 1)
        clean, random, adv = full_loss(x), full_loss(noise), full_loss(x_adv)
    assert adv > clean + 0.1 and adv > random + 0.1  # clean 4.48, random sign noise 4.51, PGD 4.68
    assert not model.training and not head.training  # modes restored


def test_supervised_criterion_and_shape_checks():
    model, head, x, views = setup()
    others = encode_views(model, head, views)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 3, 3])
    objective = ContrastiveObjective(head, others, criterion=SupConLoss(0.5), labels=labels)
    before = objective(model, x, x, labels)
    x_adv = attack_with(PGD(eps=EPS, steps=3), objective, model, x, torch.Generator().manual_seed(0))
    assert objective(model, x_adv, x, labels).mean() > before.mean()
    with pytest.raises(ValueError, match=r"\[B, V - 1, P\]"):
        ContrastiveObjective(head, others[:, 0])
    with pytest.raises(ValueError, match="projections of 8 images for a batch of 4"):
        objective(model, x[:4], x[:4], labels[:4])
    with pytest.raises(TypeError, match="has no objective field"):
        attack_with(object(), objective, model, x)


def test_pseudo_label_attack_raises_ce_on_its_own_batchnorm_branch():
    model, _, x, _ = setup()
    convert_batchnorm(model, ("normal", "pgd", "pgd_ce"))
    heads = PseudoLabelHeads(model.num_features, [2, 5])
    labels = {2: torch.randint(0, 2, (8,)), 5: torch.randint(0, 5, (8,))}
    objective = PseudoLabelObjective(heads, labels, branch="pgd_ce")
    bn = next(m for m in model.modules() if isinstance(m, MultiBatchNorm))
    normal_stats = bn.bns["normal"].running_mean.clone()
    ce_stats = bn.bns["pgd_ce"].running_mean.clone()
    before = objective(model, x, x, labels[2]).mean()
    attack = PGD(eps=EPS, step_size=2 / 255, steps=5, bn_mode="train")  # as the AdvCL code attacks
    x_adv = attack_with(attack, objective, model, x, torch.Generator().manual_seed(0))
    # The attack ran on the pgd_ce statistics only, and the active branch is back to normal.
    assert torch.equal(bn.bns["normal"].running_mean, normal_stats)
    assert not torch.equal(bn.bns["pgd_ce"].running_mean, ce_stats)
    assert bn.active == "normal" and not model.training
    with torch.no_grad():
        after = objective(model, x_adv, x, labels[2]).mean()
    assert after > before
    assert objective.modules() == [heads]
