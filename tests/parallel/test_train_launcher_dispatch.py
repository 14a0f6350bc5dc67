"""`launchers/train.py ... train.parallel.mode=layer` runs the layer-parallel trainer (2 CPU ranks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


def _train_layer_mode(tmp_path: Path, ds_config: Path, name: str, steps: int, *extra: str,
                      expect: int = 0) -> Path | str:
    """``launchers/train.py`` with greedy layer-parallel training on 2 CPU ranks; returns the run directory
    (or, when ``expect`` is not 0, the stderr of the failed run)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(REPO / "launchers/train.py"), "--ds_config", str(ds_config),
           "--config", str(REPO / "configs/train_demo.yaml"), "train.strategy=greedy", "train.parallel.mode=layer",
           f"train.max_steps={steps}", "train.layer_groups=auto", f"run_root={tmp_path}", f"name={name}",
           "train.progress=false", *extra]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if expect:
        assert out.returncode != 0, out.stderr[-3000:]
        return out.stderr
    assert out.returncode == 0, out.stderr[-3000:]
    return tmp_path / name / "supernet"


@pytest.mark.multirank
def test_train_launcher_dispatches_layer_mode(tmp_path):
    run = _train_layer_mode(tmp_path, REPO / "ds_configs/train_cpu.json", "lp", steps=3)
    assert (run / "metrics_rank0.jsonl").is_file() and (run / "metrics_rank1.jsonl").is_file()
    state = torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)
    assert any(k.startswith("head.") for k in state) and any(k.startswith("stem.") for k in state)
    # DeepSpeed's csv monitor writes into the run directory, not into the cwd (its default)
    assert list((run / "monitor").glob("lp_group0/*.csv")), sorted(p.name for p in run.rglob("*"))
    # a resume that would continue another experiment is refused, naming the key and both values
    err = _train_layer_mode(tmp_path, REPO / "ds_configs/train_cpu.json", "lp", 3, "train.objective=infonce",
                            "--resume", expect=2)
    assert "--resume refused" in err and "train.objective: 'ce' in the checkpoint, 'infonce' now" in err, err[-3000:]


@pytest.mark.multirank
def test_layer_mode_bf16_groups_take_fp32_images(tmp_path):
    # The first group gets fp32 images and the second fp32 layer inputs; a bf16 group casts them (GroupModule).
    ds = json.loads((REPO / "ds_configs/train_cpu.json").read_text())
    ds["bf16"] = {"enabled": True}
    (tmp_path / "bf16.json").write_text(json.dumps(ds))
    run = _train_layer_mode(tmp_path, tmp_path / "bf16.json", "lp16", steps=2)
    state = torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(v.float()).all() for v in state.values() if v.is_floating_point())
