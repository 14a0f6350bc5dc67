"""The project's error kinds that a launcher reports as one line (exit code 2) instead of a traceback.

``ConfigError`` (a bad key or value) lives in ``config/schema.py`` and ``DataError`` (a bad data set) in
``data/sources.py``; the two below are about files a run reads or writes.
"""

from __future__ import annotations

import errno

__all__ = ["CheckpointError", "DiskFullError"]


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, altered, unsafe to load or does not fit this run."""


class DiskFullError(OSError):
    """Writing a run file failed for lack of space (``errno.ENOSPC``); the message names the path."""

    def __init__(self, path: str, detail: str = "") -> None:
        super().__init__(errno.ENOSPC, f"no space left on the device writing {path}" + (f" ({detail})" if detail
                                                                                         else ""), str(path))
