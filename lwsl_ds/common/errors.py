"""The project's error kinds that a launcher reports as one line (exit code 2) instead of a traceback.

``ConfigError`` (a bad key or value; re-exported by ``config/schema.py``) lives here because every layer
raises it and ``common`` imports nothing above it; ``DataError`` (a bad data set) lives in ``data/sources.py``.
"""

from __future__ import annotations

import errno

__all__ = ["ConfigError", "CheckpointError", "DiskFullError"]


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, altered, unsafe to load or does not fit this run."""


class DiskFullError(OSError):
    """Writing a run file failed for lack of space (``errno.ENOSPC``); the message names the path."""

    def __init__(self, path: str, detail: str = "") -> None:
        super().__init__(errno.ENOSPC, f"no space left on the device writing {path}" + (f" ({detail})" if detail
                                                                                         else ""), str(path))
