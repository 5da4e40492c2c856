"""One-class OOD detection sweeps through the one training loop (Hendrycks et al. 2019, §4.2.1).

For each class ``c`` of a dataset, one ordinary run ``class_<c>`` (``class_<c>_oe`` with Outlier
Exposure) with ``data.classes=[c]``: the network trains on the images of ``c`` only, with strategy
``ss_only`` (transformation prediction alone) or ``one_class_oe``, and its ``ood`` suite scores
the test images of ``c`` (in-distribution) against the test images of the other classes
(``held_out``, OOD) with the one-class scores of its tasks: ``rotation_translation`` ("ours", the
paper's method) and/or ``rotnet`` (RotNet, with a ``rotation`` task). The one-class SVM baseline
(Schölkopf et al. 1999) runs on the raw pixels of the same training images. Table 3 of the paper
reports the per-class AUROC and the mean over the ten CIFAR-10 classes.

``ssrobust one-class`` builds a sweep spec (:func:`one_class_spec`: one arm ``class_<c>[_oe]`` per
class, run folders ``<arm>_s<seed>``) and runs it through the sweep layer (:mod:`.sweep`), so it is
resumable like every sweep: a finished run is skipped, an interrupted one resumes from its
checkpoint. OC-SVM results are cached per class (``ocsvm/class_<c>.json``), and ``sweep.json`` is
rewritten from the finished runs, keeping what earlier invocations recorded (so the plain and the
OE sweep fill one table). Metrics recorded before
schema version 2 (keys ``auroc``, ``aupr_in``, ``aupr_out``, ``fpr95``) are upgraded on reading
(:func:`~ssrobust.ood.metrics.upgrade_metrics`); such OC-SVM caches are recomputed.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..data.base import DatasetSplits
from ..runs.splits import load_splits
from ..errors import ConfigError, SsrobustError
from ..locking import DirLock
from ..runs.config import ComponentConfig, RunConfig, parse_task_specs
from ..tasks.base import declared_scores
from ..runs.rundir import RESULTS, read_json, write_json
from ..typedconfig import to_dict
from ..ood.metrics import METRIC_KEYS, metrics, upgrade_metrics
from .sweep_jobs import Outcome
from .sweep_spec import SweepSpec, spec_from_dict

SWEEP_FILE = "sweep.json"
SPEC_NAME = "one-class"
OCSVM_LABEL = "OC-SVM"
# Table 3's names for the one-class scores of the network's tasks.
SCORE_LABELS = {"rotation_translation": "ours", "rotnet": "RotNet"}
_STRATEGIES = ("standard", "ss_only", "one_class_oe")


@dataclass(frozen=True)
class OCSVMSettings:
    """One-class SVM on raw pixels (scikit-learn ``OneClassSVM``, RBF kernel).

    Pixels are scaled to [0, 1], optionally average-pooled by ``downsample`` (a factor dividing the
    image size; 1 = the paper's raw pixels) and flattened. ``nu`` bounds the fraction of training
    images outside the boundary; ``gamma="scale"`` is scikit-learn's ``1 / (D * Var[x])``, a
    data-dependent choice that needs no OOD data (the paper does not report its settings). The
    fit uses at most ``max_train`` training images (a seeded subset). Anomaly score: minus the
    decision function.
    """

    nu: float = 0.1
    gamma: str | float = "scale"
    downsample: int = 1
    max_train: int = 5000
    seed: int = 0


def sklearn_missing() -> str | None:
    """``None`` when scikit-learn can be imported, else the message to show."""
    try:
        from sklearn.svm import OneClassSVM  # noqa: F401
    except ImportError:
        return ("OC-SVM baseline skipped: scikit-learn is not installed "
                "(pip install 'ssrobust[ood]')")
    return None


def pixel_features(images: np.ndarray, downsample: int = 1) -> np.ndarray:
    """uint8 ``[N, H, W, 3]`` -> float32 ``[N, H*W*3 / downsample^2]`` in [0, 1]."""
    x = np.asarray(images, dtype=np.float32) / 255.0
    if downsample > 1:
        n, h, w, c = x.shape
        if h % downsample or w % downsample:
            raise ConfigError(f"OC-SVM downsample={downsample} does not divide the image size {h}x{w}")
        x = x.reshape(n, h // downsample, downsample, w // downsample, downsample, c).mean(axis=(2, 4))
    return x.reshape(len(x), -1)


def ocsvm_metrics(train_images: np.ndarray, images_in: np.ndarray, images_out: np.ndarray,
                  settings: OCSVMSettings = OCSVMSettings()) -> dict[str, float]:
    """Fit a one-class SVM on ``train_images`` and return the OOD metrics (``METRIC_KEYS``) of its
    anomaly score with ``images_in`` in-distribution and ``images_out`` OOD (uint8 NHWC)."""
    from sklearn.svm import OneClassSVM

    train = pixel_features(train_images, settings.downsample)
    if len(train) > settings.max_train:
        keep = np.random.default_rng(settings.seed).permutation(len(train))[: settings.max_train]
        train = train[np.sort(keep)]
    svm = OneClassSVM(kernel="rbf", nu=settings.nu, gamma=settings.gamma).fit(train)

    def score(images: np.ndarray) -> np.ndarray:  # chunks keep the float64 copy small
        return np.concatenate([-svm.decision_function(pixel_features(images[i: i + 2000],
                                                                     settings.downsample))
                               for i in range(0, len(images), 2000)])

    return metrics(score(images_in), score(images_out))


def _task_scores(tasks: Sequence[str]) -> list[str]:
    names = [spec.name for spec in parse_task_specs(tasks)]
    scores = declared_scores(names, "one_class_scores")
    if not scores:
        raise ConfigError(f"one-class runs need a rotation_translation (or rotation) task; tasks are "
                          f"{', '.join(names) or 'none'}")
    return scores


def resolve_oe(base: RunConfig, oe: bool | None) -> bool:
    """Whether the sweep trains with Outlier Exposure: ``None`` follows the config's strategy."""
    if base.strategy.name not in _STRATEGIES:
        raise ConfigError(f"one-class sweeps train with ss_only or one_class_oe; strategy "
                          f"{base.strategy.name!r} is not supported")
    has_oe = base.strategy.name == "one_class_oe"
    if oe and not has_oe:
        raise ConfigError("Outlier Exposure needs strategy {name: one_class_oe, options: {outliers: "
                          "...}} in the config (e.g. configs/paper/ood/one_class_cifar10_oe.yaml)")
    return has_oe if oe is None else bool(oe)


def class_run_config(base: RunConfig, c: int, out_dir: str | Path, oe: bool) -> RunConfig:
    """The run of class ``c``: ``data.classes=[c]``, ``ss_only`` or ``one_class_oe``, tasks of
    ``base`` (default ``rotation_translation:1.0``), and the ``ood`` suite on the held-out classes
    with the one-class scores (other suites of ``base`` except ``clean`` are kept)."""
    tasks = list(base.tasks) or ["rotation_translation:1.0"]
    scores = _task_scores(tasks)
    ood = dict(base.eval.options.get("ood", {}))
    ood.update(held_out=True, scores=ood.get("scores") or scores,
               ood_sets=["held_out"] + [s for s in ood.get("ood_sets") or [] if s != "held_out"])
    suites = ["ood"] + [s for s in base.eval.suites if s not in ("clean", "ood")]
    options = {k: v for k, v in base.eval.options.items() if k in suites}
    options["ood"] = ood
    strategy = base.strategy if oe else ComponentConfig("ss_only")
    names = {spec.name for spec in parse_task_specs(tasks)}
    return dataclasses.replace(
        base, name=f"class_{c}" + ("_oe" if oe else ""), out_dir=str(out_dir), tasks=tasks,
        data=dataclasses.replace(base.data, classes=[int(c)]), strategy=strategy,
        task_options={k: v for k, v in base.task_options.items() if k in names},
        eval=dataclasses.replace(base.eval, suites=suites, options=options))


def _ocsvm_for_class(cfg: RunConfig, c: int, out_dir: Path, settings: OCSVMSettings,
                     splits: DatasetSplits | None) -> dict[str, float]:
    """OC-SVM metrics of class ``c``, cached in ``out_dir/ocsvm/class_<c>.json`` (recomputed when
    the data config, the settings or the metric keys differ)."""
    cache = out_dir / "ocsvm" / f"class_{c}.json"
    key = {"settings": dataclasses.asdict(settings), "data": to_dict(cfg.data),
           "metric_keys": list(METRIC_KEYS)}
    if cache.is_file():
        old = read_json(cache)
        if {k: old.get(k) for k in key} == key:
            return old["metrics"]
    splits = splits or load_splits(cfg.data)
    if splits.held_out is None:
        raise ConfigError(f"class {c}: the test split has no images of other classes")
    m = ocsvm_metrics(splits.train.images, splits.test.images, splits.held_out.images, settings)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_json(cache, {**key, "metrics": m})
    return m


def _class_record(cfg: RunConfig, c: int, run: str, out_dir: Path, oe: bool,
                  ocsvm: OCSVMSettings | None) -> dict[str, Any]:
    """The one-class metrics of the finished run ``run`` of class ``c`` (and the OC-SVM's)."""
    results = read_json(out_dir / run / RESULTS)
    scores = results["suites"]["ood"]["scores"]
    suffix = "+OE" if oe else ""
    # A class run finished before schema version 2 has the old metric keys: upgrade them.
    methods = {SCORE_LABELS.get(s, s) + suffix: upgrade_metrics(rec["per_set"]["held_out"])
               for s, rec in scores.items()}
    runs = {label: run for label in methods}
    if ocsvm is not None:
        methods[OCSVM_LABEL] = _ocsvm_for_class(cfg, c, out_dir, ocsvm, None)
    return {"class": int(c), "name": results["data"]["class_names"][0], "methods": methods,
            "runs": runs}


def _upgrade_record(record: dict[str, Any]) -> dict[str, Any]:
    """A ``sweep.json`` record with its metrics dicts in the current keys (plain floats kept)."""
    methods = {m: upgrade_metrics(v) if isinstance(v, dict) else v
               for m, v in record.get("methods", {}).items()}
    return {**record, "methods": methods}


def _merge(previous: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """``record`` joined with the earlier record of the same class (other methods are kept)."""
    return {**record, "methods": {**previous.get("methods", {}), **record["methods"]},
            "runs": {**previous.get("runs", {}), **record["runs"]}}


def _check_sweep(base: RunConfig, classes: Sequence[int] | None, oe: bool | None) -> tuple[bool, list[int]]:
    """Whether the sweep trains with OE, and its class ids; fails before any training."""
    use_oe = resolve_oe(base, oe)
    if use_oe:  # validate the OE options before any training
        from ..train.strategies import build_strategy

        build_strategy(base.strategy.name, **base.strategy.options)
    if classes is None:
        classes = list(range(load_splits(dataclasses.replace(base.data, classes=None)).num_classes))
    values = [int(c) for c in classes]
    if not values or len(set(values)) != len(values) or min(values) < 0:
        raise ConfigError(f"classes must be distinct class ids >= 0, got {list(classes)}")
    return use_oe, values


def one_class_spec(base: RunConfig, classes: Sequence[int], out_dir: str | Path, oe: bool) -> SweepSpec:
    """The sweep spec of a one-class sweep: one arm per class (:func:`class_run_config` inline),
    one seed (``base.seed``); the summary pools each score's held-out AUROC."""
    arms = {}
    for c in classes:
        cfg = class_run_config(base, c, out_dir, oe)
        arms[cfg.name] = {"base": to_dict(cfg), "overrides": []}
    scores = cfg.eval.options["ood"]["scores"]
    data = {"name": SPEC_NAME, "base": to_dict(base), "axes": [{"arms": arms}], "seeds": [base.seed],
            "metrics": [f"ood.scores.{s}.per_set.held_out.auroc_out_pos" for s in scores]}
    return spec_from_dict(data, Path(SPEC_NAME), out_dir)


def launch(base: RunConfig, classes: Sequence[int] | None, out_dir: str | Path, oe: bool | None = None,
           ocsvm: bool = True, ocsvm_settings: OCSVMSettings = OCSVMSettings(), executor: str = "inline",
           parallel: int = 1, echo: Callable[[str], None] = lambda line: None
           ) -> tuple[dict[str, Any], list[Outcome]]:
    """Run the spec of :func:`one_class_spec` through the sweep layer (``executor``: ``inline``
    in this process, ``local`` with ``parallel`` jobs), then add the OC-SVM column and write
    ``out_dir/sweep.json`` for the finished classes. Returns the sweep and the jobs' outcomes."""
    from .sweep import run_sweep as run_spec

    use_oe, values = _check_sweep(base, classes, oe)
    spec = one_class_spec(base, values, out_dir, use_oe)
    settings: OCSVMSettings | None = ocsvm_settings if ocsvm else None
    missing = sklearn_missing() if ocsvm else None
    if missing:
        warnings.warn(missing, stacklevel=2)
        settings = None
    outcomes = run_spec(spec, executor, parallel, echo)
    with DirLock(spec.out, "sweep folder"):
        sweep = _write_sweep(spec, base, values, use_oe, settings)
        sweep["ocsvm"] = {"settings": dataclasses.asdict(ocsvm_settings), "skipped": missing}
        write_json(spec.out / SWEEP_FILE, sweep)
    return sweep, outcomes


def _write_sweep(spec: SweepSpec, base: RunConfig, classes: list[int], oe: bool,
                 settings: OCSVMSettings | None) -> dict[str, Any]:
    """``sweep.json``'s records: the earlier ones joined with the classes finished now."""
    path = spec.out / SWEEP_FILE
    sweep: dict[str, Any] = read_json(path) if path.is_file() else {"records": []}
    by_class = {r["class"]: _upgrade_record(r) for r in sweep["records"]}
    sweep.setdefault("base_configs", {})["oe" if oe else "plain"] = to_dict(base)
    for c in classes:
        cfg = class_run_config(base, c, spec.out, oe)
        run = f"{cfg.name}_s{spec.seeds[0]}"
        if (spec.out / run / RESULTS).is_file():
            by_class[c] = _merge(by_class.get(c, {}), _class_record(cfg, c, run, spec.out, oe, settings))
    sweep["records"] = [by_class[k] for k in sorted(by_class)]
    sweep["classes"] = sorted(by_class)
    sweep["methods"] = list(dict.fromkeys(m for r in sweep["records"] for m in r["methods"]))
    return sweep


def run_one_class_sweep(base: RunConfig, classes: Sequence[int] | None, out_dir: str | Path,
                        oe: bool | None = None, ocsvm: bool = True,
                        ocsvm_settings: OCSVMSettings = OCSVMSettings(), executor: str = "inline",
                        parallel: int = 1) -> dict[str, Any]:
    """Train one run per class into ``out_dir`` and write ``out_dir/sweep.json``.

    Args:
        base: the run template (model, optimizer, data source, tasks; see the presets in
            ``configs/paper/ood/`` and ``configs/cpu/one_class.yaml``).
        classes: class ids (default: every class of the data source).
        oe: ``True``/``False`` forces Outlier Exposure on/off; ``None`` follows ``base.strategy``
            (``one_class_oe`` with its options, anything else trains ``ss_only``).
        ocsvm: add the OC-SVM baseline column (skipped with a warning without scikit-learn).
        executor, parallel: how the sweep layer runs the class runs (``inline``: this process).
    Returns:
        ``{"classes", "methods", "records": [{"class", "name", "methods": {label: metrics},
        "runs": {label: run name}}], "ocsvm", "base_configs"}``, the record the ``one_class``
        report section renders. Rerunning skips finished classes. A failed run raises (after the
        other classes ran and ``sweep.json`` was written).
    """
    from .label_noise import failure_message

    sweep, outcomes = launch(base, classes, out_dir, oe, ocsvm, ocsvm_settings, executor, parallel)
    message = failure_message("one-class sweep", outcomes)
    if message:
        raise SsrobustError(message)
    return sweep


def one_class_report(sweep: dict[str, Any], out_dir: str | Path,
                     title: str = "One-class OOD detection", sweep_dir: str | Path | None = None
                     ) -> Path:
    """Render a sweep into ``out_dir`` (``report.md``, ``report.html``): the per-class AUROC table
    (Table 3 style), mean metrics per method, and a per-class bar chart. With ``sweep_dir`` the
    summary row shows the model, tasks and epochs of the first class's run."""
    from ..report.render import render_results

    if not sweep.get("records"):
        raise ConfigError("the sweep has no finished classes to report")
    entry: dict[str, Any] = {"run": "one-class sweep", "suites": {"one_class": sweep}}
    first = sweep["records"][0]["runs"]
    if sweep_dir is not None and first:
        res_path = Path(sweep_dir) / next(iter(first.values())) / RESULTS
        if res_path.is_file():
            done = read_json(res_path)
            entry.update(config=done.get("config", {}),
                         train={"epochs": done.get("train", {}).get("epochs", "–")})
    intro = (f"One model per class (classes {', '.join(str(c) for c in sweep['classes'])}): trained on "
             f"that class only; in-distribution = its test images, OOD = the test images of the "
             f"other classes. Methods: {', '.join(sweep['methods'])}.")
    return render_results([entry], Path(out_dir), title=title, intro=intro)
