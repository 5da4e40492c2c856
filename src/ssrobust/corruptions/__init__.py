"""Common corruptions (Hendrycks & Dietterich, *Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations*, ICLR 2019): a batched, seeded engine for all 19 CIFAR-10-C /
ImageNet-C corruptions, -C dataset writing and loading.

>>> import torch, ssrobust.corruptions as C
>>> x = torch.rand(8, 3, 32, 32)
>>> y = C.corrupt(x, "fog", 3, generator=torch.Generator().manual_seed(0))
>>> params = C.sample("fog", x.shape, 3, torch.Generator().manual_seed(0))
>>> torch.equal(C.apply("fog", x, 3, params), y)
True

``NAMES`` lists the 15 benchmark corruptions (``BENCHMARK``) followed by the 4 held-out validation
ones (``VALIDATION``), in the official order.
"""

from . import blur, digital, noise, weather  # noqa: F401  (registration)
from .base import (BENCHMARK, CORRUPTIONS, NAMES, SEVERITIES, VALIDATION, Corruption, Params, apply,
                   block_generator, corrupt, corrupt_mixture, sample, to_uint8_like_official)
from .folder import CorruptedFolder, load_corrupted_folder
from .params import PARAM_SETS, resolve_param_set, severity_params
from .writer import write_corrupted_dataset

__all__ = [
    "NAMES", "BENCHMARK", "VALIDATION", "SEVERITIES", "CORRUPTIONS", "Corruption", "Params",
    "sample", "apply", "corrupt", "corrupt_mixture", "to_uint8_like_official", "block_generator", "write_corrupted_dataset",
    "load_corrupted_folder", "CorruptedFolder", "PARAM_SETS", "resolve_param_set", "severity_params",
]
