"""Model states of real DeepSpeed engines (CPU) vs the accounting, for 1 and 2 layer groups and ZeRO 0/1/2.

Each configuration runs in a fresh process: build the paper super-net on CPU, one DeepSpeedBackend (one
engine per layer group, Adam via torch, reduce_bucket_size 2e7), one greedy step at 32 px, batch 2 (so
activations are negligible and freed), then measure

* ``tensors``: bytes of every distinct tensor storage reachable from Python (``gc.get_objects()`` plus each
  parameter's ``.grad``), i.e. parameters, gradients, fp32 master copies, optimizer state, ZeRO buckets;
* ``rss``: growth of the resident set from before the engines were built (glibc mmap threshold fixed, so
  freed memory goes back to the OS),

next to :func:`lwsl_ds.memory.states.engine_states` summed over the groups. The activation side of the
same configurations is accounted by ``profiling/memory_report.py``.

Command (about 5 minutes on 2 cores; results in docs/memory.md)::

    python bench/memory_groups.py --out runs/memory/groups.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

WORKER = r"""
import gc, json, os, random, sys
import torch
torch.set_num_threads(1)
import deepspeed  # imported before the first RSS reading
from lwsl_ds.engines import build_backend
from lwsl_ds.memory.step import build_net, group_states
from lwsl_ds.strategies import get_strategy

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def tensor_bytes(net):
    seen = {}
    objs = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    objs += [p.grad for p in net.parameters() if p.grad is not None]
    for t in objs:
        try:
            st = t.untyped_storage()
        except Exception:
            continue
        if st.device.type == "cpu" and st.nbytes() > 0:
            seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())

groups, zero, bucket = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
net = build_net("paper", "ce", "cpu", 32)
strategy = get_strategy("greedy")
x = torch.randn(2, 3, 32, 32); y = torch.randint(0, 1000, (2,))
gc.collect()
base_t, base_rss = tensor_bytes(net), rss()
params = sum(p.numel() * p.element_size() for p in net.parameters())
cfg = {"train_micro_batch_size_per_gpu": 2, "gradient_clipping": 0.0, "steps_per_print": 10**9,
       "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "torch_adam": True, "adam_w_mode": False}},
       "zero_optimization": {"stage": zero, "reduce_bucket_size": bucket, "allgather_bucket_size": bucket,
                             "overlap_comm": False, "contiguous_gradients": True}}
from lwsl_ds.memory import StepTracker
tracker = StepTracker()  # no module given: gradients count too; every storage born or adopted is followed
tracker.adopt(list(net.parameters()))
with tracker:
    backend = build_backend("deepspeed", net, strategy, cfg, layer_groups=groups, job_name=f"bench_z{zero}")
    strategy.step(net, x, y, backend, random.Random(0))
    gc.collect()
peak = tracker.profile().peak_bytes
measured = tensor_bytes(net) - base_t + params  # the net's own parameters existed before: count them once
acc = group_states(net, strategy, backend.groups, zero_stage=zero, reduce_bucket_size=bucket)
print("RESULT " + json.dumps({"groups": backend.groups, "zero": zero, "num_params": params // 4,
      "traced_peak_bytes": peak,
      "measured_tensor_bytes": measured, "rss_growth_bytes": rss() - base_rss + params,
      "accounted_bytes": sum(e.total for e in acc), "accounted": [e.to_dict() for e in acc]}))
"""


def run_one(groups, zero: int, bucket: int, port: int) -> dict:
    """One configuration in a fresh single-rank process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
           "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", WORKER, json.dumps(groups), str(zero), str(bucket)], env=env,
                         capture_output=True, text=True, timeout=1200, cwd=REPO)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"groups={groups} zero={zero} failed:\n{out.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    """Run every configuration, print a markdown table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/memory/groups.json")
    ap.add_argument("--bucket", type=int, default=20_000_000, help="reduce/allgather bucket elements per engine")
    ap.add_argument("--zero", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    configs = [("single", "1 group"), ([list(range(0, 8)), list(range(8, 15))], "2 groups")]
    rows, port = [], 29600
    print("| layer groups | ZeRO | traced peak MiB | tensors after step MiB | RSS growth MiB | accounted MiB | "
          "accounted/traced |")
    print("|---|---|---|---|---|---|---|")
    for groups, label in configs:
        for z in args.zero:
            port += 1
            r = run_one(groups, z, args.bucket, port)
            r["label"] = label
            rows.append(r)
            m, a, t = r["measured_tensor_bytes"], r["accounted_bytes"], r["traced_peak_bytes"]
            print(f"| {label} | {z} | {t / 2**20:.1f} | {m / 2**20:.1f} | {r['rss_growth_bytes'] / 2**20:.1f} | "
                  f"{a / 2**20:.1f} | {a / t:.3f} |", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
