"""The FLOPs baseline of a search: the largest arch under the limits, what a user picks without a super-net.

Shown beside the search's best arch (launcher's final line, ``baseline.json``, the report) so a user sees
whether the super-net changed the pick. Exact for spaces of up to 2M archs (enumerated, vectorised cost
lookup: 6561 NAS-Bench-Macro archs take milliseconds); in larger spaces it is the largest *evaluated*
candidate that meets the limits, and says so.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Optional

import numpy as np

from ..flops.table import CostTable
from .constraints import _ENUMERATE_LIMIT, Constraints

__all__ = ["largest_under", "baseline_record", "describe_baseline", "BASELINE_FILE"]

BASELINE_FILE = "baseline.json"


def largest_under(table: CostTable, constraints: Constraints, history: Iterable[dict] = ()) -> Optional[dict]:
    """``{"arch", "flops", "exact"}`` of the largest arch (by ``constraints.metric``) meeting the limits.

    Ties in cost go to the smallest key (deterministic). None when nothing is known to meet the limits.
    """
    space, metric = table.space, constraints.metric
    if space.num_archs() <= _ENUMERATE_LIMIT:
        arr = np.array(list(itertools.product(*(layer.choices for layer in space.layers))), dtype=np.int64)
        ok = constraints.mask(table, arr)
        if not ok.any():
            return None
        cost = table.costs(arr, metric, check=False)
        cost = np.where(ok, cost, -1)
        i = int(np.flatnonzero(cost == cost.max())[0])  # product order = key order: first = smallest key
        return {"arch": "".join(map(str, arr[i])), "flops": int(cost[i]), "exact": True}
    keys = sorted({h["arch"] for h in history if constraints.ok(table, h["arch"])})
    if not keys:
        return None
    costs = table.costs(keys, metric)
    i = int(np.argmax(costs))
    return {"arch": keys[i], "flops": int(costs[i]), "exact": False}


def baseline_record(table: CostTable, constraints: Constraints, history: list[dict], score) -> Optional[dict]:
    """The FLOPs baseline with its super-net score (from the search's history when evaluated, else ``score``)."""
    base = largest_under(table, constraints, history)
    if base is None:
        return None
    seen = {h["arch"]: h["score"] for h in history}
    base["score"] = float(seen[base["arch"]]) if base["arch"] in seen else float(score(base["arch"]))
    base["evaluated_by_search"] = base["arch"] in seen
    return base


def describe_baseline(base: Optional[dict], best: dict, metric: str) -> str:
    """One line for the search's end: the largest arch under the limits, its score, and whether the pick differs."""
    if base is None:
        return "largest arch under the limits: none known"
    which = "largest arch under the limits" if base["exact"] else "largest evaluated arch under the limits"
    same = " (the same arch: the super-net did not change the pick)" if base["arch"] == best["arch"] else ""
    unit = {"flops": "MACs", "conv_linear": "conv+linear MACs"}.get(metric, metric)  # both counts are MACs
    return (f"{which}: {base['arch']} {base['flops'] / 1e6:.2f}M {unit}, super-net score "
            f"{base['score']:.4f} (best {best['arch']}: {best['score']:.4f}){same}")
