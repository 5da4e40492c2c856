"""Assemble run results into ``report.md``, ``report.html`` and a combined ``results.json``."""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from ..errors import CheckpointError, ConfigError
from ..atomic import write_text_atomic
from ..locking import DirLock
from ..paths import make_dir, remove_if_empty
from .base import SECTIONS, Section, Table, pct

# A report's own files in its folder, besides figures/ (renamed into place in this order, Markdown
# last: a report.md never points at figures that are not there yet).
REPORT_FILES = ("results.json", "report.html", "report.md")
FIGURES = "figures"
REPORT_MANIFEST = ".ssrobust-report.json"  # the files the last report wrote

# Known suites first, in the order a reader wants them; any other registered suite follows.
SUITE_ORDER = ["clean", "corruptions", "adversarial", "ood", "one_class", "label_noise", "encoders"]

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
    if not isinstance(res, dict):
        raise CheckpointError(f"{path} holds a JSON {type(res).__name__}, expected an object "
                              f"with 'suites'")
    res.setdefault("run_dir", str(run_dir))
    return res


def render_runs(run_dirs: Sequence[Path], out: Path, title: str = "ssrobust report",
                baseline: str | None = None) -> Path:
    """``baseline``: the seed group (run name without ``_s<seed>``) the Seeds section's paired
    differences are taken against."""
    if not run_dirs:
        raise ValueError("report needs at least one run directory")
    results = [load_results(d) for d in run_dirs]
    return render_results(results, out, title, baseline=baseline)


def _unique_names(results: list[dict]) -> list[str]:
    names, seen = [], {}
    for r in results:
        n = str(r.get("run", "run"))
        seen[n] = seen.get(n, 0) + 1
        names.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return names


def render_results(results: list[dict], out: Path, title: str = "ssrobust report",
                   intro: str = "", baseline: str | None = None) -> Path:
    """Render result dicts (``results.json`` contents) side by side into ``out``: ``report.md``,
    ``report.html``, ``results.json`` and ``figures/``.

    Only the report's own files are replaced, and only figures an earlier report listed in
    ``out/.ssrobust-report.json`` are removed; anything else in ``out`` (run directories, the
    user's files) stays, and a ``results.json`` no report wrote (a run's) is refused. The report is
    built in a temporary folder inside ``out``, then renamed into place file by file, Markdown
    last, so a failed render leaves the previous report as it was. ``out`` is locked meanwhile.
    """
    out = Path(out)
    created = make_dir(out, "report folder")
    try:
        with DirLock(out, "report folder"):
            _check_report_folder(out)
            # a fresh folder this call creates: the rmtree below can only remove our own files
            stage = Path(tempfile.mkdtemp(prefix=".report.tmp", dir=out))
            try:
                _render_into(stage, results, title, intro, baseline)
                _publish(stage, out)
            finally:
                shutil.rmtree(stage, ignore_errors=True)
    except BaseException:
        if created:
            remove_if_empty(out)
        raise
    return out


def _render_into(stage: Path, results: list[dict], title: str, intro: str,
                 baseline: str | None = None) -> None:
    """Write the whole report into the empty folder ``stage``."""
    from . import contrastive, plots
    from .seeds import seed_groups, seeds_section

    (stage / FIGURES).mkdir()
    names = _unique_names(results)
    sections = [_summary(results, names)]
    curves = plots.training_curves(results, names, stage / FIGURES / "training_curves.png")
    if curves is not None:
        sections[0].figures.append(curves)
    sections[0].figures += _task_weight_plots(results, names, stage / FIGURES)
    groups = seed_groups(results, names)
    if baseline is not None and baseline not in groups:
        raise ConfigError(f"--baseline {baseline!r} is not a seed group of these runs; groups: "
                          f"{', '.join(groups)}")
    seeds = seeds_section(groups, stage / FIGURES, baseline=baseline)
    if seeds is not None:
        sections.append(seeds)
    suites = [s for s in SUITE_ORDER if any(s in r.get("suites", {}) for r in results)]
    suites += sorted({s for r in results for s in r.get("suites", {})} - set(suites))
    for suite in suites:
        runs = [(n, r["suites"][suite]) for n, r in zip(names, results) if suite in r.get("suites", {})]
        if suite in SECTIONS:
            sections.append(SECTIONS.get(suite)(runs, stage / FIGURES))
        else:
            sections.append(Section(f"Suite `{suite}`", "No renderer is registered; raw records are in results.json."))
    schemes = contrastive.scheme_section(results)  # AdvCL: pretraining x finetuning, from configs
    if schemes is not None:
        sections.append(schemes)
    (stage / "report.md").write_text(_markdown(title, intro, sections, stage))
    (stage / "report.html").write_text(_html(title, intro, sections, stage))
    (stage / "results.json").write_text(json.dumps({"runs": dict(zip(names, results))}, indent=1) + "\n")


def _check_report_folder(out: Path) -> None:
    """Refuse folders where the report would replace something it did not write."""
    if (out / FIGURES).exists() and not (out / FIGURES).is_dir():
        raise ConfigError(f"report folder {out}: {out / FIGURES} is a file, expected the report's figure folder")
    res = out / "results.json"
    if res.exists() and "results.json" not in _written_before(out) and not _is_report_results(res):
        raise ConfigError(f"report folder {out} holds a results.json that no report wrote (a run "
                          f"directory?); choose another --out")


def _is_report_results(path: Path) -> bool:
    """Whether ``path`` is a combined ``results.json`` (``{"runs": ...}``) of an earlier report."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and set(data) == {"runs"}


def _written_before(out: Path) -> set[str]:
    """Report files the previous report listed, keeping only names a report can write (the list
    is data on disk: it must never steer a delete outside ``out/figures``)."""
    try:
        listed = json.loads((out / REPORT_MANIFEST).read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {f for f in listed if isinstance(f, str) and _is_report_file(f)}


def _is_report_file(rel: str) -> bool:
    """Whether ``rel`` names a file a report writes: one of REPORT_FILES or one below figures/."""
    parts = Path(rel).parts
    if rel in REPORT_FILES:
        return True
    return (len(parts) >= 2 and parts[0] == FIGURES and not Path(rel).is_absolute()
            and all(p not in ("", ".", "..") for p in parts) and "\\" not in rel)


def _publish(stage: Path, out: Path) -> None:
    """Rename the staged files into ``out`` (figures first, ``report.md`` last), then remove the
    figures of the previous report that this one no longer has."""
    old = _written_before(out)
    new = [p.relative_to(stage).as_posix() for p in sorted(stage.rglob("*")) if p.is_file()]
    _write_report_manifest(out, old | set(new))  # a crash mid-publish still knows every file
    for rel in [r for r in new if r not in REPORT_FILES] + [r for r in REPORT_FILES if r in new]:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage / rel, out / rel)
    for rel in old - set(new):
        if (out / rel).is_file():
            (out / rel).unlink()
    _write_report_manifest(out, set(new))


def _write_report_manifest(out: Path, files: set[str]) -> None:
    write_text_atomic(out / REPORT_MANIFEST,
                      json.dumps({"format": "ssrobust-report/1", "files": sorted(files)}, indent=1) + "\n")


def _task_weight_plots(results: list[dict], names: list[str], fig_dir: Path) -> list[Path]:
    """Task weights over training (Kim et al. Fig. 2b) for runs whose weights change."""
    from ..runfiles import read_metrics
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
                     f"{ips:.0f}" if ips else "–", pct(clean.get("accuracy")), _task_forward(r)])
    table = Table(["run", "model", "tasks", "strategy", "epochs", "train time (s)", "train img/s",
                   "clean acc (%)", "task forward"], rows)
    return Section("Summary", tables=[table, _machine_table(results, names)])


def _cpu_text(cpu: dict | None) -> str:
    """``meta.cpu`` as one cell, e.g. "AMD EPYC (family 25 model 17; avx512, AVX512-BF16)"."""
    if not cpu or not cpu.get("model_name"):
        return "–"
    extras = [cpu.get("simd") or "?"] + [label for key, label in (("amx", "AMX"), ("avx512_bf16", "AVX512-BF16"))
                                         if cpu.get(key)]
    return f"{cpu['model_name']} (family {cpu.get('family', '?')} model {cpu.get('model', '?')}; {', '.join(extras)})"


def _machine_table(results: list[dict], names: list[str]) -> Table:
    """Where each run trained: timings are only comparable on the same machine and settings."""
    rows = []
    for n, r in zip(names, results):
        meta = r.get("meta", {})
        rows.append([n, meta.get("device", "–"), meta.get("precision", "–"), meta.get("threads", "–"),
                     _cpu_text(meta.get("cpu")), meta.get("libraries", {}).get("torch", "–"),
                     meta.get("code", {}).get("ssrobust", "–")])
    return Table(["run", "device", "precision", "threads", "CPU", "torch", "ssrobust"], rows)


def _task_forward(result: dict) -> str:
    """The trunk forward mode the run trained with: ``meta.task_forward`` (resolved by the loop),
    else an explicit ``config.task_forward``; "–" when neither says (e.g. ``auto``, unrecorded)."""
    recorded = result.get("meta", {}).get("task_forward")
    configured = result.get("config", {}).get("task_forward")
    return recorded or (configured if configured in ("joint", "separate") else "–")


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
