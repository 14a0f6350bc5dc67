"""Super-net training (launchers/train.py) as a 2-node x 2-rank Slurm job (one task per rank, gloo)."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from .cluster import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.multirank, pytest.mark.slow]


def test_supernet_training_job_on_two_nodes(slurm_cluster, tmp_path):
    if not (REPO / "launchers" / "train.py").is_file():
        pytest.skip("launchers/train.py is not in this checkout")
    out = tmp_path / "train.out"
    job = slurm_cluster.sbatch(
        "--nodes=2", "--ntasks-per-node=2", f"--output={out}", "launchers/slurm/train.sbatch",
        "--ds_config", "ds_configs/train_cpu.json", "--config", "configs/train_demo.yaml",
        f"run_root={tmp_path}", "train.max_steps=2", "train.checkpoint_every=100", "data.max_per_class=32",
        "data.num_workers=0", env={"LWSL_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"},
        cwd=REPO)
    info = slurm_cluster.wait(job, timeout=300)
    text = out.read_text()
    assert info["JobState"] == "COMPLETED", text[-4000:]
    assert re.search(r"4 rank\(s\)", text), text[-4000:]
    run = tmp_path / "train_demo"
    ckpts = sorted((run / "checkpoints").glob("step*"))
    assert ckpts, text[-4000:]
    # Every rank took part in the final checkpoint (one RNG file per rank) ...
    assert sorted(p.name for p in ckpts[-1].glob("rng_rank*.pt")) == [f"rng_rank{r}.pt" for r in range(4)]
    # ... and the exported super-net weights load without unpickling code.
    state = torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)
    assert len(state) > 10 and all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
