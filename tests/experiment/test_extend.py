"""Extending a resumed run: a longer schedule is refused with the reason or re-planned, never run at lr 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lwsl_ds.config import ConfigError
from lwsl_ds.engines.extend import extend_schedules
from lwsl_ds.retrain.recipe import WarmupCosine

REPO = Path(__file__).resolve().parents[2]


def _resumed_scheduler(total: int, steps: int):
    """A retraining-style LambdaLR run for ``steps`` steps, saved, and loaded into a fresh one (as on resume)."""
    def make():
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return torch.optim.lr_scheduler.LambdaLR(opt, WarmupCosine(total, 0))

    first = make()
    for _ in range(steps):
        first.optimizer.step()
        first.step()
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    return resumed


def test_retraining_schedule_restored_from_a_checkpoint_keeps_its_old_end():
    """The bug: a resumed LambdaLR takes the checkpoint's total, so raised epochs would train at lr 0."""
    s = _resumed_scheduler(total=4, steps=4)
    assert s.lr_lambdas[0].total == 4 and s.get_last_lr()[0] == pytest.approx(0.0)
    with pytest.raises(ConfigError) as e:
        extend_schedules([s], old_total=None, total=8, step=4, mode="refuse", key="retrain.extend")
    assert "ends at step 4" in str(e.value) and "retrain.extend=replan" in str(e.value) and "\n" not in str(e.value)
    line = extend_schedules([s], old_total=None, total=8, step=4, mode="replan", key="retrain.extend")
    assert "from 4 to 8 steps" in line
    lrs = []
    for _ in range(3):
        assert s.get_last_lr()[0] > 0
        s.optimizer.step()
        s.step()
        lrs.append(s.get_last_lr()[0])
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] > 0  # steps 5..7 anneal, above 0 until step 8
    assert extend_schedules([s], old_total=None, total=8, step=7, mode="refuse", key="k") is None  # not longer


def _train(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    ds = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    ds.update(train_micro_batch_size_per_gpu=8, csv_monitor={"enabled": False})
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    cmd = [sys.executable, str(REPO / "launchers" / "train.py"), "--ds_config", str(tmp_path / "ds.json"),
           "--config", str(REPO / "configs" / "demo.yaml"), *[x for x in extra if x.startswith("--")],
           f"run_root={tmp_path}", "name=ext",
           "space.resolution=16", "data.max_per_class=8", "train.epochs=5", "train.log_every=1",
           "train.checkpoint_every=2", "train.threads=1", "train.strategy=spos", "train.layer_groups=single",
           "train.progress=false", *[x for x in extra if not x.startswith("--")]]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "LWSL_FAULT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_resuming_supernet_training_with_more_steps_is_refused_or_replanned(tmp_path):
    r = _train(tmp_path, "train.max_steps=4")
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "ext" / "supernet"
    r = _train(tmp_path, "--resume", "train.max_steps=6")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error: train.extend:"), r.stderr[-2000:]
    assert "ends at step 4 but this run asks for 6 steps" in r.stderr
    r = _train(tmp_path, "--resume", "train.max_steps=6", "train.extend=replan")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "train.extend=replan: learning-rate schedule extended from 4 to 6 steps" in r.stdout + r.stderr
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    lr = {m["step"]: m["lr"] for m in lines}
    assert lr[4] == pytest.approx(0.0, abs=1e-12)  # the first run annealed to 0 over its 4 steps
    assert lr[5] > 0 and lr[6] >= 0 and lr[5] > lr[6]  # the extra steps train, on the re-planned cosine
