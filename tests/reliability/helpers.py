"""Shared pieces of the reliability tests: launcher commands, a planted pickle payload, directory snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
LAUNCH = REPO / "launchers"

# A 16 px demo super-net, 8 images per class: one step takes ~0.1 s on one CPU thread.
TINY_TRAIN = ["space.resolution=16", "data.max_per_class=8", "data.num_workers=0", "train.threads=1",
              "train.log_every=1", "train.progress=false"]


def env(**extra: str) -> dict[str, str]:
    """One thread, no inherited rank/Slurm variables, no fault injection."""
    out = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "LWSL_FAULT", "LWSL_DEBUG")
           and not k.startswith("SLURM_")}
    out.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return out


def run(cmd: list[str], timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    """Run a launcher command line, capturing its output."""
    return subprocess.run(cmd, cwd=REPO, env=env(**extra_env), capture_output=True, text=True, timeout=timeout)


def write_ds(path: Path, zero_stage: int = 0, **changes) -> Path:
    """The CPU training ds_config with micro batch 8, a ZeRO stage and top-level changes."""
    ds = json.loads((REPO / "ds_configs" / "train_cpu.json").read_text())
    ds["train_micro_batch_size_per_gpu"] = 8
    ds["zero_optimization"] = {"stage": zero_stage}
    ds.update(changes)
    path.write_text(json.dumps(ds))
    return path


def train_cmd(ds: Path, root: Path, name: str, *extra: str, config: Path | None = None) -> list[str]:
    """``python launchers/train.py`` on the demo config with the tiny overrides.

    The super-net folder is given as ``--run_dir <root>/<name>`` (not the default ``<root>/<name>/supernet``)
    so the cases read one folder per run; the default layout is tested in tests/experiment.
    """
    return [PY, str(LAUNCH / "train.py"), "--ds_config", str(ds), "--config",
            str(config or REPO / "configs" / "train_demo.yaml"), "--run_dir", str(root / name), f"run_root={root}",
            f"name={name}", *TINY_TRAIN, *extra]


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file (and '<dir>' for folders): equal snapshots = byte-identical trees."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<dir>"
    return out


class Payload:
    """Unpickling this runs ``os.mkdir(marker)``: if the marker folder appears, a checkpoint ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def plant(path: Path, marker: Path, *, redigest: bool = True) -> None:
    """Replace ``path`` with a torch file holding the payload; re-write the checkpoint's sha256.json too
    (an attacker who can write one file can write the digest list), so the weights-only load is what must stop it."""
    import torch

    torch.save({"module": Payload(marker), "x": torch.zeros(1)}, path)
    if redigest:
        from lwsl_ds.common.safe_io import DIGESTS, write_digests

        d = path.parent
        while not (d / DIGESTS).is_file() and d != d.parent:
            d = d.parent
        if (d / DIGESTS).is_file():
            write_digests(d)
