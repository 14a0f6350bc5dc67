"""launchers/train_layer_parallel.py end to end: 2 ranks (torchrun), the demo config, measured layer groups."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "launchers" / "train_layer_parallel.py"


def test_bad_parallel_setting_fails_before_launch(tmp_path: Path):
    out = subprocess.run([sys.executable, str(LAUNCHER), "--ds_config", "ds_configs/train_cpu.json", "--config",
                          "configs/train_demo.yaml", "--parallel", "queue_depth=0"], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "queue_depth" in out.stderr and "0" in out.stderr


def test_two_rank_run_writes_supernet_metrics_and_checkpoints(tmp_path: Path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(LAUNCHER),
           "--ds_config", "ds_configs/train_cpu.json", "--config", "configs/train_demo.yaml",
           f"run_root={tmp_path}", "train.layer_groups=auto", "train.strategy=non_greedy", "train.max_steps=4",
           "train.checkpoint_every=2", "train.log_every=1", "train.keep_checkpoints=1"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "train_demo" / "supernet"
    groups = json.loads((run / "layer_groups.json").read_text())
    assert len(groups["groups"]) == 2 and len(groups["layer_seconds"]) == 4
    assert sorted(i for g in groups["groups"] for i in g) == [0, 1, 2, 3]
    # each rank logs only its own layers
    r0 = [json.loads(line) for line in (run / "metrics_rank0.jsonl").read_text().splitlines()]
    r1 = [json.loads(line) for line in (run / "metrics_rank1.jsonl").read_text().splitlines()]
    assert [m["step"] for m in r0] == [1, 2, 3, 4] and "loss/stem" in r0[0] and "loss/stem" not in r1[0]
    assert "loss/layer3" in r1[0]
    # keep_checkpoints=1: only the newest tag survives, complete for both ranks
    tags = sorted(p.name for p in (run / "checkpoints_layer_parallel").iterdir())
    assert tags == ["step4"]
    assert {p.name for p in (run / "checkpoints_layer_parallel" / "step4").iterdir()} == {
        "rank0.pt", "rank0.done", "rank1.pt", "rank1.done"}
    # the assembled super-net has every group's trained weights
    from lwsl_ds.objectives import get_objective
    from lwsl_ds.space import SuperNet, load_space

    space = load_space("demo", 32)
    torch.manual_seed(0)  # the run's seed (seed 0, train.seed 0): the initial weights every rank built
    net = SuperNet(space, get_objective("ce", space.num_classes, proj_dim=128))
    fresh = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(torch.load(run / "supernet.pt", weights_only=True))
    moved = [k for k, v in net.state_dict().items() if v.is_floating_point() and not torch.equal(v, fresh[k])]
    assert any(k.startswith("stem.") for k in moved) and any(k.startswith("head.") for k in moved)
    assert not any(k.startswith("stem_decoder.") for k in moved)  # non-greedy never uses the stem's decoder


def test_data_resolution_other_than_the_space_s(tmp_path: Path):
    """Images at 40 px through a space declared at 32 px: the messages between groups carry 40-px feature maps."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(LAUNCHER),
           "--ds_config", "ds_configs/train_cpu.json", "--config", "configs/train_demo.yaml",
           f"run_root={tmp_path}", "train.layer_groups=auto", "train.strategy=greedy", "train.max_steps=2",
           "data.resolution=40"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "train_demo" / "supernet" / "supernet.pt").is_file()
