"""Search outputs: Pareto front (max score, min MACs) and the accuracy-vs-MACs plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from ..common.atomic import atomic_path

__all__ = ["pareto_front", "plot_search"]


def pareto_front(records: Sequence[dict[str, Any]], metric: str = "flops") -> list[dict[str, Any]]:
    """Records not dominated by another (lower or equal ``metric`` and higher score), by increasing cost."""
    front: list[dict[str, Any]] = []
    best = float("-inf")
    for r in sorted(records, key=lambda r: (r[metric], -r["score"])):
        if r["score"] > best:
            front.append(r)
            best = r["score"]
    return front


def plot_search(path: str | Path, records: Sequence[dict[str, Any]], *, metric: str = "flops",
                max_macs: Optional[float] = None, min_macs: Optional[float] = None,
                best: Optional[dict[str, Any]] = None, title: str = "") -> Path:
    """PNG of score (as %) vs MACs for every evaluated candidate, the Pareto front and the constraint lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    gens = [r["generation"] for r in records]
    sc = ax.scatter([r[metric] / 1e6 for r in records], [100 * r["score"] for r in records], c=gens, s=10,
                    cmap="viridis", alpha=0.7, label="candidates")
    fig.colorbar(sc, ax=ax, label="generation")
    front = pareto_front(records, metric)
    ax.step([r[metric] / 1e6 for r in front], [100 * r["score"] for r in front], where="post", color="tab:red",
            lw=1.5, label="Pareto front")
    for value, label in ((max_macs, "max MACs"), (min_macs, "min MACs")):
        if value is not None:
            ax.axvline(value / 1e6, color="black", ls="--", lw=1, label=label)
    if best is not None:
        ax.scatter([best[metric] / 1e6], [100 * best["score"]], marker="*", s=160, color="tab:red",
                   edgecolor="black", zorder=5, label=f"best {best['arch']}")
    ax.set_xlabel(f"MACs ({metric}, millions)")
    ax.set_ylabel("top-1 (%)")
    ax.set_title(title or f"search: {len(records)} candidates")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png")  # the temporary name has no image suffix
    finally:
        plt.close(fig)
    return path
