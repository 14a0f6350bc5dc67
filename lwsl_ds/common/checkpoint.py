"""Run-directory checkpoints: every engine under one tag, a manifest, per-rank RNG, atomic publication.

Layout::

    <run>/checkpoints/latest                 text: the tag of the newest complete checkpoint
    <run>/checkpoints/step00000040/          one complete checkpoint (published by a rename)
        manifest.json                        config, step, epoch, data position, world size, tag, fingerprint
        sha256.json                          SHA-256 of every other file, written last (safe_io.write_digests)
        rng_rank<r>.pt                       RNG states of rank r (tensors only: weights_only loading)
        supernet.pt                          state_dict of the whole super-net (rank 0's buffers)
        engine<g>/<tag>/...                  DeepSpeed checkpoint of layer group g (or reference.pt)

Atomicity: everything is written into ``<tag>.tmp/``; after a barrier rank 0 renames it to ``<tag>`` and
then replaces ``latest`` (write-to-temp + ``os.replace``). A process killed at any moment leaves either
the old ``latest`` pointing at a complete directory, or the new one. Stale ``*.tmp`` folders are removed
at the next save or resume. Needs a file system shared by all ranks (one node, or NFS/Lustre).
Loading: :func:`find_latest` returns only a checkpoint whose files match its ``sha256.json``
(one-line CheckpointError naming the file otherwise), and every tensor file is read weights-only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import write_atomic
from .safe_io import (load_tensor_file, read_json_object, remove_stale, save_tensor_file,
                      verify_digests, write_digests)

if TYPE_CHECKING:  # torch is imported by the functions that need it: finding a checkpoint needs none
    import torch

__all__ = ["save_checkpoint", "find_latest", "read_manifest", "load_rng", "fault_point"]


_TAG = re.compile(r"step\d{8,}")


def fault_point(name: str, step: int) -> None:
    """Test-only fault injection: ``LWSL_FAULT=<name>@<step>`` SIGKILLs this process at that point."""
    want = os.environ.get("LWSL_FAULT")
    if want and want == f"{name}@{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def _dist():
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        return td.get_rank(), td.barrier
    return 0, lambda: None


def save_checkpoint(run_dir: str | Path, backend: Any, net: torch.nn.Module, manifest: dict[str, Any],
                    rng_state: dict[str, Any], keep: int = 2) -> Path:
    """Write one checkpoint of ``backend`` (call on every rank); returns the published directory."""
    rank, barrier = _dist()
    root = Path(run_dir) / "checkpoints"
    tag = f"step{int(manifest['step']):08d}"
    tmp, final = root / f"{tag}.tmp", root / tag
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale(root, ["*.tmp"])
        if final.exists():  # re-saving the same step (e.g. end of epoch == max_steps): replace it
            shutil.rmtree(final)
        tmp.mkdir(parents=True)
    barrier()
    backend.save(tmp, tag)
    save_tensor_file(rng_state, tmp / f"rng_rank{rank}.pt")
    barrier()
    fault_point("in_checkpoint", int(manifest["step"]))
    if rank == 0:
        save_tensor_file(net.state_dict(), tmp / "supernet.pt")
        write_atomic(tmp / "manifest.json", json.dumps({**manifest, "tag": tag}, indent=1, sort_keys=True))
        write_digests(tmp)  # last: the folder is complete
        os.replace(tmp, final)
        write_atomic(root / "latest", tag + "\n")
        done = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.endswith(".tmp")
                      and (p / "manifest.json").is_file())
        for old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def find_latest(run_dir: str | Path, verify: bool = True) -> tuple[Path, dict[str, Any]] | None:
    """(directory, manifest) of the newest complete checkpoint, or None; its files are checked against
    ``sha256.json`` first (``verify``), a mismatch raises CheckpointError naming the file."""
    root = Path(run_dir) / "checkpoints"
    latest = root / "latest"
    candidates: list[Path] = []
    if latest.is_file():
        name = latest.read_text(errors="replace").strip()
        if _TAG.fullmatch(name):  # a plain tag only: a pointer like ../../x must not lead out of the run
            candidates.append(root / name)
    if root.is_dir():  # fall back to any complete directory, newest first
        candidates += sorted((p for p in root.iterdir() if p.is_dir() and _TAG.fullmatch(p.name)), reverse=True)
    for d in candidates:
        m = d / "manifest.json"
        if m.is_file():
            if verify:
                verify_digests(d)
            return d, read_manifest(m)
    return None


def read_manifest(path: Path) -> dict[str, Any]:
    """A checkpoint's ``manifest.json``; a corrupt one raises CheckpointError naming it."""
    return read_json_object(path, "checkpoint manifest")


def load_rng(directory: str | Path, rank: int) -> dict[str, Any] | None:
    """RNG states rank ``rank`` saved (None if that rank did not exist, e.g. a resume on more ranks)."""
    p = Path(directory) / f"rng_rank{rank}.pt"
    return load_tensor_file(p) if p.is_file() else None
