"""retrain.channels_last: NHWC batches through the real DeepSpeed retraining engine give the default format's
first loss up to float rounding, and the checkpointed weights stay contiguous."""

from __future__ import annotations

import json
import subprocess

import pytest
import torch

from .helpers import REPO, quiet_env, retrain_cmd, write_arch

ARGS = ("retrain.max_steps=2", "retrain.checkpoint_every_steps=2", "retrain.export=false",
        "retrain.dropout=0.0", "retrain.augment=train")


def _run(arch, run_dir, *extra: str) -> list[dict]:
    r = subprocess.run(retrain_cmd(arch, run_dir, *ARGS, *extra), env=quiet_env(), cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return [json.loads(x) for x in (run_dir / "retrain_log.jsonl").read_text().splitlines()]


def test_channels_last_retraining_matches_default_first_step(tmp_path, shared_data):  # reads cifar10-jpeg
    arch = write_arch(tmp_path / "arch.yaml")
    plain, nhwc = _run(arch, tmp_path / "plain"), _run(arch, tmp_path / "nhwc", "retrain.channels_last=true")
    first = [next(r for r in log if r.get("event") == "train") for log in (plain, nhwc)]
    assert first[0]["step"] == first[1]["step"] == 1
    assert first[1]["loss"] == pytest.approx(first[0]["loss"], rel=1e-4)  # same weights and data, other rounding
    weights = torch.load(tmp_path / "nhwc" / "checkpoints" / "step_00000002" / "model.pt", weights_only=True)
    assert all(w.is_contiguous() for w in weights.values())  # DeepSpeed keeps the weights in the default format
