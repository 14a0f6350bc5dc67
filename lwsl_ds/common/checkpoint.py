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

Retraining checkpoints are published the same way under other names (:data:`RETRAIN`:
``step_<N>/meta.json``, ``rank<r>.pt``, temporary folder ``.tmp-step_<N>``); one :class:`Layout` per kind,
one implementation (:func:`publish`, :func:`find_latest`, :func:`list_checkpoints`) for both.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .atomic import write_atomic
from .errors import CheckpointError
from .safe_io import (load_tensor_file, read_json_object, remove_stale, save_tensor_file,
                      verify_digests, write_digests)

if TYPE_CHECKING:  # torch is imported by the functions that need it: finding a checkpoint needs none
    import torch

__all__ = ["Layout", "SUPERNET", "RETRAIN", "checkpoint_dir", "publish", "save_checkpoint", "find_latest",
           "list_checkpoints", "read_checkpoint", "read_manifest", "load_rng", "fault_point"]


@dataclass(frozen=True)
class Layout:
    """The names of one kind of checkpoint folder (tag, manifest, per-rank RNG file, temporary folder)."""

    prefix: str  # tag of step N: prefix + N in 8+ digits
    manifest: str
    rng: str  # per-rank RNG file, "{rank}" filled in
    tmp: str  # temporary folder of a tag, "{tag}" filled in
    stale: tuple[str, ...]  # leftovers of a save killed half-way (glob patterns under checkpoints/)

    def tag(self, step: int) -> str:
        """The folder name of step ``step``."""
        return f"{self.prefix}{int(step):08d}"

    def step_of(self, name: str) -> int | None:
        """The step of a published folder name, None for any other name."""
        m = re.fullmatch(re.escape(self.prefix) + r"(\d{8,})", name)
        return int(m.group(1)) if m else None


SUPERNET = Layout("step", "manifest.json", "rng_rank{rank}.pt", "{tag}.tmp", ("*.tmp",))
RETRAIN = Layout("step_", "meta.json", "rank{rank}.pt", ".tmp-{tag}", (".tmp-*", "latest.tmp"))


def fault_point(name: str, step: int) -> None:
    """Test-only fault injection: ``LWSL_FAULT=<name>@<step>`` SIGKILLs this process at that point."""
    want = os.environ.get("LWSL_FAULT")
    if want and want == f"{name}@{step}":
        os.kill(os.getpid(), signal.SIGKILL)


def checkpoint_dir(run_dir: str | Path) -> Path:
    """``<run dir>/checkpoints``."""
    return Path(run_dir) / "checkpoints"


def _fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (best effort: some file systems refuse to open a folder)."""
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


def publish(run_dir: str | Path, manifest: dict[str, Any], rng_state: dict[str, Any],
            write_rank: Callable[[Path, str], None], write_main: Callable[[Path], None], *, keep: int,
            layout: Layout = SUPERNET) -> Path:
    """Write checkpoint ``manifest["step"]`` atomically; a collective (call on every rank with the same step).

    Every rank runs ``write_rank(tmp, tag)`` (its engine shards) and saves ``rng_state``; then rank 0 runs
    ``write_main(tmp)`` (plain weight files), writes the manifest and ``sha256.json``, renames the folder,
    points ``latest`` at it and keeps the newest ``keep`` checkpoints.
    """
    from .dist import barrier, group_rank

    rank, root = group_rank(), checkpoint_dir(run_dir)
    tag = layout.tag(manifest["step"])
    tmp, final = root / layout.tmp.format(tag=tag), root / tag
    if rank == 0:
        root.mkdir(parents=True, exist_ok=True)
        remove_stale(root, layout.stale)  # a previous save that died half-way
        tmp.mkdir(parents=True)
    barrier()
    write_rank(tmp, tag)
    save_tensor_file(rng_state, tmp / layout.rng.format(rank=rank))
    barrier()  # every rank's files are in tmp before it becomes visible
    fault_point("in_checkpoint", int(manifest["step"]))
    if rank == 0:
        write_main(tmp)
        write_atomic(tmp / layout.manifest, json.dumps({**manifest, "tag": tag}, indent=1, sort_keys=True))
        write_digests(tmp)  # last: the folder is complete
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. end of epoch == max_steps): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(root)
        write_atomic(root / "latest", tag + "\n")
        for old in list_checkpoints(run_dir, layout)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def save_checkpoint(run_dir: str | Path, backend: Any, net: torch.nn.Module, manifest: dict[str, Any],
                    rng_state: dict[str, Any], keep: int = 2) -> Path:
    """Write one super-net checkpoint of ``backend`` (call on every rank); returns the published directory."""
    return publish(run_dir, manifest, rng_state, backend.save,
                   lambda tmp: save_tensor_file(net.state_dict(), tmp / "supernet.pt"), keep=keep)


def list_checkpoints(run_dir: str | Path, layout: Layout = SUPERNET) -> list[Path]:
    """Published checkpoints (with a manifest) of the run, oldest first; their files are not checked."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(step, p) for p in root.iterdir() if (step := layout.step_of(p.name)) is not None
             and (p / layout.manifest).is_file()]
    return [p for _, p in sorted(found)]


def find_latest(run_dir: str | Path, verify: bool = True,
                layout: Layout = SUPERNET) -> tuple[Path, dict[str, Any]] | None:
    """(directory, manifest) of the newest complete checkpoint, or None; its files are checked against
    ``sha256.json`` first (``verify``), a mismatch raises CheckpointError naming the file."""
    root = checkpoint_dir(run_dir)
    latest = root / "latest"
    candidates: list[Path] = []
    if latest.is_file():
        name = latest.read_text(errors="replace").strip()
        if layout.step_of(name) is not None:  # a plain tag only: a pointer like ../../x must not lead out of the run
            candidates.append(root / name)
    candidates += list_checkpoints(run_dir, layout)[::-1]  # fall back to any complete directory, newest first
    for d in candidates:
        if (d / layout.manifest).is_file():
            return d, read_checkpoint(d, verify, layout)
    return None


def read_checkpoint(directory: str | Path, verify: bool = True, layout: Layout = SUPERNET) -> dict[str, Any]:
    """The manifest of a published checkpoint, after checking its files against ``sha256.json`` (``verify``)."""
    path = Path(directory) / layout.manifest
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a complete checkpoint (no {layout.manifest})")
    if verify:
        verify_digests(directory)
    return read_manifest(path)


def read_manifest(path: Path) -> dict[str, Any]:
    """A checkpoint's manifest (``manifest.json``, ``meta.json``); a corrupt one raises CheckpointError naming it."""
    return read_json_object(path, "checkpoint manifest")


def load_rng(directory: str | Path, rank: int, layout: Layout = SUPERNET) -> dict[str, Any] | None:
    """RNG states rank ``rank`` saved (None if that rank did not exist, e.g. a resume on more ranks)."""
    p = Path(directory) / layout.rng.format(rank=rank)
    return load_tensor_file(p) if p.is_file() else None
