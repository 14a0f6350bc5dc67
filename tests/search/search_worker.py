"""Helper process for the search tests (not a test module): a small synthetic-score search.

    python tests/search/search_worker.py OUT_DIR CACHE_DIR [KILL_AT] [GENERATIONS]

Runs evolution on NAS-Bench-Macro with score = -Hamming distance to a target arch. With KILL_AT > 0 the
process SIGKILLs itself while scoring evaluation number KILL_AT (no clean-up, like a node failure).
When started under torch.distributed (RANK/WORLD_SIZE/MASTER_* set), it joins a gloo group first and
writes which archs this rank scored to OUT_DIR/scored_rank<r>.json.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TARGET = (2, 1, 2, 2, 0, 1, 2, 1)
CONFIG = dict(seed=3, population=20, generations=6, parents=5, mutations=10, crossovers=8, max_macs=80e6)


def synthetic_score(arch) -> float:
    """Known optimum: TARGET (score 0)."""
    return -float(sum(a != b for a, b in zip(arch, TARGET)))


def main() -> None:
    out, cache = Path(sys.argv[1]), Path(sys.argv[2])
    kill_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    generations = int(sys.argv[4]) if len(sys.argv) > 4 else CONFIG["generations"]
    import torch
    import torch.distributed as td

    torch.set_num_threads(1)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        td.init_process_group("gloo")
    from lwsl_ds.config.sections.search import SearchConfig
    from lwsl_ds.flops import build_cost_table
    from lwsl_ds.search import Search
    from lwsl_ds.space import load_space

    space = load_space("nasbench_macro")
    table = build_cost_table(space, cache)
    calls = []

    def score(arch):
        calls.append(arch.key)
        if len(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return synthetic_score(arch)

    result = Search(space, table, SearchConfig(**{**CONFIG, "generations": generations}), out_dir=out).run(score)
    rank = td.get_rank() if td.is_initialized() else 0
    (out / f"scored_rank{rank}.json").write_text(json.dumps(calls))
    if rank == 0:
        (out / "result.json").write_text(json.dumps({"best": result.best, "history": result.history}))
    if td.is_initialized():
        td.destroy_process_group()


if __name__ == "__main__":
    main()
