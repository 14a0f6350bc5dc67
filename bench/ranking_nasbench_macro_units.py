"""One markdown row per finished unit (strategy x seed) of the NAS-Bench-Macro ranking benchmark and estimator:
band tau with its interval and search regret at the three limits, read from the committed ``unit.json`` files.

``results.md`` beside them gives the mean ± std over seeds; this table shows every seed, so a reader sees the
spread behind it.

    .venv/bin/python bench/ranking_nasbench_macro_units.py [--budget cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("non_greedy", "spos", "greedy")  # the order of the benchmark's other tables


def rows(unit: str, doc: dict) -> list[str]:
    """The unit's markdown rows, one per estimator (top1 first)."""
    out = []
    ests = doc["budget"]["estimators"]
    for est in sorted(ests, key=lambda e: (e != "top1", e)):
        e = ests[est]
        bt = e["band_tau"]["supernet"]["kendall_tau"]
        reg = e["regret"]
        lims = sorted(reg)  # p25, p50, p75
        def at_limits(value) -> str:  # "a / b / c" over the limits, 2 decimals
            return " / ".join(f"{value(reg[lim]):.2f}" for lim in lims)

        search, table = at_limits(lambda r: r["search"]["regret"]), at_limits(lambda r: r["table"]["regret"])
        rand, flops = at_limits(lambda r: r["random_search"]["mean"]), at_limits(lambda r: r["flops_baseline"]["regret"])
        out.append(f"| {unit} | {est} | {bt['value']:.3f} [{bt['lo']:.3f}, {bt['hi']:.3f}] | {search} | {table} | "
                   f"{rand} | {flops} |")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the table of every finished unit of one budget."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", default="cpu")
    args = p.parse_args(argv)
    root = REPO / "docs" / "bench" / "ranking_nasbench_macro" / args.budget
    def order(f: Path) -> tuple:
        name = f.parent.name
        strategy = next((s for s in STRATEGIES if name == s or name.startswith(s + "_s")), name)
        return (STRATEGIES.index(strategy) if strategy in STRATEGIES else len(STRATEGIES), name)

    units = sorted(root.glob("*/unit.json"), key=order)
    done = [(f.parent.name, json.loads(f.read_text())) for f in units]
    done = [(u, d) for u, d in done if "budget" in d]  # a unit without its score tables is not finished
    if not done:
        print(f"error: no finished unit under {root}", file=sys.stderr)
        return 2
    lims = " / ".join(sorted(next(iter(done[0][1]["budget"]["estimators"].values()))["regret"]))
    print(f"| unit | estimator | band tau [95% CI] | search regret {lims} | table | random (mean) | FLOPs baseline |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for unit, doc in done:
        print("\n".join(rows(unit, doc)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
