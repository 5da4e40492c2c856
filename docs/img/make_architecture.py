"""Render docs/img/architecture.png: the layers of ssrobust (docs/architecture.md).

Run from the repository root: ``python docs/img/make_architecture.py`` (matplotlib only). The
layers are the ones of ``[tool.importlinter]`` in pyproject.toml, top to bottom.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

# (layer name, its packages and modules, colour); top to bottom.
LAYERS = [
    ("faces", ["cli", "api", "ssrobust/__init__ (lazy)"], "#d9d9d9"),
    ("experiments", ["run: train_and_evaluate", "quickstart", "label_noise sweep", "one_class sweep"], "#f4cccc"),
    ("report", ["render", "sections", "plots", "robustbench"], "#fce5cd"),
    ("train | eval", ["train: trainer, session, strategies", "eval: evaluate, suites",
                      "(neither imports the other)"], "#fff2cc"),
    ("runs", ["config", "rundir", "checkpoint", "precision", "device", "network", "runstart",
              "splits", "load_run"], "#d9ead3"),
    ("learning components", ["tasks", "weighting", "ood", "label_noise", "contrastive", "encoders"], "#d0e0e3"),
    ("components", ["data", "models", "corruptions", "attacks"], "#cfe2f3"),
    ("core", ["errors", "registry", "typedconfig", "paths", "locking", "atomic", "runfiles",
              "distributed", "_version"], "#d9d2e9"),
]


def draw(path: Path) -> None:
    """One box per layer, bottom layer last; an arrow says imports point down."""
    fig, ax = plt.subplots(figsize=(10, 6.4))
    height, gap = 0.62, 0.16
    for i, (name, members, colour) in enumerate(LAYERS):
        y = (len(LAYERS) - 1 - i) * (height + gap)
        ax.add_patch(FancyBboxPatch((0.0, y), 10.0, height, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    facecolor=colour, edgecolor="#555555", linewidth=1.0))
        ax.text(0.15, y + height / 2, name, va="center", ha="left", fontsize=11, fontweight="bold")
        ax.text(2.6, y + height / 2, "  ·  ".join(members), va="center", ha="left", fontsize=8.5, wrap=True)
    top = (len(LAYERS) - 1) * (height + gap) + height
    ax.annotate("", xy=(10.45, 0.0), xytext=(10.45, top),
                arrowprops={"arrowstyle": "->", "linewidth": 1.5, "color": "#333333"})
    ax.text(10.6, top / 2, "imports point down only\n(import-linter contracts)", rotation=90, va="center",
            ha="left", fontsize=9)
    ax.set_xlim(-0.1, 11.2)
    ax.set_ylim(-0.1, top + 0.1)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    draw(Path(__file__).with_name("architecture.png"))
