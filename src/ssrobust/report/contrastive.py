"""Report section for contrastive pretraining (AdvCL): pretraining scheme × finetuning scheme.

Read from each run's ``config`` in ``results.json`` only:

* pretraining scheme of a run: ``strategy.options.mode`` (``simclr`` / ``acl`` / ``advcl``) of a
  ``contrastive`` run, looked up for a finetuned run through its ``init_from`` (among the reported
  runs, else in ``<init_from>/results.json``); runs without a findable contrastive source are
  left out of the table.
* finetuning scheme: ``SLF`` = ``standard`` + ``freeze: backbone``, ``ALF`` = ``pgd_at`` +
  ``freeze: backbone``, ``AFF`` = ``trades`` without freeze; other combinations by their names.

Cells are means over the runs of a (pretraining, finetuning) pair (e.g. seeds), with their count.
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


def pretraining_scheme(cfg: dict[str, Any], known: dict[Path, dict]) -> str:
    """The ``mode`` of the contrastive run ``cfg.init_from`` names."""
    source = cfg.get("init_from")
    if not source:
        return "none"
    key = _run_key(source)
    src_cfg = known.get(key)
    if src_cfg is None and (key / "results.json").is_file():
        src_cfg = (read_json(key / "results.json") or {}).get("config", {})
    return (_mode(src_cfg) or "?") if src_cfg is not None else "?"


def _robust(result: dict, attack: str) -> float | None:
    entry = result.get("suites", {}).get("adversarial", {}).get("attacks", {}).get(attack) or {}
    return None if entry.get("skipped") else entry.get("robust_accuracy")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def scheme_section(results: Sequence[dict]) -> Section | None:
    """The pretraining × finetuning table, or None when no run is a finetuned contrastive run."""
    known = {_run_key(r["run_dir"]): r.get("config", {}) for r in results if r.get("run_dir")}
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in results:
        cfg = r.get("config", {})
        if _mode(cfg) is not None:
            continue  # a pretraining run: its classifier is untrained
        pre = pretraining_scheme(cfg, known)
        if pre in ("none", "?"):  # not finetuned from a (findable) contrastive run
            continue
        cells.setdefault((pre, finetuning_scheme(cfg)), []).append(r)
    if not cells:
        return None
    rows = []
    for (pre, fine), runs in sorted(cells.items()):
        rows.append([pre, fine, len(runs),
                     pct(_mean([r.get("suites", {}).get("clean", {}).get("accuracy") for r in runs])),
                     pct(_mean([_robust(r, "pgd20") for r in runs])),
                     pct(_mean([_robust(r, "autoattack") for r in runs]))])
    table = Table(["pretraining", "finetuning", "runs", "clean (%)", "PGD-20 (%)", "AutoAttack (%)"], rows,
                  "Mean accuracy over the runs of each pretraining × finetuning pair")
    return Section("Contrastive pretraining × finetuning", tables=[table])
