"""Evolutionary search (launchers/search.py) as a 2-node x 1-rank Slurm job, preempted with ``scancel --signal``.

The job stops after the generation in flight (its state file is on disk), requeues itself, continues
from ``search_state.json`` and must end with exactly the candidates, scores and best arch of an
uninterrupted search (a plain 1-rank process: the search's result does not depend on the rank count).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from .cluster import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.multirank, pytest.mark.slow]
PY = sys.executable
GENERATIONS = 5


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A super-net run folder (seeded initial weights are enough to rank candidates) on tiny demo JPEGs."""
    from lwsl_ds.config import load_experiment
    from lwsl_ds.data.demo_dataset import generate
    from lwsl_ds.search.loading import build_supernet

    run, data = tmp_path_factory.mktemp("search_run"), tmp_path_factory.mktemp("search_data")
    generate(data, train_per_class=8, val_per_class=4, size=32)
    (run / "config.yaml").write_text(f"""
name: search-slurm
space: {{name: demo}}
data: {{source: folder, root: {data}, resolution: 32, backend: torchvision, num_workers: 0}}
search: {{population: 4, generations: {GENERATIONS}, parents: 2, mutations: 2, crossovers: 1, recal_batches: 1,
         val_batches: 1, batch_size: 16, max_flops: 4000000}}
""")
    torch.manual_seed(0)
    torch.save(build_supernet(load_experiment(run / "config.yaml")).state_dict(), run / "supernet.pt")
    return run


def _args(run, out) -> list[str]:
    return ["--config", str(run / "config.yaml"), "--checkpoint", str(run), "--out", str(out), "--no-progress"]


def test_preempted_search_job_requeues_and_ends_like_an_uninterrupted_search(slurm_cluster, run_dir):
    log = run_dir / "pre.out"
    job = slurm_cluster.sbatch("--nodes=2", "--ntasks-per-node=1", f"--output={log}", "launchers/slurm/search.sbatch",
                               *_args(run_dir, run_dir / "pre"), "--restart",  # dropped by the requeued job
                               env={"LWSL_PYTHON": PY, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    # The reference runs meanwhile as one plain process (the cluster job mostly waits on its imports).
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_") and k not in (
        "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    ref = subprocess.Popen([PY, "launchers/search.py", *_args(run_dir, run_dir / "ref")], cwd=REPO,
                           env={**env, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
    slurm_cluster.preempt_and_requeue(job, log, f"generation 1/{GENERATIONS}")
    info = slurm_cluster.wait(job, timeout=240)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text[-4000:] + "\n" + slurm_cluster.daemon_log(job)
    assert "2 rank(s)" in text and "requeued Slurm job" in text and "restart 1 style=task" in text
    stopped = re.findall(rf"preempted by SIGUSR1 after generation (\d+)/{GENERATIONS}", text)
    assert len(stopped) == 1 and 1 <= int(stopped[0]) < GENERATIONS, text[-4000:]
    # The requeued run scored only the generations that were left.
    assert f"generation {stopped[0]}/{GENERATIONS}:" not in text.split("restart 1 style=task")[1]
    assert ref.wait(timeout=240) == 0, ref.stderr.read()[-3000:]
    for name in ("candidates.jsonl", "best_arch.yaml"):
        pre = (run_dir / "pre" / name).read_text()
        want = (run_dir / "ref" / name).read_text()
        if name == "best_arch.yaml":  # the evaluation count line is identical, the output folder is not
            pre, want = (re.sub(r"/(pre|ref)\b", "/OUT", s) for s in (pre, want))
        assert pre == want, name
    assert len((run_dir / "pre" / "candidates.jsonl").read_text().splitlines()) == 4 * GENERATIONS
