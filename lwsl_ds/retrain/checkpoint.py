"""Atomic, resumable retraining checkpoints in ``<run dir>/checkpoints/step_<N>/``.

A checkpoint is written into ``checkpoints/.tmp-step_<N>`` by all ranks (DeepSpeed engine state under
``ds/``, one ``rank<r>.pt`` with that rank's RNG states), then rank 0 adds ``model.pt`` and ``ema.pt``
(plain state dicts, loadable with ``weights_only=True`` and without DeepSpeed) and ``meta.json``, and
adds ``sha256.json`` (the digest of every file, checked before anything is loaded), and
renames the folder to ``step_<N>``. A rename is atomic, so whenever the job dies the newest
``step_*`` folder with a ``meta.json`` is complete and the previous one is untouched; leftover
``.tmp-*`` folders are ignored and removed by the next save. Needs a run directory that every rank
sees (a shared file system across nodes).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ..common.errors import CheckpointError
from ..common.safe_io import load_tensor_file, read_json_object, save_tensor_file, verify_digests, write_digests

__all__ = ["CheckpointError", "checkpoint_dir", "find_latest", "list_checkpoints", "save", "load_rank_state",
           "read_meta", "verify", "load_weights"]

_NAME = re.compile(r"^step_(\d{8,})$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    """``<run dir>/checkpoints``."""
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints (with meta.json), oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and (p / "meta.json").is_file()]
    return [p for _, p in sorted(found)]


def find_latest(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of the run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def read_meta(ckpt: str | Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint (step, epoch, world size, arch, ...)."""
    path = Path(ckpt) / "meta.json"
    if not path.is_file():
        raise CheckpointError(f"{ckpt}: not a complete checkpoint (no meta.json)")
    return read_json_object(path, "checkpoint metadata")


def verify(ckpt: str | Path) -> dict[str, Any]:
    """Check every file of a checkpoint against its ``sha256.json``, then return its ``meta.json``."""
    verify_digests(ckpt)
    return read_meta(ckpt)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(run_dir: str | Path, step: int, *, engine, rank: int, barrier, meta: dict[str, Any],
         model_state: dict[str, torch.Tensor], ema_state: dict[str, torch.Tensor] | None,
         rank_state: dict[str, Any], keep: int) -> Path:
    """Write checkpoint ``step`` atomically; a collective (call on every rank with the same step)."""
    root = checkpoint_dir(run_dir)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp-step_{step:08d}"
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(".tmp-*"):  # a previous save that died half-way
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
    barrier()
    engine.save_checkpoint(str(tmp / "ds"), tag="state")
    save_tensor_file(rank_state, tmp / f"rank{rank}.pt")
    if rank == 0:
        save_tensor_file(model_state, tmp / "model.pt")
        if ema_state is not None:
            save_tensor_file(ema_state, tmp / "ema.pt")
    barrier()  # every rank's files are in tmp before it becomes visible
    if rank == 0:
        (tmp / "meta.json").write_text(json.dumps({"step": step, **meta}, indent=1))
        write_digests(tmp)  # last: every file of the checkpoint is in place
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. preemption right at a periodic save)
            shutil.rmtree(final)
        os.rename(tmp, final)
        _fsync_dir(root)
        latest = root / "latest"
        (root / "latest.tmp").write_text(final.name + "\n")
        os.replace(root / "latest.tmp", latest)  # a convenience pointer; find_latest scans the folders
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_rank_state(ckpt: str | Path, rank: int) -> dict[str, Any]:
    """This rank's RNG states (plain tensors and ints, ``weights_only=True``)."""
    path = Path(ckpt) / f"rank{rank}.pt"
    if not path.is_file():
        raise CheckpointError(f"{ckpt}: no state for rank {rank} ({path.name} missing)")
    return load_tensor_file(path)


def load_weights(ckpt: str | Path, ema: bool = False) -> dict[str, torch.Tensor]:
    """The sub-net's state dict (raw or EMA) from a checkpoint, without DeepSpeed."""
    path = Path(ckpt) / ("ema.pt" if ema else "model.pt")
    if not path.is_file():
        raise CheckpointError(f"{ckpt}: {path.name} missing" + (" (EMA disabled in that run?)" if ema else ""))
    return load_tensor_file(path)
