"""Start the ranks of a layer-parallel test run as plain processes (RANK/WORLD_SIZE/MASTER_* env)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lwsl_ds.common.launch_env import free_port

REPO = Path(__file__).resolve().parents[2]


def start(out: Path, world: int, *args: str) -> list[subprocess.Popen]:
    """Popen one worker per rank (1 thread each); stdout+stderr to out/log<r>.txt."""
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    procs = []
    for r in range(world):
        env = dict(os.environ, RANK=str(r), WORLD_SIZE=str(world), LOCAL_RANK=str(r), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
        log = open(out / f"log{r}.txt", "a")
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.parallel.worker", str(out), *args], cwd=REPO,
                                      env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def run(out: Path, world: int, *args: str, timeout: float = 120) -> None:
    """Start and wait; raise with the logs when a rank fails."""
    procs = start(out, world, *args)
    codes = [p.wait(timeout=timeout) for p in procs]
    if any(codes):
        logs = "\n".join(f"--- rank {r}\n{(out / f'log{r}.txt').read_text()[-3000:]}" for r in range(world))
        raise AssertionError(f"ranks exited with {codes}\n{logs}")
