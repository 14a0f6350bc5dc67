"""Report sections of the super-net, search, retraining and memory phases, and the full configuration.

Each reads one phase folder (whatever its name: ``lwsl_ds.config.layout`` finds them by marker or files)
and formats its numbers into tables; nothing prints a raw Python dict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from ..common.logging import read_jsonl
from .document import Figure, Section, Table
from .plots import Panel, panels_png

__all__ = ["supernet_section", "search_section", "retrain_section", "memory_section", "config_section",
           "read_yaml", "read_json", "pct", "mega", "flatten"]


def read_yaml(path: Path) -> dict:
    """A YAML mapping, or {} when the file is missing or not a mapping."""
    if not path.is_file():
        return {}
    import yaml

    doc = yaml.safe_load(path.read_text())
    return doc if isinstance(doc, dict) else {}


def read_json(path: Path) -> dict:
    """A JSON object, or {} when the file is missing or not an object."""
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return doc if isinstance(doc, dict) else {}


def pct(x: Optional[float]) -> str:
    """0.4612 -> '46.12%'; '-' when missing."""
    return "-" if x is None else f"{100 * float(x):.2f}%"


def mega(x: Optional[float], unit: str = "") -> str:
    """3123456 -> '3.12M'; '-' when missing."""
    return "-" if x is None else f"{float(x) / 1e6:.2f}M{unit}"


def flatten(doc: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested mapping -> [('a.b.c', 'value'), ...] with scalar/list values as compact JSON."""
    if isinstance(doc, dict) and doc:
        out = []
        for k, v in doc.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, json.dumps(doc))]


def _label(folder: Path, exp: Path) -> str:
    return folder.relative_to(exp).as_posix() if folder.is_relative_to(exp) else str(folder)


def supernet_section(folder: Path, exp: Path, figs: Path) -> Section:
    """Per-layer local loss and accuracy over steps (own panels), the last step and the held-out check."""
    label = _label(folder, exp)
    recs = read_jsonl(folder / "metrics.jsonl")
    if not recs:
        return Section(f"Super-net training: {label}", missing=f"no metrics.jsonl in {folder} yet")
    figures = []
    for prefix, ylabel, name in (("loss/", "local loss (train batch)", "loss"),
                                 ("acc/", "local top-1 (train batch)", "acc")):
        keys = sorted({k for r in recs for k, v in r.items() if k.startswith(prefix) and isinstance(v, (int, float))})
        series = {k[len(prefix):]: [(r["step"], r[k]) for r in recs if k in r and "step" in r] for k in keys}
        png = panels_png(figs / f"{label.replace('/', '_')}_train_{name}.png",
                         [Panel(f"{label}: per-layer {ylabel}", "step", ylabel, series)])
        if png:
            figures.append(Figure(png, f"{label}: {ylabel} per layer decoder (stem, layer i, head) against step"))
    last = recs[-1]
    rows = [[k, f"{v:.4f}"] for k, v in sorted(last.items()) if isinstance(v, float)]
    paras = [f"{len(recs)} logged steps; last step {last.get('step')}."]
    held = folder / "heldout.json"
    tables = [Table(["metric (last logged step)", "value"], rows)]
    if held.is_file():
        h = json.loads(held.read_text())
        paras.append(f"Held-out check at the end of training: {len(h.get('archs', []))} sampled sub-nets scored on "
                     f"the {h.get('split', 'held-out split')} ({h.get('images', '?')} images) with inherited weights.")
        tables.append(Table(["sub-net", "top-1"], [[a["named"], pct(a["score"])] for a in h.get("archs", [])],
                            caption="sampled sub-nets on held-out data"))
    return Section(f"Super-net training: {label}", paras, tables, figures)


def search_section(folder: Path, exp: Path) -> Section:
    """The best arch (layer by layer), its cost and score with the split it came from, and the search plot."""
    label = _label(folder, exp)
    doc = read_yaml(folder / "best_arch.yaml")
    if not doc:
        return Section(f"Search: {label}", missing=f"no best_arch.yaml in {folder} (search not finished)")
    cands = read_jsonl(folder / "candidates.jsonl")
    split = doc.get("score_split", "val split (recorded before held-out scoring existed)")
    paras = [f"Best arch {doc.get('arch')} ({doc.get('named')}): score {_score(doc.get('score'), folder)} with "
             f"inherited super-net weights on the {split}; {mega(doc.get('flops'))} MACs, {mega(doc.get('params'))} "
             f"params. {len(cands)} candidates evaluated ({doc.get('algorithm', '?')}, "
             f"{doc.get('constraints', 'no limits')})."]
    base = read_json(folder / "baseline.json")
    if base:  # the FLOPs baseline: did the super-net change the pick?
        same = str(base.get("arch")) == str(doc.get("arch"))
        paras.append(f"FLOPs baseline (the largest arch under the limits{'' if base.get('exact') else ', of those evaluated'}"
                     f"): {base.get('arch')}, {mega(base.get('flops'))} MACs, super-net score "
                     f"{_score(base.get('score'), folder)} - "
                     + ("the same arch as the search's pick." if same else "the super-net changed the pick."))
    rows = [[str(i), tok] for i, tok in enumerate(str(doc.get("named", "")).split("-"))]
    tables = [Table(["layer", "choice"], rows, caption="best architecture")]
    figs = [Figure(p, "top-1 (inherited weights) against MACs: every candidate, the Pareto front and the limits")
            for p in [folder / "search.png"] if p.is_file()]
    return Section(f"Search: {label}", paras, tables, figs)


def _score(x: Optional[float], search_folder: Path) -> str:
    """A search score in its estimator's unit: top-1 as a percentage, local-decoder scores as numbers."""
    cfg = read_json(search_folder / "search_config.json") or {}
    estimator = (cfg.get("search") or {}).get("estimator", "top1")
    if x is None:
        return "-"
    return f"{pct(x)} top-1" if estimator == "top1" else f"{float(x):.4f} ({estimator})"


def retrain_section(folder: Path, exp: Path, figs: Path) -> Section:
    """Training loss, validation top-1 and learning rate against step (one panel each), and the final numbers."""
    label = _label(folder, exp)
    recs = read_jsonl(folder / "retrain_log.jsonl")
    if not recs:
        return Section(f"Retraining: {label}", missing=f"no retrain_log.jsonl in {folder} yet")
    train = [r for r in recs if r.get("event") == "train"]
    evals = [r for r in recs if r.get("event") in ("eval", "final") and "top1" in r]
    panels = [Panel("training loss", "step", "cross-entropy (train batch)",
                    {"loss": [(r["step"], r["loss"]) for r in train if "loss" in r]}),
              Panel("validation top-1", "step", "top-1 (val split)",
                    {"top-1": [(r["step"], r["top1"]) for r in evals]}),
              Panel("learning rate", "step", "learning rate",
                    {"lr": [(r["step"], r["lr"]) for r in train if "lr" in r]})]
    png = panels_png(figs / f"{label.replace('/', '_')}_retrain.png", panels, title=f"retraining: {label}")
    caption = "retraining: loss, validation top-1 and learning rate against optimizer step"
    figures = [Figure(png, caption)] if png else []
    final = json.loads((folder / "final.json").read_text()) if (folder / "final.json").is_file() else {}
    start = next((r for r in recs if r.get("event") == "start"), {})
    rows = [["arch", f"{start.get('arch', '-')} ({start.get('named', '-')})"],
            ["steps", f"{final.get('step', train[-1]['step'] if train else '-')} of {start.get('total_steps', '-')}"],
            ["global batch", str(start.get("global_batch", "-"))], ["peak lr", f"{start.get('lr', float('nan')):.4g}"]]
    if final:
        rows += [["top-1", f"{pct(final.get('top1'))} on the {final.get('split', 'val')} split "
                           f"({final.get('samples', '?')} images)"],
                 ["val loss", f"{final.get('loss', float('nan')):.4f}"],
                 ["weights evaluated", "EMA" if final.get("ema") else "raw"],
                 ["parameter digest", str(final.get("params_sha256", "-"))[:16]]]
        if final.get("export"):
            rows.append(["export", str(Path(final["export"].get("program", "")).parent)])
    paras = [] if final else ["Not finished: no final.json yet."]
    return Section(f"Retraining: {label}", paras, [Table(["quantity", "value"], rows)], figures)


def memory_section(folder: Path, exp: Path) -> Section:
    """The memory report's first table (peaks per strategy, % of spos) and its per-layer plots."""
    label = _label(folder, exp)
    pngs = sorted(folder.glob("layers_*.png"))
    paras, tables = [], []
    md = folder / "report.md"
    if md.is_file():
        paras.append(f"Peak memory per strategy ({label}/report.md):")
        table = _markdown_table([line for line in md.read_text().splitlines() if line.startswith("|")])
        if table is not None:
            tables.append(table)
    if not pngs and not tables:
        return Section(f"Memory: {label}", missing=f"no memory report in {folder}")
    return Section(f"Memory: {label}", paras, tables,
                   figures=[Figure(p, f"per-layer peak: {p.stem}") for p in pngs[:6]])


def _markdown_table(lines: list[str]) -> Optional[Table]:
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


def config_section(exp: Path, found: list[tuple[str, Path]]) -> Section:
    """The full resolved experiment config of the first phase that recorded one, one row per key."""
    for phase, folder in found:
        for name in ("config.yaml", "search_config.json"):
            path = folder / name
            if path.is_file():
                doc = json.loads(path.read_text()) if path.suffix == ".json" else read_yaml(path)
                rows = [[k, v] for k, v in flatten(doc)]
                return Section("Configuration", [f"Resolved experiment config recorded by {_label(folder, exp)} "
                                                 f"({name}); every phase of the experiment reads the same YAML."],
                               [Table(["key", "value"], rows)])
    return Section("Configuration", missing="no phase recorded its config (config.yaml / search_config.json)")
