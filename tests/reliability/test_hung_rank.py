"""A rank that stops responding (SIGSTOP) ends a 2-rank gloo training within the configured timeout, named.

Before, DeepSpeed's data-parallel groups were created without a timeout (gloo's 30-minute default), so the
other rank stayed blocked in the gradient all-reduce long after ``train.dist_timeout_s``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from .helpers import REPO, env, train_cmd, write_ds

TIMEOUT_S = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigstopped_rank_ends_the_job_within_the_timeout_naming_it(tmp_path):
    ds = write_ds(tmp_path / "ds.json", zero_stage=1)
    cmd = train_cmd(ds, tmp_path / "runs", "hang", "train.max_steps=100000", "train.epochs=1000",
                    f"train.dist_timeout_s={TIMEOUT_S}", "train.checkpoint_every=0")
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        e = env(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port)
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    r0, r1 = procs
    lines: list[str] = []
    try:
        for line in r0.stdout:  # rank 0 logs "step N/..." every step (train.log_every=1)
            lines.append(line)
            if "step 3/" in line:
                break
        else:
            pytest.fail("rank 0 ended before step 3:\n" + "".join(lines)[-3000:])
        os.kill(r1.pid, signal.SIGSTOP)
        t0 = time.monotonic()
        rc = r0.wait(timeout=TIMEOUT_S + 60)
        took = time.monotonic() - t0
        lines += r0.stdout.readlines()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    text = "".join(lines)
    assert rc != 0, text[-3000:]
    assert took < TIMEOUT_S + 20, f"took {took:.1f} s\n{text[-3000:]}"
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert errors and "rank 1 stopped responding" in errors[-1] and "Traceback" not in text, text[-3000:]
