"""The Python API: the same operations as the CLI.

>>> import ssrobust
>>> run = ssrobust.train("configs/cpu/rotation.yaml", ["epochs=5", "data.source=synthetic"])
>>> ssrobust.evaluate(run, suites=["clean", "corruptions"])
>>> ssrobust.report([run], out="report/")
>>> ssrobust.model_card(run)["cards"]["Linf"]["model_info"]   # RobustBench fields
>>> ssrobust.evaluate_encoders([run, my_module], out="encoders/", tasks=["cls", "seg"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .runs.config import RunConfig
from .typedconfig import apply_overrides, from_dict, load_yaml, to_dict


def make_config(config: str | Path | dict | RunConfig | None = None, overrides: Sequence[str] = (),
                **fields: Any) -> RunConfig:
    """Build a :class:`RunConfig` from a YAML path, a dict or a config, plus ``key=value`` overrides
    and keyword fields (``epochs=5``). Unknown keys raise :class:`~ssrobust.errors.ConfigError`."""
    if config is None:
        data: dict = {}
    elif isinstance(config, RunConfig):
        data = to_dict(config)
    elif isinstance(config, dict):
        data = config
    else:
        data = load_yaml(config)
    data = apply_overrides(data, list(overrides) + [f"{k}={_yaml_value(v)}" for k, v in fields.items()])
    return from_dict(RunConfig, data)


def _yaml_value(v: Any) -> str:
    import json

    return json.dumps(v) if not isinstance(v, str) else v


def train(config: str | Path | dict | RunConfig | None = None, overrides: Sequence[str] = (),
          overwrite: bool = False, **fields: Any) -> Path:
    """Train (or resume) a run and evaluate it; returns its run directory."""
    return train_config(make_config(config, overrides, **fields), overwrite=overwrite)


def train_config(cfg: RunConfig, overwrite: bool = False) -> Path:
    """:func:`train` for a built :class:`RunConfig`: train, then evaluate into ``results.json``."""
    from .experiments.run import train_and_evaluate

    return train_and_evaluate(cfg, overwrite=overwrite)


def evaluate(run_dir: str | Path, suites: Sequence[str] | None = None,
             options: dict[str, dict[str, Any]] | None = None, device: str | None = None,
             verify: bool = True) -> dict:
    """Run evaluation suites on a finished run; updates and returns its ``results.json``.
    ``verify=False`` skips the sha256 check of -C folders that have a ``manifest.json``."""
    from .eval.evaluate import evaluate_run

    return evaluate_run(run_dir, suites, options, device, verify=verify)


def report(run_dirs: Sequence[str | Path], out: str | Path, title: str = "ssrobust report",
           baseline: str | None = None) -> Path:
    """Render one report (``report.md``, ``report.html``, ``results.json``, ``figures/``) comparing
    runs into ``out``; other files in ``out`` (e.g. the runs themselves) are left alone. Runs that
    differ only in seed are pooled (mean, sd, 95% interval), with differences paired by seed
    against the ``baseline`` group when given."""
    from .report.render import render_runs

    return render_runs([Path(r) for r in run_dirs], Path(out), title=title, baseline=baseline)


def model_card(run_dir: str | Path, threat_models: Sequence[str] | None = None) -> dict[str, Any]:
    """RobustBench ``model_info`` cards of a run's ``results.json`` (default: Linf, L2 and
    corruptions); see :mod:`ssrobust.report.robustbench`. Missing numbers stay ``None``."""
    from .report.render import load_results
    from .report.robustbench import robustbench_cards

    return robustbench_cards(load_results(Path(run_dir)), threat_models)


def encoder_config(config: str | Path | dict | None = None, overrides: Sequence[str] = (),
                   **fields: Any) -> Any:
    """An :class:`~ssrobust.experiments.encoders.EncoderEvalConfig` from a YAML preset (options
    under ``encoders:``, e.g. ``configs/cpu/encoders_eval.yaml``) or a dict of options, ``key=value`` overrides and keyword fields."""
    from .experiments.encoders import EncoderEvalConfig

    if config is None or isinstance(config, dict):
        data = dict(config or {})
    else:  # a preset file holds its options under a top-level ``encoders:`` key
        data = load_yaml(config)
        if set(data) != {"encoders"} or not isinstance(data["encoders"], dict):
            from .errors import ConfigError

            raise ConfigError(f"encoders preset {config}: expected one top-level mapping 'encoders:' "
                              f"of options (see configs/cpu/encoders_eval.yaml)")
        data = data["encoders"]
    data = apply_overrides(data, list(overrides) + [f"{k}={_yaml_value(v)}" for k, v in fields.items()])
    return from_dict(EncoderEvalConfig, data, "encoders")


def evaluate_encoders(encoders: Sequence[Any] | dict[str, Any], out: str | Path,
                      tasks: Sequence[str] | None = None, config: str | Path | dict | None = None,
                      overrides: Sequence[str] = (), report: bool = True, **fields: Any) -> dict[str, Any]:
    """Evaluate encoders (run directories and/or ``nn.Module``s; a dict names them) on the
    downstream tasks (``cls``, ``seg``, ``depth``), clean, under the embedding attack and under
    each task's attack; writes ``out/results.json`` (and ``out/report/`` unless ``report=False``)
    and returns its content. Options: see docs/encoders.md (``config``, ``overrides``, ``fields``)."""
    from .experiments.encoders import run_encoder_eval

    if tasks is not None:
        fields["tasks"] = list(tasks)
    result = run_encoder_eval(encoders, out, encoder_config(config, overrides, **fields))
    if report:
        from .report.render import render_runs

        render_runs([Path(out)], Path(out) / "report", title="Encoders across downstream tasks")
    return result
