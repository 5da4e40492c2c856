"""One surface for every image encoder: ``pooled(x) -> [B, D]`` and ``spatial(x) -> [B, C, h, w]``.

:func:`as_encoder` wraps

* an ssrobust backbone, with no options: map ``forward_feature_map``, pooled ``forward_features``
  (the backbone's own pooling: fastnet's global max, the others' mean);
* any ``nn.Module`` by naming the **method** that returns its features (``method="forward_features"``
  for a timm-style model) or the **layer** whose output they are (``layer="4"`` in an
  ``nn.Sequential``, ``layer="layer3"``); a layer is read with a forward hook, and the forward pass
  stops right after it, so the rest of the network (its classifier) never runs.

What the method or layer returns decides what is available: a map ``[B, C, h, w]`` gives both
(pooled = global average); tokens ``[B, N, D]`` (ViT) give a map after dropping ``prefix_tokens``
(the remaining ``N - prefix_tokens`` must form a square grid) and, as pooled, the first (class) token
when there is one, else the token mean; a vector ``[B, D]`` gives ``pooled`` only.

Frozen by default (the layer6 benchmark's protocol, a frozen encoder under light heads): the
wrapped module's parameters get ``requires_grad=False`` (``release()`` gives the original flags
back) and every call runs it in eval mode, restoring each submodule's train/eval flag afterwards,
so BatchNorm statistics never move and the ``state_dict`` stays bit-identical. Gradients with
respect to the *input* still flow, so attacks work on a frozen encoder.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, ContextManager, Literal

import torch
from torch import nn

from ..modes import module_modes
from ..errors import ConfigError

FeatureKind = Literal["pooled", "spatial"]
FEATURE_KINDS: tuple[str, ...] = ("pooled", "spatial")
FeatureFn = Callable[[torch.Tensor], torch.Tensor]


class _StopForward(Exception):
    """Raised by the layer hook once the features are captured: the rest of the forward is skipped."""


class NoSpatialMap(ConfigError):
    """The encoder's features are a vector ``[B, D]``: there is no spatial map for dense heads."""


def module_mode(module: nn.Module, train: bool) -> ContextManager:
    """Run ``module`` in train or eval mode; every submodule gets its own flag back afterwards."""
    return module_modes([module], train)


def eval_mode(module: nn.Module) -> ContextManager:
    return module_mode(module, train=False)


def _layer_features(model: nn.Module, layer: str, call: FeatureFn) -> FeatureFn:
    """A feature function returning the output of submodule ``layer`` during ``call(x)``."""
    try:
        target = model.get_submodule(layer)
    except AttributeError:
        names = [n for n, _ in model.named_children()]
        raise ConfigError(f"encoder layer {layer!r} is not a submodule of {type(model).__name__}; "
                          f"its top-level children are: {', '.join(names) or '(none)'}") from None

    def features(x: torch.Tensor) -> torch.Tensor:
        box: list[object] = []

        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            box.append(output)
            raise _StopForward

        handle = target.register_forward_hook(hook)
        try:
            call(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not box:
            raise ConfigError(f"encoder layer {layer!r} did not run during the forward pass")
        return box[0]  # type: ignore[return-value]

    return features


def _method(model: nn.Module, name: str) -> FeatureFn:
    fn = getattr(model, name, None)
    if not callable(fn):
        raise ConfigError(f"encoder method {name!r}: {type(model).__name__} has no such method")
    return fn


class Encoder(nn.Module):
    """A wrapped encoder. Build it with :func:`as_encoder`.

    ``pooled(x)``: ``[B, 3, H, W]`` in [0, 1] -> ``[B, D]``; ``spatial(x)`` -> ``[B, C, h, w]``;
    ``forward`` and ``forward_features`` are ``pooled`` (so the attack objectives that read
    ``forward_features`` work on an encoder as they do on a backbone).
    """

    def __init__(self, module: nn.Module, features: FeatureFn, *, pooled_fn: FeatureFn | None = None,
                 frozen: bool = True, prefix_tokens: int = 0, source: str = "features") -> None:
        super().__init__()
        if prefix_tokens < 0:
            raise ConfigError(f"encoder prefix_tokens must be >= 0, got {prefix_tokens}")
        self.module = module
        self._features, self._pooled_fn = features, pooled_fn
        self.frozen, self.prefix_tokens, self.source = frozen, prefix_tokens, source
        self._saved_requires_grad = [(p, p.requires_grad) for p in module.parameters()]
        if frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def release(self) -> nn.Module:
        """Give the wrapped module its original ``requires_grad`` flags back; returns it."""
        for p, flag in self._saved_requires_grad:
            p.requires_grad_(flag)
        return self.module

    def _mode(self) -> ContextManager:
        return eval_mode(self.module) if self.frozen else nullcontext()

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, D]``."""
        with self._mode():
            out = (self._pooled_fn or self._features)(x)
        return self._to_pooled(out)

    def spatial(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, C, h, w]``."""
        with self._mode():
            out = self._features(x)
        return self._to_map(out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pooled(x)

    def features(self, x: torch.Tensor, kind: FeatureKind) -> torch.Tensor:
        """``pooled(x)`` or ``spatial(x)`` by name."""
        if kind not in FEATURE_KINDS:
            raise ConfigError(f"feature kind {kind!r} is not one of {', '.join(FEATURE_KINDS)}")
        return self.pooled(x) if kind == "pooled" else self.spatial(x)

    def _check(self, out: object) -> torch.Tensor:
        if not isinstance(out, torch.Tensor) or out.dim() not in (2, 3, 4):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ConfigError(f"encoder {self.source} returned {got}; expected a tensor [B, C, h, w], "
                              f"tokens [B, N, D] or a vector [B, D]")
        return out

    def _to_pooled(self, out: object) -> torch.Tensor:
        t = self._check(out)
        if t.dim() == 4:
            return t.mean(dim=(2, 3))
        if t.dim() == 3:
            return t[:, 0] if self.prefix_tokens else t.mean(dim=1)
        return t

    def _to_map(self, out: object) -> torch.Tensor:
        t = self._check(out)
        if t.dim() == 4:
            return t
        if t.dim() == 2:
            raise NoSpatialMap(f"encoder {self.source} returns pooled features {tuple(t.shape)}, no "
                              f"spatial map; name a layer or method that returns [B, C, h, w]")
        tokens = t[:, self.prefix_tokens:]
        side = math.isqrt(tokens.shape[1])
        if side * side != tokens.shape[1] or side == 0:
            raise ConfigError(f"encoder {self.source} returned {t.shape[1]} tokens; after "
                              f"{self.prefix_tokens} prefix token(s) they do not form a square grid "
                              f"(set prefix_tokens to the number of class/register tokens)")
        return tokens.transpose(1, 2).reshape(t.shape[0], t.shape[2], side, side)


def as_encoder(model: nn.Module, *, method: str | None = None, layer: str | None = None,
               pooled_method: str | None = None, prefix_tokens: int = 0,
               frozen: bool = True) -> Encoder:
    """Wrap ``model`` as an :class:`Encoder` (see the module docstring for the options).

    ``method``: name of a method returning the features; with ``layer`` too, the method is the call
    that runs the layer (default: ``model.__call__``). ``pooled_method``: a separate method for the
    pooled vector (e.g. a pre-logits method), else it is pooled from the map. An :class:`Encoder`
    is returned as it is when no option is given.
    """
    if isinstance(model, Encoder) and method is None and layer is None and pooled_method is None:
        return model
    pooled_fn = _method(model, pooled_method) if pooled_method else None
    if layer is not None:
        call = _method(model, method) if method else model
        features, source = _layer_features(model, layer, call), f"layer {layer!r}"
    elif method is not None:
        features, source = _method(model, method), f"method {method!r}"
    elif callable(getattr(model, "forward_feature_map", None)):  # an ssrobust backbone
        features, source = model.forward_feature_map, "forward_feature_map"
        # its own pooling (fastnet: global max), the vector its classifier was trained on
        pooled_fn = pooled_fn or getattr(model, "forward_features", None)
    else:
        raise ConfigError(f"{type(model).__name__} is not an ssrobust backbone: name the method "
                          f"(method='forward_features') or the layer (layer='layer4') giving its features")
    return Encoder(model, features, pooled_fn=pooled_fn, frozen=frozen,
                   prefix_tokens=prefix_tokens, source=source)


@dataclass(frozen=True)
class FeatureShapes:
    """What an encoder returns for one image size: pooled ``D``; map ``C x h x w`` (None if none)."""

    pooled_dim: int
    channels: int | None
    map_size: tuple[int, int] | None


def probe(encoder: Encoder, image_size: tuple[int, int], device: torch.device | str = "cpu"
          ) -> FeatureShapes:
    """Run one blank image through ``encoder`` (no gradients) to read its feature shapes."""
    x = torch.zeros(1, 3, *image_size, device=device)
    with torch.no_grad(), eval_mode(encoder):
        pooled = encoder.pooled(x)
        try:
            fmap = encoder.spatial(x)
        except NoSpatialMap:
            return FeatureShapes(int(pooled.shape[1]), None, None)
    return FeatureShapes(int(pooled.shape[1]), int(fmap.shape[1]), (int(fmap.shape[2]), int(fmap.shape[3])))
