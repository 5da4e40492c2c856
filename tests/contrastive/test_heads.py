"""Projection head, pseudo-label heads and per-branch BatchNorm."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssrobust.contrastive import (MultiBatchNorm, ProjectionHead, PseudoLabelHeads, convert_batchnorm,
                                  set_branch, use_branch)
from ssrobust.models import create_model


def test_projection_head_is_scaled_to_the_backbone():
    resnet_like = ProjectionHead(512)
    widths = [(m.in_features, m.out_features) for m in resnet_like.modules() if isinstance(m, nn.Linear)]
    assert widths == [(512, 512), (512, 128)]
    model = create_model("tiny", 10, width=4)  # 16 features
    head = ProjectionHead.for_backbone(model, out_dim=8)
    widths = [(m.in_features, m.out_features) for m in head.modules() if isinstance(m, nn.Linear)]
    assert widths == [(16, 16), (16, 8)]
    out = head(model.forward_features(torch.rand(5, 3, 16, 16)))
    assert out.shape == (5, 8)
    with pytest.raises(ValueError, match="out_dim must be a positive integer"):
        ProjectionHead(16, out_dim=0)


def test_pseudo_label_heads_mean_ce_over_heads():
    torch.manual_seed(0)
    heads = PseudoLabelHeads(6, [2, 5])
    f = torch.randn(4, 6)
    labels = {2: torch.tensor([0, 1, 1, 0]), 5: torch.tensor([4, 0, 2, 3])}
    logits = heads(f)
    assert logits[2].shape == (4, 2) and logits[5].shape == (4, 5)
    expected = (F.cross_entropy(logits[2], labels[2], reduction="none")
                + F.cross_entropy(logits[5], labels[5], reduction="none")) / 2
    torch.testing.assert_close(heads.per_sample_loss(f, labels), expected)
    torch.testing.assert_close(heads.loss(f, labels), expected.mean())
    with pytest.raises(KeyError, match=r"missing for K = \[5\]"):
        heads.per_sample_loss(f, {2: labels[2]})
    with pytest.raises(ValueError, match="distinct cluster counts K >= 2"):
        PseudoLabelHeads(6, [1, 5])


def test_multi_batchnorm_keeps_separate_statistics_per_branch():
    model = create_model("tiny", 10, width=4)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    convert_batchnorm(model, ("clean", "adv"))
    multi = [m for m in model.modules() if isinstance(m, MultiBatchNorm)]
    assert len(multi) == n_bn and all(m.active == "clean" for m in multi)
    first = multi[0]
    before = first.bns["clean"].running_mean.clone()
    model.train()
    with use_branch(model, "adv"):
        assert all(m.active == "adv" for m in multi)
        model(torch.rand(4, 3, 16, 16) + 0.0)
    assert all(m.active == "clean" for m in multi)          # restored
    assert torch.equal(first.bns["clean"].running_mean, before)  # clean statistics untouched
    assert not torch.equal(first.bns["adv"].running_mean, before)
    set_branch(model, "adv")
    assert all(m.active == "adv" for m in multi)
    with pytest.raises(KeyError, match="unknown BatchNorm branch 'pgd'; known: clean, adv"):
        set_branch(model, "pgd")


def test_branches_give_different_outputs_once_statistics_differ():
    head = ProjectionHead(6, out_dim=3, bn_branches=("clean", "adv"))
    x = torch.randn(16, 6)
    head.train()
    with use_branch(head, "adv"):
        head(x * 5 + 3)  # adversarial branch sees other statistics
    head.eval()
    clean = head(x)
    with use_branch(head, "adv"):
        adv = head(x)
    assert not torch.allclose(clean, adv)
    with use_branch(head, None):  # None: no switching at all
        torch.testing.assert_close(head(x), clean)


def test_convert_a_single_batchnorm_and_bad_branch_names():
    bn = nn.BatchNorm1d(3)
    multi = convert_batchnorm(bn, ("normal", "pgd", "pgd_ce"))
    assert isinstance(multi, MultiBatchNorm) and multi.branches == ("normal", "pgd", "pgd_ce")
    with pytest.raises(ValueError, match="distinct names"):
        convert_batchnorm(nn.BatchNorm1d(3), ("a", "a"))
    with pytest.raises(ValueError, match="not an identifier"):
        convert_batchnorm(nn.BatchNorm1d(3), ("clean", "a.b"))
