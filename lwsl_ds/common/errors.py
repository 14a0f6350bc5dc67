"""The project's error kinds that a launcher reports as one line (exit code 2) instead of a traceback.

``ConfigError`` (a bad key or value; re-exported by ``config/schema.py``) and ``DataError`` (a bad data
set; re-exported by ``data/sources.py``) live here because ``common.entry`` sorts them and ``common``
imports nothing above it.
"""

from __future__ import annotations

import errno

__all__ = ["ConfigError", "DataError", "CheckpointError", "DiskFullError"]


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, altered, unsafe to load or does not fit this run."""


class DiskFullError(OSError):
    """Writing a run file failed for lack of space (``errno.ENOSPC``); the message names the path."""

    def __init__(self, path: str, detail: str = "") -> None:
        super().__init__(errno.ENOSPC, f"no space left on the device writing {path}" + (f" ({detail})" if detail
                                                                                         else ""), str(path))


class DataError(RuntimeError):
    """The data on disk does not match what the config describes, or an image cannot be read."""

    def one_line(self) -> str:
        """The message on one line: a DataLoader worker re-raises it with the worker's traceback appended."""
        text = str(self).strip()
        if "Original Traceback" in text:  # "Caught DataError in DataLoader worker ...": keep the original line
            text = text.splitlines()[-1].split("DataError: ", 1)[-1]
        return text.splitlines()[0] if text else type(self).__name__
