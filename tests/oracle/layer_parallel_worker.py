"""One rank of the layer-parallel oracle test (tests/oracle/test_oracle_layer_parallel.py), float64.

Usage (RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT set, 2 ranks): python -m tests.oracle.layer_parallel_worker OUT
JOB [JOB ...], a JOB being ``<strategy>:<backend>``. Each job trains a fresh float64 tiny super-net for
STEPS steps with the layer groups [[0, 1], [2, 3]], replica lag 0 and refresh every step, and writes
OUT/<strategy>_<backend>/rank<r>.pt: the state dicts (parameters and buffers) of the units this rank owns.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import torch

STEPS = 2
GROUPS = [[0, 1], [2, 3]]


def run_job(out: Path, strategy: str, backend: str) -> None:
    """Train one job on this rank and write its owned units."""
    from lwsl_ds.parallel import ParallelConfig, build_layer_parallel_trainer
    from lwsl_ds.strategies import get_strategy
    from tests.engines.harness import batches, ds_config, tiny_net

    cfg = ParallelConfig(mode="layer", data_parallel=1, replica_lag=0, replica_refresh_every=1, timeout_s=120)
    trainer = build_layer_parallel_trainer(tiny_net().double(), get_strategy(strategy), ds_config(0),
                                           layer_groups=GROUPS, parallel=cfg, seed=0, total_steps=10, backend=backend)
    data = [(x.double(), y) for x, y in batches(STEPS)] if trainer.topo.is_first else None
    trainer.train(data)
    g = trainer.topo.group
    units = {u.name: {k: v.clone() for k, v in u.module.state_dict().items()} for u in trainer.plan.units[g]}
    d = out / f"{strategy}_{backend}"
    d.mkdir(parents=True, exist_ok=True)
    torch.save(units, d / f"rank{trainer.topo.rank}.pt")


def main() -> int:
    """Run every job of the command line in one process group."""
    import torch.distributed as td

    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    td.init_process_group("gloo", timeout=timedelta(seconds=180))
    for job in sys.argv[2:]:
        strategy, backend = job.split(":")
        run_job(out, strategy, backend)
    td.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
