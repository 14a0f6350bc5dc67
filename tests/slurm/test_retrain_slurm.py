"""Retraining under a real Slurm cluster: 2 nodes x 2 CPU ranks (gloo), both launch styles, preemption.

One uninterrupted task-style run is the reference: the deepspeed-per-node run and the preempted-then-
requeued run must end with bit-identical parameters.
"""

from __future__ import annotations

import json
import sys
import re
from pathlib import Path

import pytest
import torch

from .cluster import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.multirank, pytest.mark.slow]
PY = sys.executable  # the environment running the tests (LWSL_VENV may move it)

# 4 ranks x 8 images = 32 per step, 80 train images: 2 steps per epoch, 8 steps = 4 epochs.
STEPS = 8
ARGS = ["--config", "configs/retrain_cifar10.yaml", "--ds_config", "ds_configs/retrain_cpu.json",
        "--set", "data.max_per_class=8", "--set", "data.val_max_per_class=2", "--set", "data.num_workers=0",
        "--set", f"retrain.max_steps={STEPS}", "--set", "retrain.checkpoint_every_steps=100",
        "--set", "retrain.eval_batches=1", "--set", "retrain.eval_every_epochs=1000", "--set", "retrain.log_every_steps=1", "--set", "retrain.export=false",
        "--set", "retrain.dist_timeout_s=120"]
SIZES = ["--nodes=2", "--ntasks-per-node=2"]


def _ds_micro8(tmp: Path) -> Path:
    cfg = json.loads((REPO / "ds_configs" / "retrain_cpu.json").read_text())
    cfg["train_micro_batch_size_per_gpu"] = 8
    path = tmp / "ds.json"
    path.write_text(json.dumps(cfg))
    return path


def _submit(cluster, tmp: Path, name: str, style: str) -> tuple[str, Path, Path]:
    from tests.retrain.helpers import write_arch

    arch = write_arch(tmp / "arch.yaml")
    run_dir, out = tmp / name, tmp / f"{name}.out"
    args = [a if a != "ds_configs/retrain_cpu.json" else str(_ds_micro8(tmp)) for a in ARGS]
    job = cluster.sbatch(*SIZES, f"--output={out}", "launchers/slurm/retrain.sbatch", *args,
                         "--arch", str(arch), "--run_dir", str(run_dir),
                         env={"LWSL_LAUNCH_STYLE": style, "LWSL_PYTHON": PY, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    return job, run_dir, out


def _check_run(info: dict, run_dir: Path, out: Path) -> str:
    """All 4 ranks joined and ended with one parameter digest; the final checkpoint loads; returns the digest."""
    text = out.read_text()
    assert info["JobState"] == "COMPLETED", text[-4000:]
    joined = set(re.findall(r"\[retrain\] rank (\d)/4 joined", text))
    assert joined == {"0", "1", "2", "3"}, text[-4000:]
    digests = dict(re.findall(rf"\[retrain\] rank (\d) final step {STEPS} params sha256 (\w+)", text))
    assert set(digests) == {"0", "1", "2", "3"} and len(set(digests.values())) == 1, digests
    final = json.loads((run_dir / "final.json").read_text())
    assert final["step"] == STEPS and final["params_sha256"] == digests["0"]

    from lwsl_ds.common.checkpoint import RETRAIN, find_latest
    from lwsl_ds.common.digest import state_digest
    from lwsl_ds.retrain import checkpoint as ckpt_io
    from lwsl_ds.space import build_subnet, load_arch

    ckpt, meta = find_latest(run_dir, layout=RETRAIN)  # its files checked against sha256.json
    assert meta["world_size"] == 4 and meta["reason"] == "final"
    space, arch, _ = load_arch(run_dir.parent / "arch.yaml")
    net = build_subnet(space, arch, num_outputs=10)
    net.load_state_dict(ckpt_io.load_weights(ckpt))
    assert state_digest(net) == digests["0"]
    assert (ckpt / "ds" / "state" / "mp_rank_00_model_states.pt").is_file()
    return digests["0"]


@pytest.fixture(scope="module")
def reference(slurm_cluster, tmp_path_factory):
    """The uninterrupted one-task-per-rank run: its final digest."""
    tmp = tmp_path_factory.mktemp("retrain_task")
    job, run_dir, out = _submit(slurm_cluster, tmp, "task", "task")
    return _check_run(slurm_cluster.wait(job, timeout=240), run_dir, out)


def test_task_style_two_nodes_two_ranks(reference):
    assert re.fullmatch(r"[0-9a-f]{64}", reference)


def test_deepspeed_style_preempted_job_requeues_and_resumes_to_the_same_parameters(slurm_cluster, tmp_path,
                                                                                   reference):
    # One job covers the second launch style and preemption: one `deepspeed --no_ssh --node_rank` per
    # node, SIGUSR1 sent by `scancel --signal`, checkpoint, `scontrol requeue`, automatic resume; it must
    # end bit-identical to the uninterrupted one-task-per-rank run.
    job, run_dir, out = _submit(slurm_cluster, tmp_path, "pre", "deepspeed")
    # Every rank installs its handler before joining, so once a rank has joined all of them have it.
    slurm_cluster.preempt_and_requeue(job, out, "joined", timeout=180)
    info = slurm_cluster.wait(job, timeout=240)
    text = out.read_text()
    preempted = [json.loads(line) for line in text.splitlines() if line.startswith('{"event": "preempted"')]
    assert len(preempted) == 1 and 1 <= preempted[0]["step"] < STEPS, text[-4000:]
    assert f"resumed from {run_dir}/checkpoints/step_{preempted[0]['step']:08d}" in text
    assert "requeued Slurm job" in text and "restart 1 style=deepspeed" in text
    assert _check_run(info, run_dir, out) == reference
