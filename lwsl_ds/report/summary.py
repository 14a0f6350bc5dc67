"""The report's opening section: the results a person came for, each with the split it was measured on."""

from __future__ import annotations

import json
from pathlib import Path

from ..config.layout import PHASES
from .document import Section, Table
from .phases import mega, pct, read_yaml

__all__ = ["summary_section"]


def _rel(folder: Path, exp: Path) -> str:
    return folder.relative_to(exp).as_posix() if folder.is_relative_to(exp) else str(folder)


def _memory_rows(folder: Path, exp: Path) -> list[list[str]]:
    """One row per strategy: activation peak as % of spos and the saving, at the first batch size."""
    path = folder / "report.json"
    if not path.is_file():
        return []
    doc = json.loads(path.read_text())
    results = doc.get("results") or {}
    if not results:
        return []
    batch, res = next(iter(results.items()))
    rows = []
    for name, r in res.items():
        p = (r.get("pct_of_spos") or {}).get("activations")
        if name == "spos" or p is None:
            continue
        rows.append([f"memory saving: {name}", f"activations {p:.1f}% of spos (saves {100 - p:.1f}%)",
                     f"{_rel(folder, exp)}: accounted, batch {batch}, {doc.get('space')} {doc.get('resolution')} px"])
    return rows


def summary_section(exp: Path, found: list[tuple[str, Path]]) -> Section:
    """Best arch, its MACs and params, search score, retrained top-1, ranking and memory, with their sources."""
    by_phase: dict[str, list[Path]] = {}
    for phase, folder in found:
        by_phase.setdefault(phase, []).append(folder)
    if not found:
        return Section("Summary", missing=f"no phase outputs found under {exp} (expected sub-folders such as "
                                          "supernet/, search/, retrain/)")
    listing = "; ".join(f"{PHASES.get(p, p)}: {', '.join(_rel(f, exp) + '/' for f in fs)}"
                        for p, fs in by_phase.items())
    rows: list[list[str]] = []
    for folder in by_phase.get("supernet", []):
        held = folder / "heldout.json"
        if held.is_file():
            h = json.loads(held.read_text())
            scores = [a["score"] for a in h.get("archs", [])]
            if scores:
                rows.append([f"super-net check ({_rel(folder, exp)})",
                             f"{len(scores)} sampled sub-nets: top-1 {pct(min(scores))} .. {pct(max(scores))}",
                             f"{h.get('split', 'held-out split')}, {h.get('images', '?')} images"])
    for folder in by_phase.get("search", []):
        doc = read_yaml(folder / "best_arch.yaml")
        if not doc:
            continue
        src = _rel(folder, exp) + "/best_arch.yaml"
        rows += [["best arch", f"{doc.get('named')} ({doc.get('arch')})", src],
                 ["MACs", mega(doc.get("flops")), f"{src} (fvcore, one image)"],
                 ["params", mega(doc.get("params")), src],
                 ["search score", f"{pct(doc.get('score'))} top-1 with inherited super-net weights",
                  doc.get("score_split", "val split (recorded before held-out scoring existed)")]]
    for folder in by_phase.get("retrain", []):
        path = folder / "final.json"
        if path.is_file():
            f = json.loads(path.read_text())
            rows.append(["retrained top-1", f"{pct(f.get('top1'))} ({'EMA' if f.get('ema') else 'raw'} weights, "
                                            f"step {f.get('step')})",
                         f"{f.get('split', 'val')} split, {f.get('samples', '?')} images ({_rel(folder, exp)})"])
    for rank_dir in sorted(exp.glob("**/ranking.json")):
        m = json.loads(rank_dir.read_text()).get("metrics", {})
        tau, rho = m.get("kendall_tau"), m.get("spearman_rho")
        if tau:
            text = f"Kendall tau {tau['value']:.3f} [{tau['lo']:.3f}, {tau['hi']:.3f}]"
            if rho:
                text += f", Spearman rho {rho['value']:.3f}"
            rows.append([f"ranking ({_rel(rank_dir.parent, exp)})", text, "super-net score vs ground truth"])
    for folder in by_phase.get("memory", []):
        rows += _memory_rows(folder, exp)
    paras = [f"Phases found in {exp}: {listing}."]
    if not rows:
        paras.append("No results yet: the phases above have not finished.")
        return Section("Summary", paras)
    return Section("Summary", paras, [Table(["result", "value", "measured on / from"], rows)])
