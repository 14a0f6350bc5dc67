"""One rank of a layer-parallel test run (started by tests/parallel/*.py with RANK/WORLD_SIZE/MASTER_* set).

Usage: python -m tests.parallel.worker OUT_DIR STRATEGY STEPS [--lag L] [--every K] [--dp D]
       [--ckpt-every N] [--resume] [--max-steps N] [--sleep-after S] [--timeout T]
Writes OUT_DIR/rank<r>.pt: the owned units' state dicts, the per-step metrics and the replica wait time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta

import torch


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("strategy")
    p.add_argument("steps", type=int)
    p.add_argument("--lag", type=int, default=1)
    p.add_argument("--every", type=int, default=1)
    p.add_argument("--dp", type=int, default=1)
    p.add_argument("--groups", default="0,1|2,3")
    p.add_argument("--ckpt-every", type=int, default=0)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--sleep-after", type=float, default=0.0, help="sleep this long per step (kill tests)")
    p.add_argument("--timeout", type=float, default=60.0)
    a = p.parse_args()
    torch.set_num_threads(1)
    import torch.distributed as td

    from lwsl_ds.parallel import LayerParallelTrainer, ParallelConfig
    from lwsl_ds.strategies import get_strategy
    from tests.engines.harness import batches, ds_config, tiny_net

    td.init_process_group("gloo", timeout=timedelta(seconds=a.timeout))
    rank = td.get_rank()
    groups = [[int(i) for i in g.split(",")] for g in a.groups.split("|")]
    net = tiny_net()
    cfg = ParallelConfig(mode="layer", data_parallel=a.dp, replica_lag=a.lag, replica_refresh_every=a.every,
                         timeout_s=a.timeout)
    trainer = LayerParallelTrainer(net, get_strategy(a.strategy), ds_config(0), layer_groups=groups, parallel=cfg,
                                   seed=0, total_steps=10)
    ckpt = os.path.join(a.out, "ckpt")
    start = trainer.load(ckpt) if a.resume else 0
    data = batches(a.steps, rank=trainer.topo.data_rank)[start:] if trainer.topo.is_first else None
    hook = (lambda s, o: time.sleep(a.sleep_after)) if a.sleep_after else None
    outs = trainer.train(data, start_step=start, max_steps=a.max_steps, checkpoint_every=a.ckpt_every,
                         ckpt_dir=ckpt, on_step=hook)
    g = trainer.topo.group
    state = {"units": {u.name: {k: v.clone() for k, v in u.module.state_dict().items()}
                       for u in trainer.plan.units[g]},
             "losses": [{k: float(v) for k, v in o.items()} for o in outs], "start": start,
             "replica_wait_s": trainer.replica_wait_s, "input_wait_s": trainer.wait_s}
    torch.save(state, os.path.join(a.out, f"rank{rank}.pt"))
    td.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
