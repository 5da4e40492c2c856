"""A fast CIFAR backbone: patch-whitening stem and three conv-pool-BN-GELU groups.

The ideas are those of the fastest known CIFAR-10 recipe (airbench, Jordan 2024), written anew:

* the first layer is a fixed ``k x k`` convolution that *whitens* image patches: its filters are
  the eigenvectors of the training patches' covariance scaled by ``1/sqrt(eigenvalue + eps)``
  (each also negated, so the GELU after it keeps both signs). It is built from data by
  :meth:`FastNet.init_from_data`, which the training loop calls once before the first step;
* three groups ``conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU`` of widths
  64/256/256 (the pooling before the normalization quarters the cost of everything after it);
  the BatchNorm scales stay 1 and only the shifts train (``train_bn_scale=True`` trains both);
* every 3x3 convolution starts as a partial identity (Dirac init of as many output channels as
  it has inputs), so the deep path starts close to a shallow one and trains fast at a large lr;
* features are the global max of the last map; the linear head has no bias and its logits are
  scaled by ``head_scale`` (1/9), which keeps early logits small at a large learning rate.

Inputs are [0, 1] images; the per-channel normalization is the model's first layer, as everywhere.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import MODELS, Backbone, Normalize


class PatchWhitening(nn.Module):
    """A ``k x k`` convolution (no padding) whose fixed filters whiten the input's patches.

    ``weight`` ``[2*C*k*k, C, k, k]`` and ``bias`` ``[2*C*k*k]`` are buffers: set from data, never
    trained, saved with the model. Before :meth:`fit` the filters whiten patches of zero mean and
    identity covariance (the unit basis and its negation, zero bias).
    """

    def __init__(self, channels: int = 3, kernel: int = 2, eps: float = 5e-4) -> None:
        super().__init__()
        d = channels * kernel * kernel
        self.channels, self.kernel, self.eps = channels, kernel, eps
        basis = torch.eye(d).view(d, channels, kernel, kernel)
        self.register_buffer("weight", torch.cat([basis, -basis]))
        self.register_buffer("bias", torch.zeros(2 * d))

    @property
    def out_channels(self) -> int:
        return int(self.weight.shape[0])

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """All ``k x k`` patches of ``x`` ``[B, C, H, W]`` as rows ``[B*(H-k+1)*(W-k+1), C*k*k]``,
        flattened in the order of the filter weights (channel, row, column)."""
        cols = F.unfold(x, self.kernel)  # [B, C*k*k, L]
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Set the filters from the patches of ``x`` ``[N, C, H, W]`` (already normalized).

        With ``Σ = V diag(λ) Vᵀ`` the patch covariance (patches centred by their mean ``μ``), the
        first half of the filters is ``diag(1/sqrt(λ + eps)) Vᵀ`` and the bias ``-Wμ``: on these
        patches that half outputs zero-mean features of covariance ``diag(λ / (λ + eps))`` (the
        identity up to ``eps``). Computed in float64. Returns ``(mean [D], covariance [D, D])``.
        """
        p = self.patches(x.double())
        mean = p.mean(0)
        centred = p - mean
        cov = centred.T @ centred / p.shape[0]
        eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending; columns are eigenvectors
        w = eigvecs.T / torch.sqrt(eigvals.clamp_min(0) + self.eps)[:, None]  # [D, D]
        w = w.flip(0)  # strongest direction first
        d = w.shape[0]
        self.weight.copy_(torch.cat([w, -w]).view(2 * d, self.channels, self.kernel, self.kernel))
        b = -(w @ mean)
        self.bias.copy_(torch.cat([b, -b]))
        return mean.float(), cov.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype))


def _dirac_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """3x3 same-padding conv without bias; its first ``min(c_in, c_out)`` filters pass their input
    channel through unchanged (identity-style init), the others keep PyTorch's default init."""
    conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])
    return conv


class ConvGroup(nn.Module):
    """conv3x3 -> maxpool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU: ``[B, c_in, H, W]`` ->
    ``[B, c_out, H//2, W//2]``."""

    def __init__(self, c_in: int, c_out: int, bn_momentum: float) -> None:
        super().__init__()
        self.conv1 = _dirac_conv(c_in, c_out)
        self.pool = nn.MaxPool2d(2)
        self.bn1 = nn.BatchNorm2d(c_out, momentum=bn_momentum)
        self.conv2 = _dirac_conv(c_out, c_out)
        self.bn2 = nn.BatchNorm2d(c_out, momentum=bn_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(self.pool(self.conv1(x))))
        return F.gelu(self.bn2(self.conv2(x)))


@MODELS.register("fastnet")
class FastNet(Backbone):
    """Whitening stem + conv groups (default widths 64/256/256, 256-d features).

    Args:
        widths: output channels of the three (or more) conv groups.
        whiten_kernel, whiten_eps: patch size and eigenvalue regularizer of the whitening layer.
        whiten_images: how many training images :meth:`init_from_data` wants (a seeded subset).
        bn_momentum: PyTorch BatchNorm momentum (0.4: running statistics follow the fast-moving
            weights of a short run closely).
        head_scale: multiplies the logits.
        train_bn_scale: train the BatchNorm scales (default: fixed at 1, only the shifts train,
            as in airbench; then ``optim.bias_lr_scale`` speeds up exactly the shifts).
        dropout: accepted for a uniform model interface; must be 0.
    """

    def __init__(self, num_classes: int = 10, widths: Sequence[int] = (64, 256, 256), whiten_kernel: int = 2,
                 whiten_eps: float = 5e-4, whiten_images: int = 5000, bn_momentum: float = 0.4,
                 head_scale: float = 1 / 9, train_bn_scale: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if dropout:
            raise ValueError("fastnet has no dropout; set model.kwargs.dropout=0")
        if not widths or min(widths) < 1:
            raise ValueError(f"fastnet: widths must be a non-empty list of positive ints, got {widths}")
        if whiten_kernel < 1 or whiten_eps < 0 or whiten_images < 1:
            raise ValueError("fastnet: whiten_kernel and whiten_images must be >= 1, whiten_eps >= 0")
        self.normalize = Normalize()
        self.whiten = PatchWhitening(3, whiten_kernel, whiten_eps)
        groups, c = [], self.whiten.out_channels
        for w in widths:
            groups.append(ConvGroup(c, int(w), bn_momentum))
            c = int(w)
        self.groups = nn.Sequential(*groups)
        self.num_features, self.num_classes = c, num_classes
        self.data_init_images = int(whiten_images)
        self.head_scale = float(head_scale)
        self.fc = nn.Linear(c, num_classes, bias=False)
        if not train_bn_scale:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.weight.requires_grad_(False)

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor) -> None:
        """Build the whitening filters from training images ``[N, 3, H, W]`` in [0, 1]."""
        self.whiten.fit(self.normalize(images.to(self.whiten.weight.device, torch.float32)))

    def forward_feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.groups(F.gelu(self.whiten(self.normalize(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] in [0, 1] -> [B, num_features] (global max pool of the last map)."""
        return self.forward_feature_map(x).amax(dim=(2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features) * self.head_scale
