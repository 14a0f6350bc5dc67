"""The super-net run builder (lwsl_ds/supernet_run) in one process: request, seeded build, atomic weights,
and the layer-parallel checks that must fail before any process group exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lwsl_ds.supernet_run import RunRequest, build_run, save_supernet, supernet_seed

REPO = Path(__file__).resolve().parents[2]
TINY = ["space.resolution=16", "data.resolution=16", "data.max_per_class=8", "data.num_workers=0",
        "train.threads=1", "train.max_steps=3"]


def _request(tmp_path: Path, *extra: str, **kw) -> RunRequest:
    return RunRequest.load(REPO / "configs/train_demo.yaml", [f"run_root={tmp_path}", *TINY, *extra],
                           REPO / "ds_configs/train_cpu.json", **kw)


def test_request_seed_and_fingerprint(tmp_path):
    req = _request(tmp_path, "seed=3", "train.seed=2", backend="reference")
    assert supernet_seed(req.cfg) == 3002 and req.ds_where.endswith("train_cpu.json")
    fp = req.fingerprint(2)
    assert fp["world_size"] == 2 and fp["backend"] == "reference" and fp["seed"] == 3
    assert "name=" in req.new_run_hint and req.cfg.name in req.new_run_hint


def test_build_is_seeded_and_resolves_the_data(tmp_path):
    req = _request(tmp_path, "train.objective=infonce")
    a = build_run(req.cfg, req.ds, data_rank=0, data_ranks=2, local_rank=0)
    b = build_run(req.cfg, req.ds, data_rank=1, data_ranks=2, local_rank=0, reads_data=False,
                       share=lambda facts: {"spe": a.steps_per_epoch, "total": a.total, "num_classes": 10})
    from lwsl_ds.config.ds_config import micro_batch_size

    assert a.views == 2 and a.batch == b.batch == micro_batch_size(req.ds, 2)  # the ds_config's batch over 2 ranks
    assert a.total == min(3, a.steps_per_epoch * req.cfg.train.epochs) and b.total == a.total
    assert b.loader is None and a.space.num_classes == 10 and a.data_cfg.resolution == 16
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # every rank builds the same initial weights


def test_save_supernet_is_atomic(tmp_path, monkeypatch):
    path = save_supernet({"w": torch.ones(2)}, tmp_path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))

    def broken(obj, f, *a, **k):
        Path(f).write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="mid-write"):
        save_supernet({"w": torch.zeros(2)}, tmp_path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["supernet.pt"]


def test_layer_parallel_refusals_come_before_any_process_group(tmp_path):
    # A fresh interpreter: in-process engine tests of the same session may have created a process group.
    script = f"""
import sys, torch.distributed as td
sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(Path(__file__).parent)!r})
from lwsl_ds.config import ConfigError
from lwsl_ds.parallel import ParallelConfig
from lwsl_ds.parallel.run import run_layer_parallel
from test_run_builder import _request
from pathlib import Path
req = _request(Path({str(tmp_path)!r}), "train.strategy=spos")
for par, kw, want in ((ParallelConfig(mode="layer", data_parallel=2), {{"key": "--parallel data_parallel"}},
                       "--parallel data_parallel=2 does not divide the world size 1"),
                      (ParallelConfig(mode="layer"), {{}}, "train.strategy=spos with parallel.mode=layer")):
    try:
        run_layer_parallel(req, par, **kw)
    except ConfigError as e:
        assert want in str(e), str(e)
    else:
        raise SystemExit("not refused")
assert not td.is_initialized(), "a process group was created before the refusal"
print("ok")
"""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stdout[-2000:] + out.stderr[-2000:]
    assert not (tmp_path / "train_demo").exists()  # nothing created either