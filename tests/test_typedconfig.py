from dataclasses import dataclass, field
from typing import Literal

import pytest

from ssrobust.api import make_config
from ssrobust.errors import ConfigError
from ssrobust.typedconfig import apply_overrides, from_dict, to_dict


@dataclass
class Inner:
    a: int = 1
    b: float = 0.5


@dataclass
class Outer:
    name: str = "x"
    mode: Literal["p", "q"] = "p"
    inner: Inner = field(default_factory=Inner)
    items: list[str] = field(default_factory=list)
    maybe: int | None = None


def test_from_dict_fills_nested_and_roundtrips():
    cfg = from_dict(Outer, {"name": "y", "inner": {"a": 3}, "items": ["u"], "maybe": 4})
    assert cfg.inner.a == 3 and cfg.inner.b == 0.5 and cfg.items == ["u"] and cfg.maybe == 4
    assert from_dict(Outer, to_dict(cfg)) == cfg


@pytest.mark.parametrize("data, message", [
    ({"nmae": "y"}, "unknown config key(s) nmae"),
    ({"inner": {"c": 1}}, "inner.c"),
    ({"inner": {"a": "three"}}, "inner.a: expected an integer"),
    ({"inner": {"a": True}}, "inner.a: expected an integer"),
    ({"mode": "r"}, "mode: 'r' is not one of 'p', 'q'"),
    ({"items": "u"}, "items: expected a list"),
    ({"inner": 3}, "inner: expected a mapping"),
])
def test_from_dict_errors_name_the_key(data, message):
    with pytest.raises(ConfigError) as e:
        from_dict(Outer, data)
    assert message in str(e.value)


def test_overrides_parse_yaml_values_and_nest():
    d = apply_overrides({"inner": {"a": 1}}, ["inner.b=0.25", "items=[a, b]", "name=hello", "maybe=null"])
    assert d == {"inner": {"a": 1, "b": 0.25}, "items": ["a", "b"], "name": "hello", "maybe": None}
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["novalue"])


def test_run_config_rejects_unknown_keys_and_bad_tasks(tmp_path):
    with pytest.raises(ConfigError, match="optim.lrr"):
        make_config(None, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="name or name:weight"):
        make_config(None, ["tasks=[rotation:abc]"])
    with pytest.raises(ConfigError, match="task_options for jigsaw"):
        make_config({"tasks": ["rotation"], "task_options": {"jigsaw": {}}})
    cfg = make_config(None, ["tasks=[rotation:0.25, other]"])
    assert cfg.task_weights() == {"rotation": 0.25, "other": 0.5}


def test_yaml_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        make_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        make_config(tmp_path / "missing.yaml")


def test_presets_parse():
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    # configs/sweeps holds sweep specs, not run configs (tests/experiments/test_sweep.py loads them)
    presets = sorted(p for p in configs.rglob("*.yaml") if configs / "sweeps" not in p.parents)
    assert presets, "configs/ must hold presets"
    from ssrobust.api import encoder_config
    from ssrobust.typedconfig import load_yaml

    for p in presets:
        if "encoders" in load_yaml(p):  # an `ssrobust encoders --preset` file, not a run config
            encoder_config(p)
        else:
            make_config(p)  # raises on any unknown key or bad value
