"""The one-class report section: metric columns name their positive class; old sweeps render."""

from __future__ import annotations

from pathlib import Path

import ssrobust.report.one_class  # noqa: F401  (registration)
from ssrobust.report.base import SECTIONS

NEW = {"auroc_out_pos": 0.9, "aupr_in_pos": 0.8, "aupr_out_pos": 0.7, "fpr_at_95_tpr_in": 0.2,
       "fpr_at_95_tpr_out": 0.4}
OLD = {"auroc": 0.5, "aupr_in": 0.6, "aupr_out": 0.7, "fpr95": 0.6}  # schema version 1


def test_mean_table_names_conventions_and_reads_schema1(tmp_path: Path) -> None:
    sweep = {"records": [{"class": 0, "name": "c0", "methods": {"ours": NEW, "OC-SVM": OLD}},
                         {"class": 1, "name": "c1", "methods": {"ours": NEW, "OC-SVM": NEW}}]}
    section = SECTIONS.get("one_class")([("sweep", sweep)], tmp_path)
    auroc, means = section.tables
    assert auroc.rows[-1] == ["mean", "70.0", "90.0"]  # OC-SVM (0.5, 0.9), ours (0.9, 0.9)
    assert means.headers == ["method", "classes", "AUROC (OOD+)", "AUPR-In (ID+)",
                             "AUPR-Out (OOD+)", "FPR@95%TPR (ID+)", "FPR@95%TPR (OOD+)"]
    ocsvm = next(r for r in means.rows if r[0] == "OC-SVM")
    # fpr95 of the old record is the OOD-positive FPR; the ID-positive mean would cover only
    # one of the two classes, so it is left out rather than shown as a two-class mean.
    assert ocsvm == ["OC-SVM", 2, "70.0", "70.0", "70.0", "–", "50.0"]
    assert "literature's FPR95" in section.text
