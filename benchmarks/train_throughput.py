"""Training throughput: the reference-style rotation step versus ssrobust's default step.

For WRN-40-2 and WRN-16-4 at batch 128, plain and with rotation prediction, measures labelled
training images per second for

(a) the reference-style step: fp32, a separate clean forward plus a 4x rotated batch (5B images
    per step), as in the authors' adversarial code;
(b) ssrobust's default CPU step: the training loop's own ``Network`` forward with the 0-degree copy
    shared (4B images), precision ``auto`` (bf16 only on CPUs with native bf16 units), and the
    optional variants (channels_last, bf16) measured alongside.

The same run measures the machine's fp32 and bf16 matmul peak and reports each step's achieved
GFLOP/s (FLOPs counted with torch's FlopCounterMode) as a fraction of the peak for its precision.
Writes JSON (default ``benchmarks/results/train_throughput.json``).

    python benchmarks/train_throughput.py                   # full: both models, batch 128
    python benchmarks/train_throughput.py --models wrn16_4 --batch 32 --steps 2   # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from ssrobust.models import create_model
from ssrobust.tasks import build_task, rotate_batch
from ssrobust.runs.network import Network
from ssrobust.runs.precision import cpu_has_fast_bf16, cpu_summary, resolve_precision


def matmul_peak(dtype: torch.dtype, n: int = 1024, seconds: float = 2.0) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e9


def reference_step(model, head, opt, x, y, rotation: bool):
    """fp32; separate clean forward + 4 rotated copies (5B images) when rotation is on."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    if rotation:
        imgs, labels = rotate_batch(x)
        loss = loss + 0.5 * F.cross_entropy(head(model.forward_features(imgs)), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def ours_step(net, opt, x, y, precision: str, channels_last: bool):
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with ctx:
        _, main, aux = net(x, y)
    loss = main + 0.5 * sum(aux.values()) if aux else main
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def measure(step, x, steps: int, warmup: int) -> tuple[float, float]:
    """Returns (labelled images/s, FLOPs per step)."""
    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as fc:
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * x.shape[0] / (time.perf_counter() - t0), float(fc.get_total_flops())


def bench_model(name: str, batch: int, steps: int, warmup: int, variants: list[str], peaks: dict) -> list[dict]:
    rows = []
    torch.manual_seed(0)
    x = torch.rand(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    for rotation in (False, True):
        model = create_model(name, 10)
        head = torch.nn.Linear(model.num_features, 4)
        opt = torch.optim.SGD(list(model.parameters()) + list(head.parameters()), lr=0.01, momentum=0.9)
        ips, flops = measure(lambda: reference_step(model, head, opt, x, y, rotation), x, steps, warmup)
        ref = ips
        rows.append(_row(name, rotation, "reference (fp32, 5B)" if rotation else "reference (fp32)",
                         ips, flops, steps, peaks["fp32"], 1.0))
        for variant in variants:
            precision = resolve_precision("auto", torch.device("cpu")) if variant.startswith("default") else (
                "bf16" if "bf16" in variant else "fp32")
            cl = "channels_last" in variant
            m = create_model(name, 10)
            tasks = {"rotation": build_task("rotation", m.num_features)} if rotation else {}
            net = Network(m, tasks)
            if cl:
                net = net.to(memory_format=torch.channels_last)
            o = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
            ips, flops = measure(lambda: ours_step(net, o, x, y, precision, cl), x, steps, warmup)
            label = f"ssrobust {variant} ({precision}{', channels_last' if cl else ''}{', 4B' if rotation else ''})"
            rows.append(_row(name, rotation, label, ips, flops, steps, peaks[precision], ips / ref))
            print(f"{name:8s} rot={rotation!s:5s} {label:55s} {ips:7.1f} img/s  x{ips / ref:.2f}", flush=True)
    return rows


def _row(model, rotation, variant, ips, flops, steps, peak, speedup):
    return {"model": model, "rotation": rotation, "variant": variant, "labelled_images_per_s": ips,
            "flops_per_step": flops, "speedup_vs_reference": speedup, "_peak": peak}


def finalize(rows: list[dict], batch: int) -> None:
    for r in rows:
        achieved = r["flops_per_step"] * r["labelled_images_per_s"] / batch / 1e9
        r["achieved_gflops"] = achieved
        r["fraction_of_peak"] = achieved / r.pop("_peak")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="wrn40_2,wrn16_4")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variants", default="default,channels_last,bf16_channels_last")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "train_throughput.json")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16, n=512)}
    print(f"matmul peak: fp32 {peaks['fp32']:.1f} GFLOP/s, bf16 {peaks['bf16']:.1f} GFLOP/s", flush=True)
    rows = []
    for name in a.models.split(","):
        rows += bench_model(name, a.batch, a.steps, a.warmup, a.variants.split(","), peaks)
    finalize(rows, a.batch)
    out = {"benchmark": "train_throughput", "date": time.strftime("%Y-%m-%d"),
           "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu": cpu_summary(),
                       "threads": torch.get_num_threads(), "cpu_has_fast_bf16": cpu_has_fast_bf16(),
                       "torch": torch.__version__},
           "batch": a.batch, "steps": a.steps, "matmul_peak_gflops": peaks, "rows": rows}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
