"""Reading and writing run files safely: weights-only tensor loads, SHA-256 checkpoint manifests, disk full.

- :func:`load_tensor_file` is the only way the project reads a ``.pt`` file: ``torch.load(weights_only=True)``,
  so a planted pickle payload (``__reduce__``) is refused instead of run. DeepSpeed's own loads go through it
  too (:func:`secure_engine` replaces the engine's checkpoint-engine ``load``); the few DeepSpeed classes its
  ZeRO optimizer files hold (loss scaler, fragment address, stage enum) are allow-listed: the weights-only
  unpickler only fills their fields, it never calls code named by the file.
- :func:`write_digests` records the SHA-256 of every file of a complete checkpoint (``sha256.json``, written
  last); :func:`verify_digests` checks them before anything of it is loaded. This catches truncated, swapped
  or edited files; it is no signature (whoever can rewrite the folder can rewrite ``sha256.json``), the
  weights-only load is what keeps code out.
- :func:`save_tensor_file` turns the ``RuntimeError`` torch raises on a full disk into :class:`DiskFullError`
  naming the path. ``LWSL_FAULT=enospc`` makes it fail that way (tests).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Iterable

from .errors import CheckpointError, DiskFullError

__all__ = ["DIGESTS", "load_tensor_file", "save_tensor_file", "write_digests", "verify_digests", "file_sha256",
           "check_file_sha256", "read_json_object", "secure_engine",
           "remove_stale", "check_space"]

DIGESTS = "sha256.json"


def _short(e: BaseException, n: int = 160) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= n else text[:n] + "..."


def deepspeed_safe_globals() -> list:
    """DeepSpeed classes its checkpoint files hold (ZeRO 1/2 optimizer state); plain data, no behaviour on load."""
    out = []
    try:
        from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address

        out += [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]
    except ImportError:  # no DeepSpeed: nothing of it to allow
        pass
    return out


def load_tensor_file(path: str | Path, map_location: Any = "cpu", extra_globals: Iterable[Any] = ()) -> Any:
    """``torch.load(path, weights_only=True)``; an unsafe, truncated or unreadable file raises CheckpointError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file missing")
    try:
        with torch.serialization.safe_globals(list(extra_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = _short(e).split(" Please file an issue")[0]
        raise CheckpointError(f"{path}: refused to load: it holds Python objects a weights-only load does not "
                              f"allow ({first[:200]}); it was not written by lwsl_ds or was altered") from None
    except (EOFError, RuntimeError, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: cannot read (truncated or corrupt file: {_short(e)})") from None


def check_space(path: str | Path, e: BaseException) -> None:
    """Raise DiskFullError naming ``path`` when ``e`` (raised writing it) comes from a full file system."""
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        raise DiskFullError(str(path)) from None
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return
    if free < 1 << 20 or "iostream error" in str(e) or "failed writing" in str(e):
        raise DiskFullError(str(path), f"{free} bytes free there") from None


def save_tensor_file(obj: Any, path: str | Path, **kwargs: Any) -> None:
    """``torch.save``; a full disk raises :class:`DiskFullError` naming ``path`` (torch's own error does not)."""
    import torch

    if os.environ.get("LWSL_FAULT") == "enospc":
        raise DiskFullError(str(path), "simulated by LWSL_FAULT=enospc")
    try:
        torch.save(obj, path, **kwargs)
    except (RuntimeError, OSError) as e:
        check_space(path, e)
        raise


def read_json_object(path: str | Path, what: str, hint: str = "") -> dict[str, Any]:
    """A JSON object file (manifest, meta, search state); a corrupt one raises CheckpointError naming it."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        return doc
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt {what} ({' '.join(str(e).split())[:120]}){hint}") from None


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of one file, read in 1 MiB blocks."""
    return _sha256(Path(path))


def check_file_sha256(path: Path, marker: Path) -> None:
    """Check ``path`` against the ``sha256`` of a JSON marker written after it (layer-parallel rank files)."""
    try:
        want = json.loads(marker.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise CheckpointError(f"{marker}: missing or without the sha256 of {path.name} (written by an older version "
                              "or incomplete); start a new run (another name=)") from None
    if not path.is_file() or _sha256(path) != want:
        raise CheckpointError(f"{path}: does not match the sha256 in {marker.name} (altered or truncated); "
                              "the checkpoint is not loaded")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# Cost: one read of every checkpoint file at save and at resume (~1 s per GB from the page cache).
def write_digests(directory: str | Path) -> Path:
    """Write ``<directory>/sha256.json``: the digest of every file below it (call once the folder is complete)."""
    directory = Path(directory)
    files = {p.relative_to(directory).as_posix(): _sha256(p) for p in sorted(directory.rglob("*"))
             if p.is_file() and p.name != DIGESTS}
    out = directory / DIGESTS
    from .atomic import write_json_atomic  # atomic.py builds on check_space above

    write_json_atomic(out, {"sha256": files}, sort_keys=True)
    return out


def verify_digests(directory: str | Path) -> None:
    """Check every file of a checkpoint against its ``sha256.json``; raise CheckpointError naming the first misfit."""
    directory = Path(directory)
    listing = directory / DIGESTS
    if not listing.is_file():
        raise CheckpointError(f"{listing}: missing, so the checkpoint cannot be verified (written by an older "
                              "version or incomplete); start a new run (another name=) or restore the file")
    try:
        want = json.loads(listing.read_text(encoding="utf-8"))["sha256"]
        if not isinstance(want, dict):
            raise TypeError("not a mapping")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{listing}: corrupt digest list ({_short(e, 80)})") from None
    for rel, digest in sorted(want.items()):
        p = directory / rel
        if not p.is_file():
            raise CheckpointError(f"{p}: listed in {DIGESTS} but missing; the checkpoint is incomplete or altered")
        if _sha256(p) != digest:
            raise CheckpointError(f"{p}: SHA-256 does not match {listing}; the file was altered or damaged "
                                  "after the checkpoint was written")
    extra = [p for p in directory.rglob("*.pt") if p.relative_to(directory).as_posix() not in want]
    if extra:
        raise CheckpointError(f"{extra[0]}: not listed in {listing}; a tensor file was added after the checkpoint "
                              "was written")


def secure_engine(engine: Any) -> Any:
    """Route a DeepSpeed engine's checkpoint reads through :func:`load_tensor_file` and writes through
    :func:`save_tensor_file` (DeepSpeed 0.19.8 loads with ``weights_only=False``)."""
    ce = getattr(engine, "checkpoint_engine", None)
    if ce is None:
        raise RuntimeError("this DeepSpeed engine has no checkpoint_engine; cannot make its loads weights-only")
    allowed = deepspeed_safe_globals()
    zipfile = getattr(ce, "zipfile_serialization", True)

    def load(path: str, map_location: Any = None) -> Any:
        return load_tensor_file(path, map_location=map_location, extra_globals=allowed)

    def save(state_dict: Any, path: str) -> None:
        save_tensor_file(state_dict, path, _use_new_zipfile_serialization=zipfile)

    ce.load = load
    ce.save = save
    return engine


def remove_stale(folder: str | Path, patterns: Iterable[str]) -> list[Path]:
    """Delete leftovers of killed writers (``*.tmp`` files/folders) in ``folder``; returns what was removed."""
    folder = Path(folder)
    gone: list[Path] = []
    if not folder.is_dir():
        return gone
    for pattern in patterns:
        for p in folder.glob(pattern):
            try:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
                gone.append(p)
            except OSError:
                pass
    return gone
