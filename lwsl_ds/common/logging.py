"""Logging: rank-aware console/file logs and an append-only JSON-lines metrics writer."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["setup_logging", "get_logger", "JsonlWriter", "read_jsonl"]


def get_logger(name: str = "lwsl_ds") -> logging.Logger:
    """The toolkit's logger (child loggers share its handlers)."""
    return logging.getLogger(name)


def setup_logging(rank: int = 0, log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Rank 0 logs INFO to stdout (and ``log_file``); other ranks only warnings, prefixed with their rank."""
    log = get_logger()
    log.handlers.clear()
    log.propagate = False
    log.setLevel(level if rank == 0 else logging.WARNING)
    fmt = logging.Formatter(f"%(asctime)s [rank{rank}] %(levelname)s %(message)s", "%H:%M:%S")
    h = logging.StreamHandler(sys.stdout)
    h.setFormatter(fmt)
    log.addHandler(h)
    if log_file is not None and rank == 0:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(fmt)
        log.addHandler(fh)
    return log


class JsonlWriter:
    """Append one JSON object per line and flush, so a killed run keeps every line written so far."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Write one record."""
        self._f.write(json.dumps(record, sort_keys=True) + "\n")
        self._f.flush()

    def close(self) -> None:
        """Close the file."""
        self._f.close()


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every record a ``JsonlWriter`` wrote to ``path``; [] when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
