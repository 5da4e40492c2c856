"""Recipe settings of the training loop that work with any backbone.

Threads and memory format (how fast a step runs), the data-dependent initialisation hook of a
backbone, and optimizer parameter groups with their own learning rate and weight decay for biases
and normalization parameters. Every setting defaults to the loop's earlier behaviour.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..images import unit_float
from ..runs.config import MuonConfig


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_threads(threads: int | None, local_processes: int = 1) -> int | None:
    """The torch thread count to set, or None to leave the process's setting alone.

    ``threads`` given: that. None with one process per host: None (PyTorch's default, all cores,
    or ``OMP_NUM_THREADS``). None with several processes on the host (torchrun): the usable cores
    divided among them, so that they never oversubscribe the machine (measured here: two threads
    next to another busy process run slower than one).
    """
    if threads is not None:
        return threads
    if local_processes > 1:
        return max(1, min(torch.get_num_threads(), usable_cores() // local_processes))
    return None


def apply_threads(threads: int | None, world_size: int) -> int:
    """Set torch's intra-op threads per :func:`resolve_threads`; returns the count in effect."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    n = resolve_threads(threads, local)
    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
    return torch.get_num_threads()


def resolve_channels_last(setting: bool | str, device: torch.device, precision: str) -> bool:
    """``channels_last: auto``: NHWC on CPUs (oneDNN's convolutions; measured 1.2-1.4x faster
    training steps on the 2-core AVX2 development machine for fastnet, wrn16_4 and tiny) and for
    reduced precision on CUDA (tensor cores); NCHW for fp32 on CUDA. A fixed rule rather than a
    timing, so a resumed run takes the same kernels as the run it continues."""
    if setting == "auto":
        return device.type == "cpu" or precision in ("bf16", "fp16")
    return bool(setting)


@torch.no_grad()
def init_model_from_data(model: nn.Module, images: np.ndarray, seed: int) -> int:
    """Call ``model.init_from_data(x)`` when the backbone defines it (e.g. fastnet's whitening
    layer), with ``x`` float ``[n, 3, H, W]`` in [0, 1]: ``model.data_init_images`` training images
    (all if fewer) chosen by ``seed`` alone. Returns how many images it used (0: no hook)."""
    hook = getattr(model, "init_from_data", None)
    if hook is None:
        return 0
    want = int(getattr(model, "data_init_images", len(images)))
    idx = np.random.default_rng([seed, 17]).permutation(len(images))[:want]
    batch = np.asarray(images[np.sort(idx)])  # sorted: sequential reads from a memory map
    x = unit_float(torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2))
    hook(x)
    return len(idx)


def is_bias_or_norm(param: nn.Parameter) -> bool:
    """Biases and normalization scales/shifts: every parameter with at most one dimension."""
    return param.ndim <= 1


def parameter_groups(net: nn.Module, lr_scale: float, weight_decay: float | None) -> list[dict[str, Any]]:
    """SGD parameter groups of the trainable parameters of ``net``.

    Defaults (``lr_scale == 1``, ``weight_decay is None``): one group, as always. Otherwise biases
    and normalization parameters get their own group, with ``lr_scale`` times the scheduled lr
    (the loop multiplies each group's ``lr_scale`` in) and ``weight_decay`` (None: the run's).
    """
    params = [p for p in net.parameters() if p.requires_grad]
    if lr_scale == 1.0 and weight_decay is None:
        return [{"params": params}]
    small = {"params": [p for p in params if is_bias_or_norm(p)], "lr_scale": float(lr_scale)}
    if weight_decay is not None:
        small["weight_decay"] = float(weight_decay)
    return [{"params": [p for p in params if not is_bias_or_norm(p)]}, small]


def split_filter_group(groups: list[dict[str, Any]], lr: float, muon: MuonConfig) -> list[dict[str, Any]]:
    """``groups`` with every 4-d (conv filter) parameter moved into one last group of orthogonalized
    steps (:class:`~ssrobust.train.muon.OrthoSGD`): ``lr_scale = muon.lr / lr``, the filters'
    momentum, no weight decay. Fails if there is no such parameter (``optim.muon`` would do nothing)."""
    filters = [p for g in groups for p in g["params"] if p.ndim == 4]
    if not filters:
        raise ConfigError("optim.muon.lr > 0 but the model has no trainable conv filters (4-d weights); "
                          "set optim.muon.lr=0")
    out = [{**g, "params": [p for p in g["params"] if p.ndim != 4]} for g in groups]
    out = [g for g in out if g["params"]]
    out.append({"params": filters, "lr_scale": muon.lr / lr, "momentum": muon.momentum,
                "nesterov": muon.nesterov, "weight_decay": 0.0, "orthogonalize": True,
                "ns_steps": muon.ns_steps, "normalize": muon.normalize})
    return out


def check_label_smoothing(value: float, strategy_name: str, supported: bool) -> None:
    """Label smoothing applies to the strategies whose classifier loss is cross-entropy."""
    if value and not supported:
        raise ConfigError(f"optim.label_smoothing={value} but strategy {strategy_name!r} uses its own "
                          f"classifier loss; set optim.label_smoothing=0 for it")
