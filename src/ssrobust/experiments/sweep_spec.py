"""Sweep specs: a base config, axes of overrides and seeds, expanded into the runs of a sweep.

A spec (YAML, see docs/sweeps.md)::

    base: ../cpu/kim_single_task.yaml     # relative to the spec file
    out: runs/sweeps/kim_cpu              # the sweep folder (runs go to <out>/<arm>_s<seed>)
    overrides: [epochs=8]                 # every run
    axes:                                 # the product of the axes is the set of arms
      - arms: {none: ["tasks=[]"], rotation: ["tasks=[rotation:0.5]"],
               meta: {base: ../cpu/kim_four_task_meta.yaml, overrides: []}}
      - grid: {optim.lr: [0.1, 0.05]}     # the product over its keys
      - zip: {epochs: [1, 2], optim.lr: [0.1, 0.2], _labels: [short, long]}   # i-th values together
    seeds: [0, 1, 2]
    baseline: none                        # arm of the paired differences
    metrics: [clean.accuracy, corruptions.mean_accuracy_all]   # paths under results.json suites
    slurm: {partition: gpu, time_min: 600, cpus_per_task: 8, gpus_per_node: 1, mem_gb: 32}

Every run's config is built (and so validated) when the spec is loaded: a bad key fails before
anything is launched, as one line naming the spec file. ``base`` (top level or of an arm) may also
be an inline mapping (a whole run config; the ``noise-sweep`` and ``one-class`` aliases build their
specs so). An override may name another arm's run directory, ``{run:ARM}``: that run becomes a
prerequisite (a stage, :mod:`.sweep_stages`); ``extra_arms`` adds arms outside the product of the
axes (e.g. one pretraining that every arm starts from).
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Union

from ..errors import ConfigError
from ..runs.config import RunConfig
from ..typedconfig import apply_overrides, from_dict, load_yaml
from . import sweep_stages

SPEC_KEYS = ("name", "base", "out", "overrides", "axes", "extra_arms", "seeds", "baseline", "metrics",
             "slurm")
# A base config: a YAML file, or an inline mapping (specs built in code).
Base = Union[Path, dict]
DEFAULT_METRICS = ("clean.accuracy",)


@dataclass
class SlurmResources:
    """What each array task asks Slurm for; ``array_parallelism``: tasks running at once;
    ``additional``: any other sbatch option (e.g. ``{account: abc, qos: high}``)."""

    partition: str | None = None
    time_min: int = 60
    cpus_per_task: int = 4
    gpus_per_node: int = 0
    mem_gb: float | None = None
    array_parallelism: int = 16
    setup: list[str] = field(default_factory=list)
    additional: dict[str, Any] = field(default_factory=dict)


def _base_data(base: Base) -> dict:
    return load_yaml(base) if isinstance(base, Path) else copy.deepcopy(base)


@dataclass(frozen=True)
class Arm:
    """One setting of the sweep: its base config and overrides (before seed and paths);
    ``labels``: its label on each axis; ``deps``: the arms whose runs it needs (``{run:ARM}``);
    ``stage``: 0 without prerequisites, else one more than its latest prerequisite's."""

    name: str
    base: Base = field(hash=False)
    overrides: tuple[str, ...]
    labels: tuple[str, ...] = ()
    deps: tuple[str, ...] = ()
    stage: int = 0


@dataclass(frozen=True)
class SweepRun:
    """One run of the sweep: an arm at a seed, in ``<out>/<arm>_s<seed>``."""

    arm: str
    seed: int
    base: Base = field(hash=False)
    overrides: tuple[str, ...]
    deps: tuple[str, ...] = ()
    stage: int = 0

    @property
    def name(self) -> str:
        return f"{self.arm}_s{self.seed}"

    @property
    def needs(self) -> tuple[str, ...]:
        """The run names this run needs finished first (the same seed of its ``deps``)."""
        return tuple(f"{d}_s{self.seed}" for d in self.deps)

    def config(self, out: Path, threads: int | None = None) -> RunConfig:
        """The run's config: base, then the arm's overrides (``{run:ARM}`` -> that run's folder),
        then seed, name, folder, threads (``None``: the base's)."""
        fixed = [f"seed={self.seed}", f"name={self.name}", f"out_dir={out}", "progress=false"]
        if threads is not None:
            fixed.append(f"threads={threads}")
        overrides = sweep_stages.substitute(self.overrides, out, self.seed)
        return from_dict(RunConfig, apply_overrides(_base_data(self.base), [*overrides, *fixed]))


@dataclass
class SweepSpec:
    """A loaded spec: its arms (the product of the axes), seeds and the rest of the keys."""

    path: Path
    name: str
    out: Path
    arms: list[Arm]
    seeds: list[int]
    baseline: str | None
    metrics: list[str]
    slurm: SlurmResources

    def runs(self) -> list[SweepRun]:
        """Every run, arm by arm, seed by seed."""
        return [SweepRun(a.name, s, a.base, a.overrides, a.deps, a.stage)
                for a in self.arms for s in self.seeds]


def _fail(path: Path, msg: str) -> ConfigError:
    return ConfigError(f"sweep spec {path}: {msg}")


def _label(key: str, value: Any) -> str:
    """A run-name-safe label of one override, e.g. ``optim.lr``, 0.05 -> ``lr0.05``."""
    text = re.sub(r"[^A-Za-z0-9.+-]+", "-", f"{key.split('.')[-1]}{value}").strip("-")
    return text.replace("..", ".")


def _value_text(value: Any) -> str:
    """A YAML value as the right-hand side of ``key=value`` (lists and mappings in flow style)."""
    import yaml

    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def _key_axis(path: Path, values: Any, zipped: bool) -> list[tuple[str, list[str], Base | None]]:
    """``grid`` (product over keys) or ``zip`` (values taken together) into (label, overrides, base)."""
    kind = "zip" if zipped else "grid"
    if not isinstance(values, dict) or not values or not all(isinstance(v, list) and v for v in values.values()):
        raise _fail(path, f"axes: {kind} must map keys to non-empty lists, got {values!r}")
    values = dict(values)
    labels = values.pop("_labels", None)  # names of the combinations instead of key+value
    keys = list(values)
    if zipped:
        if len({len(v) for v in values.values()}) != 1:
            raise _fail(path, f"axes: zip lists must have the same length, got "
                              f"{ {k: len(v) for k, v in values.items()} }")
        combos = list(zip(*values.values()))
    else:
        combos = list(itertools.product(*values.values()))
    if labels is not None and len(labels) != len(combos):
        raise _fail(path, f"axes: {kind} _labels has {len(labels)} names for {len(combos)} combinations")
    names = [str(x) for x in labels] if labels is not None else [
        "_".join(_label(k, v) for k, v in zip(keys, combo)) for combo in combos]
    return [(name, [f"{k}={_value_text(v)}" for k, v in zip(keys, combo)], None)
            for name, combo in zip(names, combos)]


def _arm_base(path: Path, name: Any, base: Any) -> Base | None:
    """An arm's (or the spec's) ``base``: a file relative to the spec, or an inline mapping."""
    if base is None or base == "":
        return None
    if isinstance(base, dict):
        return copy.deepcopy(base)
    if not isinstance(base, str):
        raise _fail(path, f"{'arm ' + str(name) + ': ' if name else ''}base must be a config file "
                          f"or a mapping, got {base!r}")
    return path.parent / base


def _arms_axis(path: Path, arms: Any) -> list[tuple[str, list[str], Base | None]]:
    """``arms: {name: [overrides] | {base: file, overrides: [...]}}`` into (label, overrides, base)."""
    if not isinstance(arms, dict) or not arms:
        raise _fail(path, f"axes: arms must map arm names to override lists, got {arms!r}")
    out = []
    for name, arm in arms.items():
        base = None
        if isinstance(arm, dict):
            unknown = set(arm) - {"base", "overrides"}
            if unknown:
                raise _fail(path, f"arm {name}: unknown key(s) {', '.join(sorted(unknown))}; "
                                  f"expected base and overrides")
            base = _arm_base(path, name, arm.get("base"))
            arm = arm.get("overrides", [])
        if not isinstance(arm, list) or not all(isinstance(o, str) and "=" in o for o in arm):
            raise _fail(path, f"arm {name}: expected a list of key=value overrides, got {arm!r}")
        out.append((str(name), list(arm), base))
    return out


def _axis(path: Path, axis: Any) -> list[tuple[str, list[str], Base | None]]:
    if not isinstance(axis, dict) or len(axis) != 1 or next(iter(axis)) not in ("arms", "grid", "zip"):
        raise _fail(path, f"axes: each axis is one of {{arms: ...}}, {{grid: ...}}, {{zip: ...}}, got {axis!r}")
    kind, value = next(iter(axis.items()))
    return _arms_axis(path, value) if kind == "arms" else _key_axis(path, value, kind == "zip")


def _arms(path: Path, base: Base, common: list[str], axes: list, extra: Any) -> list[Arm]:
    """The product of the axes, then the ``extra_arms``; a later axis's base wins over an earlier
    one's. Placeholders are resolved to full arm names and give each arm its stage."""
    arms = []
    for combo in itertools.product(*[_axis(path, a) for a in axes]):
        name = "_".join(c[0] for c in combo) or "base"
        bases = [c[2] for c in combo if c[2] is not None]
        arms.append(Arm(name, bases[-1] if bases else base,
                        tuple(common + [o for c in combo for o in c[1]]), tuple(c[0] for c in combo)))
    for name, overrides, arm_base in (_arms_axis(path, extra) if extra is not None else []):
        arms.append(Arm(name, arm_base if arm_base is not None else base, tuple(common + overrides), (name,)))
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise _fail(path, f"two arms are named alike ({', '.join(sorted({n for n in names if names.count(n) > 1}))}); "
                          f"rename them")
    return _with_stages(path, arms)


def _with_stages(path: Path, arms: list[Arm]) -> list[Arm]:
    """Arms with ``{run:ARM}`` rewritten to full arm names, their ``deps`` and ``stage``."""
    names = {a.name for a in arms}
    resolved = []
    for a in arms:
        def fail(msg: str, arm: str = a.name) -> ConfigError:
            return _fail(path, f"arm {arm}: {msg}")

        overrides = sweep_stages.canonical(
            a.overrides, lambda ref, a=a, fail=fail: sweep_stages.resolve_ref(ref, a.labels, names, fail))
        resolved.append(Arm(a.name, a.base, overrides, a.labels, tuple(sweep_stages.referenced(overrides))))
    stage = sweep_stages.stages({a.name: a.deps for a in resolved}, lambda msg: _fail(path, msg))
    return [Arm(a.name, a.base, a.overrides, a.labels, a.deps, stage[a.name]) for a in resolved]


def _str_list(path: Path, data: dict, key: str, default: Any) -> list:
    value = data.get(key, default)
    if not isinstance(value, (list, tuple)):
        raise _fail(path, f"{key}: expected a list, got {value!r}")
    return list(value)


def _slurm(path: Path, data: Any) -> SlurmResources:
    try:
        return from_dict(SlurmResources, data or {}, "slurm")
    except ConfigError as e:
        raise _fail(path, f"{e} (known: {', '.join(f.name for f in fields(SlurmResources))})") from None


def load_spec(path: str | Path, out: str | Path | None = None) -> SweepSpec:
    """Read and check a spec; ``out`` overrides its ``out`` key. Builds every run's config."""
    path = Path(path)
    return spec_from_dict(load_yaml(path), path, out)


def spec_from_dict(data: dict, path: Path, out: str | Path | None = None) -> SweepSpec:
    """Check a spec given as a mapping (``path``: what errors name; file bases are relative to
    its folder); ``out`` overrides its ``out`` key. Builds every run's config."""
    if not isinstance(data, dict):
        raise _fail(path, f"expected a mapping of {', '.join(SPEC_KEYS)}, got {data!r}")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise _fail(path, f"unknown key(s) {', '.join(unknown)}; expected {', '.join(SPEC_KEYS)}")
    if "base" not in data or (out is None and "out" not in data):
        raise _fail(path, "needs a base config (base: FILE) and a sweep folder (out: FOLDER or --out)")
    seeds = _str_list(path, data, "seeds", [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or len(set(seeds)) != len(seeds):
        raise _fail(path, f"seeds: expected distinct integers, got {seeds!r}")
    common = _str_list(path, data, "overrides", [])
    base = _arm_base(path, None, data["base"])
    if base is None:
        raise _fail(path, "base: expected a config file or a mapping")
    arms = _arms(path, base, [str(o) for o in common],
                 _str_list(path, data, "axes", []), data.get("extra_arms"))
    baseline = data.get("baseline")
    if baseline is not None and baseline not in {a.name for a in arms}:
        raise _fail(path, f"baseline {baseline!r} is not an arm; arms: {', '.join(a.name for a in arms)}")
    spec = SweepSpec(path, str(data.get("name", path.stem)), Path(out if out is not None else data["out"]),
                     arms, seeds, baseline, [str(m) for m in _str_list(path, data, "metrics", DEFAULT_METRICS)],
                     _slurm(path, data.get("slurm")))
    for run in spec.runs():  # validate every config now, not in job 37 of 40
        try:
            run.config(spec.out)
        except ConfigError as e:
            raise _fail(path, f"run {run.name}: {e}") from None
    return spec
