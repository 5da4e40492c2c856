"""Kim et al. presets: every preset of one comparison sets ``task_forward`` explicitly and identically.

The forward mode alone moved clean accuracy by ~4 points in the CPU study, more than meta
weighting; ``auto`` picks ``separate`` only for meta, so presets that left it implicit compared
weightings under different modes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ssrobust.api import make_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# One comparison per group: Kim's Table 1 with the four-task weightings, and their CPU versions.
GROUPS = {"paper": sorted((CONFIGS / "paper" / "kim").glob("*.yaml")),
          "cpu": sorted((CONFIGS / "cpu").glob("kim_*.yaml"))}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_kim_presets_set_one_explicit_task_forward(group: str) -> None:
    paths = GROUPS[group]
    assert len(paths) >= 4, paths  # the fixed / meta / uncertainty presets are all there
    explicit = {p.name: yaml.safe_load(p.read_text()).get("task_forward") for p in paths}
    assert None not in explicit.values(), f"presets without an explicit task_forward: {explicit}"
    assert set(explicit.values()) == {"separate"}, explicit
    for p in paths:  # and they resolve to it (no later override in the file)
        assert make_config(str(p)).task_forward == "separate", p.name
    weightings = {make_config(str(p)).weighting.name for p in paths}
    assert {"fixed", "meta", "uncertainty"} <= weightings
