"""Ground truth for ranking: the NAS-Bench-Macro table or a CSV/JSON of arch -> accuracy.

NAS-Bench-Macro keys are arch keys of the ``nasbench_macro`` space (choice index = op code). Only 3969 of
its 6561 keys were trained: inside a stage an identity in a non-first layer is a no-op, so every key maps
to a canonical form (per stage: keep the first layer, keep the later non-identity ops in order, move the
identities to the end) and carries that form's record. By default ranking uses the 3969 canonical keys:
each is a distinct trained network, so no two ground-truth entries are copies of one measurement, while
the super-net evaluates exactly the path that was trained from scratch.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ..config.schema import ConfigError
from ..config.sections.data import DATA_DIR_ENV, data_dir
from ..space import SearchSpace, parse_arch
from ..space.canonical import NASBENCH_MACRO_STAGES, canonical_arch, canonical_key  # re-exported here

__all__ = ["GroundTruth", "NASBENCH_MACRO_STAGES", "default_nasbench_path", "canonical_key", "canonical_arch",
           "load_nasbench_macro", "load_truth_file", "load_truth"]

def default_nasbench_path() -> str:
    """Where the NAS-Bench-Macro table is read when ``rank.nasbench_path`` is not set (``$LWSL_DATA_DIR``)."""
    return f"{data_dir()}/nas-bench-macro/nas-bench-macro_cifar10.json"
KeySet = Literal["canonical", "all"]


@dataclass(frozen=True)
class GroundTruth:
    """Accuracy (and optional FLOPs / params) per arch key, with a note of where it came from."""

    accuracy: dict[str, float]
    source: str
    flops: Optional[dict[str, float]] = None
    params: Optional[dict[str, float]] = None
    notes: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.accuracy)

    def keys(self) -> list[str]:
        """Arch keys in sorted order (deterministic sampling pools)."""
        return sorted(self.accuracy)

    def lookup(self, keys: list[str]) -> list[float]:
        """Accuracies of ``keys``; KeyError naming the first missing key and the source."""
        missing = [k for k in keys if k not in self.accuracy]
        if missing:
            raise KeyError(f"{len(missing)} arch(s) have no ground truth in {self.source}, e.g. {missing[0]!r}"
                           + (f" ({self.notes['keys']})" if "keys" in self.notes else ""))
        return [self.accuracy[k] for k in keys]


def _resolve(path: str | Path) -> Path:
    """A path as given, or relative to the repository root (so defaults work from any cwd)."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    repo_rel = Path(__file__).resolve().parents[2] / p
    return repo_rel if repo_rel.exists() else p


def load_nasbench_macro(path: str | Path | None = None, *, keys: KeySet = "canonical",
                        metric: str = "mean_acc") -> GroundTruth:
    """NAS-Bench-Macro as ground truth over the 3969 canonical keys (default) or all 6561 keys."""
    path = path or default_nasbench_path()
    p = _resolve(path)
    if not p.is_file():
        raise ConfigError(f"{path}: NAS-Bench-Macro table not found (set rank.nasbench_path, or {DATA_DIR_ENV} to "
                          "the folder holding nas-bench-macro/)")
    if keys not in ("canonical", "all"):
        raise ConfigError(f"NAS-Bench-Macro key set {keys!r}: choose 'canonical' or 'all'")
    table = json.loads(p.read_text())
    acc, flops, params = {}, {}, {}
    for key, rec in table.items():
        if keys == "canonical" and canonical_key(key) != key:
            continue
        if metric.startswith("run"):  # run1..run3: one training run instead of the mean of three
            acc[key] = float(rec["test_acc"][int(metric[3:]) - 1])
        elif metric in rec:
            acc[key] = float(rec[metric])
        else:
            raise ConfigError(f"{p}: metric {metric!r} is not a field; use mean_acc, run1, run2 or run3")
        flops[key], params[key] = float(rec["flops"]), float(rec["params"])
    note = ("3969 canonical keys (distinct trained networks)" if keys == "canonical"
            else "all 6561 keys (2592 carry their canonical form's record)")
    return GroundTruth(acc, f"NAS-Bench-Macro {p.name} [{metric}]", flops, params, {"keys": note})


_ARCH_COLS = ("arch", "key")
_ACC_COLS = ("accuracy", "acc", "top1", "mean_acc", "val_acc", "test_acc")


def _as_float(value: object, where: str) -> float:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: accuracy {value!r} is not a number") from None
    if not math.isfinite(f):
        raise ConfigError(f"{where}: accuracy {value!r} is not finite")
    return f


def _pick(row: dict, names: tuple[str, ...]) -> object:
    for n in names:
        if n in row and row[n] not in (None, ""):
            return row[n]
    return None


def load_truth_file(path: str | Path, space: SearchSpace | None = None) -> GroundTruth:
    """Arch -> accuracy from CSV (header with arch/key and accuracy/acc/top1 columns) or JSON.

    JSON may be ``{key: acc}``, ``{key: {"mean_acc"|"accuracy": acc, ...}}`` (NAS-Bench-Macro's format) or
    ``[{"arch": key, "accuracy": acc}, ...]``. Keys may be in key or named form when ``space`` is given,
    and are validated against it. Optional ``flops`` / ``params`` fields are kept.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{path}: ground-truth file not found")
    rows: list[tuple[str, dict, str]] = []  # (arch text, record, where)
    if p.suffix.lower() == ".csv":
        with p.open(newline="") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            if not any(c in cols for c in _ARCH_COLS) or not any(c in cols for c in _ACC_COLS):
                raise ConfigError(f"{p}: CSV header {cols} needs an arch column {list(_ARCH_COLS)} and an "
                                  f"accuracy column {list(_ACC_COLS)}")
            for line, row in enumerate(reader, start=2):
                rows.append((str(_pick(row, _ARCH_COLS) or ""), row, f"{p}:{line}"))
    elif p.suffix.lower() == ".json":
        try:
            doc = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{p}: malformed JSON: {e}") from None
        if isinstance(doc, dict):
            for k, v in doc.items():
                rows.append((str(k), v if isinstance(v, dict) else {"accuracy": v}, f"{p}: key {k!r}"))
        elif isinstance(doc, list):
            for i, v in enumerate(doc):
                if not isinstance(v, dict):
                    raise ConfigError(f"{p}: item {i} is not an object with arch and accuracy")
                rows.append((str(_pick(v, _ARCH_COLS) or ""), v, f"{p}: item {i}"))
        else:
            raise ConfigError(f"{p}: expected a JSON object or list, got {type(doc).__name__}")
    else:
        raise ConfigError(f"{p}: ground truth must be a .csv or .json file")
    acc: dict[str, float] = {}
    flops: dict[str, float] = {}
    params: dict[str, float] = {}
    for text, rec, where in rows:
        if not text:
            raise ConfigError(f"{where}: empty arch")
        value = _pick(rec, _ACC_COLS)
        if isinstance(value, list):  # NAS-Bench-Macro style test_acc list: average the runs
            value = sum(value) / len(value) if value else None
        if value is None:
            raise ConfigError(f"{where}: no accuracy field (one of {list(_ACC_COLS)})")
        key = text
        if space is not None:
            try:
                key = parse_arch(space, text).key
            except ConfigError as e:
                raise ConfigError(f"{where}: {e}") from None
        if key in acc:
            raise ConfigError(f"{where}: arch {key!r} appears twice")
        acc[key] = _as_float(value, where)
        for name, dst in (("flops", flops), ("params", params)):
            if rec.get(name) not in (None, ""):
                dst[key] = _as_float(rec[name], f"{where} ({name})")
    if not acc:
        raise ConfigError(f"{p}: no architectures")
    return GroundTruth(acc, str(p), flops if len(flops) == len(acc) else None,
                       params if len(params) == len(acc) else None)


def load_truth(spec_or_path: str, space: SearchSpace | None = None, *, nasbench_path: str | None = None,
               keys: KeySet = "canonical", metric: str = "mean_acc") -> GroundTruth:
    """``'nasbench_macro'`` (the shared table) or a path to a CSV/JSON ground-truth file."""
    if spec_or_path == "nasbench_macro":
        if space is not None and space.name != "nasbench_macro":
            raise ConfigError(f"rank.truth: 'nasbench_macro' needs the nasbench_macro space, not {space.name!r}")
        return load_nasbench_macro(nasbench_path, keys=keys, metric=metric)
    return load_truth_file(spec_or_path, space)
