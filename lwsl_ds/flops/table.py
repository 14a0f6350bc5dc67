"""Cost tables: MACs and parameters of every (layer, choice) of a space, counted once, cached as JSON.

A sub-net's cost is then a lookup and a sum: ``fixed + sum_i table[i, arch[i]]``. This is exact because
the layers of a sub-net run one after the other on known input shapes, and fvcore's count of a whole
network is the sum of its modules' counts (the residual add and other element-wise ops are not counted).
Vectorised over an (N, n_layers) integer array it scores millions of archs per second.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..config.schema import to_dict
from ..space.arch import Arch, parse_arch
from ..space.spec import SearchSpace
from ..common.atomic import write_json_atomic

__all__ = ["METRICS", "ArchCost", "CostTable", "build_cost_table", "default_cache_dir", "space_fingerprint",
           "archs_to_array"]

METRICS = ("flops", "conv_linear", "params")
TABLE_FORMAT = 1
CONVENTION = ("fvcore FlopCountAnalysis, eval mode, batch 1: one multiply-add = 1; conv and linear exclude "
              "bias; batch_norm and pooling (adaptive_avg_pool2d, and aten::mean added by lwsl_ds) counted; "
              "element-wise ops (sigmoid, mul, add, activations) skipped. conv_linear = conv + linear only.")


@dataclass(frozen=True)
class ArchCost:
    """Cost of one sub-net: fvcore MACs, conv+linear MACs, parameters."""

    flops: int
    conv_linear: int
    params: int

    def get(self, metric: str) -> int:
        """Value of one metric by name (flops, conv_linear, params)."""
        if metric not in METRICS:
            raise ValueError(f"unknown cost metric {metric!r}; choose one of {list(METRICS)}")
        return int(getattr(self, metric))


def space_fingerprint(space: SearchSpace) -> str:
    """Hash of everything that shapes the network (the whole space spec, resolution, classes)."""
    blob = json.dumps(to_dict(space), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$LWSL_DS_CACHE_DIR/flops`` if set, else ``~/.cache/lwsl_ds/flops``."""
    root = os.environ.get("LWSL_DS_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "lwsl_ds") / "flops"


def archs_to_array(space: SearchSpace, archs: Iterable[Arch | str] | np.ndarray) -> np.ndarray:
    """An (N, n_layers) int array of choice indices from archs, keys, or an existing array."""
    if isinstance(archs, np.ndarray):
        arr = archs
    else:
        rows = [a.choices if isinstance(a, Arch) else parse_arch(space, a).choices for a in archs]
        arr = np.array(rows, dtype=np.int64).reshape(len(rows), space.num_layers)
    if arr.ndim != 2 or arr.shape[1] != space.num_layers:
        raise ValueError(f"archs: expected shape (N, {space.num_layers}), got {arr.shape}")
    return arr


class CostTable:
    """Per-(layer, choice) costs of one space at one resolution, plus the fixed stem and head."""

    def __init__(self, space: SearchSpace, fixed: dict[str, dict], layers: list[dict[int, dict]],
                 meta: dict | None = None) -> None:
        self.space = space
        self.fixed = fixed  # {"stem": ModuleCost-dict, "head": ModuleCost-dict}
        self.layers = layers  # layers[i][k] = ModuleCost-dict of choice k of layer i
        self.meta = dict(meta or {})
        n, m = space.num_layers, len(space.choices)
        self.allowed = np.zeros((n, m), dtype=bool)
        self._arrays: dict[str, np.ndarray] = {}
        self._fixed: dict[str, int] = {}
        for metric in METRICS:
            arr = np.zeros((n, m), dtype=np.int64)
            for i, per in enumerate(layers):
                for k, c in per.items():
                    arr[i, k] = int(c[metric])
                    self.allowed[i, k] = True
            self._arrays[metric] = arr
            self._fixed[metric] = sum(int(f[metric]) for f in fixed.values())
        self._rows = np.arange(n)
        for i, layer in enumerate(space.layers):
            if set(np.flatnonzero(self.allowed[i])) != set(layer.choices):
                raise ValueError(f"cost table: layer {i} has costs for choices "
                                 f"{sorted(np.flatnonzero(self.allowed[i]))}, the space allows {list(layer.choices)}")

    # ---- lookups -------------------------------------------------------------------------------
    def array(self, metric: str) -> np.ndarray:
        """The (n_layers, n_choices) table of one metric (0 where a choice is not allowed)."""
        if metric not in METRICS:
            raise ValueError(f"unknown cost metric {metric!r}; choose one of {list(METRICS)}")
        return self._arrays[metric]

    def fixed_cost(self, metric: str) -> int:
        """Stem + head cost of one metric (paid by every sub-net)."""
        self.array(metric)
        return self._fixed[metric]

    def cost(self, arch: Arch | str) -> ArchCost:
        """Cost of one sub-net (validates the arch)."""
        a = parse_arch(self.space, arch)
        idx = (self._rows, np.asarray(a.choices))
        return ArchCost(*(int(self._fixed[m] + self._arrays[m][idx].sum()) for m in METRICS))

    def costs(self, archs: Iterable[Arch | str] | np.ndarray, metric: str = "flops",
              check: bool = True) -> np.ndarray:
        """Vectorised cost of many archs (int64 array); ``check`` rejects choices a layer does not allow."""
        arr = archs_to_array(self.space, archs)
        table = self.array(metric)
        if check and arr.size:
            if arr.min() < 0 or arr.max() >= table.shape[1] or not self.allowed[self._rows, arr].all():
                bad = int(np.flatnonzero(~self._valid_rows(arr))[0])
                raise ValueError(f"arch {''.join(map(str, arr[bad]))} uses a choice its layer does not allow "
                                 f"in space {self.space.name!r}")
        return table[self._rows, arr].sum(axis=1) + self._fixed[metric]

    def _valid_rows(self, arr: np.ndarray) -> np.ndarray:
        ok = (arr >= 0) & (arr < self.allowed.shape[1])
        safe = np.where(ok, arr, 0)
        return (ok & self.allowed[self._rows, safe]).all(axis=1)

    def bounds(self, metric: str) -> tuple[int, int]:
        """Exact (min, max) of a metric over the whole space: per-layer min/max summed (layers are independent)."""
        t = self.array(metric)
        lo = np.where(self.allowed, t, np.iinfo(np.int64).max).min(axis=1).sum()
        hi = np.where(self.allowed, t, np.iinfo(np.int64).min).max(axis=1).sum()
        return int(lo + self._fixed[metric]), int(hi + self._fixed[metric])

    def layer_bounds(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        """Per-layer (min, max) arrays of a metric over the allowed choices."""
        t = self.array(metric)
        return (np.where(self.allowed, t, np.iinfo(np.int64).max).min(axis=1),
                np.where(self.allowed, t, np.iinfo(np.int64).min).max(axis=1))

    # ---- persistence ---------------------------------------------------------------------------
    def to_json(self) -> dict:
        """Plain-data form written to the cache file."""
        return {**self.meta, "fixed": self.fixed,
                "layers": [{"index": i, "input_shape": [1, L.in_channels, L.in_resolution, L.in_resolution],
                            "choices": {self.space.choices[k].name: {"choice": k, **c} for k, c in per.items()}}
                           for i, (L, per) in enumerate(zip(self.space.layers, self.layers))]}

    @classmethod
    def from_json(cls, space: SearchSpace, doc: dict) -> "CostTable":
        """Rebuild a table from :meth:`to_json` output (for the given space)."""
        layers = [{int(c["choice"]): {m: int(c[m]) for m in METRICS} | {"by_operator": c.get("by_operator", {})}
                   for c in L["choices"].values()} for L in doc["layers"]]
        meta = {k: v for k, v in doc.items() if k not in ("fixed", "layers")}
        return cls(space, doc["fixed"], layers, meta)

    def summary(self) -> str:
        """Short text: fixed costs and the exact range of each metric."""
        lines = [f"cost table of space {self.space.name!r} at {self.space.resolution} px "
                 f"({self.space.num_classes} classes)"]
        for m in METRICS:
            lo, hi = self.bounds(m)
            lines.append(f"  {m:>11}: fixed {self._fixed[m]:,}; sub-nets {lo:,} .. {hi:,}")
        return "\n".join(lines)


def _count_space(space: SearchSpace) -> tuple[dict[str, dict], list[dict[int, dict]]]:
    """Trace stem, head and every allowed choice of every layer with fvcore (seconds for 'paper')."""
    from torch import nn

    from ..space.builders import build_choice, build_head, build_stem
    from .counter import count_module

    ch, res = space.stem_out
    last = space.layers[-1]
    head = build_head(space, nn.Linear(space.head.features, space.num_classes))
    fixed = {"stem": count_module(build_stem(space), (1, space.in_channels, space.resolution,
                                                      space.resolution)).to_dict(),
             "head": count_module(head, (1, last.out_channels, last.out_resolution, last.out_resolution)).to_dict()}
    layers = []
    for layer in space.layers:
        shape = (1, layer.in_channels, layer.in_resolution, layer.in_resolution)
        layers.append({k: count_module(build_choice(space, layer, k), shape).to_dict() for k in layer.choices})
    return fixed, layers


def build_cost_table(space: SearchSpace, cache_dir: str | Path | None = None, *, rebuild: bool = False) -> CostTable:
    """The cost table of ``space``, read from ``cache_dir`` (default :func:`default_cache_dir`) or counted.

    The cache file name holds the space name, resolution, classes and a fingerprint of the whole
    space spec, so editing a preset never reads a stale table. Writes are atomic (tmp + rename), so
    several ranks may build the same table concurrently.
    """
    import fvcore
    import torch

    fp = space_fingerprint(space)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{space.name}_r{space.resolution}_c{space.num_classes}_{fp}.json"
    meta = {"format": TABLE_FORMAT, "space": space.name, "resolution": space.resolution,
            "num_classes": space.num_classes, "fingerprint": fp, "convention": CONVENTION,
            "fvcore": getattr(fvcore, "__version__", "?"), "torch": torch.__version__.split("+")[0]}
    if path.is_file() and not rebuild:
        try:
            doc = json.loads(path.read_text())
            if all(doc.get(k) == v for k, v in meta.items() if k != "convention"):
                return CostTable.from_json(space, doc)
        except (ValueError, KeyError, TypeError):
            pass  # unreadable or from another version: count again and overwrite
    fixed, layers = _count_space(space)
    table = CostTable(space, fixed, layers, meta)
    cache.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, table.to_json(), per_process=True)
    return table


def arch_array_from_keys(keys: Sequence[str]) -> np.ndarray:
    """Fast path for digit keys (e.g. a benchmark's 6561 keys) without per-arch validation."""
    return np.frombuffer("".join(keys).encode(), dtype=np.uint8).reshape(len(keys), -1).astype(np.int64) - 48
