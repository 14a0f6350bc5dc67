"""Layer-parallel vs data-parallel vs one rank: images/s of the same layer-wise training on CPU.

Three runs of the same work (super-net, strategy, batch per step, steps), 1 thread per rank:

* ``single``: one rank, the synchronous step (DeepSpeed engine, ZeRO 0; ``--backend reference``: plain torch).
* ``dp2``: two ranks, data parallel (each its own batch, gradients averaged by the engine over gloo).
* ``lp2``: two ranks, layer parallel (``lwsl_ds.parallel``): rank g owns layer group g, boundaries from
  ``layer_groups: auto`` balanced by *measured* time per layer (lwsl_ds.parallel.balance).

Throughput = images of steps [warmup, steps) / time between the completion of step warmup-1 and of the
last step on the slowest (last) rank, so pipeline fill is excluded as start-up is. Memory per rank: the
measured peak RSS (``ru_maxrss``; it includes the full super-net every rank builds before releasing
what it does not own), the RSS at the end, and the accounted bytes (lwsl_ds.memory: model states of the rank's
engine + the activation peak of its layers + its replica and queue buffers).

    python bench/layer_parallel.py                         # nasbench_macro 32 px, batch 32, non_greedy
    python bench/layer_parallel.py --strategy greedy --steps 12 --out runs/bench/lp_greedy.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _batches(space, batch: int, steps: int, rank: int, views: int):
    import torch

    g = torch.Generator().manual_seed(1000 + rank)
    return [(torch.randn(batch * views, 3, space.resolution, space.resolution, generator=g),
             torch.randint(0, space.num_classes, (batch,), generator=g)) for _ in range(steps)]


def worker(a: argparse.Namespace) -> None:
    """One rank of one mode; prints one JSON line."""
    import torch

    torch.set_num_threads(1)
    from lwsl_ds.engines import build_backend
    from lwsl_ds.memory import build_net
    from lwsl_ds.strategies import get_strategy, step_rng

    ds = {"train_micro_batch_size_per_gpu": a.batch, "gradient_clipping": 0.0, "steps_per_print": 10 ** 9,
          "optimizer": {"type": "Adam", "params": {"lr": 0.01, "weight_decay": 4e-5, "adam_w_mode": False}},
          "zero_optimization": {"stage": 0}}
    torch.manual_seed(0)
    net = build_net(a.space, "ce", "cpu", a.res)
    strategy = get_strategy(a.strategy)
    rank = int(os.environ.get("RANK", 0))
    data = _batches(net.space, a.batch, a.steps, rank if a.mode == "dp2" else 0, 1)
    done: list[float] = []
    res: dict = {"mode": a.mode, "rank": rank}
    import torch.distributed as td

    from lwsl_ds.common.dist import init_distributed

    init_distributed(timeout_s=600)  # deepspeed comm over gloo (also for one rank: same engine code path)
    if a.mode in ("single", "dp2"):
        backend = build_backend(a.backend, net, strategy, ds, total_steps=a.steps)
        td.barrier()
        for t, (x, y) in enumerate(data):
            strategy.step(net, x, y, backend, step_rng(0, t))
            done.append(time.time())
    else:
        from lwsl_ds.parallel import ParallelConfig, build_layer_parallel_trainer
        from lwsl_ds.parallel.balance import measured_groups

        groups, secs = measured_groups(net, strategy, *data[0], 2, steps=2)
        tr = build_layer_parallel_trainer(net, strategy, ds, layer_groups=groups, total_steps=a.steps,
                                          parallel=ParallelConfig(mode="layer", queue_depth=a.depth, timeout_s=600),
                                          backend=a.backend)
        td.barrier()
        tr.train(data if tr.topo.is_first else None, on_step=lambda s, o: done.append(time.time()))
        res.update(groups=groups, layer_seconds=secs, input_wait_s=tr.wait_s, replica_wait_s=tr.replica_wait_s)
    with open("/proc/self/statm") as f:  # resident now: after release_unowned, unlike the peak (full net at build)
        rss_end = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    res.update(done=done, maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, rss_end=rss_end)
    print("RESULT " + json.dumps(res), flush=True)


def launch(a: argparse.Namespace, mode: str, world: int) -> list[dict]:
    """Run one mode with ``world`` ranks; returns each rank's result."""
    from lwsl_ds.common.launch_env import free_port

    port = free_port()
    procs = []
    for r in range(world):
        env = dict(os.environ, RANK=str(r), WORLD_SIZE=str(world), LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
        cmd = [sys.executable, __file__, "--worker", "--mode", mode, "--space", a.space, "--res", str(a.res),
               "--batch", str(a.batch), "--steps", str(a.steps), "--strategy", a.strategy, "--depth", str(a.depth),
               "--backend", a.backend]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"{mode} failed:\n" + "\n".join(o[-3000:] for o in outs))
    return [json.loads(next(l for l in o.splitlines() if l.startswith("RESULT "))[7:]) for o in outs]


def accounted(a: argparse.Namespace, groups: list[list[int]]) -> dict:
    """Accounted bytes per rank: single/dp (whole step) and each layer-parallel group."""
    from lwsl_ds.memory import account_step
    from lwsl_ds.memory.step import _read_only_bytes, build_net

    whole = account_step(a.space, a.strategy, a.batch, resolution=a.res)
    split = account_step(a.space, a.strategy, a.batch, resolution=a.res, groups=groups)
    net = build_net(a.space, "ce", "meta", a.res)
    replica = _read_only_bytes(net, groups, "fp32") if a.strategy == "non_greedy" else [0] * len(groups)
    per = []
    for g, layers in enumerate(groups):
        phases = [p.peak_bytes for p in split.profile.phases if max(p.layer, 0) in layers]
        last = net.space.layers[layers[-1]]
        msg = a.batch * last.out_channels * last.out_resolution ** 2 * 4 if g < len(groups) - 1 else 0
        prev = net.space.layers[groups[g - 1][-1]] if g else None
        inp = (a.batch * prev.out_channels * prev.out_resolution ** 2 * 4) if prev else split.batch_bytes
        per.append(split.engines[g].total + max(phases) + replica[g] + inp + 2 * a.depth * msg)
    return {"single_bytes": whole.device_peak, "layer_parallel_bytes": per}


def rate(results: list[dict], batch: int, warmup: int, world_images: int) -> float:
    """Images/s between step warmup-1 and the last step, on the rank finishing last."""
    last = max(results, key=lambda r: r["done"][-1])
    d = last["done"]
    return world_images * batch * (len(d) - warmup) / (d[-1] - d[warmup - 1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="nasbench_macro")
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--strategy", default="non_greedy", choices=["greedy", "non_greedy"])
    p.add_argument("--depth", type=int, default=2, help="layer-parallel queue depth")
    p.add_argument("--backend", default="deepspeed", choices=["deepspeed", "reference"],
                   help="update backend of every mode (deepspeed: ZeRO 0 engines, the toolkit's default)")
    p.add_argument("--modes", default="single,dp2,lp2")
    p.add_argument("--out", default=None, help="write the JSON summary here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="single", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        worker(a)
        return
    load0 = os.getloadavg()
    summary: dict = {"args": {k: v for k, v in vars(a).items() if k not in ("worker", "mode")},
                     "load_before": load0, "cores": os.cpu_count()}
    for mode in a.modes.split(","):
        world = 1 if mode == "single" else 2
        t0 = time.time()
        res = launch(a, mode, world)
        ips = rate(res, a.batch, a.warmup, 2 if mode == "dp2" else 1)
        summary[mode] = {"images_per_s": ips, "maxrss_bytes": [r["maxrss"] for r in res],
                         "rss_end_bytes": [r["rss_end"] for r in res],
                         "wall_s": time.time() - t0,
                         **{k: [r.get(k) for r in res] for k in ("input_wait_s", "replica_wait_s") if mode == "lp2"}}
        if mode == "lp2":
            summary[mode]["groups"] = res[0]["groups"]
            summary[mode]["layer_seconds"] = res[0]["layer_seconds"]
            summary["accounted"] = accounted(a, res[0]["groups"])
        print(f"{mode:>6}: {ips:7.1f} images/s  peak RSS {[round(r['maxrss'] / 2**20) for r in res]} MiB, "
              f"RSS at end {[round(r['rss_end'] / 2**20) for r in res]} MiB", flush=True)
    summary["load_after"] = os.getloadavg()
    if "single" in summary:
        for m in ("dp2", "lp2"):
            if m in summary:
                summary[m]["speedup_vs_single"] = summary[m]["images_per_s"] / summary["single"]["images_per_s"]
                print(f"{m} / single = {summary[m]['speedup_vs_single']:.2f}x")
    print(f"load average before {load0}, after {summary['load_after']}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
