"""Report building blocks: tables and figures rendered to both Markdown and HTML.

A report section is registered under ``SECTIONS`` with the name of the evaluation suite it renders
and called as ``section(runs, fig_dir) -> Section``, where ``runs`` is a list of ``(run_name,
suite_record)`` pairs for the runs that have that suite. Sections return tables and saved figure
paths; :mod:`ssrobust.report.render` assembles them into ``report.md`` and ``report.html``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..registry import Registry

SECTIONS: Registry = Registry("report section")


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""

    def markdown(self) -> str:
        cells = [[fmt(c) for c in r] for r in self.rows]
        out = []
        if self.caption:
            out += [f"*{self.caption}*", ""]
        out.append("| " + " | ".join(self.headers) + " |")
        out.append("|" + "|".join("---" for _ in self.headers) + "|")
        out += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(out)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(c))}</td>" for c in r) + "</tr>"
                       for r in self.rows)
        cap = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass
class Section:
    title: str
    text: str = ""
    tables: list[Table] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)  # PNG files inside the report folder
    alerts: list[str] = field(default_factory=list)  # shown in the report's first lines


def fmt(v: Any) -> str:
    """Cell formatting: fractions as percentages with one decimal are the caller's job; floats get
    4 significant digits, None an en dash."""
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def pct(v: float | None) -> str:
    """A fraction in [0,1] as a percentage string with one decimal (e.g. 0.8123 -> '81.2')."""
    return "–" if v is None else f"{100.0 * v:.1f}"


SectionFn = Callable[[Sequence[tuple[str, dict]], Path], Section]
