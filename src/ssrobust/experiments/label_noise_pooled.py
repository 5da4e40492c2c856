"""Label-noise sweeps run by ``ssrobust sweep`` from a spec: their Table 2 / Fig. 4 report with
the seeds pooled (the ``noise-sweep`` alias writes its own, one seed, from ``sweep.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..runs.rundir import RESULTS, read_json
from .label_noise import point_from_results, sweep_report
from .sweep_spec import SweepSpec


def _strength_positions(arms: dict[str, tuple[tuple[str, ...], float]]) -> set[int]:
    """The axis positions whose label alone fixes the corruption strength of the arms (and takes
    at least two values): the strength axis of a spec, however its labels are spelled."""
    width = max(len(labels) for labels, _ in arms.values())
    crossed = [(labels, s) for labels, s in arms.values() if len(labels) == width]  # not extra arms
    positions = set()
    for i in range(width):
        seen: dict[str, float] = {}
        if all(seen.setdefault(labels[i], s) == s for labels, s in crossed) and len(set(seen.values())) > 1:
            positions.add(i)
    return positions


def spec_records(spec: SweepSpec) -> list[dict[str, Any]]:
    """Label-noise records of a sweep spec's finished runs (``ssrobust sweep`` on a spec whose runs
    corrupt their labels), in the format of the ``label_noise`` report section.

    An arm whose runs set ``data.label_noise`` is a point of the method named by its labels
    without the strength axis (e.g. arm ``glc_strength0.5`` -> method ``glc``, strength 0.5).
    Each point pools the arm's finished seeds: ``test_error`` and ``realized_noise`` are their
    means, ``test_errors``/``runs``/``seeds`` list them. Arms without label noise (a clean
    pretraining) and arms with no finished run are left out; ``[]`` when no run corrupts labels.
    """
    noisy: dict[str, tuple[tuple[str, ...], float]] = {}
    for arm in spec.arms:
        first = next(r for r in spec.runs() if r.arm == arm.name)
        noise = first.config(spec.out).data.label_noise
        if noise is not None:
            noisy[arm.name] = (arm.labels, float(noise.strength))
    if not noisy:
        return []
    drop = _strength_positions(noisy)
    records: dict[str, dict[str, Any]] = {}
    for arm_name, (labels, strength) in noisy.items():
        done = [(r.seed, r.name) for r in spec.runs()
                if r.arm == arm_name and (spec.out / r.name / RESULTS).is_file()]
        if not done:
            continue
        points = [point_from_results(strength, run, read_json(spec.out / run / RESULTS)) for _, run in done]
        realized = [p["realized_noise"] for p in points if p["realized_noise"] is not None]
        method = "_".join(label for i, label in enumerate(labels) if i not in drop) or arm_name
        record = records.setdefault(method, {"method": method, "name": method, "points": [],
                                             "trusted_fraction": points[0]["trusted_fraction"]})
        record["points"].append({
            "strength": strength, "test_error": sum(p["test_error"] for p in points) / len(points),
            "realized_noise": sum(realized) / len(realized) if realized else None,
            "run": points[0]["run"], "runs": [p["run"] for p in points],
            "seeds": [s for s, _ in done], "test_errors": [p["test_error"] for p in points],
            "trusted_fraction": points[0]["trusted_fraction"]})
    for record in records.values():
        record["points"].sort(key=lambda p: p["strength"])
    return list(records.values())


def spec_report(spec: SweepSpec, out_dir: str | Path, records: list[dict[str, Any]] | None = None) -> Path | None:
    """The Table 2 / Fig. 4 report of a sweep spec's label-noise runs (``records``, default
    :func:`spec_records`: seeds pooled) in ``out_dir``; ``None`` (nothing written) when no
    finished run corrupts labels."""
    records = spec_records(spec) if records is None else records
    if not records:
        return None
    sweep = {"methods": [r["method"] for r in records],
             "strengths": sorted({p["strength"] for r in records for p in r["points"]}), "records": records}
    seeds = sorted({s for r in records for p in r["points"] for s in p["seeds"]})
    return sweep_report(sweep, out_dir, title=f"Label corruption: sweep {spec.name}", sweep_dir=spec.out,
                        pooled_seeds=seeds)
