"""train.max_minutes through launchers/train.py: the run stops on its step-time budget, with a checkpoint
and supernet.pt, and a resumed run continues the recorded train_seconds (equal-time comparisons)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 1000  # far more than a 0.06 s budget allows: the budget, not the step count, must end the run


def _train(tmp_path: Path, minutes: float, *extra: str) -> subprocess.CompletedProcess:
    ds = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    ds["train_micro_batch_size_per_gpu"] = 8
    ds.pop("csv_monitor", None)
    (tmp_path / "ds.json").write_text(json.dumps(ds))
    cmd = [sys.executable, str(REPO / "launchers" / "train.py"), "--ds_config", str(tmp_path / "ds.json"),
           "--config", str(REPO / "configs" / "demo.yaml"), f"run_root={tmp_path}", "name=tb",
           "space.resolution=16", "data.max_per_class=8", "train.epochs=100", f"train.max_steps={MAX_STEPS}",
           "train.log_every=1", "train.checkpoint_every=1000", "train.threads=1", "train.strategy=spos",
           f"train.max_minutes={minutes}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LWSL_FAULT"):
        env.pop(k, None)
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"rc {r.returncode}\n{r.stderr[-3000:]}"
    return r


def _lines(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]


def test_time_budget_stops_the_run_and_resume_keeps_train_seconds(tmp_path):
    run = tmp_path / "tb" / "supernet"
    _train(tmp_path, 0.001)  # 0.06 s of step time
    first = _lines(run)
    last = first[-1]
    assert last["step"] < MAX_STEPS and last["train_seconds"] >= 0.06
    assert all(a["train_seconds"] < 0.06 for a in first[:-1])  # it stopped at the first step over the budget
    tag = (run / "checkpoints" / "latest").read_text().strip()
    manifest = json.loads((run / "checkpoints" / tag / "manifest.json").read_text())
    assert manifest["step"] == last["step"] and abs(manifest["train_seconds"] - last["train_seconds"]) < 1e-3
    assert (run / "supernet.pt").is_file()

    # the resumed budget is set from what the first run recorded, 0.06 s more: on a loaded machine one step
    # can take longer than 0.06 s, and a fixed 0.12 s total could then leave the resumed run nothing to do
    total = last["train_seconds"] + 0.06
    _train(tmp_path, total / 60, "--resume")  # continues from the recorded step time
    more = _lines(run)[len(first):]
    assert more and more[0]["step"] == last["step"] + 1 and more[0]["train_seconds"] > last["train_seconds"]
    assert more[-1]["step"] < MAX_STEPS and more[-1]["train_seconds"] >= total
    assert all(a["train_seconds"] < total for a in more[:-1])  # stopped at the first step over the new budget
    assert json.loads((run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
                       / "manifest.json").read_text())["step"] == more[-1]["step"]
