"""Search state on disk: one JSON file, rewritten atomically (common.atomic: tmp + fsync + rename) after every generation."""

from __future__ import annotations

from pathlib import Path

from ..common.atomic import write_json_atomic
from ..common.safe_io import read_json_object, remove_stale

__all__ = ["save_state", "read_state", "rng_to_json", "rng_from_json"]


def save_state(path: str | Path, doc: dict) -> None:
    """Write the state so that a reader (or a resumed run) sees either the old or the new file (compact JSON)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, doc, indent=None)


def read_state(path: str | Path) -> dict | None:
    """The saved state, or None when there is none; a corrupt file is an error naming the file."""
    path = Path(path)
    remove_stale(path.parent, [f"{path.name}.tmp", f"{path.name}.*.tmp"])  # left by writers killed mid-write
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
