"""Report section for contrastive pretraining (AdvCL): pretraining scheme × finetuning scheme.

Read from each run's ``config`` in ``results.json`` only:

* pretraining scheme of a run: ``strategy.options.mode`` (``simclr`` / ``acl`` / ``advcl``) of a
  ``contrastive`` run, looked up for a finetuned run through its ``init_from`` (among the reported
  runs, else in ``<init_from>/results.json``); runs without a findable contrastive source are
  left out of the table.
* finetuning scheme: ``SLF`` = ``standard`` + ``freeze: backbone``, ``ALF`` = ``pgd_at`` +
  ``freeze: backbone``, ``AFF`` = ``trades`` without freeze; other combinations by their names.
* pretraining data and finetuning data (cross-dataset transfer): ``data.source``, the folder name
  of ``data.root`` and ``data.classes`` of the pretraining run and of the finetuned run, e.g.
  ``imagefolder cifar10-jpeg, classes 0–4`` → ``imagefolder cifar10-jpeg, classes 5–9``.

Cells are means over the runs of a (pretraining, pretraining data, finetuning, finetuning data)
row (e.g. seeds), with their count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ..runfiles import read_json
from .base import Section, Table, pct

SCHEMES = {("standard", "backbone"): "SLF", ("pgd_at", "backbone"): "ALF", ("trades", "none"): "AFF"}
PRETRAINING = "contrastive"


def finetuning_scheme(cfg: dict[str, Any]) -> str:
    """SLF / ALF / AFF (or ``<strategy>[+frozen]``) of a run config."""
    strategy, freeze = cfg.get("strategy", {}).get("name", "standard"), cfg.get("freeze", "none")
    return SCHEMES.get((strategy, freeze), strategy + ("+frozen" if freeze != "none" else ""))


def _mode(cfg: dict[str, Any]) -> str | None:
    strategy = cfg.get("strategy", {})
    if strategy.get("name") != PRETRAINING:
        return None
    return str(strategy.get("options", {}).get("mode", "advcl"))


def _run_key(path: str | Path) -> Path:
    p = Path(path)
    return (p.parent if p.suffix == ".pt" else p).resolve()


def _class_list(classes: Sequence[int]) -> str:
    """``[0, 1, 2, 3, 4]`` -> ``0–4``; other lists comma-separated."""
    ids = [int(c) for c in classes]
    if len(ids) > 2 and ids == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}–{ids[-1]}"
    return ", ".join(str(c) for c in ids)


def data_label(cfg: dict[str, Any]) -> str:
    """What a run trained on, from its config: source, folder name of ``root``, ``classes``."""
    data = cfg.get("data")
    if not isinstance(data, dict):
        return "?"
    label = str(data.get("source", "synthetic"))
    if data.get("root"):
        label += f" {Path(str(data['root'])).name}"
    if data.get("classes"):
        label += f", classes {_class_list(data['classes'])}"
    return label


def source_config(cfg: dict[str, Any], known: dict[Path, dict]) -> dict[str, Any] | None:
    """The config of the run ``cfg.init_from`` names (among ``known``, else its results.json)."""
    source = cfg.get("init_from")
    if not source:
        return None
    key = _run_key(source)
    src_cfg = known.get(key)
    if src_cfg is None and (key / "results.json").is_file():
        src_cfg = (read_json(key / "results.json") or {}).get("config", {})
    return src_cfg


def pretraining_scheme(cfg: dict[str, Any], known: dict[Path, dict]) -> str:
    """The ``mode`` of the contrastive run ``cfg.init_from`` names."""
    if not cfg.get("init_from"):
        return "none"
    src_cfg = source_config(cfg, known)
    return (_mode(src_cfg) or "?") if src_cfg is not None else "?"


def _robust(result: dict, attack: str) -> float | None:
    entry = result.get("suites", {}).get("adversarial", {}).get("attacks", {}).get(attack) or {}
    return None if entry.get("skipped") else entry.get("robust_accuracy")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _row(key: tuple[str, str, str, str], runs: list[dict]) -> list:
    pre, pre_data, fine, fine_data = key
    return [pre, pre_data, fine, fine_data, len(runs),
            pct(_mean([r.get("suites", {}).get("clean", {}).get("accuracy") for r in runs])),
            pct(_mean([_robust(r, "pgd20") for r in runs])),
            pct(_mean([_robust(r, "autoattack") for r in runs]))]


def scheme_section(results: Sequence[dict]) -> Section | None:
    """The pretraining × finetuning table, or None when no run is a finetuned contrastive run."""
    known = {_run_key(r["run_dir"]): r.get("config", {}) for r in results if r.get("run_dir")}
    cells: dict[tuple[str, str, str, str], list[dict]] = {}
    for r in results:
        cfg = r.get("config", {})
        if _mode(cfg) is not None:
            continue  # a pretraining run: its classifier is untrained
        pre = pretraining_scheme(cfg, known)
        if pre in ("none", "?"):  # not finetuned from a (findable) contrastive run
            continue
        key = (pre, data_label(source_config(cfg, known) or {}), finetuning_scheme(cfg), data_label(cfg))
        cells.setdefault(key, []).append(r)
    if not cells:
        return None
    rows = [_row(key, runs) for key, runs in sorted(cells.items())]
    table = Table(["pretraining", "pretraining data", "finetuning", "finetuning data", "runs", "clean (%)",
                   "PGD-20 (%)", "AutoAttack (%)"], rows,
                  "Mean accuracy over the runs of each pretraining × finetuning row; the data columns "
                  "show what each stage trained on (source, folder, classes)")
    return Section("Contrastive pretraining × finetuning", tables=[table])
