"""Stages of a sweep: a run that needs the run directory of another arm (same seed).

An override may name another arm's run with ``{run:ARM}``, e.g. ``init_from={run:pretrain}`` or
``strategy.options.matrix_from={run:stage1}``. ``ARM`` is a full arm name, or the label of one
axis entry: then the other axes keep this arm's labels (in the product of ``[glc_stage1, glc]`` x
``[s0.2, s0.4]``, ``{run:glc_stage1}`` in arm ``glc_s0.4`` means arm ``glc_stage1_s0.4``). The
placeholder becomes the path ``<out>/<ARM>_s<seed>`` when a run's config is built, so the config
is complete (and validated) before the other run exists, and identical on every invocation.

A run's *stage* is 0 without prerequisites, else one more than its latest prerequisite's. Unknown
arms, ambiguous names and cycles are one-line errors naming the spec.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..errors import ConfigError

RUN_REF = re.compile(r"\{run:([^{}]*)\}")


def referenced(overrides: Sequence[str]) -> list[str]:
    """The arm names of the ``{run:ARM}`` placeholders in ``overrides``, in order, distinct."""
    return list(dict.fromkeys(m.group(1).strip() for o in overrides for m in RUN_REF.finditer(o)))


def resolve_ref(name: str, labels: Sequence[str], arms: set[str], fail: Callable[[str], ConfigError]) -> str:
    """The full arm name ``{run:name}`` means in an arm with axis ``labels``."""
    if name in arms:
        return name
    found = {"_".join([*labels[:i], name, *labels[i + 1:]]) for i in range(len(labels))} & arms
    if len(found) == 1:
        return found.pop()
    if found:
        raise fail(f"{{run:{name}}} is ambiguous ({', '.join(sorted(found))}); use the full arm name")
    raise fail(f"{{run:{name}}} names no arm; arms: {', '.join(sorted(arms))}")


def canonical(overrides: Sequence[str], resolve: Callable[[str], str]) -> tuple[str, ...]:
    """``overrides`` with every placeholder rewritten to its full arm name."""
    return tuple(RUN_REF.sub(lambda m: "{run:" + resolve(m.group(1).strip()) + "}", o) for o in overrides)


def stages(deps: Mapping[str, Sequence[str]], fail: Callable[[str], ConfigError]) -> dict[str, int]:
    """``{arm: stage}``; a cycle (also an arm needing itself) raises naming the arms in it."""
    stage: dict[str, int] = {}
    visiting: list[str] = []

    def visit(arm: str) -> int:
        if arm in stage:
            return stage[arm]
        if arm in visiting:
            cycle = visiting[visiting.index(arm):] + [arm]
            raise fail(f"arms depend on each other in a cycle: {' -> '.join(cycle)}")
        visiting.append(arm)
        stage[arm] = 1 + max((visit(d) for d in deps[arm]), default=-1)
        visiting.pop()
        return stage[arm]

    for arm in deps:
        visit(arm)
    return stage


def substitute(overrides: Sequence[str], out: Path, seed: int) -> list[str]:
    """Placeholders replaced by the prerequisite's run directory ``<out>/<ARM>_s<seed>`` (a quoted
    YAML string, so a path with ``:`` or ``,`` survives inside a flow mapping)."""
    return [RUN_REF.sub(lambda m: json.dumps(str(out / f"{m.group(1)}_s{seed}")), o) for o in overrides]
