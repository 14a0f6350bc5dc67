"""Super-net training (launchers/train.py) as a 2-node x 2-rank Slurm job (gloo): both launch styles, preemption.

One uninterrupted task-style run is the reference: all 4 ranks end with the same parameter digest
(param_digests.json) and its checkpoint loads. The deepspeed-per-node run is preempted with
``scancel --signal=USR1``, requeues itself, resumes, and must end with bit-identical weights.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

from .cluster import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.multirank, pytest.mark.slow]
PY = sys.executable  # the environment running the tests (LWSL_VENV may move it)

# 4 ranks x 8 images = 32 per step; 160 demo images = 5 steps per epoch; 6 steps cross an epoch end.
STEPS = 6


def _submit(cluster, tmp: Path, name: str, style: str) -> tuple[str, Path, Path]:
    ds = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    ds["train_micro_batch_size_per_gpu"] = 8
    (tmp / "ds.json").write_text(json.dumps(ds))
    out = tmp / f"{name}.out"
    job = cluster.sbatch(
        "--nodes=2", "--ntasks-per-node=2", f"--output={out}", "launchers/slurm/train.sbatch",
        "--ds_config", str(tmp / "ds.json"), "--config", "configs/train_demo.yaml", f"run_root={tmp}", f"name={name}",
        "space.resolution=16", "data.max_per_class=16", "data.num_workers=0", f"train.max_steps={STEPS}",
        "train.epochs=2", "train.checkpoint_every=100", "train.log_every=1",
        env={"LWSL_LAUNCH_STYLE": style, "LWSL_PYTHON": PY, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    return job, tmp / name / "supernet", out


def _check_run(info: dict, run: Path, out: Path) -> dict:
    """All 4 ranks trained and agree on their parameters; the final checkpoint loads; returns supernet.pt."""
    text = out.read_text()
    assert info["JobState"] == "COMPLETED", text[-4000:]
    assert re.search(r"4 rank\(s\)", text), text[-4000:]
    digests = json.loads((run / "param_digests.json").read_text())
    assert digests["step"] == STEPS and digests["world_size"] == 4, digests
    assert [d["rank"] for d in digests["ranks"]] == [0, 1, 2, 3]
    assert digests["params_equal"] and len({d["params"] for d in digests["ranks"]}) == 1, digests

    from lwsl_ds.common.checkpoint import find_latest
    from lwsl_ds.common.digest import module_digests
    from lwsl_ds.search.loading import load_supernet_from_run

    ck, manifest = find_latest(run)
    assert manifest["step"] == STEPS and manifest["world_size"] == 4
    # Every rank took part in the final checkpoint (one RNG file per rank) ...
    assert sorted(p.name for p in ck.glob("rng_rank*.pt")) == [f"rng_rank{r}.pt" for r in range(4)]
    # ... and it loads into the super-net (keys and shapes checked) with rank 0's exact parameters.
    net = load_supernet_from_run(run)
    assert module_digests(net)["params"] == digests["ranks"][0]["params"]
    state = torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    return state


@pytest.fixture(scope="module")
def reference(slurm_cluster, tmp_path_factory):
    """The uninterrupted one-task-per-rank run: its supernet.pt state dict."""
    tmp = tmp_path_factory.mktemp("train_task")
    job, run, out = _submit(slurm_cluster, tmp, "task", "task")
    return _check_run(slurm_cluster.wait(job, timeout=300), run, out)


def test_task_style_two_nodes_two_ranks_identical_parameters(reference):
    assert len(reference) > 10 and all(torch.isfinite(v).all() for v in reference.values() if v.is_floating_point())


def test_deepspeed_style_preempted_training_requeues_and_resumes_to_the_same_weights(slurm_cluster, tmp_path,
                                                                                     reference):
    # The second launch style (one `deepspeed --no_ssh --node_rank` per node) and preemption in one job.
    job, run, out = _submit(slurm_cluster, tmp_path, "pre", "deepspeed")
    # Preempt once training runs (rank 0 logged its first step; every rank installed its handler first).
    slurm_cluster.preempt_and_requeue(job, out, f"step 1/{STEPS} ")
    assert not (run / "supernet.pt").exists()  # a preempted run leaves its checkpoint, not final weights
    info = slurm_cluster.wait(job, timeout=300)
    text = out.read_text()
    stopped = re.findall(rf"preempted at step (\d+)/{STEPS} by SIGUSR1", text)
    assert len(stopped) == 1 and 1 <= int(stopped[0]) < STEPS, text[-4000:]
    assert f"(step {stopped[0]})" in text and "requeued Slurm job" in text and "restart 1 style=deepspeed" in text
    state = _check_run(info, run, out)
    assert state.keys() == reference.keys()
    for k in reference:  # parameters and BN buffers, bit for bit
        assert torch.equal(state[k], reference[k]), k
