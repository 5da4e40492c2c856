"""Assemble run results into ``report.md``, ``report.html`` and a combined ``results.json``."""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from ..errors import CheckpointError
from .base import SECTIONS, Section, Table, pct

# Known suites first, in the order a reader wants them; any other registered suite follows.
SUITE_ORDER = ["clean", "corruptions", "adversarial", "ood", "one_class", "label_noise"]

_CSS = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%;margin:0.5em 0}caption{caption-side:top;font-style:italic;padding:4px}")


def load_results(run_dir: Path) -> dict:
    path = Path(run_dir) / "results.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no results.json (train it first, or run `ssrobust eval {run_dir}`)")
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    res.setdefault("run_dir", str(run_dir))
    return res


def render_runs(run_dirs: Sequence[Path], out: Path, title: str = "ssrobust report") -> Path:
    if not run_dirs:
        raise ValueError("report needs at least one run directory")
    results = [load_results(d) for d in run_dirs]
    return render_results(results, out, title)


def _unique_names(results: list[dict]) -> list[str]:
    names, seen = [], {}
    for r in results:
        n = str(r.get("run", "run"))
        seen[n] = seen.get(n, 0) + 1
        names.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return names


def render_results(results: list[dict], out: Path, title: str = "ssrobust report",
                   intro: str = "") -> Path:
    """Render result dicts (``results.json`` contents) side by side into ``out``."""
    from . import plots

    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "figures").mkdir(parents=True)
    names = _unique_names(results)
    sections = [_summary(results, names)]
    curves = plots.training_curves(results, names, tmp / "figures" / "training_curves.png")
    if curves is not None:
        sections[0].figures.append(curves)
    sections[0].figures += _task_weight_plots(results, names, tmp / "figures")
    suites = [s for s in SUITE_ORDER if any(s in r.get("suites", {}) for r in results)]
    suites += sorted({s for r in results for s in r.get("suites", {})} - set(suites))
    for suite in suites:
        runs = [(n, r["suites"][suite]) for n, r in zip(names, results) if suite in r.get("suites", {})]
        if suite in SECTIONS:
            sections.append(SECTIONS.get(suite)(runs, tmp / "figures"))
        else:
            sections.append(Section(f"Suite `{suite}`", "No renderer is registered; raw records are in results.json."))
    (tmp / "report.md").write_text(_markdown(title, intro, sections, tmp))
    (tmp / "report.html").write_text(_html(title, intro, sections, tmp))
    (tmp / "results.json").write_text(json.dumps({"runs": dict(zip(names, results))}, indent=1) + "\n")
    # Swap in the finished report only now, so an interrupted render never looks complete.
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def _task_weight_plots(results: list[dict], names: list[str], fig_dir: Path) -> list[Path]:
    """Task weights over training (Kim et al. Fig. 2b) for runs whose weights change."""
    from ..train.rundir import read_metrics
    from .weights import plot_task_weights

    out = []
    for i, (n, r) in enumerate(zip(names, results)):
        recs = [m for m in read_metrics(Path(r["run_dir"])) if m.get("kind") == "step" and m.get("weights")] \
            if r.get("run_dir") else []
        if len({tuple(sorted(m["weights"].items())) for m in recs}) > 1:
            out.append(plot_task_weights(recs, fig_dir / f"task_weights_{i}.png", f"Task weights: {n}"))
    return out


def _summary(results: list[dict], names: list[str]) -> Section:
    rows = []
    for n, r in zip(names, results):
        cfg = r.get("config", {})
        train = r.get("train", {})
        clean = r.get("suites", {}).get("clean", {})
        ips = train.get("images_per_sec")
        rows.append([n, cfg.get("model", {}).get("name", "–"), ", ".join(cfg.get("tasks", [])) or "none",
                     cfg.get("strategy", {}).get("name", "–"), train.get("epochs", "–"),
                     f"{train['time_s']:.0f}" if "time_s" in train else "–",
                     f"{ips:.0f}" if ips else "–", pct(clean.get("accuracy"))])
    table = Table(["run", "model", "tasks", "strategy", "epochs", "train time (s)", "train img/s",
                   "clean acc (%)"], rows)
    return Section("Summary", tables=[table])


def _markdown(title: str, intro: str, sections: list[Section], root: Path) -> str:
    parts = [f"# {title}", ""]
    for alert in (a for s in sections for a in s.alerts):  # first: read before any number
        parts += [f"**Warning:** {alert}", ""]
    if intro:
        parts += [intro, ""]
    for s in sections:
        parts += [f"## {s.title}", ""]
        if s.text:
            parts += [s.text, ""]
        for t in s.tables:
            parts += [t.markdown(), ""]
        for f in s.figures:
            parts += [f"![{Path(f).stem}]({Path(f).relative_to(root).as_posix()})", ""]
    return "\n".join(parts)


def _html(title: str, intro: str, sections: list[Section], root: Path) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    body += [f"<p><strong>Warning:</strong> {html.escape(a)}</p>" for s in sections for a in s.alerts]
    if intro:
        body.append(f"<p>{html.escape(intro)}</p>")
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.text:
            body += [f"<p>{html.escape(p)}</p>" for p in s.text.split("\n\n")]
        body += [t.html() for t in s.tables]
        body += [f'<img src="{Path(f).relative_to(root).as_posix()}" alt="{html.escape(Path(f).stem)}">'
                 for f in s.figures]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def clean_section(runs: Sequence[tuple[str, dict[str, Any]]], fig_dir: Path) -> Section:
    from . import plots

    classes = list(runs[0][1].get("per_class", {}))
    headers = ["run", "accuracy (%)", "loss"] + classes
    rows = [[n, pct(r.get("accuracy")), r.get("loss")] + [pct(r.get("per_class", {}).get(c)) for c in classes]
            for n, r in runs]
    sec = Section("Clean accuracy", tables=[Table(headers, rows, "overall and per class")])
    fig = plots.grouped_bars({n: r.get("per_class", {}) for n, r in runs}, "accuracy (%)",
                             fig_dir / "clean_per_class.png", "Clean accuracy per class")
    if fig is not None:
        sec.figures.append(fig)
    return sec


SECTIONS.register("clean")(clean_section)
