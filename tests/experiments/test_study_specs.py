"""The study specs of issue 17 (configs/sweeps/study_*.yaml): they load and dry-run against a tiny
generated image folder, and every metric path they name exists in the results.json of a (shrunk) run
of such a spec, so the study's summary has no empty column."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from _helpers import make_image_folder

from ssrobust.api import evaluate
from ssrobust.cli import main
from ssrobust.experiments.run import train_and_evaluate
from ssrobust.experiments.sweep_spec import load_spec
from ssrobust.report.seeds import metric_value
from ssrobust.runfiles import read_json

SWEEPS = Path(__file__).resolve().parents[2] / "configs" / "sweeps"
STUDIES = sorted(SWEEPS.glob("study_*.yaml"))
# One arm per spec that carries every metric path of the spec (the baseline arms lack only the
# rotation-score paths of study_ood, which their summary leaves empty by design).
FULL_ARM = {"study_corruptions": "rotation_quarter", "study_adversarial": "fast_at_rotation",
            "study_ood": "rotation"}
FULL_ARM.update({k.replace("study_", "study_cpu_"): v for k, v in FULL_ARM.items()})
SHRINK = ["epochs=1", "data.batch_size=8", "data.eval_batch_size=16", "model.kwargs={widths: [8, 16]}",
          "optim.warmup_epochs=0", "eval.tta=none"]
SHRINK_EVAL = {
    "study_corruptions": ["eval.options.corruptions.max_images=4"],
    "study_adversarial": ["data.val_size=8", "strategy.options.check_images=8",
                          "eval.options.adversarial={max_images: 4, sweep_images: 4, sweep_steps: 2, "
                          "pgd20_steps: 2, pgd100_steps: 2, gradient_free_images: 4, spsa_steps: 2, "
                          "spsa_samples: 2, square_queries: 10, unbounded_steps: 2, autoattack: true}"],
    "study_ood": ["eval.options.ood.max_images=12"],
}
SHRINK_EVAL.update({k.replace("study_", "study_cpu_"): v for k, v in SHRINK_EVAL.items()})


def local_spec(spec: Path, tmp_path: Path, root: Path, extra: list[str]) -> Path:
    """``spec`` with absolute base paths, the tiny folder as data.root and ``extra`` overrides."""
    data = yaml.safe_load(spec.read_text())
    data["base"] = str((spec.parent / data["base"]).resolve())
    for axis in data["axes"]:
        for name, arm in axis.get("arms", {}).items():
            if isinstance(arm, dict) and "base" in arm:
                arm["base"] = str((spec.parent / arm["base"]).resolve())
    data["out"] = str(tmp_path / "out" / spec.stem)
    data["overrides"] = [*data.get("overrides", []), f"data.root={root}",
                         f"data.cache_dir={tmp_path / 'cache'}", "progress=false", *extra]
    out = tmp_path / spec.name
    out.write_text(yaml.safe_dump(data))
    return out


@pytest.mark.parametrize("scale", ["", "cpu_"], ids=["full", "session"])
def test_the_three_claims_have_a_spec_with_three_seeds_and_a_baseline(scale):
    """Each claim has its full-scale plan (study_*) and the session-scale spec that was run
    (study_cpu_*, studies/cifar10_cpu.py)."""
    assert sorted(p.stem for p in STUDIES) == sorted(f"study_{s}{c}" for s in ("", "cpu_")
                                                     for c in ("adversarial", "corruptions", "ood"))
    for claim in ("adversarial", "corruptions", "ood"):
        spec = load_spec(SWEEPS / f"study_{scale}{claim}.yaml")
        assert len(spec.seeds) >= 3 and spec.baseline in {a.name for a in spec.arms}
    ood = {r.name: r.config(Path("x")) for r in load_spec(SWEEPS / f"study_{scale}ood.yaml").runs()}
    assert ood["baseline_s0"].data.classes == [0, 1, 2, 3, 4, 5]
    assert ood["baseline_s0"].eval.options["ood"]["detector"] == "msp"
    assert ood["rotation_s0"].eval.options["ood"]["detector"] == "kl_rotation"
    corr = {r.name: r.config(Path("x")) for r in load_spec(SWEEPS / f"study_{scale}corruptions.yaml").runs()}
    assert len(corr["baseline_s0"].eval.options["corruptions"]["names"]) == 15
    assert corr["rotation_s0"].epochs == corr["baseline_s0"].epochs == corr["rotation_quarter_s0"].epochs
    assert corr["rotation_quarter_s0"].task_options["rotation"]["fraction"] == 0.25
    adv = {r.name: r.config(Path("x")) for r in load_spec(SWEEPS / f"study_{scale}adversarial.yaml").runs()}
    assert adv["fast_at_s0"].strategy.options["eps"] == pytest.approx(8 / 255)
    assert adv["fast_at_s0"].tasks == [] and adv["fast_at_rotation_s0"].tasks == ["rotation:0.5"]
    # within a claim, the arms differ only in what the claim compares
    for runs in (corr, adv):
        base = next(iter(runs.values()))
        assert all(r.data == base.data and r.model == base.model and r.optim == base.optim for r in runs.values())


@pytest.mark.parametrize("spec", STUDIES, ids=lambda p: p.stem)
def test_a_study_spec_dry_runs_and_its_metrics_exist(tmp_path, capsys, spec):
    root = make_image_folder(tmp_path / "folder", size=32)
    path = local_spec(spec, tmp_path, root, SHRINK + SHRINK_EVAL[spec.stem])
    assert main(["sweep", str(path), "--dry-run"]) == 0
    assert "new" in capsys.readouterr().out
    loaded = load_spec(path)
    run = next(r for r in loaded.runs() if r.arm == FULL_ARM[spec.stem] and r.seed == loaded.seeds[0])
    before = torch.get_num_threads()
    try:
        run_dir = train_and_evaluate(run.config(loaded.out))
        if spec.stem == "study_corruptions":  # the mCE pass of docs/studies.md (here against itself)
            evaluate(run_dir, ["corruptions"], {"corruptions": {
                **run.config(loaded.out).eval.options["corruptions"], "baseline": str(run_dir / "results.json")}})
    finally:
        torch.set_num_threads(before)
    results = read_json(run_dir / "results.json")
    missing = [m for m in loaded.metrics if metric_value(results, m) is None]
    assert not missing, f"{spec.stem}: no value at {missing}"
