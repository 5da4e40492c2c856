"""The layer contracts of docs/architecture.md (``[tool.importlinter]`` in pyproject.toml) hold,
and importing a component does not load the trainer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    """Run ``lint-imports`` on the package under ``root/src`` with the contracts of ``root``."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e .[dev])")
def test_the_import_contracts_hold():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (pip install -e .[dev])")
def test_an_upward_import_breaks_a_contract(tmp_path):
    """The contracts are not vacuous: one forbidden import (the report reaching into training)
    in a copy of the package makes lint-imports fail and name it."""
    import shutil

    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    base = tmp_path / "src" / "ssrobust" / "report" / "base.py"
    base.write_text(base.read_text() + "\nfrom ..train import trainer  # noqa: E402,F401\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert "ssrobust.report.base -> ssrobust.train.trainer" in result.stdout


def test_importing_a_component_does_not_load_the_trainer():
    code = ("import sys, ssrobust.attacks, ssrobust.data, ssrobust.models, ssrobust.corruptions, "
            "ssrobust.tasks, ssrobust.ood, ssrobust.label_noise, ssrobust.eval\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('ssrobust.train', 'ssrobust.experiments')))\n"
            "assert not loaded, loaded\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_api_names_stay_callable_after_their_subpackages_are_imported(monkeypatch):
    """``ssrobust.train`` / ``ssrobust.report`` are subpackages and API functions: importing the
    subpackage (lazy root) must not turn ``ssrobust.train(...)`` into an error."""
    import ssrobust
    import ssrobust.api as api
    import ssrobust.report.render  # noqa: F401
    import ssrobust.train.trainer  # noqa: F401

    monkeypatch.setattr(api, "train", lambda *a, **k: ("train", a, k))
    monkeypatch.setattr(api, "report", lambda *a, **k: ("report", a, k))
    assert ssrobust.train("cfg.yaml", epochs=1) == ("train", ("cfg.yaml",), {"epochs": 1})
    assert ssrobust.report(["run"], out="r") == ("report", (["run"],), {"out": "r"})
    assert ssrobust.evaluate is api.evaluate and ssrobust.__version__
