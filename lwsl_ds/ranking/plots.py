"""PNG figures of the ranking phase: score-vs-truth scatter, similarity heatmap, accuracy-vs-time curves.

matplotlib is imported inside each function with the non-interactive Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional, Sequence

__all__ = ["scatter_png", "heatmap_png", "curves_png"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def scatter_png(path: str | Path, pred: Sequence[float], truth: Sequence[float], *, title: str = "",
                xlabel: str = "super-net score (held-out top-1, BN recalibrated)", ylabel: str = "ground-truth accuracy",
                floor: Optional[Sequence[float]] = None) -> Path:
    """Scatter of predicted score vs ground truth; optional second panel with the FLOPs predictor."""
    plt = _pyplot()
    panels = 2 if floor is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4.2), squeeze=False)
    ax = axes[0][0]
    ax.scatter(pred, truth, s=12, alpha=0.7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if floor is not None:
        ax2 = axes[0][1]
        ax2.scatter([f / 1e6 for f in floor], truth, s=12, alpha=0.7, color="tab:gray")
        ax2.set_xlabel("MFLOPs (MACs)")
        ax2.set_ylabel(ylabel)
        ax2.set_title("FLOPs as predictor (floor)", fontsize=9)
        ax2.grid(alpha=0.3)
    return _save(fig, path)


def heatmap_png(path: str | Path, matrix: Sequence[Sequence[float]], names: Sequence[str], *, title: str = "") -> Path:
    """Cosine-similarity heatmap with the values written in the cells (paper Fig. 4)."""
    plt = _pyplot()
    m = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * m, 0.8 + 0.8 * m))
    im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="viridis")
    ax.set_xticks(range(m), names, rotation=45, ha="right")
    ax.set_yticks(range(m), names)
    for a in range(m):
        for b in range(m):
            v = matrix[a][b]
            ax.text(b, a, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def curves_png(path: str | Path, curves: Mapping[str, Sequence[tuple[float, float]]], *,
               xlabel: str = "training time (s)", ylabel: str = "mean val top-1 of fixed sub-nets (%)",
               title: str = "") -> Path:
    """One line per strategy of (x, y) points, e.g. accuracy vs training time (paper Fig. 1)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for name, pts in curves.items():
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
