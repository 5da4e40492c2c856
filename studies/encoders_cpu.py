"""CPU-scale cross-task encoder study (issue 15; a slow study, not a test).

Per seed: a supervised baseline (``configs/cpu/baseline.yaml``), a rotation run
(``configs/cpu/rotation.yaml``) and the baseline adversarially finetuned without labels
(``configs/cpu/encoders_finetune.yaml``), all WRN-10-2 on the built-in scenes at the reduced scale
of the presets, then ``ssrobust encoders`` on the three (``configs/cpu/encoders_eval.yaml``)
into ``<out>/seed<k>/eval``. A finished run is reused (``ssrobust train`` resumes).
The table (mean and every seed) goes to ``studies/results/encoders_cpu.json`` and ``.md``.
No contrastive (AdvCL) encoder: that strategy is not on this branch.

Not run yet: the rotation run alone trains at ~15 images/s on one shared CPU thread (about 1 h per
seed at the preset scale); at 6 epochs of 3000 images the baseline stayed near chance (20 % train
accuracy), too weak an encoder to compare.

Usage: ``OMP_NUM_THREADS=1 python studies/encoders_cpu.py [--seeds 0 1] [--out runs/encoders_cpu]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCALE = ["progress=false"]  # the presets' scale (12 epochs of 6000 images)
FINETUNE = ["progress=false"]
EVAL: list[str] = []  # configs/cpu/encoders_eval.yaml as it is
ENCODERS = {"supervised": "configs/cpu/baseline.yaml", "rotation": "configs/cpu/rotation.yaml"}


def _run(args: list[str]) -> None:
    print("+ ssrobust", " ".join(args), flush=True)
    subprocess.run([sys.executable, "-m", "ssrobust", *args], cwd=ROOT, check=True)


def run_seed(seed: int, out: Path) -> dict:
    runs = out / f"seed{seed}"
    common = [f"seed={seed}", f"out_dir={runs}"]
    for name, preset in ENCODERS.items():
        _run(["train", preset, f"name={name}", *common, *SCALE])
    _run(["train", "configs/cpu/encoders_finetune.yaml", "name=supervised_advft",
          f"init_from={runs / 'supervised'}", *common, *FINETUNE])
    _run(["encoders", *(str(runs / n) for n in ("supervised", "rotation", "supervised_advft")),
          "--preset", "configs/cpu/encoders_eval.yaml", "--out", str(runs / "eval"), f"seed={seed}",
          f"data_seed={seed}", *EVAL])
    return json.loads((runs / "eval" / "results.json").read_text())["suites"]["encoders"]


def summarize(per_seed: dict[int, dict]) -> tuple[list[dict], str]:
    """Mean over seeds of each encoder x task x condition, and the Markdown table."""
    cells: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for suite in per_seed.values():
        for r in suite["table"]:
            cell = cells.setdefault((r["encoder"], r["task"], r["metric"]), {})
            for c in suite["conditions"]:
                cell.setdefault(c, []).append(r[c])
    rows, lines = [], ["| encoder | task | metric | clean | embedding attack | task attack |", "|---|---|---|---|---|---|"]
    for (enc, task, metric), vals in cells.items():
        mean = {c: statistics.mean(v) for c, v in vals.items()}
        sd = {c: statistics.pstdev(v) for c, v in vals.items()}
        rows.append({"encoder": enc, "task": task, "metric": metric, "mean": mean, "values": vals})
        lines.append(f"| {enc} | {task} | {metric} | " + " | ".join(
            f"{100 * mean[c]:.1f} ± {100 * sd[c]:.1f}" for c in ("clean", "embedding_attack", "task_attack")) + " |")
    return rows, "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "encoders_cpu")
    a = p.parse_args()
    per_seed = {s: run_seed(s, a.out.resolve()) for s in a.seeds}
    rows, table = summarize(per_seed)
    res = ROOT / "studies" / "results"
    (res / "encoders_cpu.json").write_text(json.dumps({"seeds": a.seeds, "scale": SCALE, "finetune": FINETUNE,
                                                       "eval": EVAL, "rows": rows}, indent=1) + "\n")
    (res / "encoders_cpu.md").write_text(f"Mean ± sd over seeds {a.seeds} (headline metric, %).\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()
