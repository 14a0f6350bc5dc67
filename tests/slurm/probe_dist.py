"""A tiny rank probe run under Slurm by the tests: init, one all-reduce, a JSON line per rank.

PROBE_HANG_RANK=<r>: rank r never reaches the collective (a hung rank); the others must fail
within PROBE_TIMEOUT_S instead of waiting forever.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from lwsl_ds.common import dist

env = dist.init_distributed(timeout_s=float(os.environ.get("PROBE_TIMEOUT_S", "60")))
import torch  # noqa: E402  (after init: the import cost is the same, the order documents intent)
import torch.distributed as td  # noqa: E402

hang = os.environ.get("PROBE_HANG_RANK")
if hang is not None and int(hang) == env.rank:
    time.sleep(3600)
t = torch.tensor([float(env.rank)])
start = time.monotonic()
try:
    td.all_reduce(t)
except Exception as e:  # noqa: BLE001 - report what the peers saw, then fail the task
    print(json.dumps({"rank": env.rank, "error": type(e).__name__, "after_s": time.monotonic() - start}), flush=True)
    sys.exit(3)
print(json.dumps({"rank": env.rank, "world": env.world_size, "local": env.local_rank, "node": env.node_rank,
                  "style": env.style, "sum": t.item(), "host": os.environ.get("SLURMD_NODENAME", socket.gethostname()),
                  "master": f"{env.master_addr}:{env.master_port}"}), flush=True)
dist.shutdown()
