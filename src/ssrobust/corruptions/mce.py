"""Mean corruption error (mCE, Hendrycks & Dietterich 2019): CE and relative CE of a corruption
record against a baseline model's record. Pure arithmetic on records, so the suite and the report
share it without importing each other."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .base import BENCHMARK, NAMES


def add_mce(record: dict, baseline_record: dict, baseline_name: str | None = None) -> dict:
    """A copy of ``record`` with ``"mce"``: CE and relative CE per corruption against
    ``baseline_record``, and their means over the 15 benchmark corruptions (``*_benchmark``, None
    unless all 15 are in both) and over every corruption both records have (``*_all``).

    ``CE_c = sum_s E_{s,c} / sum_s E^base_{s,c}`` over the severities both records share (E = 1 -
    accuracy); relative CE subtracts each model's clean error first (None without clean accuracies
    or with a zero denominator).
    """
    acc, base = record["accuracy"], baseline_record["accuracy"]
    names = [n for n in NAMES if n in acc and n in base] + sorted(set(acc) & set(base) - set(NAMES))
    if not names:
        raise ConfigError("add_mce: the record and the baseline have no corruption in common")
    sev = [s for s in acc[names[0]] if all(s in acc[n] and s in base[n] for n in names)]
    if not sev:
        raise ConfigError("add_mce: the record and the baseline have no severity in common")
    clean, base_clean = record.get("clean_accuracy"), baseline_record.get("clean_accuracy")
    ce, rce = {}, {}
    for n in names:
        err = sum(1 - acc[n][s] for s in sev)
        berr = sum(1 - base[n][s] for s in sev)
        ce[n] = err / berr if berr > 0 else None
        if clean is not None and base_clean is not None:
            num = sum((1 - acc[n][s]) - (1 - clean) for s in sev)
            den = sum((1 - base[n][s]) - (1 - base_clean) for s in sev)
            rce[n] = num / den if den != 0 else None
        else:
            rce[n] = None

    def mean(values: dict, subset: Sequence[str]) -> float | None:
        vals = [values[n] for n in subset]
        return float(np.mean(vals)) if vals and all(v is not None for v in vals) else None

    bench = [n for n in BENCHMARK if n in ce]
    full = len(bench) == len(BENCHMARK)
    out = dict(record)
    out["mce"] = {"baseline": baseline_name, "severities": [int(s) for s in sev], "ce": ce, "relative_ce": rce,
                  "mce_benchmark": mean(ce, bench) if full else None, "mce_all": mean(ce, names),
                  "relative_mce_benchmark": mean(rce, bench) if full else None,
                  "relative_mce_all": mean(rce, names)}
    return out
