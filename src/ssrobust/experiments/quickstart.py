"""``ssrobust quickstart``: baseline vs. + rotation on the built-in synthetic data, one report.

Needs no files and no network. The two runs share everything except the auxiliary rotation loss
(Hendrycks et al. 2019: CE + 0.5 * rotation loss). Sized to finish in a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..eval.base import SUITES
from ..runs.config import RunConfig
from ..typedconfig import from_dict

# The CPU-scale recipe shared by both runs; every value here is an ordinary config key.
QUICKSTART_BASE: dict[str, Any] = {
    "epochs": 10,
    "seed": 0,
    "precision": "auto",
    "channels_last": "auto",
    "log_every": 10,
    "data": {"source": "synthetic", "num_train": 3000, "num_test": 1000, "val_size": 300, "batch_size": 128,
             "flip": "alternating"},
    "model": {"name": "fastnet", "kwargs": {"widths": [32, 64, 64]}},
    "optim": {"lr": 0.2, "weight_decay": 5e-4, "warmup_epochs": 1},
}

# Suites (with CPU-scale options) added to the report when their modules are installed.
QUICKSTART_SUITES: dict[str, dict[str, Any]] = {
    "clean": {},
    "corruptions": {"max_images": 300},
    "adversarial": {"max_images": 100, "sweep_steps": 10, "gradient_free_images": 50, "spsa_steps": 10,
                    "spsa_samples": 16, "square_queries": 500, "autoattack": False},
    "ood": {"max_images": 500},
}


def quickstart_configs(out: Path, epochs: int | None = None, progress: bool = True) -> list[RunConfig]:
    suites = [s for s in QUICKSTART_SUITES if s in SUITES]
    options = {s: QUICKSTART_SUITES[s] for s in suites if QUICKSTART_SUITES[s]}
    cfgs = []
    for name, tasks in (("baseline", []), ("rotation", ["rotation:0.5"])):
        data = dict(QUICKSTART_BASE, name=name, out_dir=str(Path(out) / "runs"), tasks=tasks,
                    progress=progress, eval={"suites": suites, "options": options})
        if epochs is not None:
            data["epochs"] = epochs
        cfgs.append(from_dict(RunConfig, data))
    return cfgs


def quickstart(out: str | Path = "quickstart", epochs: int | None = None, progress: bool = True) -> Path:
    """Train both runs into ``out/runs/`` (resuming if interrupted), evaluate, and render
    ``out/report.{md,html}`` and ``out/results.json`` next to them; the runs stay where they are."""
    from ..paths import check_folder_path
    from ..report.render import load_results, render_results
    from .run import train_and_evaluate

    out = check_folder_path(out, "quickstart folder")  # a file there: fail before training, not after
    t0 = time.perf_counter()
    runs = [train_and_evaluate(cfg) for cfg in quickstart_configs(out, epochs, progress)]
    minutes = (time.perf_counter() - t0) / 60
    intro = ("Baseline vs. auxiliary rotation prediction (Hendrycks et al. 2019) on the built-in "
             f"synthetic dataset; both runs trained and evaluated in {minutes:.1f} min on this machine. "
             "This is a CPU-scale demonstration: the numbers show the pipeline, not the papers' effect sizes.")
    return render_results([load_results(r) for r in runs], out, "ssrobust quickstart", intro)
