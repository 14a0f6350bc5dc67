"""Launch plumbing on a real Slurm cluster: both launch styles join all ranks; a hung rank ends the job."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .cluster import REPO

pytestmark = [pytest.mark.slurm, pytest.mark.multirank]
PY = str(REPO / ".venv" / "bin" / "python")


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]


@pytest.mark.parametrize("style", ["task", "deepspeed"])
def test_two_nodes_two_ranks_each_join_in_both_styles(slurm_cluster, tmp_path, style):
    out = tmp_path / "probe.out"
    job = slurm_cluster.sbatch(
        "--nodes=2", "--ntasks-per-node=2", f"--output={out}", "--wrap",
        f"bash launchers/slurm/lwsl_launch.sh tests/slurm/probe_dist.py",
        env={"LWSL_LAUNCH_STYLE": style, "LWSL_PYTHON": PY, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    info = slurm_cluster.wait(job, timeout=150)
    text = out.read_text()
    assert info["JobState"] == "COMPLETED", text[-3000:]
    recs = sorted(_records(out), key=lambda r: r["rank"])
    assert [r["rank"] for r in recs] == [0, 1, 2, 3], text[-3000:]
    assert {r["world"] for r in recs} == {4} and {r["sum"] for r in recs} == {6.0}
    # Ranks 0,1 on node n1 and 2,3 on n2, local ranks 0/1 on each: the per-node layout really came
    # from two Slurm nodes, not from four processes on one.
    assert [(r["host"], r["node"], r["local"]) for r in recs] == [
        ("n1", 0, 0), ("n1", 0, 1), ("n2", 1, 0), ("n2", 1, 1)]
    assert {r["style"] for r in recs} == {"slurm" if style == "task" else "launcher"}
    assert len({r["master"] for r in recs}) == 1


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
