"""One experiment, one directory, one folder per phase.

An experiment's run directory is ``<run_root>/<name>``; every phase writes into its own sub-folder::

    <run_root>/<name>/supernet/     super-net training (launchers/train.py; --run_dir for a second one)
    <run_root>/<name>/search/       search (launchers/search.py)
    <run_root>/<name>/retrain/      retraining (launchers/retrain.py), its export/ inside
    <run_root>/<name>/rank/         ranking (launchers/rank.py)
    <run_root>/<name>/memory/       memory report (profiling/memory_report.py)
    <run_root>/<name>/report/       the HTML/Markdown report (lwsl report <run_root>/<name>)

Each phase folder holds a marker file (``.lwsl_phase``, one word: the phase). A launcher refuses a folder
whose marker, or whose files, belong to another phase, and a folder that is a whole experiment, with one
line naming it: retraining once replaced a super-net's ``checkpoints/latest`` because both defaulted to
``<run_root>/<name>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .schema import ConfigError
from ..common.atomic import write_atomic

__all__ = ["PHASES", "MARKER", "experiment_dir", "phase_dir", "detect_phase", "claim", "check_folder",
           "phase_folders", "beside_supernet"]

MARKER = ".lwsl_phase"
PHASES = {
    "supernet": "super-net training",
    "search": "search",
    "retrain": "retraining",
    "rank": "ranking",
    "memory": "memory report",
    "groundtruth": "ground truth",
    "report": "report",
}
# Files that only one phase writes: a folder without a marker (an older run) is still recognised by them.
_SIGNATURES = {
    "supernet": ("supernet.pt", "param_digests.json", "checkpoints/latest", "layer_groups.json", "metrics.jsonl"),
    "retrain": ("retrain_log.jsonl", "final.json", "export/subnet.pt2"),
    "search": ("best_arch.yaml", "search_state.json", "candidates.jsonl"),
    "rank": ("ranking.json", "shift.json"),
    "memory": ("report.json",),
    "groundtruth": ("truth.csv",),
    "report": ("report.html",),
}


def experiment_dir(cfg: Any) -> Path:
    """``<run_root>/<name>`` of an experiment config."""
    return Path(cfg.run_root) / cfg.name


def phase_dir(cfg: Any, phase: str) -> Path:
    """The default folder of ``phase`` in the experiment of ``cfg``."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; one of {list(PHASES)}")
    return experiment_dir(cfg) / phase


def beside_supernet(supernet: str | Path, cfg: Any, phase: str) -> Path:
    """Default folder of ``phase`` for the super-net at ``supernet`` (a folder or its supernet.pt).

    Next to the super-net folder (``<experiment>/<phase>``) when it is one, else ``<run_root>/<name>/<phase>``.
    """
    folder = Path(supernet)
    folder = folder if folder.is_dir() else folder.parent
    found = detect_phase(folder)
    if found is not None and found[0] == "supernet":
        return folder.parent / phase
    return phase_dir(cfg, phase)


def detect_phase(folder: str | Path) -> Optional[tuple[str, Path]]:
    """(phase, evidence path) of what ``folder`` holds: its marker, else a file only one phase writes."""
    folder = Path(folder)
    marker = folder / MARKER
    if marker.is_file():
        return marker.read_text().strip(), marker
    for phase, names in _SIGNATURES.items():
        for name in names:
            if (folder / name).exists():
                return phase, folder / name
    return None


def phase_folders(exp: str | Path) -> list[tuple[str, Path]]:
    """(phase, folder) of every marked or recognisable phase folder in ``exp`` and one level below."""
    exp = Path(exp)
    out = []
    if not exp.is_dir():
        return out
    for child in sorted(p for p in exp.iterdir() if p.is_dir()):
        found = detect_phase(child)
        if found is not None:
            out.append((found[0], child))
            if found[0] != "supernet":  # older runs kept search/ and rank/ inside the super-net folder
                continue
        for sub in sorted(p for p in child.iterdir() if p.is_dir()):  # e.g. rank/<super-net>/
            inner = detect_phase(sub)
            if inner is not None and not (found and inner[0] == "supernet"):
                out.append((inner[0], sub))
    return out


def check_folder(folder: str | Path, phase: str, *, option: str = "--run_dir") -> None:
    """Raise ConfigError when ``folder`` holds another phase's outputs or is a whole experiment."""
    folder = Path(folder)
    found = detect_phase(folder)
    if found is not None and found[0] != phase:
        other, evidence = found
        raise ConfigError(f"{folder}: holds {PHASES.get(other, other)} outputs ({evidence.name}); "
                          f"{PHASES[phase]} writes into its own folder: pass another {option}")
    if found is None and folder.is_dir():
        inner = phase_folders(folder)
        if inner:
            names = ", ".join(sorted({p.name + "/" for _, p in inner}))
            raise ConfigError(f"{folder}: is an experiment directory (holds {names}); {PHASES[phase]} writes into "
                              f"its own sub-folder: pass {folder / phase} or another {option}")


def claim(folder: str | Path, phase: str, *, option: str = "--run_dir", write: bool = True) -> Path:
    """Check ``folder`` (see check_folder), create it and mark it as ``phase``'s; returns it.

    Every rank may call it: the marker is written under a per-process temporary name and renamed.
    """
    folder = Path(folder)
    check_folder(folder, phase, option=option)
    if write:
        folder.mkdir(parents=True, exist_ok=True)
        marker = folder / MARKER
        if not marker.is_file():
            write_atomic(marker, phase + "\n", per_process=True)
    return folder
