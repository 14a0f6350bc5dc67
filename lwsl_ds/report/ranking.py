"""Report sections of the rank phase: ranking (tau with interval) per super-net, ground truth, shift heatmaps.

Reads what ``launchers/rank.py`` wrote (``ranking.json``, ``ranking_scatter.png``, ``shift.json``,
``shift_heatmap.png``) anywhere under the run directory, the super-net runs those files name (for the
equal-time line) and the ground-truth folder's ``meta.json`` when ``launchers/groundtruth.py`` made it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..common.logging import read_jsonl
from .document import Figure, Section, Table

__all__ = ["RankRun", "find_rank_runs", "ranking_section", "shift_section"]


@dataclass
class RankRun:
    """One rank folder: its label, ranking.json, and the super-net run it scored (when known)."""

    label: str
    folder: Path
    doc: dict
    checkpoint: Optional[Path]


def find_rank_runs(run: Path) -> list[RankRun]:
    """Every ``ranking.json`` under ``run``, labelled by its folder relative to ``run``, in path order."""
    out = []
    for path in sorted(run.glob("**/ranking.json")):
        doc = json.loads(path.read_text())
        ck = doc.get("meta", {}).get("checkpoint")
        ck_path = Path(ck) if ck else None
        if ck_path is not None and not ck_path.is_absolute():
            ck_path = None  # relative to a cwd we do not know
        label = str(path.parent.relative_to(run))
        out.append(RankRun(label.removeprefix("rank/"), path.parent, doc, ck_path))
    return out


def _budget_line(runs: list[RankRun]) -> Optional[str]:
    """'Equal training time: A trained N steps in X s, B ...' from the scored runs' metrics and configs."""
    parts = []
    budgets = []
    for r in runs:
        if r.checkpoint is None or not r.checkpoint.is_dir():
            continue
        last = (read_jsonl(r.checkpoint / "metrics.jsonl") or [{}])[-1]
        if "train_seconds" not in last:
            continue
        parts.append(f"{r.label} {last['train_seconds']:.1f} s ({last.get('step')} steps)")
        cfg = r.checkpoint / "config.yaml"
        if cfg.is_file():
            import yaml

            minutes = ((yaml.safe_load(cfg.read_text()) or {}).get("train") or {}).get("max_minutes")
            if minutes:
                budgets.append(f"{r.label} was stopped by a time budget of {minutes * 60:.1f} s")
    if not parts:
        return None
    text = "Training time (cumulative step time, checkpoints and logging excluded): " + "; ".join(parts) + "."
    if budgets:
        text += " " + "; ".join(budgets) + " (the other run's step time), so both had the same training time."
    return text


def _truth_line(runs: list[RankRun]) -> Optional[str]:
    """Where the ground truth came from; for a generated table, how it was made."""
    src = runs[0].doc.get("meta", {}).get("truth")
    if not src:
        return None
    meta_path = Path(src).parent / "meta.json"
    if meta_path.is_file():
        m = json.loads(meta_path.read_text())
        return (f"Ground truth: {m.get('num_archs')} archs of the {m.get('space')} space, sampled with seed "
                f"{m.get('seed')} stratified by FLOPs, each trained from scratch for {m.get('steps')} steps "
                f"({m.get('epochs', 0):.2f} epochs) and evaluated on the val split ({src}). A short training "
                "measures how fast an arch learns; one run per arch, so its seed noise is in the truth.")
    return f"Ground truth: {src}."


def _interval_note(runs: list[RankRun]) -> str:
    """Whether the tau intervals overlap (then the demo does not separate the super-nets)."""
    n = min(len(r.doc.get("rows", [])) for r in runs)
    taus = [r.doc["metrics"]["kendall_tau"] for r in runs]
    note = (f"With {n} archs the {runs[0].doc.get('meta', {}).get('confidence', 0.95):.0%} bootstrap interval "
            "of tau is wide")
    if len(runs) > 1:
        overlap = max(t["lo"] for t in taus) <= min(t["hi"] for t in taus)
        note += (": the intervals overlap, so this demo does not show that one super-net ranks better"
                 if overlap else ": the intervals do not overlap")
    return note + " (more archs narrow it; docs/ranking.md)."


def _fmt(est: Optional[dict]) -> str:
    if not est:
        return "-"
    return f"{est['value']:.3f} [{est['lo']:.3f}, {est['hi']:.3f}]"


def ranking_section(run: Path) -> Section:
    """Ranking of every rank folder: a tau/rho table, the budget and truth lines, the scatter plots."""
    runs = find_rank_runs(run)
    if not runs:
        return Section("Ranking", missing="not measured in this run (launchers/rank.py writes ranking.json)")
    paras = [p for p in (_budget_line(runs), _truth_line(runs)) if p]
    paras.append(_interval_note(runs))
    top = sorted({k for r in runs for k in r.doc["metrics"] if k.startswith("top")})
    rows = []
    for r in runs:
        m, fl = r.doc["metrics"], r.doc.get("floors", {}).get("flops", {})
        rows.append([r.label, str(len(r.doc.get("rows", []))), _fmt(m.get("kendall_tau")),
                     _fmt(m.get("spearman_rho")), *[_fmt(m.get(k)) for k in top], _fmt(fl.get("kendall_tau"))])
    tables = [Table(["super-net", "archs", "Kendall tau [CI]", "Spearman rho [CI]", *top, "FLOPs floor tau [CI]"],
                    rows, caption="super-net score vs ground truth")]
    tables.append(_arch_table(runs))
    figs = [Figure(r.folder / "ranking_scatter.png", f"{r.label}: super-net score vs ground truth (left), "
                   "FLOPs vs ground truth (right)") for r in runs if (r.folder / "ranking_scatter.png").is_file()]
    return Section("Ranking", paras, tables, figs)


def _arch_table(runs: list[RankRun]) -> Table:
    """One row per arch: key, MACs, ground truth, each super-net's score; ordered by ground truth."""
    named = _named(runs)
    by_arch: dict[str, dict] = {}
    for r in runs:
        for row in r.doc.get("rows", []):
            rec = by_arch.setdefault(row["arch"], {"truth": row["truth"], "flops": row.get("flops")})
            rec[r.label] = row["score"]
    rows = []
    for key, rec in sorted(by_arch.items(), key=lambda kv: -kv[1]["truth"]):
        flops = f"{rec['flops'] / 1e6:.2f}" if rec.get("flops") else "-"
        rows.append([key, named.get(key, ""), flops, f"{rec['truth']:.3f}",
                     *[f"{rec[r.label]:.3f}" if r.label in rec else "-" for r in runs]])
    return Table(["arch", "layers", "MMACs", "ground truth", *[f"score: {r.label}" for r in runs]], rows,
                 caption="archs ranked (best ground truth first)")


def _named(runs: list[RankRun]) -> dict[str, str]:
    """arch key -> named form, from a generated truth.csv (its 'named' column) when there is one."""
    src = runs[0].doc.get("meta", {}).get("truth")
    if not src or not Path(src).is_file() or Path(src).suffix != ".csv":
        return {}
    with Path(src).open(newline="") as f:
        return {r["arch"]: r.get("named", "") for r in csv.DictReader(f) if r.get("arch")}


def shift_section(run: Path) -> Section:
    """Representation-shift heatmaps (and off-diagonal means) of every rank folder."""
    pngs = sorted(run.glob("**/shift_heatmap.png"))
    if not pngs:
        return Section("Representation shift", missing="not measured in this run (launchers/rank.py writes it)")
    paras = ["Mean per-image cosine similarity between the outputs of the choices of one layer on the same "
             "inputs (paper Fig. 4); off-diagonal mean near 1 = interchangeable choices."]
    for p in pngs:
        js = p.with_name("shift.json")
        if js.is_file():
            d = json.loads(js.read_text())
            paras.append(f"{p.parent.relative_to(run)}: layer {d['layer']}, off-diagonal mean "
                         f"{d['off_diagonal_mean']:.3f} over {d['num_images']} images (BN {d['bn']}).")
    return Section("Representation shift", paras,
                   figures=[Figure(p, str(p.parent.relative_to(run))) for p in pngs])
