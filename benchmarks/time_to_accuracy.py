"""Time to accuracy on real CIFAR-10: the fast recipe against the WRN-16-4 preset, same wall time.

Trains each ``configs/cpu/cifar10_fast*.yaml`` preset given (default: the baseline and the three
rotation variants) on an image-folder copy of CIFAR-10 (e.g. the shared JPEG copy; a ``.tar.gz``
is extracted once into ``benchmarks/_work/``), through the package's own training loop. After
every ``--eval-every`` epochs it records the test accuracy (the live weights, or the EMA average,
without test-time augmentation) against the cumulative *training* wall time and training FLOPs;
the run's final evaluation (with the preset's TTA, on the whole test set) closes each curve.
Training FLOPs per labelled image are counted once per run with torch's FlopCounterMode on one
full training step (strategy, tasks, attack included). Fast-AT presets (``cifar10_fast_at*``) also
report their adversarial suite.

The same run trains the comparison preset (default: the current WRN-16-4 preset, its pretext
tasks removed, all training images) for the wall time the first fast preset took: its epochs
come from a short speed probe (with a subset of the training set when even one epoch is longer).

Writes JSON and a plot (accuracy vs. time and vs. PFLOP, with the 0.29 PFLOP airbench floor):
``benchmarks/results/time_to_accuracy.{json,png}`` for full runs; runs with any ``--limit-*`` or
``--max-per-class`` go to ``benchmarks/_work/`` instead (smoke runs are not measurements).

    python benchmarks/time_to_accuracy.py --data ../shared/data/cifar10-jpeg.tar.gz
    python benchmarks/time_to_accuracy.py --data ../shared/data/cifar10-jpeg.tar.gz --presets cifar10_fast \\
        --max-per-class 100 --set epochs=1 --set data.batch_size=100       # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tarfile
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from ssrobust.api import make_config
from ssrobust.data.base import DatasetSplits, load_splits
from ssrobust.data.loader import to_device_uint8
from ssrobust.runs.checkpoint import load_checkpoint
from ssrobust.runs.config import RunConfig
from ssrobust.experiments.run import train_and_evaluate as fit
from ssrobust.runs.network import build_network
from ssrobust.train.trainer import accuracy_on
from ssrobust.runs.precision import autocast_context, cpu_summary
from ssrobust.train.recipe import apply_threads, init_model_from_data, resolve_channels_last
from ssrobust.runs.rundir import CHECKPOINT, RESULTS, read_metrics
from ssrobust.train.strategies import build_strategy

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs" / "cpu"
AIRBENCH_FLOOR_PFLOP = 0.29  # Jordan 2024: 94% on CIFAR-10 with ~0.29 PFLOP of training compute
DEFAULT_PRESETS = "cifar10_fast,cifar10_fast_rotation,cifar10_fast_rotation_one,cifar10_fast_rotation_quarter"


def image_folder(data: Path, max_per_class: int | None) -> Path:
    """``data`` itself if it is a folder; a ``.tar.gz`` is extracted (all images, or the first
    ``max_per_class`` of every class and split) into ``benchmarks/_work/`` once."""
    if data.is_dir():
        if max_per_class:
            raise SystemExit("--max-per-class needs the .tar.gz (it extracts a subset)")
        return data
    if not data.is_file():
        raise SystemExit(f"--data {data}: no such folder or .tar.gz")
    out = HERE / "_work" / (data.name.split(".")[0] + (f"-{max_per_class}" if max_per_class else ""))
    if (out / "train").is_dir() and (out / "test").is_dir():
        return out
    counts: dict[str, int] = {}
    with tarfile.open(data) as tar:
        members = []
        for m in tar:
            folder = str(Path(m.name).parent)
            if m.isfile():
                counts[folder] = counts.get(folder, 0) + 1
                if max_per_class and counts[folder] > max_per_class:
                    continue
            members.append(m)
        tar.extractall(out, members=members, filter="data")
    return out


def run_config(preset: str, data_root: Path, out_dir: Path, overrides: list[str]) -> RunConfig:
    path = Path(preset) if preset.endswith(".yaml") else CONFIGS / f"{preset}.yaml"
    return make_config(path, [f"data.root={data_root}", f"out_dir={out_dir}", "progress=false", *overrides])


def probe(cfg: RunConfig, splits: DatasetSplits, steps: int = 2) -> tuple[float, float]:
    """(training FLOPs per labelled image, labelled images per second) of one full training step
    of ``cfg`` at its batch size (strategy, tasks and attack included; one warm-up step)."""
    torch.manual_seed(cfg.seed)
    net = build_network(cfg, splits.num_classes)
    init_model_from_data(net.model, splits.train.images, cfg.seed)
    cl = resolve_channels_last(cfg.channels_last, torch.device("cpu"), "fp32")
    if cl:
        net = net.to(memory_format=torch.channels_last)
    net.label_smoothing = cfg.optim.label_smoothing
    strategy = build_strategy(cfg.strategy.name, **cfg.strategy.options)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    n = min(cfg.data.batch_size, len(splits.train))
    x = to_device_uint8(splits.train.images[:n], torch.device("cpu")).float().div_(255.0)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.as_tensor(splits.train.labels[:n], dtype=torch.long)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        out = strategy(net, x, y, gen, {})
        loss = out.main_loss + sum(0.5 * v for v in out.aux_losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return counter.get_total_flops() / n, steps * n / (time.perf_counter() - t0)


def checkpoint_accuracy(run_dir: Path, cfg: RunConfig, splits: DatasetSplits, n: int) -> float:
    """Test accuracy (first ``n`` images, no TTA) of the weights in ``checkpoint.pt``; with EMA
    averaging, of the averaged weights (what the run would end with)."""
    ck = load_checkpoint(run_dir / CHECKPOINT)
    state = dict(ck["network"], **ck.get("averaging", {}).get("shadow", {}))
    net = build_network(cfg, splits.num_classes)
    net.load_state_dict(state)
    test = splits.test
    images = to_device_uint8(test.images[:n], torch.device("cpu"))
    labels = torch.as_tensor(test.labels[:n], dtype=torch.long)
    acc, _ = accuracy_on(net.model, images, labels, cfg.data.eval_batch_size,
                         lambda: autocast_context(torch.device("cpu"), "fp32"))
    return acc


def train_with_curve(cfg: RunConfig, splits: DatasetSplits, eval_every: int, curve_images: int,
                     probed: tuple[float, float] | None = None) -> dict[str, Any]:
    """Train ``cfg`` (fresh) ``eval_every`` epochs at a time; returns the curve and final results.
    ``probed``: the (FLOPs per image, images/s) of :func:`probe` when already measured."""
    flops, probe_ips = probed or probe(cfg, splits)
    n_train = len(splits.train)  # the validation split is already carved off
    steps_per_epoch = n_train // cfg.data.batch_size
    curve, run_dir = [], Path(cfg.out_dir) / cfg.name
    while True:
        run_dir = fit(cfg, overwrite=not curve, stop_after=eval_every, splits=splits)
        epochs = [r for r in read_metrics(run_dir) if r.get("kind") == "epoch"]
        seconds = sum(r["epoch_time_s"] for r in epochs)
        images = len(epochs) * steps_per_epoch * cfg.data.batch_size
        finished = (run_dir / RESULTS).exists()
        point = {"epoch": len(epochs), "train_time_s": seconds, "train_pflop": flops * images / 1e15,
                 "test_accuracy": None if finished else checkpoint_accuracy(run_dir, cfg, splits, curve_images)}
        curve.append(point)
        print(f"  {cfg.name}: epoch {point['epoch']}, {seconds:.0f} s, {point['train_pflop']:.4f} PFLOP, "
              f"test acc {point['test_accuracy']}", flush=True)
        if finished:
            break
    results = json.loads((run_dir / RESULTS).read_text())
    final = curve[-1]
    final["test_accuracy"] = results["suites"]["clean"]["accuracy"]
    final["tta"] = cfg.eval.tta
    return {"preset": cfg.name, "train_flops_per_image": flops, "probe_images_per_s": probe_ips,
            "num_train": n_train, "epochs": cfg.epochs, "curve": curve,
            "final": dict(final, floor_ratio=final["train_pflop"] / AIRBENCH_FLOOR_PFLOP,
                          early_stop=results.get("train", {}).get("early_stop")),
            "suites": {k: _brief(v) for k, v in results["suites"].items()}, "run_dir": str(run_dir)}


def _brief(record: dict) -> dict:
    """Headline numbers of a suite record (the full record stays in the run's results.json)."""
    keep = ("accuracy", "clean_accuracy", "worst_case_robust_accuracy", "n", "tta", "time_s")
    out = {k: record[k] for k in keep if k in record}
    for name, attack in record.get("attacks", {}).items():
        if isinstance(attack, dict) and "robust_accuracy" in attack:
            out[f"{name}_robust_accuracy"] = attack["robust_accuracy"]
    return out


def budget_config(cfg: RunConfig, splits: DatasetSplits, seconds: float
                  ) -> tuple[RunConfig, tuple[float, float]]:
    """``cfg`` with epochs (and, below one epoch, a training subset) that fill ``seconds`` at the
    probed speed, and the probe's result."""
    probed = probe(cfg, splits)
    images = seconds * probed[1]
    n_train = len(splits.train)
    if images >= n_train:
        return make_config(cfg, [f"epochs={max(1, round(images / n_train))}"]), probed
    keep = max(cfg.data.batch_size, int(images)) + (cfg.data.val_size or 0)  # the limit counts val too
    return make_config(cfg, ["epochs=1", f"data.limit_train={keep}"]), probed


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        pts = [p for p in run["curve"] if p["test_accuracy"] is not None]
        for ax, key, scale in ((axes[0], "train_time_s", 60.0), (axes[1], "train_pflop", 1.0)):
            ax.plot([p[key] / scale for p in pts], [p["test_accuracy"] for p in pts], marker="o",
                    label=run["preset"])
    axes[0].set_xlabel("training wall time (min)")
    axes[1].set_xlabel("training compute (PFLOP)")
    axes[1].axvline(AIRBENCH_FLOOR_PFLOP, color="grey", ls="--", lw=1, label="airbench 94% (0.29 PFLOP)")
    for ax in axes:
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle("CIFAR-10 time to accuracy (last point per run: final evaluation with its TTA)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="CIFAR-10 image folder or its .tar.gz")
    p.add_argument("--presets", default=DEFAULT_PRESETS, help="comma-separated preset names or YAML paths")
    p.add_argument("--compare", default="cifar10_imagefolder_wrn16_4_rotation",
                   help="preset trained for the first preset's wall time ('' to skip)")
    p.add_argument("--compare-tasks", choices=("none", "preset"), default="none",
                   help="none: the comparison runs without its pretext tasks (baseline vs baseline)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override for every run, e.g. epochs=1 (repeatable)")
    p.add_argument("--set-fast", action="append", default=[], metavar="KEY=VALUE",
                   help="override for the fast presets only, e.g. model.kwargs={widths: [32, 64, 64]}")
    p.add_argument("--eval-every", type=int, default=1, help="epochs between curve points")
    p.add_argument("--curve-images", type=int, default=10000, help="test images per curve point")
    p.add_argument("--max-per-class", type=int, default=None, help="smoke runs: images per class and split")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--work", type=Path, default=HERE / "_work" / "time_to_accuracy", help="run directories")
    p.add_argument("--out", type=Path, default=None, help="JSON path (the plot goes next to it)")
    p.add_argument("--probe-steps", type=int, default=3, help="timed steps per preset with --probe-only")
    p.add_argument("--probe-only", action="store_true",
                   help="only measure each preset's training FLOPs per image and images/s (a few steps each); "
                        "writes time_to_accuracy_probe.json")
    return p.parse_args()


def write_report(out: Path, runs: list[dict], info: dict[str, Any]) -> None:
    """JSON and plot of the runs so far (written after every run: a late failure loses nothing)."""
    machine = dict(info.pop("machine"), loadavg_after=os.getloadavg())
    report = dict(info, finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine=machine, runs=runs)
    info["machine"] = machine
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    plot(runs, out.with_suffix(".png"))


def probe_presets(a: argparse.Namespace, root: Path, overrides: list[str], info: dict[str, Any],
                  splits_of: Any) -> None:
    """Cost of each preset's training step relative to the first one (no training to accuracy)."""
    rows = []
    for preset in [p for p in a.presets.split(",") if p]:
        cfg = run_config(preset, root, a.work, [*overrides, *a.set_fast])
        flops, ips = probe(cfg, splits_of(cfg), steps=a.probe_steps)
        rows.append({"preset": cfg.name, "batch_size": cfg.data.batch_size, "train_flops_per_image": flops,
                     "images_per_s": ips})
        print(f"  {cfg.name}: {flops / 1e9:.2f} GFLOP per labelled image, {ips:.1f} img/s", flush=True)
    for row in rows:
        row["time_vs_first"] = rows[0]["images_per_s"] / row["images_per_s"]
        row["flops_vs_first"] = row["train_flops_per_image"] / rows[0]["train_flops_per_image"]
    out = a.out or (HERE / "results" / "time_to_accuracy_probe.json")
    machine = dict(info.pop("machine"), loadavg_after=os.getloadavg())
    report = dict(info, benchmark="time_to_accuracy_probe", probe_steps=a.probe_steps,
                  finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"), machine=machine, presets=rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")


def main() -> None:
    a = parse_args()
    smoke = bool(a.max_per_class) or any(s.split("=")[0].startswith(("data.limit", "epochs", "model"))
                                         for s in a.set + a.set_fast)
    name = "time_to_accuracy" + ("_smoke" if smoke else "")
    out = a.out or (HERE / ("_work" if smoke else "results") / f"{name}.json")
    threads = apply_threads(a.threads, 1)
    root = image_folder(a.data, a.max_per_class)
    overrides = list(a.set) + ([f"threads={a.threads}"] if a.threads else [])
    info = {"benchmark": "time_to_accuracy", "smoke": smoke, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "data": str(a.data), "airbench_floor_pflop": AIRBENCH_FLOOR_PFLOP, "overrides": overrides,
            "machine": {"platform": platform.platform(), "cpu": cpu_summary(), "cores": os.cpu_count(), "threads": threads,
                        "torch": torch.__version__, "loadavg_before": os.getloadavg()}}
    runs, cache = [], {}

    def splits_of(cfg: RunConfig) -> DatasetSplits:  # decoded once per data config
        key = repr(cfg.data)
        if key not in cache:
            cache[key] = load_splits(cfg.data)
        return cache[key]

    if a.probe_only:
        probe_presets(a, root, overrides, info, splits_of)
        return
    for preset in [p for p in a.presets.split(",") if p]:
        cfg = run_config(preset, root, a.work, [*overrides, *a.set_fast])
        runs.append(train_with_curve(cfg, splits_of(cfg), a.eval_every, a.curve_images))
        write_report(out, runs, info)
    if a.compare and runs:
        extra = ["tasks=[]", "task_options={}"] if a.compare_tasks == "none" else []
        cfg = run_config(a.compare, root, a.work, ["data.limit_train=null", *extra, *overrides])
        if extra:
            cfg = make_config(cfg, [f"name={cfg.name}_no_tasks"])
        budget = runs[0]["final"]["train_time_s"]
        cfg, probed = budget_config(cfg, splits_of(cfg), budget)
        runs.append(dict(train_with_curve(cfg, splits_of(cfg), a.eval_every, a.curve_images, probed),
                         compared_for_seconds=budget))
        write_report(out, runs, info)
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
