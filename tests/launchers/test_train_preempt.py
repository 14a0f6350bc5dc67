"""launchers/train.py outside Slurm: SIGUSR1 mid-run -> checkpoint, exit 0, no supernet.pt; --resume ends exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
STEPS = 12


def _cmd(tmp_path: Path, name: str, *extra: str) -> tuple[list[str], dict]:
    ds = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    ds["train_micro_batch_size_per_gpu"] = 8
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    cmd = [PY, "-u", str(REPO / "launchers" / "train.py"), "--ds_config", str(tmp_path / "ds.json"),
           "--config", str(REPO / "configs" / "train_demo.yaml"), f"run_root={tmp_path / 'runs'}", f"name={name}",
           "space.resolution=16", "data.max_per_class=8", "data.num_workers=0", f"train.max_steps={STEPS}",
           "train.checkpoint_every=100", "train.log_every=1", "train.threads=1", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LWSL_FAULT", "SLURM_JOB_ID"):
        env.pop(k, None)  # a plain process: no inherited rank or Slurm job to requeue
    return cmd, env


def _run(tmp_path: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    cmd, env = _cmd(tmp_path, name, *extra)
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stderr[-3000:]}"
    return r


def _weights(run: Path) -> dict:
    return torch.load(run / "supernet.pt", map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_sigusr1_checkpoints_exits_cleanly_and_resume_equals_uninterrupted_run(tmp_path):
    _run(tmp_path, "full")
    full = tmp_path / "runs" / "full" / "supernet"

    cmd, env = _cmd(tmp_path, "pre")
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in p.stdout:  # train.py logs "step N/12 ..." after every step (log_every=1, ~0.2 s a step)
            lines.append(line)
            if f"step 1/{STEPS} " in line:
                p.send_signal(signal.SIGUSR1)
                break
        lines += p.stdout.readlines()
        rc = p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    text = "".join(lines)
    assert rc == 0, text[-3000:]
    pre = tmp_path / "runs" / "pre" / "supernet"
    manifest = json.loads((pre / "checkpoints" / (pre / "checkpoints" / "latest").read_text().strip()
                           / "manifest.json").read_text())
    assert 1 <= manifest["step"] < STEPS, text[-3000:]
    assert not (pre / "supernet.pt").exists() and not (pre / "param_digests.json").exists()
    assert f"preempted at step {manifest['step']}/{STEPS} by SIGUSR1" in text
    assert "rerun the same command with --resume" in text and "not a Slurm job" in text

    t0 = time.monotonic()
    r = _run(tmp_path, "pre", "--resume")
    assert f"(step {manifest['step']})" in r.stdout and time.monotonic() - t0 < 120
    a, b = _weights(full), _weights(pre)
    assert a.keys() == b.keys()
    for k in a:  # every parameter and buffer, bit for bit
        assert torch.equal(a[k], b[k]), k
    digests = json.loads((pre / "param_digests.json").read_text())
    assert digests["step"] == STEPS and digests["params_equal"] and len(digests["ranks"]) == 1
    assert digests == json.loads((full / "param_digests.json").read_text())


def test_preemption_hook_stops_the_loop_and_uninstall_gives_the_signal_back():
    """In process: the hook turns a received signal into request_stop; uninstall re-delivers a pending one."""
    from lwsl_ds.common.preemption import Preemption
    from lwsl_ds.strategies.hooks import PreemptionHook

    class FakeTrainer:  # only the attributes PreemptionHook reads and the request_stop contract
        step, total_steps, stop_reason = 3, 10, None

        def request_stop(self, reason):
            self.stop_reason = self.stop_reason or reason

    seen = []
    before = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:
        pre = Preemption.install()
        hook, t = PreemptionHook(pre), FakeTrainer()
        hook.after_step(t)
        assert t.stop_reason is None and not hook.stopped(t)
        os.kill(os.getpid(), signal.SIGUSR1)  # handled by Preemption: a flag, not the previous handler
        assert pre.requested and pre.signal_name == "SIGUSR1" and not seen
        hook.after_step(t)
        assert t.stop_reason == "preempted (SIGUSR1)" and hook.stopped(t)
        t.step = t.total_steps  # a signal during the last step ends the run normally
        assert not hook.stopped(t)
        pre.uninstall()  # the previous handler is back and gets the pending signal
        assert seen == [signal.SIGUSR1] and signal.getsignal(signal.SIGTERM) != pre._handle
    finally:
        signal.signal(signal.SIGUSR1, before)
