"""Time per optimizer step of ``OrthoSGD`` (Muon steps for the conv filters) against ``torch.optim.SGD``.

Both optimizers step the parameters of one fastnet (random gradients, fixed seed), in the same run
and with the same thread count: ``OrthoSGD`` with every trainable 4-d filter in an orthogonalized
group and the rest as SGD (groups built by the loop's own ``split_filter_group``, as when
``optim.muon.lr > 0``), and plain SGD with momentum over everything (the loop's optimizer
otherwise). The difference is what Muon adds to a
training step; the forward and backward passes are not part of it.

    python benchmarks/muon_step.py                       # widths 64,128,128 and 64,256,256
    python benchmarks/muon_step.py --widths 64,256,256 --steps 5   # quick check

Writes ``benchmarks/results/muon_step.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ssrobust.models.fastnet import FastNet
from ssrobust.runs.config import MuonConfig
from ssrobust.runs.precision import cpu_summary
from ssrobust.train.muon import OrthoSGD
from ssrobust.train.recipe import split_filter_group

HERE = Path(__file__).resolve().parent


def ms_per_step(opt: torch.optim.Optimizer, steps: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        opt.step()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        opt.step()
        times.append((time.perf_counter() - t) * 1000)
    return times


def measure(widths: list[int], steps: int) -> dict:
    torch.manual_seed(0)
    model = FastNet(widths=widths)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p)
    groups = split_filter_group([{"params": params}], lr=0.01, muon=MuonConfig(lr=0.001))  # as the loop
    filters = groups[-1]["params"]
    ortho = OrthoSGD(groups, lr=0.01, momentum=0.85, nesterov=True)
    sgd = torch.optim.SGD(params, lr=0.01, momentum=0.85, nesterov=True)
    o, s = ms_per_step(ortho, steps), ms_per_step(sgd, steps)
    return {"widths": widths, "filter_shapes": [list(p.shape) for p in filters],
            "orthosgd_ms": statistics.median(o), "sgd_ms": statistics.median(s),
            "orthosgd_ms_mean": statistics.fmean(o), "sgd_ms_mean": statistics.fmean(s)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--widths", action="append", help="comma-separated fastnet widths (repeatable)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "muon_step.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    widths = [[int(w) for w in spec.split(",")] for spec in (args.widths or ["64,128,128", "64,256,256"])]
    rows = [measure(w, args.steps) for w in widths]
    for r in rows:
        print(f"fastnet {r['widths']}: OrthoSGD {r['orthosgd_ms']:.1f} ms, SGD {r['sgd_ms']:.1f} ms per step (median)")
    out = {"benchmark": "muon_step", "steps": args.steps,
           "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": {"platform": platform.platform(), "cpu": cpu_summary(), "cores": os.cpu_count(),
                       "threads": args.threads, "torch": torch.__version__},
           "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
