"""Assemble ``<run>/report.html`` (+ ``report.md``) from what the phases wrote into a run directory.

A phase that did not run yields a section saying so, never a crash: the report is also a status page.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..common.logging import read_jsonl
from .document import Figure, Report, Section, Table
from .ranking import ranking_section, shift_section

__all__ = ["build_report"]


def _curves(records: list[dict], prefix: str, out: Path, title: str, x: str = "step") -> Path | None:
    """Plot every numeric key starting with ``prefix`` against ``x``; None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in records for k, v in r.items() if k.startswith(prefix) and isinstance(v, (int, float))})
    if not keys:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for k in keys:
        pts = [(r[x], r[k]) for r in records if k in r and x in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=k[len(prefix):] or k)
    ax.set_xlabel(x)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def _config_section(run: Path) -> Section:
    cfg = run / "supernet" / "config.yaml"
    if not cfg.is_file():
        return Section("Configuration", missing="super-net training did not run (no supernet/config.yaml)")
    import yaml

    doc = yaml.safe_load(cfg.read_text()) or {}
    rows = [[f"{sec}.{k}", json.dumps(v)] for sec in ("space", "data", "train") for k, v in (doc.get(sec) or {}).items()]
    return Section("Configuration", [f"Experiment config of the super-net run ({cfg})."], [Table(["key", "value"], rows)])


def _training_section(run: Path, figs: Path) -> Section:
    recs = read_jsonl(run / "supernet" / "metrics.jsonl")
    if not recs:
        return Section("Super-net training", missing="no supernet/metrics.jsonl")
    f = [p for p in (_curves(recs, "loss/", figs / "train_loss.png", "per-layer local loss"),
                     _curves(recs, "acc/", figs / "train_acc.png", "per-layer local accuracy")) if p]
    last = recs[-1]
    rows = [[k, f"{v:.4f}"] for k, v in sorted(last.items()) if isinstance(v, float)]
    return Section("Super-net training", [f"{len(recs)} logged steps; last step {last.get('step')}."],
                   [Table(["metric (last step)", "value"], rows)], [Figure(p, p.stem) for p in f])


def _memory_section(run: Path) -> Section:
    mem = run / "memory"
    pngs = sorted(mem.glob("layers_*.png"))
    if not pngs:
        return Section("Memory", missing="the memory report did not run")
    paras, tables = [], []
    md = mem / "report.md"
    if md.is_file():
        paras.append("Peak memory per strategy (from memory/report.md):")
        table = _markdown_table([line for line in md.read_text().splitlines() if line.startswith("|")])
        if table is not None:
            tables.append(table)
    return Section("Memory", paras, tables, figures=[Figure(p, f"per-layer peak: {p.stem}") for p in pngs[:6]])


def _markdown_table(lines: list[str]) -> Table | None:
    """The first pipe table in ``lines`` (header, separator, rows) as a Table; None if there is none."""
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]
    is_sep = [bool(row) and all(c and set(c) <= set("-: ") for c in row) for row in cells]
    if len(cells) < 2 or not is_sep[1]:
        return None
    rows = []
    for i in range(2, len(cells)):
        if is_sep[i] or (i + 1 < len(cells) and is_sep[i + 1]):  # the next table starts: keep the first only
            break
        rows.append(cells[i])
    return Table(cells[0], rows)


def _search_section(run: Path) -> Section:
    s = run / "search"
    if not (s / "best_arch.yaml").is_file():
        return Section("Search", missing="the search did not run")
    import yaml

    doc = yaml.safe_load((s / "best_arch.yaml").read_text())
    cands = read_jsonl(s / "candidates.jsonl")
    figs = [Figure(p, "top-1 vs FLOPs with the Pareto front and the limit") for p in [s / "search.png"] if p.is_file()]
    rows = [[str(i), tok] for i, tok in enumerate(str(doc.get("named", "")).split("-"))]
    base = json.loads((s / "baseline.json").read_text()) if (s / "baseline.json").is_file() else None
    base_txt = ([f"FLOPs baseline (largest arch under the limits{'' if base['exact'] else ', of those evaluated'}): "
                 f"{base['arch']}, {base['flops'] / 1e6:.2f}M MACs, super-net score {base['score']:.4f}"
                 + (" - the same arch as the search's pick." if str(base["arch"]) == str(doc.get("arch"))
                    else " - the super-net changed the pick.")] if base else [])
    return Section("Search", [f"{len(cands)} candidates evaluated; best arch {doc.get('arch')} "
                              f"({ {k: v for k, v in doc.items() if k in ('score', 'flops', 'params')} }).",
                              *base_txt],
                   [Table(["layer", "choice"], rows, caption="final architecture")], figs)


def _retrain_section(run: Path, figs: Path) -> Section:
    r = run / "retrain"
    recs = read_jsonl(r / "retrain_log.jsonl")
    if not recs:
        return Section("Retraining", missing="retraining did not run")
    x = "step" if any("step" in rec for rec in recs) else next(iter(recs[0]))
    f = [p for p in (_curves(recs, "", figs / "retrain.png", "retraining", x=x),) if p]
    final = (r / "final.json").read_text() if (r / "final.json").is_file() else "{}"
    return Section("Retraining", [f"final: {final.strip()}"], figures=[Figure(p, "retraining curve") for p in f])


def build_report(run: Path, *, screenshot: bool = False) -> tuple[Path, Path]:
    """Write the report of run directory ``run``; optionally render it in Chromium to ``screenshot.png``."""
    run = Path(run)
    figs = run / "report_figures"
    figs.mkdir(parents=True, exist_ok=True)
    rep = Report(f"lwsl_ds run report: {run.name}", [
        _config_section(run), _training_section(run, figs), _memory_section(run), _search_section(run),
        _retrain_section(run, figs), ranking_section(run), shift_section(run)])
    html, md = rep.write(run)
    if screenshot:
        from .render import find_chromium, screenshot as shoot

        if find_chromium():
            shoot(html, run / "screenshot.png")
    return html, md
