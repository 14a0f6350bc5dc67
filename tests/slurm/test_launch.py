"""A hung rank under a real Slurm cluster ends the job non-zero within the collective timeout.

(Both launch styles joining all ranks are covered by test_retrain_slurm.py.)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from .cluster import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.multirank]
PY = sys.executable  # the environment running the tests (LWSL_VENV may move it)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]


def test_hung_rank_ends_the_job_nonzero_within_the_timeout(slurm_cluster, tmp_path):
    out = tmp_path / "hang.out"
    timeout_s = 15
    start = time.monotonic()
    job = slurm_cluster.sbatch(
        "--nodes=2", "--ntasks-per-node=1", f"--output={out}", "--wrap",
        "bash launchers/slurm/lwsl_launch.sh tests/slurm/probe_dist.py",
        env={"LWSL_PYTHON": PY, "OMP_NUM_THREADS": "1", "PROBE_HANG_RANK": "1",
             "PROBE_TIMEOUT_S": str(timeout_s), "LWSL_KILL_WAIT": "5"}, cwd=REPO)
    info = slurm_cluster.wait(job, timeout=120)
    elapsed = time.monotonic() - start
    text = out.read_text()
    assert info["JobState"] == "FAILED" and info["ExitCode"] != "0:0", text[-3000:]
    rec = [r for r in _records(out) if r["rank"] == 0]
    assert rec and "error" in rec[0], text[-3000:]  # rank 0 saw the timeout rather than hanging
    assert timeout_s - 1 <= rec[0]["after_s"] <= timeout_s + 20
    assert elapsed < 90, f"job took {elapsed:.0f} s to fail"
