"""Atomic file writes: the one way the package replaces a file, so a crash never leaves half a file behind.

Every write goes to ``<name>.tmp`` beside the target, is flushed and fsynced, then ``os.replace``-d over
the target (atomic on POSIX within one file system). A full disk raises :class:`DiskFullError` naming
the file; the temporary file is removed on any failure. Cost: one fsync per file (milliseconds on a
local disk, more on network file systems), paid for manifests, markers and reports, which are small.

    from lwsl_ds.common.atomic import atomic_path, write_atomic, write_json_atomic
    write_json_atomic(run / "ranking.json", result)
    with atomic_path(run / "supernet.pt") as tmp:   # for writers that want a path (torch.save, PIL)
        torch.save(state, tmp)
"""

from __future__ import annotations

import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .safe_io import check_space

__all__ = ["atomic_path", "write_atomic", "write_json_atomic"]


def _simulated_enospc(path: Path) -> None:
    """``LWSL_FAULT=enospc`` makes every write fail as on a full disk (the reliability tests use it)."""
    if os.environ.get("LWSL_FAULT") == "enospc":
        raise OSError(errno.ENOSPC, "simulated by LWSL_FAULT=enospc", str(path))


@contextmanager
def atomic_path(path: str | Path, fsync: bool = True, per_process: bool = False,
                keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it replaces ``path``, on an error it is removed.

    ``per_process``: the temporary name carries the pid, for files several ranks may write at once (the
    last rename wins, each complete). ``keep_suffix``: ``<stem>.tmp<suffix>``, for writers that insist on
    the suffix (``torch.export.save`` wants ``.pt2``).
    """
    path = Path(path)
    tag = f"{os.getpid()}.tmp" if per_process else "tmp"
    tmp = path.with_name(f"{path.stem}.{tag}{path.suffix}" if keep_suffix else f"{path.name}.{tag}")
    try:
        _simulated_enospc(tmp)
        yield tmp
        if fsync and tmp.is_file():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, (OSError, RuntimeError)):
            check_space(path, e)
        raise


def write_atomic(path: str | Path, text: str, per_process: bool = False) -> None:
    """Write ``text`` to ``path`` atomically (temporary file, fsync, rename)."""
    with atomic_path(path, per_process=per_process) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, obj: Any, indent: int | None = 1, per_process: bool = False,
                      **dump_kw: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically."""
    write_atomic(path, json.dumps(obj, indent=indent, **dump_kw), per_process=per_process)
