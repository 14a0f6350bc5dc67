"""`launchers/train.py ... train.parallel.mode=layer` runs the layer-parallel trainer (2 CPU ranks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.multirank
def test_train_launcher_dispatches_layer_mode(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "launchers/train.py"), "--ds_config", str(REPO / "ds_configs/train_cpu.json"),
           "--config", str(REPO / "configs/train_demo.yaml"), "train.strategy=greedy", "train.parallel.mode=layer",
           "train.max_steps=3", "train.layer_groups=auto", f"run_root={tmp_path}", "name=lp", "train.progress=false"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp_path / "lp"
    assert (run / "metrics_rank0.jsonl").is_file() and (run / "metrics_rank1.jsonl").is_file()
    state = torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("head.") for k in state) and any(k.startswith("stem.") for k in state)
