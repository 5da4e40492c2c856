"""Label-noise experiments through the one training loop (Hendrycks et al. 2019, §3.3).

A *method* at one corruption strength is one or two ordinary runs (run directories under the
sweep folder, named ``s<strength>_<stage>``); the corruption itself is ``data.label_noise``, so every
run records its realized noise rate in ``results.json``:

* ``none``: CE on the corrupted labels (no trusted data).
* ``glc``: stage 1 trains with CE on the untrusted images only (``label_noise.use=untrusted``);
  its softmax on the trusted images gives ``Ĉ`` (:func:`~ssrobust.label_noise.estimate_corruption_matrix`);
  stage 2 trains on all images with strategy ``glc`` (CE on trusted, corrected loss on the rest).
* ``forward``: stage 1 is the ``none`` run; ``C`` is estimated from its softmax on the training
  images (Patrini et al. 2017 anchor points); stage 2 uses strategy ``forward``. No trusted data.
* ``rotation``, ``glc_rotation``, ``forward_rotation``: the same with the rotation task added
  (``rotation:0.5``). With ``pretrain_epochs > 0``, one rotation-only run (strategy ``ss_only``)
  is trained first and every run of these methods starts from it (``init_from``) and trains
  ``finetune_epochs`` (the paper: 100 pretraining + 40 epochs).

Sweeps are resumable: a run with ``results.json`` is skipped, an interrupted one resumes from its
checkpoint, and an estimated matrix is cached next to the stage-1 run (``corruption_matrix.json``)
so the stage-2 config is identical on every invocation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from ..data.base import DatasetSplits, LabelNoiseConfig
from ..runs.splits import load_splits
from ..errors import ConfigError
from ..paths import make_dir
from ..registry import Registry
from ..runs.config import ComponentConfig, RunConfig, parse_task_specs
from ..runs.rundir import RESULTS, read_json, write_json
from ..typedconfig import to_dict
from ..label_noise.correction import estimate_corruption_matrix, estimate_forward_matrix
from .run import ensure_run

MATRIX_FILE = "corruption_matrix.json"
SWEEP_FILE = "sweep.json"
PRETRAIN_NAME = "pretrain_rotation"


@dataclass(frozen=True)
class NoiseMethod:
    """A row of Table 2: whether the rotation task is added, and which loss correction is used."""

    name: str
    rotation: bool
    correction: str | None  # None | "glc" | "forward"


NOISE_METHODS: Registry[NoiseMethod] = Registry("label-noise method")
for _m in (NoiseMethod("none", False, None), NoiseMethod("rotation", True, None),
           NoiseMethod("glc", False, "glc"), NoiseMethod("glc_rotation", True, "glc"),
           NoiseMethod("forward", False, "forward"),
           NoiseMethod("forward_rotation", True, "forward")):
    NOISE_METHODS.register(_m.name)(_m)


@dataclass(frozen=True)
class SweepSettings:
    """Method-level settings that are not part of a single run's config.

    ``pretrain_epochs``: rotation-only pretraining before the rotation methods (paper: 100; 0 =
    none, the rotation methods then train ``base.epochs`` from scratch). ``finetune_epochs``:
    epochs of runs initialised from the pretraining (paper: 40; default ``base.epochs``).
    ``rotation_weight``: λ of the added rotation task. ``forward_quantile``: anchor quantile of
    the forward-correction estimate.
    """

    pretrain_epochs: int = 0
    finetune_epochs: int | None = None
    rotation_weight: float = 0.5
    forward_quantile: float = 0.97

    def __post_init__(self) -> None:
        if self.pretrain_epochs < 0 or (self.finetune_epochs is not None and self.finetune_epochs < 1):
            raise ConfigError("pretrain_epochs must be >= 0 and finetune_epochs >= 1")


def _strength_tag(strength: float) -> str:
    return f"s{strength:g}"


def _trusted_fraction(base: RunConfig, spec: NoiseMethod) -> float:
    """GLC uses the base config's trusted fraction; the other methods have no trusted data."""
    if spec.correction != "glc":
        return 0.0
    fraction = _base_noise(base).trusted_fraction
    if fraction <= 0:
        raise ConfigError(f"method {spec.name!r} needs trusted data: set "
                          f"data.label_noise.trusted_fraction (e.g. 0.05)")
    return fraction


def method_label(base: RunConfig, method: str) -> str:
    """The record name of ``method``: GLC methods carry their trusted fraction, e.g.
    ``"glc (5% trusted)"``, so sweeps with different fractions can share one folder and report."""
    spec = NOISE_METHODS.get(method)
    if spec.correction != "glc":
        return spec.name
    return f"{spec.name} ({100 * _trusted_fraction(base, spec):g}% trusted)"


def _base_noise(base: RunConfig) -> LabelNoiseConfig:
    return base.data.label_noise or LabelNoiseConfig()


def _tasks(base: RunConfig, rotation: bool, weight: float) -> list[str]:
    tasks = list(base.tasks)
    if rotation and "rotation" not in base.task_weights():
        tasks.append(f"rotation:{weight:g}")
    return tasks


def _run_config(base: RunConfig, name: str, out_dir: Path, *, tasks: list[str],
                noise: LabelNoiseConfig | None, epochs: int, init_from: str | None,
                strategy: ComponentConfig, final: bool) -> RunConfig:
    """A run derived from ``base``. Intermediate runs (``final=False``) evaluate ``clean`` only."""
    ev = base.eval
    suites = list(dict.fromkeys(["clean"] + (list(ev.suites) if final else [])))
    options = {k: v for k, v in ev.options.items() if k in suites}
    return dataclasses.replace(
        base, name=name, out_dir=str(out_dir), tasks=tasks, epochs=epochs, init_from=init_from,
        strategy=strategy, data=dataclasses.replace(base.data, label_noise=noise),
        eval=dataclasses.replace(ev, suites=suites, options=options),
        task_options={k: v for k, v in base.task_options.items()
                      if k in {spec.name for spec in parse_task_specs(tasks)}})


def _pretrain(base: RunConfig, out_dir: Path, settings: SweepSettings) -> str | None:
    """Run (or reuse) the rotation-only pretraining shared by every rotation run of a sweep."""
    if settings.pretrain_epochs == 0:
        return base.init_from
    cfg = _run_config(base, PRETRAIN_NAME, out_dir,
                      tasks=_tasks(base, True, settings.rotation_weight), noise=None,
                      epochs=settings.pretrain_epochs, init_from=base.init_from,
                      strategy=ComponentConfig("ss_only"), final=False)
    ensure_run(cfg)
    return str(Path(cfg.out_dir) / cfg.name)


@torch.no_grad()
def _softmax_of_run(run_dir: Path, splits: DatasetSplits, index: torch.Tensor) -> torch.Tensor:
    """``[len(index), K]`` softmax of a finished run's classifier on training images ``index``
    (no augmentation, eval mode, float32)."""
    from ..eval.base import predict, to_float_images
    from ..runs.load import load_run

    run = load_run(run_dir, splits=splits)
    cfg, device, model = run.cfg, run.device, run.net.model.eval()
    images = splits.train.images
    out = []
    for i in range(0, len(index), cfg.data.eval_batch_size):
        idx = index[i: i + cfg.data.eval_batch_size].numpy()
        out.append(torch.softmax(predict(model, to_float_images(images[idx], device)), 1).cpu())
    return torch.cat(out) if out else torch.empty(0, splits.num_classes)


def estimate_matrix(correction: str, stage1_dir: Path, splits: DatasetSplits | None,
                    quantile: float = 0.97) -> list[list[float]]:
    """The stage-2 matrix from the stage-1 run, cached in ``stage1_dir/corruption_matrix.json``.

    ``glc``: ``Ĉ`` from the softmax on the trusted images and their clean labels; ``forward``:
    anchor points of the softmax on the (untrusted) training images. ``splits`` is the stage-2
    data (all images, ``extras["trusted"]`` and ``extras["clean_labels"]``); it may be ``None``
    when the cache exists.
    """
    cache = Path(stage1_dir) / MATRIX_FILE
    if cache.is_file():
        return read_json(cache)["matrix"]
    if splits is None:
        raise ConfigError(f"{cache} does not exist and no data was given to estimate it")
    trusted = torch.as_tensor(splits.train.extras["trusted"], dtype=torch.bool)
    k = splits.num_classes
    if correction == "glc":
        index = torch.nonzero(trusted).flatten()
        clean = torch.as_tensor(splits.train.extras["clean_labels"])[index]
        matrix = estimate_corruption_matrix(_softmax_of_run(stage1_dir, splits, index), clean, k)
    else:
        index = torch.nonzero(~trusted).flatten()
        matrix = estimate_forward_matrix(_softmax_of_run(stage1_dir, splits, index), k, quantile)
    # float64 rows renormalized after the float32 estimate, so the YAML copy sums to 1 exactly.
    m = matrix.double()
    m = (m / m.sum(1, keepdim=True)).tolist()
    write_json(cache, {"correction": correction, "num_images": len(index), "matrix": m})
    return m


def _noise(base: RunConfig, strength: float, trusted_fraction: float, use: str) -> LabelNoiseConfig:
    return dataclasses.replace(_base_noise(base), strength=float(strength),
                               trusted_fraction=trusted_fraction, use=use)


def run_method(base: RunConfig, method: str, strength: float, out_dir: str | Path,
               settings: SweepSettings = SweepSettings(),
               pretrained: str | None = None) -> dict[str, Any]:
    """Train ``method`` at corruption ``strength`` (reusing finished runs); returns the point
    ``{"strength", "test_error", "realized_noise", "run", "trusted_fraction"}`` with the test
    error ``1 - clean accuracy`` on the clean test set.

    ``pretrained``: the rotation-only run for rotation methods (made here if ``None`` and
    ``settings.pretrain_epochs > 0``).
    """
    spec = NOISE_METHODS.get(method)
    out_dir = Path(out_dir)
    init, epochs = base.init_from, base.epochs
    if spec.rotation and settings.pretrain_epochs > 0:
        init = pretrained or _pretrain(base, out_dir, settings)
        epochs = settings.finetune_epochs or base.epochs
    tasks = _tasks(base, spec.rotation, settings.rotation_weight)

    def config(stage: str, noise: LabelNoiseConfig, strategy: ComponentConfig,
               final: bool) -> RunConfig:
        return _run_config(base, f"{_strength_tag(strength)}_{stage}", out_dir, tasks=tasks,
                           noise=noise, epochs=epochs, init_from=init, strategy=strategy,
                           final=final)

    # The CE run on fully corrupted labels: method none/rotation, and forward's stage 1.
    ce = config("rotation" if spec.rotation else "none", _noise(base, strength, 0.0, "all"),
                base.strategy, True)
    if spec.correction is None:
        return _point(strength, ce, ensure_run(ce))
    trusted_fraction = _trusted_fraction(base, spec)
    stage, stage1 = spec.name, ce
    if spec.correction == "glc":  # run names carry the fraction: "s0.4_glc_t0.05"
        stage = f"{spec.name}_t{trusted_fraction:g}"
        stage1 = config(f"{stage}_stage1",
                        _noise(base, strength, trusted_fraction, "untrusted"), base.strategy, False)
    ensure_run(stage1)
    noise = _noise(base, strength, trusted_fraction, "all")
    stage1_dir = out_dir / stage1.name
    splits = (None if (stage1_dir / MATRIX_FILE).is_file()
              else load_splits(dataclasses.replace(base.data, label_noise=noise)))
    matrix = estimate_matrix(spec.correction, stage1_dir, splits, settings.forward_quantile)
    final = config(stage, noise, ComponentConfig(spec.correction, {"matrix": matrix}), True)
    return _point(strength, final, ensure_run(final, splits))


def _point(strength: float, cfg: RunConfig, results: dict) -> dict[str, Any]:
    noise = results.get("data", {}).get("label_noise", {})
    acc = results["suites"]["clean"]["accuracy"]
    return {"strength": float(strength), "test_error": 1.0 - float(acc),
            "realized_noise": noise.get("realized_noise"), "run": cfg.name,
            "trusted_fraction": noise.get("trusted_fraction")}


def _check_strengths(strengths: Sequence[float]) -> list[float]:
    values = [float(s) for s in strengths]
    if not values or any(not (0.0 <= s <= 1.0) or math.isnan(s) for s in values):
        raise ConfigError(f"strengths must be a non-empty list of values in [0, 1], got {values}")
    if len({_strength_tag(s) for s in values}) != len(values):
        raise ConfigError(f"strengths contain duplicates: {values}")
    return values


def _previous_records(path: Path) -> list[dict[str, Any]]:
    return list(read_json(path).get("records", [])) if path.is_file() else []


def run_sweep(base: RunConfig, methods: Sequence[str], strengths: Sequence[float],
              out_dir: str | Path, settings: SweepSettings = SweepSettings()) -> dict[str, Any]:
    """Train every (method, strength) point into ``out_dir`` and write ``out_dir/sweep.json``.

    Returns (and writes after every point, so a partial sweep is readable) ``{"methods",
    "strengths", "records"}``. A record is ``{"method": label, "points": [...], "name",
    "trusted_fraction", "settings", "base_config"}``, the format the ``label_noise`` report
    section expects (labels from :func:`method_label`). What ``sweep.json`` already holds is
    kept (other methods, other strengths), so several invocations build one Table 2: e.g. the
    no-correction, GLC 5% and GLC 10% presets with one ``out_dir`` (they share the pretraining
    and the runs they have in common). Rerunning a call skips finished points and resumes the
    interrupted one.
    """
    specs = [NOISE_METHODS.get(m) for m in methods]  # unknown names fail before any training
    labels = [method_label(base, s.name) for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"methods contain duplicates: {list(methods)}")
    values = _check_strengths(strengths)
    out_dir = Path(out_dir)
    make_dir(out_dir, "sweep folder")  # one-line error when it is a file
    previous = {r.get("method"): r for r in _previous_records(out_dir / SWEEP_FILE)}
    ours = [{"method": label, "points": list(previous.get(label, {}).get("points", [])),
             "name": spec.name, "trusted_fraction": _trusted_fraction(base, spec),
             "settings": dataclasses.asdict(settings), "base_config": to_dict(base)}
            for spec, label in zip(specs, labels)]
    records = [r for label, r in previous.items() if label not in labels] + ours
    sweep: dict[str, Any] = {"methods": [r["method"] for r in records], "strengths": [],
                             "records": records}
    pretrained = None
    if any(s.rotation for s in specs) and settings.pretrain_epochs > 0:
        pretrained = _pretrain(base, out_dir, settings)
    for strength in values:
        for spec, record in zip(specs, ours):
            point = run_method(base, spec.name, strength, out_dir, settings, pretrained)
            # A strength run before (an earlier invocation) is replaced by this result.
            others = [p for p in record["points"] if _strength_tag(p["strength"]) != _strength_tag(strength)]
            record["points"] = sorted(others + [point], key=lambda p: p["strength"])
            sweep["strengths"] = sorted({p["strength"] for r in records for p in r["points"]})
            write_json(out_dir / SWEEP_FILE, sweep)
    return sweep


def sweep_report(sweep: dict[str, Any], out_dir: str | Path, title: str = "Label corruption",
                 sweep_dir: str | Path | None = None) -> Path:
    """Render a sweep record into ``out_dir`` (``report.md``, ``report.html``): Table 2-style
    mean errors and Fig. 4-style curves, one pseudo-run per method.

    With ``sweep_dir``, each method's summary row shows the model, tasks, strategy and epochs of
    its first point's final run.
    """
    from ..report.render import render_results

    results = []
    for record in sweep["records"]:
        if not record["points"]:
            continue
        entry: dict[str, Any] = {"run": record["method"], "suites": {"label_noise": record}}
        first = Path(sweep_dir) / record["points"][0]["run"] / RESULTS if sweep_dir else None
        if first is not None and first.is_file():
            done = read_json(first)
            entry.update(config=done.get("config", {}),
                         train={"epochs": done.get("train", {}).get("epochs", "–")})
        results.append(entry)
    if not results:
        raise ConfigError("the sweep has no finished points to report")
    intro = (f"Label-noise sweep: methods {', '.join(sweep['methods'])}; corruption strengths "
             f"{', '.join(f'{s:g}' for s in sweep['strengths'])}; test error = 1 - accuracy on "
             f"the clean test set.")
    return render_results(results, Path(out_dir), title=title, intro=intro)
