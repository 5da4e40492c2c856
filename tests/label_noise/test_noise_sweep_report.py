"""Strength sweeps, Table 2 aggregation and the ``label_noise`` report section."""

from __future__ import annotations

from pathlib import Path

import pytest

import ssrobust.report.label_noise  # noqa: F401  (registers the section)
from ssrobust.label_noise import mean_error_table, strengths
from ssrobust.report.base import SECTIONS


def test_strengths_default_is_the_papers_eleven_values() -> None:
    s = strengths()
    assert s == [i / 10 for i in range(11)]
    assert strengths(0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert strengths(1.0) == [0.0, 1.0]
    for bad in (0.0, 0.3, 1.5):
        with pytest.raises(ValueError, match="step"):
            strengths(bad)


def test_mean_error_table_averages_per_method_and_lists_missing() -> None:
    results = {
        "ce": {0.0: 0.1, 0.5: 0.3, 1.0: 0.8},
        "glc": {0.0: 0.1, 0.1 * 5: 0.2},
    }
    table = mean_error_table(results, require=[0.0, 0.5, 1.0])
    assert table["ce"].mean_error == pytest.approx(0.4)
    assert table["ce"].missing == [] and table["ce"].strengths == [0.0, 0.5, 1.0]
    assert table["glc"].mean_error == pytest.approx(0.15)
    assert table["glc"].missing == [1.0]
    with pytest.raises(ValueError, match="non-finite"):
        mean_error_table({"ce": {0.0: float("nan")}})
    with pytest.raises(ValueError, match="no results"):
        mean_error_table({"ce": {}})


def _record(method: str, errors: list[float]) -> dict:
    points = [{"strength": s, "test_error": e, "realized_noise": 0.9 * s}
              for s, e in zip(strengths(), errors)]
    return {"method": method, "points": points[::-1]}  # unsorted on purpose


def test_label_noise_section_renders_tables_and_figure(tmp_path: Path) -> None:
    ce = [0.05 + 0.08 * i for i in range(11)]
    glc = [0.05 + 0.02 * i for i in range(11)]
    runs = [("run_ce", _record("No Correction", ce)), ("run_glc", _record("GLC 5%", glc)),
            ("run_partial", {"method": "GLC 10%", "points": [
                {"strength": 0.0, "test_error": 0.05, "realized_noise": 0.0}]})]
    section = SECTIONS.get("label_noise")(runs, tmp_path / "figs")
    mean_table, grid = section.tables
    rows = {r[0]: r for r in mean_table.rows}
    assert rows["No Correction"][1] == f"{100 * sum(ce) / 11:.1f}"
    assert rows["GLC 5%"][1] == f"{100 * sum(glc) / 11:.1f}"
    assert rows["GLC 5%"][2] == 11 and rows["GLC 5%"][3] == "–"
    assert rows["GLC 10%"][2] == 1 and rows["GLC 10%"][3].startswith("0.1, 0.2")
    assert grid.headers[1] == "s=0" and grid.headers[-1] == "s=1" and len(grid.headers) == 12
    glc_row = next(r for r in grid.rows if r[0] == "GLC 5%")
    assert glc_row[1:] == [f"{100 * e:.1f}" for e in glc]
    assert "| No Correction |" in mean_table.markdown()
    (fig,) = section.figures
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.stat().st_size > 5000


def test_label_noise_section_disambiguates_methods_and_rejects_bad_records(tmp_path: Path) -> None:
    runs = [("a", _record("ce", [0.1] * 11)), ("b", _record("ce", [0.3] * 11))]
    section = SECTIONS.get("label_noise")(runs, tmp_path)
    assert [r[0] for r in section.tables[0].rows] == ["ce (a)", "ce (b)"]
    with pytest.raises(ValueError, match="no 'points'"):
        SECTIONS.get("label_noise")([("a", {"method": "ce"})], tmp_path)
    with pytest.raises(ValueError, match="test_error"):
        SECTIONS.get("label_noise")([("a", {"method": "ce", "points": [{"strength": 0}]})],
                                    tmp_path)
