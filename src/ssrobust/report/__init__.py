"""Records -> Markdown/HTML reports with tables and matplotlib figures."""

from . import adversarial, corruptions, label_noise, ood, render  # noqa: F401  (section registration)
from . import encoders, one_class  # noqa: F401  (section registration)
from .base import SECTIONS, Section, Table, pct
from .render import render_results, render_runs

__all__ = ["SECTIONS", "Section", "Table", "pct", "render_results", "render_runs"]
