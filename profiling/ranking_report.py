"""Compare several ranking outputs (``launchers/rank.py`` folders): one table and side-by-side shift heatmaps.

    .venv/bin/python profiling/ranking_report.py runs/spos/rank runs/greedy/rank runs/non_greedy/rank \
        --out runs/ranking_comparison

Writes ``ranking_comparison.md`` (Kendall tau, Spearman rho, top-k, FLOPs floor, shift off-diagonal mean per
folder) and ``shift_comparison.png`` (the paper's Fig. 4 layout: one similarity matrix per super-net).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _label(folder: Path) -> str:
    return folder.parent.name if folder.name == "rank" else folder.name


def table(folders: list[Path]) -> str:
    """Markdown table, one row per ranking folder."""
    rows = ["| run | archs | Kendall tau [95% CI] | Spearman rho | top-k precision | FLOPs-floor tau | shift off-diag. |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    for f in folders:
        doc = json.loads((f / "ranking.json").read_text())
        m = doc["metrics"]
        tau = m["kendall_tau"]
        topk = ", ".join(f"{k}: {v['value']:.2f}" for k, v in m.items() if k.startswith("top"))
        floor = doc["floors"].get("flops", {}).get("kendall_tau")
        shift = f / "shift.json"
        off = f"{json.loads(shift.read_text())['off_diagonal_mean']:.3f}" if shift.is_file() else "-"
        rows.append(f"| {_label(f)} | {len(doc['rows'])} | {tau['value']:.3f} [{tau['lo']:.3f}, {tau['hi']:.3f}] | "
                    f"{m['spearman_rho']['value']:.3f} | {topk or '-'} | "
                    f"{'-' if floor is None else format(floor['value'], '.3f')} | {off} |")
    return "\n".join(rows)


def shift_figure(folders: list[Path], path: Path) -> Path | None:
    """One heatmap per folder that has a shift.json, in a row."""
    shifts = [(f, json.loads((f / "shift.json").read_text())) for f in folders if (f / "shift.json").is_file()]
    if not shifts:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shifts), figsize=(4.2 * len(shifts), 3.6), squeeze=False)
    for ax, (f, s) in zip(axes[0], shifts):
        m, names = s["matrix"], s["names"]
        ax.imshow(m, vmin=-1, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        for a in range(len(names)):
            for b in range(len(names)):
                ax.text(b, a, f"{m[a][b]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if m[a][b] < 0.5 else "black")
        ax.set_title(f"{_label(f)} ({s['off_diagonal_mean']:.3f})", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    """Read the folders, write the table and the figure."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="ranking output folders (holding ranking.json)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    missing = [str(f) for f in args.folders if not (f / "ranking.json").is_file()]
    if missing:
        print(f"error: no ranking.json in {', '.join(missing)}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    md = table(args.folders)
    (args.out / "ranking_comparison.md").write_text(md + "\n")
    fig = shift_figure(args.folders, args.out / "shift_comparison.png")
    print(md)
    print(f"-> {args.out / 'ranking_comparison.md'}" + (f", {fig}" if fig else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
