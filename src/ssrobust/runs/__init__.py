"""Runs: the run directory, its typed config, checkpoints, precision, device, network assembly,
opening a run for writing (:mod:`.runstart`) and loading a finished one (:func:`load_run`).

Both the trainer and the evaluation suites build on this layer; neither imports the other."""

from .config import ComponentConfig, EvalConfig, ModelConfig, OptimConfig, RunConfig
from .load import LoadedRun, load_run
from .network import Network, build_network
from .precision import Precision

__all__ = ["ComponentConfig", "EvalConfig", "ModelConfig", "OptimConfig", "RunConfig", "LoadedRun",
           "load_run", "Network", "build_network", "Precision"]
