"""Label-noise experiments through the sweep layer (Hendrycks et al. 2019, §3.3).

``ssrobust noise-sweep`` builds a sweep spec (:func:`noise_spec`) and runs it like ``ssrobust
sweep`` (:mod:`.sweep`): a *method* at one corruption strength is one or two ordinary runs, arms
named ``s<strength>_<stage>`` (run folders ``<arm>_s<seed>``); the corruption itself is
``data.label_noise``, so every run records its realized noise rate in ``results.json``:

* ``none``: CE on the corrupted labels (no trusted data).
* ``glc``: stage 1 trains with CE on the untrusted images only (``label_noise.use=untrusted``);
  stage 2 trains on all images with strategy ``glc`` and ``matrix_from={run:<stage 1>}``: it
  estimates ``Ĉ`` itself when it starts, from the stage-1 softmax on the trusted images
  (:func:`ssrobust.train.label_noise.matrix_from_run`).
* ``forward``: stage 1 is the ``none`` run; stage 2 uses strategy ``forward`` with ``C`` from its
  softmax on the training images (Patrini et al. 2017 anchor points). No trusted data.
* ``rotation``, ``glc_rotation``, ``forward_rotation``: the same with the rotation task added
  (``rotation:0.5``). With ``pretrain_epochs > 0``, one rotation-only run (strategy ``ss_only``)
  is trained first and every run of these methods starts from it (``init_from={run:pretrain_rotation}``)
  and trains ``finetune_epochs`` (the paper: 100 pretraining + 40 epochs).

Sweeps are resumable as every sweep is: a finished run is skipped, an interrupted one resumes from
its checkpoint, a stage-2 run keeps the matrix it cached (``corruption_matrix.json`` in its own
folder); configs are the same on every invocation. ``sweep.json`` collects the points for the
``label_noise`` report section.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..data.base import LabelNoiseConfig
from ..errors import ConfigError, SsrobustError
from ..locking import DirLock
from ..registry import Registry
from ..runs.config import ComponentConfig, RunConfig, parse_task_specs
from ..runs.rundir import RESULTS, read_json, write_json
from ..typedconfig import to_dict
from .sweep_jobs import Outcome
from .sweep_spec import SweepSpec, spec_from_dict

SWEEP_FILE = "sweep.json"
PRETRAIN_NAME = "pretrain_rotation"
SPEC_NAME = "noise-sweep"


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


def _arm(cfg: RunConfig, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A spec arm: the whole run config inline (name, folder and seed are the sweep's)."""
    return {"base": to_dict(cfg), "overrides": list(overrides)}


def _pretrain_arm(base: RunConfig, settings: SweepSettings) -> dict[str, Any]:
    """The rotation-only pretraining every rotation run of a sweep starts from."""
    return _arm(_run_config(base, PRETRAIN_NAME, Path(base.out_dir),
                            tasks=_tasks(base, True, settings.rotation_weight), noise=None,
                            epochs=settings.pretrain_epochs, init_from=base.init_from,
                            strategy=ComponentConfig("ss_only"), final=False))


def method_arms(base: RunConfig, method: str, strength: float,
                settings: SweepSettings = SweepSettings()) -> tuple[dict[str, dict], str]:
    """The arms of ``method`` at ``strength`` (``{arm: {base, overrides}}``, stage 2 pointing at
    stage 1 with ``{run:ARM}``) and the name of the arm whose clean error is the point. Rotation
    arms start from ``{run:pretrain_rotation}`` when ``settings.pretrain_epochs > 0``."""
    spec = NOISE_METHODS.get(method)
    tag = _strength_tag(strength)
    pretrained = spec.rotation and settings.pretrain_epochs > 0
    init = ["init_from={run:" + PRETRAIN_NAME + "}"] if pretrained else []
    epochs = (settings.finetune_epochs or base.epochs) if pretrained else base.epochs
    tasks = _tasks(base, spec.rotation, settings.rotation_weight)

    def config(stage: str, noise: LabelNoiseConfig, strategy: ComponentConfig, final: bool) -> RunConfig:
        return _run_config(base, f"{tag}_{stage}", Path(base.out_dir), tasks=tasks, noise=noise,
                           epochs=epochs, init_from=base.init_from, strategy=strategy, final=final)

    # The CE run on fully corrupted labels: method none/rotation, and forward's stage 1.
    ce = f"{tag}_{'rotation' if spec.rotation else 'none'}"
    arms = {ce: _arm(config(ce[len(tag) + 1:], _noise(base, strength, 0.0, "all"), base.strategy, True), init)}
    if spec.correction is None:
        return arms, ce
    fraction = _trusted_fraction(base, spec)
    stage, stage1, options = spec.name, ce, {"quantile": settings.forward_quantile}
    if spec.correction == "glc":  # arm names carry the fraction: "s0.4_glc_t0.05"
        stage, options = f"{spec.name}_t{fraction:g}", {}
        stage1 = f"{tag}_{stage}_stage1"
        arms[stage1] = _arm(config(f"{stage}_stage1", _noise(base, strength, fraction, "untrusted"),
                                   base.strategy, False), init)
    final = config(stage, _noise(base, strength, fraction, "all"),
                   ComponentConfig(spec.correction, options), True)
    arms[final.name] = _arm(final, init + ["strategy.options.matrix_from={run:" + stage1 + "}"])
    return arms, final.name


def noise_spec(base: RunConfig, methods: Sequence[str], strengths: Sequence[float], out_dir: str | Path,
               settings: SweepSettings = SweepSettings()) -> tuple[SweepSpec, dict[str, dict[float, str]]]:
    """The sweep spec of a label-noise sweep (one seed: ``base.seed``) and, per method label and
    strength, the arm of its point. Every run's config is built (and checked) here."""
    specs = [NOISE_METHODS.get(m) for m in methods]  # unknown names fail before any training
    labels = [method_label(base, s.name) for s in specs]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"methods contain duplicates: {list(methods)}")
    values = _check_strengths(strengths)
    arms: dict[str, dict] = {}
    if any(s.rotation for s in specs) and settings.pretrain_epochs > 0:
        arms[PRETRAIN_NAME] = _pretrain_arm(base, settings)
    points: dict[str, dict[float, str]] = {label: {} for label in labels}
    for strength in values:
        for spec, label in zip(specs, labels):
            new, points[label][strength] = method_arms(base, spec.name, strength, settings)
            arms.update(new)
    data = {"name": SPEC_NAME, "base": to_dict(base), "axes": [{"arms": arms}], "seeds": [base.seed],
            "metrics": ["clean.accuracy"]}
    return spec_from_dict(data, Path(SPEC_NAME), out_dir), points


def _noise(base: RunConfig, strength: float, trusted_fraction: float, use: str) -> LabelNoiseConfig:
    return dataclasses.replace(_base_noise(base), strength=float(strength),
                               trusted_fraction=trusted_fraction, use=use)


def point_from_results(strength: float, run: str, results: dict) -> dict[str, Any]:
    """One point of a label-noise record from a finished run's ``results.json``."""
    noise = results.get("data", {}).get("label_noise", {})
    acc = results["suites"]["clean"]["accuracy"]
    return {"strength": float(strength), "test_error": 1.0 - float(acc),
            "realized_noise": noise.get("realized_noise"), "run": run,
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


def launch(base: RunConfig, methods: Sequence[str], strengths: Sequence[float], out_dir: str | Path,
           settings: SweepSettings = SweepSettings(), executor: str = "inline", parallel: int = 1,
           echo: Callable[[str], None] = lambda line: None) -> tuple[dict[str, Any], list[Outcome]]:
    """Run the spec of :func:`noise_spec` through the sweep layer (``executor``: ``inline`` in this
    process, ``local`` with ``parallel`` jobs, ``debug``), then write ``out_dir/sweep.json`` from
    the finished points. Returns the sweep and the jobs' outcomes (failed ones do not stop the
    others; their points are missing)."""
    from .sweep import run_sweep as run_spec

    spec, points = noise_spec(base, methods, strengths, out_dir, settings)
    outcomes = run_spec(spec, executor, parallel, echo, label_noise_report=False)  # ours is below
    with DirLock(spec.out, "sweep folder"):
        sweep = _write_records(spec, base, methods, points, settings)
    return sweep, outcomes


def _write_records(spec: SweepSpec, base: RunConfig, methods: Sequence[str],
                   points: dict[str, dict[float, str]], settings: SweepSettings) -> dict[str, Any]:
    """``sweep.json``: what it already holds (other methods, other strengths) joined with the
    finished points of this spec."""
    path = spec.out / SWEEP_FILE
    previous = {r.get("method"): r for r in _previous_records(path)}
    ours = []
    for method, (label, arms) in zip(methods, points.items()):
        record = {"method": label, "points": list(previous.get(label, {}).get("points", [])),
                  "name": method, "trusted_fraction": _trusted_fraction(base, NOISE_METHODS.get(method)),
                  "settings": dataclasses.asdict(settings), "base_config": to_dict(base)}
        for strength, arm in arms.items():
            run = f"{arm}_s{spec.seeds[0]}"
            if (spec.out / run / RESULTS).is_file():
                # A strength run before (an earlier invocation) is replaced by this result.
                kept = [p for p in record["points"] if _strength_tag(p["strength"]) != _strength_tag(strength)]
                record["points"] = kept + [point_from_results(strength, run, read_json(spec.out / run / RESULTS))]
        record["points"].sort(key=lambda p: p["strength"])
        ours.append(record)
    records = [r for label, r in previous.items() if label not in points] + ours
    sweep = {"methods": [r["method"] for r in records],
             "strengths": sorted({p["strength"] for r in records for p in r["points"]}), "records": records}
    write_json(path, sweep)
    return sweep


def failure_message(what: str, outcomes: Sequence[Outcome]) -> str | None:
    """One line naming the runs that failed or were skipped, or ``None`` when all finished."""
    bad = [o for o in outcomes if o.status in ("failed", "blocked")]
    if not bad:
        return None
    first = bad[0]
    return (f"{what}: {len(bad)} of {len(outcomes)} runs did not finish (first: {first.name}: "
            f"{first.error}); fix and rerun the same command (finished runs are skipped)")


def run_sweep(base: RunConfig, methods: Sequence[str], strengths: Sequence[float],
              out_dir: str | Path, settings: SweepSettings = SweepSettings(),
              executor: str = "inline", parallel: int = 1) -> dict[str, Any]:
    """Train every (method, strength) point into ``out_dir`` and write ``out_dir/sweep.json``.

    Returns ``{"methods", "strengths", "records"}``. A record is ``{"method": label, "points":
    [...], "name", "trusted_fraction", "settings", "base_config"}``, the format the ``label_noise``
    report section expects (labels from :func:`method_label`). What ``sweep.json`` already holds
    is kept (other methods, other strengths), so several invocations build one Table 2: e.g. the
    no-correction, GLC 5% and GLC 10% presets with one ``out_dir`` (they share the pretraining
    and the runs they have in common). Rerunning a call skips finished points and resumes the
    interrupted one. A run that fails raises (after the others ran and ``sweep.json`` was written).
    """
    sweep, outcomes = launch(base, methods, strengths, out_dir, settings, executor, parallel)
    message = failure_message("label-noise sweep", outcomes)
    if message:
        raise SsrobustError(message)
    return sweep


def run_method(base: RunConfig, method: str, strength: float, out_dir: str | Path,
               settings: SweepSettings = SweepSettings()) -> dict[str, Any]:
    """One point of :func:`run_sweep`: ``{"strength", "test_error", "realized_noise", "run",
    "trusted_fraction"}`` with the test error ``1 - clean accuracy`` on the clean test set."""
    sweep = run_sweep(base, [method], [strength], out_dir, settings)
    label = method_label(base, method)
    record = next(r for r in sweep["records"] if r["method"] == label)
    return next(p for p in record["points"] if _strength_tag(p["strength"]) == _strength_tag(strength))

def sweep_report(sweep: dict[str, Any], out_dir: str | Path, title: str = "Label corruption",
                 sweep_dir: str | Path | None = None, pooled_seeds: Sequence[int] | None = None) -> Path:
    """Render a sweep record into ``out_dir`` (``report.md``, ``report.html``): Table 2-style
    mean errors and Fig. 4-style curves, one pseudo-run per method.

    With ``sweep_dir``, each method's summary row shows the model, tasks, strategy and epochs of
    its first point's final run. ``pooled_seeds``: the points are means over these seeds (the
    introduction says so).
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
    if pooled_seeds and len(pooled_seeds) > 1:
        intro += (f" Each error is the mean over the finished runs of seeds "
                  f"{', '.join(str(s) for s in pooled_seeds)} (per-seed errors in the sweep's summary.json).")
    return render_results(results, Path(out_dir), title=title, intro=intro)

