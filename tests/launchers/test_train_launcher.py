"""launchers/train.py end to end on CPU: run dir layout, exact resume after SIGKILL, bad input, NaN stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable


def _ds(tmp_path: Path, **change) -> Path:
    cfg = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    cfg["train_micro_batch_size_per_gpu"] = 8
    cfg["zero_optimization"] = {"stage": 1}
    cfg.update(change)
    p = tmp_path / "ds.json"
    p.write_text(json.dumps(cfg))
    return p


def _run(tmp_path: Path, name: str, *extra: str, env: dict | None = None, ds: Path | None = None,
         expect: int | None = 0) -> subprocess.CompletedProcess:
    cmd = [PY, str(REPO / "launchers" / "train.py"), "--ds_config", str(ds or _ds(tmp_path)),
           "--config", str(REPO / "configs" / "train_demo.yaml"), f"run_root={tmp_path / 'runs'}", f"name={name}",
           "space.resolution=16", "data.max_per_class=8", "data.num_workers=0", "train.max_steps=6",
           "train.checkpoint_every=2", "train.threads=1", "train.strategy=non_greedy", "train.layer_groups=per_layer", *extra]
    e = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    e.pop("LWSL_FAULT", None) if not env or "LWSL_FAULT" not in env else None
    # in-process engine tests export RANK/MASTER_PORT into this process: a child must pick its own
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        e.pop(k, None)
    r = subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=300)
    if expect is not None:
        assert r.returncode == expect, f"rc {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _weights(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path):
    _run(tmp_path, "full")
    full = tmp_path / "runs" / "full" / "supernet"
    assert (full / "checkpoints" / "latest").read_text().strip() == "step00000006"
    lines = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 6 and "loss/layer3" in lines[-1] and "images_per_s" in lines[-1]
    assert (full / "monitor").is_dir()  # csv monitor, one job per engine

    # killed right after step 3 (before any checkpoint of it): resume from step 2
    r = _run(tmp_path, "killed", env={"LWSL_FAULT": "after_step@3"}, expect=None)
    assert r.returncode == -9
    killed = tmp_path / "runs" / "killed" / "supernet"
    assert (killed / "checkpoints" / "latest").read_text().strip() == "step00000002"
    # killed in the middle of writing the step-4 checkpoint: step 2 stays the loadable one
    r = _run(tmp_path, "killed", "--resume", env={"LWSL_FAULT": "in_checkpoint@4"}, expect=None)
    assert r.returncode == -9
    assert (killed / "checkpoints" / "latest").read_text().strip() == "step00000002"
    assert (killed / "checkpoints" / "step00000004.tmp").is_dir()
    _run(tmp_path, "killed", "--resume")
    a, b = _weights(full / "supernet.pt"), _weights(killed / "supernet.pt")
    assert a.keys() == b.keys()
    for k in a:
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(a[k], b[k]), k
    manifest = json.loads((killed / "checkpoints" / "step00000006" / "manifest.json").read_text())
    assert manifest["step"] == 6 and manifest["data"]["position"] == 6 and manifest["groups"] == [[0], [1], [2, 3]]
    assert not (killed / "checkpoints" / "step00000004.tmp").exists()


def test_existing_run_without_resume_is_refused(tmp_path):
    ck = tmp_path / "runs" / "x" / "supernet" / "checkpoints" / "step00000002"
    ck.mkdir(parents=True)
    (ck / "manifest.json").write_text(json.dumps({"step": 2, "tag": "step00000002"}))
    r = _run(tmp_path, "x", expect=None)
    assert r.returncode != 0 and "pass --resume" in r.stderr + r.stdout


@pytest.mark.parametrize("change,msg", [
    ({"train_batch_size": 7}, "batch sizes do not multiply out"),
    ({"gradient_clippng": 1.0}, "unknown top-level key 'gradient_clippng'"),
    ({"optimizer": {"type": "Adamax", "params": {"lr": 0.1}}}, "unknown optimizer 'Adamax'"),
])
def test_bad_ds_config_fails_before_training(tmp_path, change, msg):
    r = _run(tmp_path, "bad", ds=_ds(tmp_path, **change), expect=2)
    assert msg in r.stderr and "ds.json" in r.stderr
    assert not (tmp_path / "runs" / "bad").exists()


def test_bad_experiment_config_fails_before_training(tmp_path):
    r = _run(tmp_path, "bad", "train.strategy=gready", expect=2)
    assert "train.strategy" in r.stderr and "did you mean 'greedy'" in r.stderr
    r = _run(tmp_path, "bad", "train.layer_groups=[[0,1],[3]]", expect=2)
    assert "layers [2] are in no group" in r.stderr


def test_non_finite_loss_stops_naming_layer_and_step_keeping_checkpoint(tmp_path):
    """In process with the reference backend: batch 2 holds a NaN image."""
    from lwsl_ds.common.checkpoint import find_latest
    from lwsl_ds.engines import ReferenceBackend
    from lwsl_ds.strategies import get_strategy
    from lwsl_ds.strategies.hooks import CheckpointHook
    from lwsl_ds.strategies.loop import NonFiniteLossError, Trainer
    from tests.engines.harness import batches, ds_config, tiny_net

    class ListLoader:
        def __init__(self, items):
            self.items, self.epoch, self.position = items, 0, 0

        def __len__(self):
            return len(self.items)

        def set_epoch(self, e):
            self.epoch = e

        def __iter__(self):
            for b in self.items[self.position:]:
                self.position += 1
                yield b

        def state_dict(self):
            return {"epoch": self.epoch, "position": self.position}

    data = batches(4)
    data[2][0][0, 0, 0, 0] = float("nan")
    net = tiny_net()
    s = get_strategy("greedy")
    b = ReferenceBackend(net, s, ds_config(0))
    loader = ListLoader(data)
    hook = CheckpointHook(tmp_path, lambda t: {"step": t.step, "data": loader.state_dict()}, every=1)
    with pytest.raises(NonFiniteLossError, match="non-finite loss .* at the stem in step 2"):
        Trainer(net, s, b, loader, seed=0, total_steps=4, hooks=[hook]).train()
    d, manifest = find_latest(tmp_path)
    assert manifest["step"] == 2 and (d / "reference.pt").is_file()


@pytest.mark.multirank
@pytest.mark.slow
def test_deepspeed_cli_two_ranks_gloo(tmp_path):
    """`deepspeed --num_gpus 2 launchers/train.py ...` on CPU: 2 gloo ranks, one run dir, per-rank ZeRO states."""
    import shutil

    from lwsl_ds.common.launch_env import free_port

    ds_cli = shutil.which("deepspeed", path=str(Path(PY).parent)) or "deepspeed"
    cmd = [ds_cli, "--num_gpus", "2", "--master_port", str(free_port()), str(REPO / "launchers" / "train.py"),
           "--ds_config", str(_ds(tmp_path)), "--config", str(REPO / "configs" / "train_demo.yaml"),
           f"run_root={tmp_path / 'runs'}", "name=two", "space.resolution=16", "data.max_per_class=8",
           "data.num_workers=0", "train.max_steps=2", "train.strategy=greedy", "train.layer_groups=auto"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LWSL_FAULT"):
        env.pop(k, None)
    r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ck = tmp_path / "runs" / "two" / "supernet" / "checkpoints" / "step00000002"
    manifest = json.loads((ck / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and len(manifest["groups"]) == 2
    assert (ck / "rng_rank1.pt").is_file()
    assert sorted(p.name for p in (ck / "engine1" / "step00000002").glob("zero_pp_rank_*optim_states.pt")) == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
