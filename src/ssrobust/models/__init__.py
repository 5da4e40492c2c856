"""Backbones with ``forward_features`` / ``forward_head``, selected by name through ``MODELS``."""

from . import fastnet, resnet, tiny, wrn  # noqa: F401  (registration)
from .base import MODELS, Backbone, Normalize, create_model

__all__ = ["MODELS", "Backbone", "Normalize", "create_model"]
