"""Search state on disk: one JSON file, rewritten atomically (tmp + fsync + rename) after every generation."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from ..common.safe_io import check_space, read_json_object, remove_stale

__all__ = ["write_json_atomic", "read_state", "rng_to_json", "rng_from_json"]


def write_json_atomic(path: str | Path, doc: Any) -> None:
    """Write ``doc`` as JSON so that a reader (or a resumed run) sees either the old or the new file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        if os.environ.get("LWSL_FAULT") == "enospc":
            raise OSError(errno.ENOSPC, "simulated by LWSL_FAULT=enospc", str(tmp))
        with tmp.open("w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())  # a kill right after the rename must not leave an empty file behind
    except OSError as e:
        tmp.unlink(missing_ok=True)
        check_space(path, e)
        raise
    os.replace(tmp, path)


def read_state(path: str | Path) -> dict | None:
    """The saved state, or None when there is none; a corrupt file is an error naming the file."""
    path = Path(path)
    remove_stale(path.parent, [f"{path.name}.*.tmp"])  # left by writers killed mid-write
    if not path.is_file():
        return None
    return read_json_object(path, "search state", "; run again with --restart to start the search over")


def rng_to_json(state: tuple) -> list:
    """``random.Random.getstate()`` as JSON-able lists."""
    version, internal, gauss = state
    return [version, list(internal), gauss]


def rng_from_json(doc: list) -> tuple:
    """Inverse of :func:`rng_to_json`."""
    version, internal, gauss = doc
    return (version, tuple(internal), gauss)
