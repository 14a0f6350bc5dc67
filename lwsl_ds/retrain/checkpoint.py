"""Atomic, resumable retraining checkpoints in ``<run dir>/checkpoints/step_<N>/``.

A checkpoint is written into ``checkpoints/.tmp-step_<N>`` by all ranks (DeepSpeed engine state under
``ds/``, one ``rank<r>.pt`` with that rank's RNG states), then rank 0 adds ``model.pt`` and ``ema.pt``
(plain state dicts, loadable with ``weights_only=True`` and without DeepSpeed), ``meta.json`` and
``sha256.json`` (the digest of every file, checked before anything is loaded), and renames the folder
to ``step_<N>``. A rename is atomic, so whenever the job dies the newest ``step_*`` folder with a
``meta.json`` is complete and the previous one is untouched; leftover ``.tmp-*`` folders are ignored
and removed by the next save. Needs a run directory that every rank sees (a shared file system across
nodes). The publication itself is the super-net's (``lwsl_ds.common.checkpoint.publish`` with the
:data:`~lwsl_ds.common.checkpoint.RETRAIN` layout); the newest checkpoint is
``common.checkpoint.find_latest(run_dir, layout=RETRAIN)``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from ..common import checkpoint as common
from ..common.checkpoint import RETRAIN, checkpoint_dir
from ..common.errors import CheckpointError
from ..common.safe_io import load_tensor_file, save_tensor_file

__all__ = ["CheckpointError", "checkpoint_dir", "list_checkpoints", "save", "load_rank_state", "read_meta",
           "verify", "load_weights", "discard"]


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints (with meta.json), oldest first."""
    return common.list_checkpoints(run_dir, RETRAIN)


def read_meta(ckpt: str | Path) -> dict[str, Any]:
    """``meta.json`` of a checkpoint (step, loader position, world size, arch, ...), its files not checked."""
    return common.read_checkpoint(ckpt, verify=False, layout=RETRAIN)


def verify(ckpt: str | Path) -> dict[str, Any]:
    """Check every file of a checkpoint against its ``sha256.json``, then return its ``meta.json``."""
    return common.read_checkpoint(ckpt, verify=True, layout=RETRAIN)


def save(run_dir: str | Path, step: int, *, engine: Any, meta: dict[str, Any],
         model_state: dict[str, torch.Tensor], ema_state: dict[str, torch.Tensor] | None,
         rank_state: dict[str, Any], keep: int) -> Path:
    """Write checkpoint ``step`` atomically; a collective (call on every rank with the same step)."""

    def main_files(tmp: Path) -> None:
        save_tensor_file(model_state, tmp / "model.pt")
        if ema_state is not None:
            save_tensor_file(ema_state, tmp / "ema.pt")

    return common.publish(run_dir, {"step": step, **meta}, rank_state,
                          lambda tmp, _tag: engine.save_checkpoint(str(tmp / "ds"), tag="state"), main_files,
                          keep=keep, layout=RETRAIN)


def load_rank_state(ckpt: str | Path, rank: int) -> dict[str, Any]:
    """This rank's RNG states (plain tensors and ints, ``weights_only=True``)."""
    state = common.load_rng(ckpt, rank, RETRAIN)
    if state is None:
        raise CheckpointError(f"{ckpt}: no state for rank {rank} ({RETRAIN.rng.format(rank=rank)} missing)")
    return state


def load_weights(ckpt: str | Path, ema: bool = False) -> dict[str, torch.Tensor]:
    """The sub-net's state dict (raw or EMA) from a checkpoint, without DeepSpeed."""
    path = Path(ckpt) / ("ema.pt" if ema else "model.pt")
    if not path.is_file():
        raise CheckpointError(f"{ckpt}: {path.name} missing" + (" (EMA disabled in that run?)" if ema else ""))
    return load_tensor_file(path)


def discard(run_dir: str | Path) -> None:
    """Delete every checkpoint of the run (``--restart``; rank 0 only)."""
    shutil.rmtree(checkpoint_dir(run_dir), ignore_errors=True)
