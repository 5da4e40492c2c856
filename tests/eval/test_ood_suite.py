"""The ``ood`` evaluation suite and its report section, end to end on a tiny toy model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssrobust.eval.ood  # noqa: F401  (registration, until eval/__init__ imports it)
import ssrobust.report.ood  # noqa: F401
from ssrobust.errors import ConfigError
from ssrobust.eval.base import SUITES, EvalContext
from ssrobust.models import create_model
from ssrobust.ood.metrics import LEGACY_KEYS, METRIC_KEYS
from ssrobust.report.base import SECTIONS
from ssrobust.tasks import build_task, forward_with_tasks


def _toy(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two classes of 16 px images: reddish / bluish colour times a bright-top vertical ramp."""
    y = torch.randint(0, 2, (n,), generator=gen)
    ramp = torch.linspace(1.0, 0.25, 16).view(1, 1, 16, 1)
    base = torch.where(y[:, None] == 0, torch.tensor([0.9, 0.35, 0.2]), torch.tensor([0.2, 0.45, 0.9]))
    base = base + 0.08 * torch.randn(n, 3, generator=gen)
    x = base[:, :, None, None] * ramp + 0.03 * torch.randn(n, 3, 16, 16, generator=gen)
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def ctx() -> EvalContext:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = create_model("tiny", 2, width=8)
    tasks = {"rotation": build_task("rotation", model.num_features)}
    params = list(model.parameters()) + list(tasks["rotation"].parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9)
    for _ in range(40):
        x, y = _toy(32, gen)
        feats, losses = forward_with_tasks(model, x, tasks, gen)
        loss = F.cross_entropy(model.forward_head(feats), y) + 0.5 * losses["rotation"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = _toy(120, torch.Generator().manual_seed(1))
    images = x.permute(0, 2, 3, 1).mul(255).round().to(torch.uint8).numpy()
    return EvalContext(model=model, images=images, labels=y, class_names=["red", "blue"],
                       tasks=tasks, batch_size=50, seed=0, progress=False)


def test_record_structure(ctx: EvalContext) -> None:
    rec = SUITES.get("ood")(ctx)
    json.dumps(rec)  # JSON-safe
    assert list(rec["scores"]) == ["msp", "kl_uniform", "energy", "rotation", "kl_rotation"]
    assert list(rec["ood_sets"]) == ["gaussian", "rademacher", "blobs"]
    assert rec["n_in"] == 120
    assert all(v == {"n": 120, "source": "synthetic"} for v in rec["ood_sets"].values())
    for score in rec["scores"].values():
        assert set(score["per_set"]) == set(rec["ood_sets"])
        for key in METRIC_KEYS:
            vals = [m[key] for m in score["per_set"].values()]
            assert all(0.0 <= v <= 1.0 for v in vals)
            assert score["mean"][key] == pytest.approx(np.mean(vals))
    for curves in rec["roc"].values():
        for c in curves.values():
            assert len(c["fpr"]) == len(c["tpr"]) == 101
    # The paper's detector separates noise from the toy data.
    for m in rec["scores"]["kl_rotation"]["per_set"].values():
        assert m["auroc_out_pos"] > 0.9
    # The suite does not leave the model in another mode.
    assert ctx.model.training


def test_deterministic(ctx: EvalContext) -> None:
    a = SUITES.get("ood")(ctx, scores=["msp"], max_images=30)
    b = SUITES.get("ood")(ctx, scores=["msp"], max_images=30)
    assert a == b


def test_user_sets_max_images_and_options(ctx: EvalContext) -> None:
    rng = np.random.default_rng(0)
    user = rng.integers(0, 256, size=(50, 16, 16, 3), dtype=np.uint8)
    ctx2 = EvalContext(**{**ctx.__dict__, "extra": {"ood_sets": {"mine": user}}})
    rec = SUITES.get("ood")(ctx2, scores=["energy"], max_images=20,
                            score_options={"energy": {"temperature": 2.0}})
    assert rec["n_in"] == 20
    assert rec["ood_sets"] == {"gaussian": {"n": 20, "source": "synthetic"},
                               "rademacher": {"n": 20, "source": "synthetic"},
                               "blobs": {"n": 20, "source": "synthetic"},
                               "mine": {"n": 20, "source": "user"}}
    only = SUITES.get("ood")(ctx2, ood_sets=["mine"], scores=["msp"])
    assert list(only["ood_sets"]) == ["mine"] and only["ood_sets"]["mine"]["n"] == 50


def test_errors(ctx: EvalContext) -> None:
    suite = SUITES.get("ood")
    with pytest.raises(ConfigError, match="unknown OOD set"):
        suite(ctx, ood_sets=["svhn"], max_images=5)
    with pytest.raises(KeyError, match="unknown OOD score"):
        suite(ctx, scores=["mahalanobis"], max_images=5)
    no_tasks = EvalContext(**{**ctx.__dict__, "tasks": {}})
    assert "rotation" not in suite(no_tasks, max_images=5)["scores"]
    with pytest.raises(ConfigError, match="'rotation' pretext task"):
        suite(no_tasks, scores=["kl_rotation"], max_images=5)
    with pytest.raises(ConfigError, match="score_options"):
        suite(ctx, scores=["msp"], score_options={"energy": {}}, max_images=5)


def test_report_section(ctx: EvalContext, tmp_path: Path) -> None:
    full = SUITES.get("ood")(ctx, max_images=40)
    no_tasks = EvalContext(**{**ctx.__dict__, "tasks": {}})
    plain = SUITES.get("ood")(no_tasks, max_images=40)
    section = SECTIONS.get("ood")([("rot", full), ("base", plain)], tmp_path / "figs")
    assert [t.caption.split(":")[0] for t in section.tables] == [
        "score msp", "score kl_uniform", "score energy", "score rotation", "score kl_rotation"]
    msp = section.tables[0]
    assert msp.headers[:3] == ["OOD set", "rot AUROC (OOD+)", "rot AUPR-In (ID+)"]
    # The FPR95 columns name their convention; the in-positive one is the literature's.
    assert msp.headers[4:6] == ["rot FPR@95%TPR (ID+)", "rot FPR@95%TPR (OOD+)"]
    assert "base FPR@95%TPR (ID+)" in msp.headers and len(msp.headers) == 11
    assert [r[0] for r in msp.rows] == ["gaussian", "rademacher", "blobs", "mean"]
    gauss = full["scores"]["msp"]["per_set"]["gaussian"]
    assert msp.rows[0][1] == f"{100 * gauss['auroc_out_pos']:.1f}"
    assert msp.rows[0][4] == f"{100 * gauss['fpr_at_95_tpr_in']:.1f}"
    assert msp.rows[0][5] == f"{100 * gauss['fpr_at_95_tpr_out']:.1f}"
    assert "literature's FPR95" in section.text and "schema version 2 (no" not in section.text
    rot = section.tables[3]
    assert rot.rows[0][6:] == ["–"] * 5  # the run without a rotation head has no rotation score
    assert len(section.figures) == 1
    fig = section.figures[0]
    assert fig.exists() and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "OOD" in section.title and msp.markdown().count("\n") == len(msp.rows) + 3


def test_scores_with_fit_get_training_batches(ctx: EvalContext) -> None:
    from ssrobust.eval.ood import _fit_scores
    from ssrobust.ood.scores import MaxSoftmax, OODScore

    class MeanFeature(OODScore):
        """Stores how many training images it saw."""

        def fit(self, model, batches, tasks):
            batches = list(batches)
            assert all(b.dtype == torch.float32 and b.shape[1] == 3 for b in batches)
            self.seen = sum(int(b.shape[0]) for b in batches)
            return self

    score, plain = MeanFeature(), MaxSoftmax()
    assert score.needs_fit and not plain.needs_fit
    with pytest.raises(ConfigError, match="train_images"):
        _fit_scores(ctx, {"mean": score})
    with_train = EvalContext(**{**ctx.__dict__, "train_images": ctx.images[:70]})
    _fit_scores(with_train, {"mean": score, "msp": plain})
    assert score.seen == 70


def _as_schema1(rec: dict) -> dict:
    """An ``ood`` record as schema version 1 wrote it: old keys, no in-positive FPR95."""
    def old(m: dict) -> dict:
        return {k: m[v] for k, v in LEGACY_KEYS.items()}
    scores = {name: {"per_set": {k: old(v) for k, v in s["per_set"].items()}, "mean": old(s["mean"])}
              for name, s in rec["scores"].items()}
    return {**rec, "scores": scores}


def test_report_reads_schema1_records(ctx: EvalContext, tmp_path: Path) -> None:
    """An old results.json renders: fpr95 lands in the OOD-positive column, the ID-positive one
    is "–", and the text names the run as recorded before schema 2."""
    new = SUITES.get("ood")(ctx, scores=["msp"], max_images=40)
    section = SECTIONS.get("ood")([("old", _as_schema1(new)), ("new", new)], tmp_path / "figs")
    table = section.tables[0]
    old_row, new_row = table.rows[0][1:6], table.rows[0][6:11]
    gauss = new["scores"]["msp"]["per_set"]["gaussian"]
    assert old_row[4] == new_row[4] == f"{100 * gauss['fpr_at_95_tpr_out']:.1f}"
    assert old_row[3] == "–" and new_row[3] != "–"
    assert old_row[:3] == new_row[:3]
    assert "before schema version 2" in section.text and ": old;" in section.text


def test_far_ood_mean_and_the_detector_record(ctx: EvalContext) -> None:
    user = np.full((20, *ctx.images.shape[1:]), 7, dtype=np.uint8)
    ctx2 = EvalContext(**{**ctx.__dict__, "extra": {"ood_sets": {"near": user}}})
    rec = SUITES.get("ood")(ctx2, scores=["msp", "kl_rotation"], max_images=20, detector="kl_rotation")
    for name, score in rec["scores"].items():  # far-OOD = the built-in synthetic sets only
        far = [score["per_set"][s] for s in ("gaussian", "rademacher", "blobs")]
        for m in METRIC_KEYS:
            assert score["mean_synthetic"][m] == pytest.approx(np.mean([r[m] for r in far]))
            assert score["mean"][m] == pytest.approx(np.mean([r[m] for r in far + [score["per_set"]["near"]]]))
    assert rec["detector"] == {"score": "kl_rotation", **rec["scores"]["kl_rotation"]}
    assert rec["options"]["detector"] == "kl_rotation"
    only_user = SUITES.get("ood")(ctx2, ood_sets=["near"], scores=["msp"])
    assert only_user["scores"]["msp"]["mean_synthetic"] is None and "detector" not in only_user
    with pytest.raises(ConfigError, match="detector 'energy' is not among the scores"):
        SUITES.get("ood")(ctx2, scores=["msp"], detector="energy")
