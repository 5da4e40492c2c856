"""RobustBench model cards from a run's ``results.json``, to compare with the leaderboard.

RobustBench (Croce et al. 2021) describes a leaderboard entry by a ``model_info`` JSON per threat
model (``Linf``, ``L2``, ``corruptions``): ``link, name, authors, additional_data,
number_forward_passes, dataset, venue, architecture, eps`` (a string such as ``"8/255"``),
``clean_acc``, ``reported``, ``autoattack_acc`` or ``corruptions_acc`` (percentages as strings with
two decimals) and ``footnote``. :func:`robustbench_card` fills these from the numbers a run
recorded, and only from the right ones:

* ``clean_acc``: the ``clean`` suite (the whole test set the run evaluated);
* ``autoattack_acc``: an AutoAttack record of the ``adversarial`` suite in the threat model's norm
  at its ε (CIFAR: ℓ∞ 8/255, ℓ2 0.5) and RobustBench's ``standard`` version;
* ``corruptions_acc``: the mean over exactly the 15 benchmark corruptions x severities 1-5 of the
  ``corruptions`` suite (never the 4 validation corruptions, never a partial grid).

A number that is not there is ``None`` with the reason under ``missing``; nothing is substituted
(no PGD for AutoAttack, no other ε, no 19-corruption mean). ``warnings`` lists what makes a present
number differ from a leaderboard evaluation (fewer than 10,000 images, on-the-fly corruptions,
failed sanity checks); ``comparable`` is true only without missing numbers and warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..corruptions import BENCHMARK, SEVERITIES
from ..errors import ConfigError, DataError


@dataclass(frozen=True)
class ThreatModel:
    """A RobustBench threat model: its norm and ε (``None`` for corruptions) and accuracy field."""

    name: str
    norm: str | None
    acc_field: str


THREAT_MODELS = {"Linf": ThreatModel("Linf", "linf", "autoattack_acc"),
                 "L2": ThreatModel("L2", "l2", "autoattack_acc"),
                 "corruptions": ThreatModel("corruptions", None, "corruptions_acc")}
# RobustBench's ε per (dataset, threat model), as the leaderboard writes it.
LEADERBOARD_EPS = {("cifar10", "Linf"): (8 / 255, "8/255"), ("cifar10", "L2"): (0.5, "0.5"),
                   ("cifar100", "Linf"): (8 / 255, "8/255")}
FULL_TEST = {"cifar10": 10_000, "cifar100": 10_000}  # images RobustBench evaluates
_TO_FILL = "not in results.json; fill in by hand"


class _Card:
    """Collects one card's fields, the reasons for missing ones, sources and warnings."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.missing: dict[str, str] = {}
        self.sources: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = []

    def set(self, key: str, value: Any, why_missing: str = _TO_FILL) -> None:
        self.info[key] = value
        if value is None:
            self.missing[key] = why_missing

    def accuracy(self, key: str, value: float | None, why_missing: str, **source: Any) -> None:
        self.set(key, None if value is None else f"{100.0 * value:.2f}", why_missing)
        if value is not None:
            self.sources[key] = {"value": value, **source}


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise DataError(f"results.json: {where} is {value!r}, expected a fraction in [0, 1]")
    return float(value)


def architecture(model: Mapping[str, Any]) -> str | None:
    """RobustBench-style architecture name of ``config.model`` (e.g. ``WideResNet-40-2``)."""
    name, kwargs = model.get("name"), model.get("kwargs") or {}
    if name == "wrn":
        return f"WideResNet-{kwargs.get('depth', 40)}-{kwargs.get('widen', 2)}"
    fixed = {"wrn40_2": "WideResNet-40-2", "wrn16_4": "WideResNet-16-4", "resnet18": "ResNet-18"}
    return fixed.get(name, name)


def _additional_data(config: Mapping[str, Any]) -> tuple[bool | None, str]:
    """False when the run provably trained on its training split only; else unknown."""
    if config.get("init_from"):
        return None, f"initialised from {config['init_from']}: check what that run trained on"
    if (config.get("strategy") or {}).get("name") == "one_class_oe":
        return None, "Outlier Exposure trains on an outlier set: set true if it is extra data"
    return False, ""


def _metadata(card: _Card, results: Mapping[str, Any], dataset: str | None, tm: ThreatModel
              ) -> tuple[float | None, str | None]:
    """Fills the descriptive fields; returns the threat model's (ε, ε label) for the dataset."""
    config = results.get("config") or {}
    source = (results.get("data") or {}).get("source") or config.get("data", {}).get("source")
    eps = LEADERBOARD_EPS.get((dataset or "", tm.name)) if tm.norm else None
    if tm.norm and eps is None:  # the project's CIFAR-10 ε, flagged: no leaderboard to match
        eps = LEADERBOARD_EPS[("cifar10", tm.name)]
        card.warnings.append(f"RobustBench has no {source} {tm.name} leaderboard; used the "
                             f"CIFAR-10 eps {eps[1]}")
    extra, why = _additional_data(config)
    card.set("link", None)
    card.set("name", results.get("run"), "results.json has no run name")
    card.set("authors", None)
    card.set("additional_data", extra, why)
    card.info["number_forward_passes"] = 1  # one deterministic forward per prediction
    card.set("dataset", dataset, f"data.source {source!r} is not a RobustBench dataset "
                                 f"({', '.join(FULL_TEST)})")
    card.set("venue", None)
    card.set("architecture", architecture(config.get("model") or {}), "no config.model")
    card.info["eps"] = eps[1] if eps else None
    return (eps[0], eps[1]) if eps else (None, None)


def _check_n(card: _Card, what: str, n: Any, dataset: str | None) -> None:
    full = FULL_TEST.get(dataset or "")
    if full is not None and n != full:
        card.warnings.append(f"{what} on {n} test images; RobustBench evaluates {full}")


def _clean(card: _Card, suites: Mapping[str, Any], dataset: str | None) -> None:
    rec = suites.get("clean")
    if not isinstance(rec, Mapping) or rec.get("accuracy") is None:
        card.accuracy("clean_acc", None, "no clean suite in results.json (ssrobust eval RUN_DIR "
                                         "--suites clean)")
        return
    card.accuracy("clean_acc", _fraction(rec["accuracy"], "suites.clean.accuracy"), "",
                  record="suites.clean.accuracy", n=rec.get("n"))
    _check_n(card, "clean accuracy", rec.get("n"), dataset)


def _eps_text(eps: Any, norm: Any) -> str:
    if not isinstance(eps, (int, float)):
        return repr(eps)
    return f"{eps * 255:.3g}/255" if norm == "linf" else f"{eps:.4g}"


def _adversarial_warnings(card: _Card, adv: Mapping[str, Any], rec: Mapping[str, Any]) -> None:
    failed = [c.get("name") for c in adv.get("sanity_checks") or [] if not c.get("passed")]
    if failed:
        card.warnings.append(f"adversarial sanity checks failed: {', '.join(map(str, failed))}")
    if rec.get("package_flags"):
        card.warnings.append(f"AutoAttack flagged: {'; '.join(map(str, rec['package_flags']))}")


def _autoattack(card: _Card, suites: Mapping[str, Any], tm: ThreatModel, eps: float,
                label: str, dataset: str | None) -> None:
    """``autoattack_acc`` from the standard AutoAttack record at the threat model's norm and ε."""
    adv = suites.get("adversarial")
    if not isinstance(adv, Mapping):
        card.accuracy(tm.acc_field, None, "no adversarial suite in results.json")
        return
    seen = []
    for key, rec in (adv.get("attacks") or {}).items():
        if not key.startswith("autoattack") or not isinstance(rec, Mapping):
            continue
        if rec.get("skipped"):
            seen.append(f"{key} skipped ({rec.get('reason')})")
            continue
        e, norm = rec.get("eps"), rec.get("norm")
        if (norm == tm.norm and isinstance(e, (int, float)) and math.isclose(e, eps, rel_tol=1e-6)
                and rec.get("version") == "standard" and rec.get("robust_accuracy") is not None):
            where = f"suites.adversarial.attacks.{key}"
            value = _fraction(rec["robust_accuracy"], f"{where}.robust_accuracy")
            card.accuracy(tm.acc_field, value, "", record=where,
                          n=rec.get("n"), norm=norm, eps=e, version="standard")
            _check_n(card, "AutoAttack", rec.get("n"), dataset)
            _adversarial_warnings(card, adv, rec)
            return
        seen.append(f"{key} at {norm} eps {_eps_text(e, norm)}, version {rec.get('version')}")
    card.accuracy(tm.acc_field, None,
                  f"no standard AutoAttack at {tm.norm} eps {label} in suites.adversarial.attacks"
                  + (f" (found: {'; '.join(seen)})" if seen else ""))


def _corruptions(card: _Card, suites: Mapping[str, Any], dataset: str | None) -> None:
    """``corruptions_acc``: mean over exactly the 15 benchmark corruptions x 5 severities."""
    rec = suites.get("corruptions")
    if not isinstance(rec, Mapping) or not isinstance(rec.get("accuracy"), Mapping):
        card.accuracy("corruptions_acc", None, "no corruptions suite in results.json")
        return
    acc = rec["accuracy"]
    cells = [(n, s) for n in BENCHMARK for s in SEVERITIES]
    absent = [f"{n} s{s}" for n, s in cells if (acc.get(n) or {}).get(str(s)) is None]
    if absent:
        listed = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
        card.accuracy("corruptions_acc", None,
                      f"needs the 15 benchmark corruptions x severities 1-5; {len(absent)} of "
                      f"{len(cells)} missing: {listed}")
        return
    values = [_fraction(acc[n][str(s)], f"suites.corruptions.accuracy.{n}.{s}") for n, s in cells]
    card.accuracy("corruptions_acc", sum(values) / len(values), "",
                  record="suites.corruptions.accuracy: mean over the 15 benchmark corruptions x "
                         "severities 1-5", n=rec.get("n_images"), source=rec.get("source"))
    _check_n(card, "corruption accuracy", rec.get("n_images"), dataset)
    if rec.get("source") != "folder":
        card.warnings.append("corruptions generated on the fly by ssrobust's re-implementation "
                             "(docs/corruptions.md), not read from the official -C files")
    if rec.get("quantize") is False:
        card.warnings.append("corrupted images were not quantized to uint8 like the -C files")


def robustbench_card(results: Mapping[str, Any], threat_model: str) -> dict[str, Any]:
    """One RobustBench card of a ``results.json`` dict for ``threat_model`` (Linf, L2, corruptions).

    Returns ``{"threat_model", "model_info": RobustBench fields, "missing": {field: reason},
    "warnings": [str], "sources": {field: {"value": fraction, "record", "n", ...}},
    "comparable": bool}``.
    """
    if threat_model not in THREAT_MODELS:
        raise ConfigError(f"threat model {threat_model!r}: expected one of "
                          f"{', '.join(THREAT_MODELS)}")
    if not isinstance(results, Mapping):
        raise DataError("results.json: expected a JSON object with 'suites'")
    tm = THREAT_MODELS[threat_model]
    source = (results.get("data") or {}).get("source")
    dataset = source if source in FULL_TEST else None
    suites = results.get("suites") or {}
    card = _Card()
    eps, label = _metadata(card, results, dataset, tm)
    _clean(card, suites, dataset)
    card.set("reported", None)
    if tm.norm is not None:
        _autoattack(card, suites, tm, eps, label, dataset)
    else:
        _corruptions(card, suites, dataset)
    card.set("footnote", None)
    numbers = ("dataset", "clean_acc", tm.acc_field)
    return {"threat_model": tm.name, "model_info": card.info, "missing": card.missing,
            "warnings": card.warnings, "sources": card.sources,
            "comparable": not any(k in card.missing for k in numbers) and not card.warnings}


def robustbench_cards(results: Mapping[str, Any], threat_models: Sequence[str] | None = None
                      ) -> dict[str, Any]:
    """``{"run", "cards": {threat model: card}}`` for every threat model (default all three)."""
    names = list(THREAT_MODELS) if threat_models is None else list(threat_models)
    return {"run": results.get("run") if isinstance(results, Mapping) else None,
            "cards": {name: robustbench_card(results, name) for name in names}}
