"""SIGKILL at any moment + ``--resume auto`` == an uninterrupted run, bit for bit (CPU, fixed seeds)."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from .helpers import REPO, quiet_env, retrain_cmd, write_arch

pytestmark = pytest.mark.slow

# 3 steps per epoch, a checkpoint every 3 steps: the kill lands after an epoch-end checkpoint, the case
# where the loader position must roll over to the next epoch.
ARGS = ("retrain.max_steps=5", "retrain.checkpoint_every_steps=3")


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, shared_data):  # reads ../shared/data/cifar10-jpeg
    arch = write_arch(tmp_path / "arch.yaml")
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    env = quiet_env()
    full = subprocess.Popen(retrain_cmd(arch, full_dir, *ARGS), env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cut = subprocess.Popen(retrain_cmd(arch, cut_dir, *ARGS, "retrain.export=false"), env=env, cwd=REPO,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = cut_dir / "checkpoints" / "step_00000003" / "meta.json"
    end = time.monotonic() + 240
    while not first.exists() and cut.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    cut.send_signal(signal.SIGKILL)
    assert cut.wait(timeout=30) == -signal.SIGKILL
    assert not (cut_dir / "final.json").exists(), "the run finished before the kill: the test proves nothing"

    resumed = subprocess.run(retrain_cmd(arch, cut_dir, *ARGS, "retrain.export=false", extra=("--resume", "auto")),
                             env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    out, _ = full.communicate(timeout=300)
    assert full.returncode == 0, out[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    a = json.loads((full_dir / "final.json").read_text())
    b = json.loads((cut_dir / "final.json").read_text())
    assert a["step"] == b["step"] == 5
    assert a["params_sha256"] == b["params_sha256"]
    # The EMA is part of the checkpoint: it must continue exactly too.
    ema_a = torch.load(full_dir / "checkpoints" / "step_00000005" / "ema.pt", weights_only=True)
    ema_b = torch.load(cut_dir / "checkpoints" / "step_00000005" / "ema.pt", weights_only=True)
    assert ema_a.keys() == ema_b.keys() and all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert a["top1"] == b["top1"] and a["ema"] is True

    # The export stands alone: torch.export program + arch YAML, equal to the EMA weights' outputs.
    from lwsl_ds.space import build_subnet, load_arch

    space, arch_obj, doc = load_arch(full_dir / "export" / "arch.yaml")
    assert arch_obj.key == "1230" and doc["num_classes"] == 10
    program = torch.export.load(str(full_dir / "export" / "subnet.pt2")).module()
    net = build_subnet(space, arch_obj, num_outputs=10)
    net.load_state_dict(ema_a)
    net.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(program(x), net(x), atol=1e-5)
