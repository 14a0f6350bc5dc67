"""Shared pieces of the retraining tests: a tiny arch file and the launcher command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

# 32 px CIFAR-10, 20 images per class (200 = 3 batches of 64): a step takes ~0.3 s on one CPU thread.
TINY = ["data.max_per_class=20", "data.val_max_per_class=4", "data.num_workers=0", "retrain.log_every_steps=1",
        "retrain.eval_batches=1"]


def write_arch(path: Path, key: str = "1230") -> Path:
    """A demo-space arch YAML (what search writes)."""
    from lwsl_ds.space import load_space, parse_arch, save_arch

    space = load_space("demo")
    return save_arch(path, space, parse_arch(space, key))


def retrain_cmd(arch: Path, run_dir: Path, *overrides: str, extra: tuple[str, ...] = ()) -> list[str]:
    """``python launchers/retrain.py`` with the CIFAR-10 CPU config and tiny overrides."""
    cmd = [PY, str(REPO / "launchers" / "retrain.py"), "--config", str(REPO / "configs" / "retrain_cifar10.yaml"),
           "--ds_config", str(REPO / "ds_configs" / "retrain_cpu.json"), "--arch", str(arch), "--run_dir", str(run_dir)]
    for o in (*TINY, *overrides):
        cmd += ["--set", o]
    return cmd + list(extra)


def quiet_env(**extra: str) -> dict[str, str]:
    """One thread per process, no inherited rank variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT") and not k.startswith("SLURM_")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return env
