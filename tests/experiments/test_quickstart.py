"""The quickstart pipeline end to end, shrunk (the real one is timed in the README, not here)."""

import json
from pathlib import Path

import ssrobust.experiments.quickstart as qs
from ssrobust.eval import SUITES


def test_quickstart_writes_one_report_with_both_runs(tmp_path, monkeypatch):
    small = dict(qs.QUICKSTART_BASE, data={"source": "synthetic", "num_train": 200, "num_test": 60,
                                          "val_size": 40, "batch_size": 32},
                 model={"name": "tiny", "kwargs": {"width": 4}})
    monkeypatch.setattr(qs, "QUICKSTART_BASE", small)
    monkeypatch.setattr(qs, "QUICKSTART_SUITES", {
        "clean": {}, "ood": {"max_images": 40},
        "adversarial": {"max_images": 16, "sweep_steps": 2, "pgd20_steps": 2, "pgd100_steps": 3,
                        "gradient_free_images": 4, "spsa_steps": 2, "autoattack": False, "square": False,
                        "sweep_linf": [0.0, 0.03], "sweep_l2": [0.0, 0.5]},
        "corruptions": {"max_images": 8, "severities": [1, 5], "names": ["gaussian_noise", "contrast"]},
    })
    (tmp_path / "qs").mkdir()
    (tmp_path / "qs" / "notes.txt").write_text("mine")
    out = qs.quickstart(tmp_path / "qs", epochs=1, progress=False)
    md = (out / "report.md").read_text()
    res = json.loads((out / "results.json").read_text())
    assert set(res["runs"]) == {"baseline", "rotation"}
    assert res["runs"]["rotation"]["config"]["tasks"] == ["rotation:0.5"]
    assert res["runs"]["baseline"]["config"]["tasks"] == []
    assert "## Clean accuracy" in md and (out / "report.html").exists()
    for suite in ("clean", "ood", "adversarial", "corruptions"):
        if suite in SUITES:
            assert suite in res["runs"]["rotation"]["suites"], suite
    assert (out / "figures" / "training_curves.png").exists()
    # The report sits next to the runs it describes: they survive and results.json points at them.
    for name in ("baseline", "rotation"):
        run_dir = Path(res["runs"][name]["run_dir"])
        assert run_dir == tmp_path / "qs" / "runs" / name and (run_dir / "model.pt").is_file()
    assert (out / "notes.txt").read_text() == "mine"
