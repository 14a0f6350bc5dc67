"""Report figures: one quantity per axis, every axis labelled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = ["Panel", "panels_png"]


@dataclass
class Panel:
    """One axis: a title, the x/y labels and named series of (x, y) points (all of one quantity)."""

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, list[tuple[float, float]]]


def panels_png(path: Path, panels: list[Panel], *, title: str = "") -> Optional[Path]:
    """Panels side by side in one PNG; empty panels are left out; None when nothing is left to draw."""
    panels = [p for p in panels if any(p.series.values())]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 0.6, 3.4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        for name, pts in p.series.items():
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="." if len(pts) < 30 else None,
                        label=name)
        ax.set_xlabel(p.xlabel)
        ax.set_ylabel(p.ylabel)
        ax.set_title(p.title, fontsize=9)
        if len(p.series) > 1:
            ax.legend(fontsize=7, ncol=2)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
