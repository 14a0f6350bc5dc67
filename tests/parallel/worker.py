"""One rank of layer-parallel test runs (started by tests/parallel/launch.py with RANK/WORLD_SIZE/MASTER_* set).

Usage: python -m tests.parallel.worker OUT_DIR JOB [JOB ...]
A JOB is ``name=<dir>,strategy=<s>,steps=<n>[,lag=L][,every=K][,dp=D][,ckpt_every=N][,max_steps=N]
[,resume=<ckpt job dir>][,sleep=S][,timeout=T]``. Jobs run one after another in one process group (start-up
is the expensive part on a loaded 2-core machine), each with a freshly built super-net. Each writes
OUT_DIR/<name>/rank<r>.pt: the owned units' state dicts, per-step metrics, wait times. ``started<r>`` is
touched in OUT_DIR after the first step (kill tests wait for it).
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from pathlib import Path

import torch

DEFAULTS = {"strategy": "greedy", "steps": "6", "lag": "1", "every": "1", "dp": "1", "groups": "0.1-2.3",
            "ckpt_every": "0", "max_steps": "", "resume": "", "sleep": "0", "timeout": "60", "backend": "reference", "zero": "0", "mode": "layer"}


def parse_job(text: str) -> dict[str, str]:
    """``k=v,k=v`` with the defaults above; unknown keys are an error."""
    job = dict(DEFAULTS)
    for kv in text.split(","):
        k, _, v = kv.partition("=")
        if k not in DEFAULTS and k != "name":
            raise SystemExit(f"worker: unknown job key {k!r}")
        job[k] = v
    if "name" not in job:
        raise SystemExit(f"worker: job {text!r} has no name")
    return job


def run_sync(out: Path, job: dict[str, str]) -> None:
    """mode=sync: the synchronous data-parallel oracle (reference backend, every rank every layer)."""
    import torch.distributed as td

    from lwsl_ds.engines import ReferenceBackend
    from lwsl_ds.strategies import get_strategy, step_rng
    from tests.engines.harness import batches, ds_config, tiny_net

    net, strat, rank = tiny_net(), get_strategy(job["strategy"]), td.get_rank()
    groups = [[int(i) for i in g.split(".")] for g in job["groups"].split("-")]
    backend = ReferenceBackend(net, strat, ds_config(0), layer_groups=groups, total_steps=10)
    for t, (x, y) in enumerate(batches(int(job["steps"]), rank=rank)):
        strat.step(net, x, y, backend, step_rng(0, t))
    d = out / job["name"]
    d.mkdir(parents=True, exist_ok=True)
    torch.save({"net": net.state_dict()}, d / f"rank{rank}.pt")


def run_job(out: Path, job: dict[str, str]) -> None:
    """Train one job on this rank and write its result file."""
    if job["mode"] == "sync":
        return run_sync(out, job)
    from lwsl_ds.parallel import ParallelConfig, build_layer_parallel_trainer
    from lwsl_ds.strategies import get_strategy
    from tests.engines.harness import batches, ds_config, tiny_net

    groups = [[int(i) for i in g.split(".")] for g in job["groups"].split("-")]
    cfg = ParallelConfig(mode="layer", data_parallel=int(job["dp"]), replica_lag=int(job["lag"]),
                         replica_refresh_every=int(job["every"]), timeout_s=float(job["timeout"]))
    trainer = build_layer_parallel_trainer(tiny_net(), get_strategy(job["strategy"]), ds_config(int(job["zero"])),
                                           layer_groups=groups, parallel=cfg, seed=0, total_steps=10,
                                           backend=job["backend"])
    rank = trainer.topo.rank
    start = trainer.load(out / job["resume"] / "ckpt") if job["resume"] else 0
    steps = int(job["steps"])
    data = batches(steps, rank=trainer.topo.data_rank)[start:] if trainer.topo.is_first else None
    sleep = float(job["sleep"])

    def on_step(step: int, _out) -> None:
        if step == start:
            (out / f"started{rank}").touch()
        if sleep:
            time.sleep(sleep)

    d = out / job["name"]
    outs = trainer.train(data, start_step=start, max_steps=int(job["max_steps"]) if job["max_steps"] else None,
                         checkpoint_every=int(job["ckpt_every"]), ckpt_dir=d / "ckpt", on_step=on_step)
    g = trainer.topo.group
    state = {"units": {u.name: {k: v.clone() for k, v in u.module.state_dict().items()}
                       for u in trainer.plan.units[g]},
             "losses": [{k: float(v) for k, v in o.items()} for o in outs], "start": start,
             "replica_wait_s": trainer.replica_wait_s, "input_wait_s": trainer.wait_s}
    d.mkdir(parents=True, exist_ok=True)
    torch.save(state, d / f"rank{rank}.pt")


def main() -> int:
    out, jobs = Path(sys.argv[1]), [parse_job(a) for a in sys.argv[2:]]
    torch.set_num_threads(1)
    import torch.distributed as td

    timeout = max(float(j["timeout"]) for j in jobs)
    td.init_process_group("gloo", timeout=timedelta(seconds=timeout))
    for job in jobs:
        run_job(out, job)
    td.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
