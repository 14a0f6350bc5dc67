"""Both memory levers through launchers/train.py: train.micro_batches=auto and train.offload_inactive.

The launcher's net has batch norm, so micro-batched vs unbalanced equality is checked on a BN-free net in
tests/engines/test_micro_batches.py; here: the auto plan is built from the accounting for the run's space,
resolution and batch, logged, splits a layer, and training runs with it; offload through the launcher
gives the same final weights (supernet.pt) as the same run without it, bit for bit.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]


def _train(tmp_path: Path, name: str, *extra: str) -> Path:
    ds = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    ds["train_micro_batch_size_per_gpu"] = 8
    ds.pop("csv_monitor", None)
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    cmd = [sys.executable, str(REPO / "launchers" / "train.py"), "--ds_config", str(tmp_path / "ds.json"),
           "--config", str(REPO / "configs" / "demo.yaml"), f"run_root={tmp_path}", f"name={name}",
           "space.resolution=16", "data.resolution=16", "data.max_per_class=4", "train.epochs=1",
           "train.max_steps=3", "train.log_every=1", "train.checkpoint_every=1000", "train.threads=1",
           "train.strategy=non_greedy",
           "train.layer_groups=[[0,1],[2,3]]", "train.micro_batches=auto", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LWSL_FAULT"):
        env.pop(k, None)
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return tmp_path / name / "supernet"


def test_launcher_auto_micro_batches_and_offload(tmp_path: Path) -> None:
    plain = _train(tmp_path, "plain")
    log = (plain / "train.log").read_text()
    m = re.search(r"micro-batches per layer \(auto, budget [\d.]+ MiB.*\): (.*)", log)
    assert m, log[-2000:]
    plan = {k: int(v) for k, v in (x.split(":") for x in m.group(1).split())}
    assert set(plan) == {"stem", "L0", "L1", "L2", "L3"} and max(plan.values()) > 1, plan
    assert "backward calls/step, micro-batches" in log  # the group lines name their split layers
    steps = [json.loads(x)["step"] for x in (plain / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 3

    off = _train(tmp_path, "offload", "train.offload_inactive=true")
    assert "model states in host memory when inactive" in (off / "train.log").read_text()
    a = torch.load(plain / "supernet.pt", weights_only=True)
    b = torch.load(off / "supernet.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_launcher_activation_checkpointing(tmp_path: Path) -> None:
    """train.activation_checkpointing=[1] (with the auto micro-batches of _train) is accepted, logged for group 1
    only, and gives the same final weights and BN buffers as the run without it."""
    plain = _train(tmp_path, "plain")
    ck = _train(tmp_path, "ckpt", "train.activation_checkpointing=[1]")
    lines = [x for x in (ck / "train.log").read_text().splitlines() if x.lstrip().startswith("group ")]
    assert [("choices under activation checkpointing" in x) for x in lines] == [False, True], lines
    a = torch.load(plain / "supernet.pt", weights_only=True)
    b = torch.load(ck / "supernet.pt", weights_only=True)
    assert a.keys() == b.keys()
    assert max(float((a[k].double() - b[k].double()).abs().max()) for k in a) <= 1e-6
