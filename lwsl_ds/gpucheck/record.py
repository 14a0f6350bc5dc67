"""What every check shares: its result file (rewritten after each item), error lines, child processes.

A check runs as ``python -m lwsl_ds.gpucheck.<name>_check --params P --result R``. It appends one item per
measurement to R as soon as the item is done, so a check killed at its time limit still leaves what it had
measured. An item has a ``status``: ``ok``, ``skipped`` (with ``reason``) or ``failed`` (with ``error``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator
from ..common.atomic import write_json_atomic

_LIVE: set[int] = set()  # process groups started by run_child and not finished yet

__all__ = ["Result", "error_line", "check_main", "run_child", "last_line", "free_port", "cuda_reason", "python"]


def error_line(e: BaseException) -> str:
    """One line naming the exception: type and the first line of its message (at most 300 characters)."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:300]


def cuda_reason() -> str | None:
    """None when a CUDA device can be used, else why not (the reason every GPU item is skipped with)."""
    from ..memory.cuda import cuda_available_reason

    return cuda_available_reason()


class Result:
    """The result document of one check: parameters, items, extra fields; saved atomically on every change."""

    def __init__(self, path: Path, params: dict[str, Any]) -> None:
        self.path = path
        self.doc: dict[str, Any] = {"params": params, "items": []}
        self.save()

    def save(self) -> None:
        """Write the document (temp file + rename: a reader never sees half a file)."""
        write_json_atomic(self.path, self.doc, default=str)

    def add(self, **item: Any) -> dict[str, Any]:
        """Append an item and save; returns it (later updates need another ``save``)."""
        self.doc["items"].append(item)
        self.save()
        return item

    def skip(self, reason: str, **ident: Any) -> dict[str, Any]:
        """Append a skipped item with its reason."""
        return self.add(**ident, status="skipped", reason=reason)

    def set(self, **fields: Any) -> None:
        """Set top-level fields and save."""
        self.doc.update(fields)
        self.save()

    @contextlib.contextmanager
    def item(self, **ident: Any) -> Iterator[dict[str, Any]]:
        """Run a measurement: the yielded dict is filled by the caller; an exception becomes ``failed``."""
        rec: dict[str, Any] = dict(ident)
        t0 = time.perf_counter()
        try:
            yield rec
            rec.setdefault("status", "ok")
        except Exception as e:  # recorded, and the next item still runs
            rec.update(status="failed", error=error_line(e))
        rec["seconds"] = round(time.perf_counter() - t0, 2)
        self.add(**rec)


def check_main(run: Callable[[dict[str, Any], Result], None], argv: list[str] | None = None) -> int:
    """Entry point of a check module: read ``--params`` JSON, run, write ``--result``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=Path, required=True)
    ap.add_argument("--result", type=Path, required=True)
    a = ap.parse_args(argv)
    params = json.loads(a.params.read_text())
    signal.signal(signal.SIGTERM, _end_children)  # the runner's limit: take our runs down with us
    result = Result(a.result, params)
    run(params, result)
    return 0


def _end_children(signum: int, frame: Any) -> None:
    """SIGTERM handler: kill the process groups of our own runs (they live in their own sessions), exit."""
    for pgid in list(_LIVE):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    os._exit(128 + signum)


def run_child(cmd: list[str], log: Path, timeout_s: float, *, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> tuple[int | None, float]:
    """Run ``cmd`` in its own process group, output to ``log``; kill the group at ``timeout_s``.

    Returns (exit code or None on timeout, seconds). A new session lets the whole tree (the deepspeed
    launcher and its ranks) be ended by group id without touching any other process.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as out:
        out.write("+ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                start_new_session=True)
        _LIVE.add(proc.pid)
        try:
            rc: int | None = proc.wait(timeout=max(timeout_s, 1.0))
        except subprocess.TimeoutExpired:
            rc = None
            for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            with contextlib.suppress(ProcessLookupError):  # ranks still finishing a SIGTERM checkpoint
                os.killpg(proc.pid, signal.SIGKILL)
        finally:
            _LIVE.discard(proc.pid)
    return rc, time.perf_counter() - t0


def last_line(log: Path, skip: tuple[str, ...] = ()) -> str:
    """The last non-empty line of a log that looks like an error (else the last line), for the report."""
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return f"no log at {log}"
    lines = [ln for ln in lines if not ln.startswith(skip)]
    for ln in reversed(lines):
        if "Error" in ln or ln.startswith("error:"):
            return ln[:300]
    return lines[-1][:300] if lines else "(empty log)"


def free_port() -> int:
    """A TCP port free right now (each launch gets its own: no clash with a port still in TIME_WAIT)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def python() -> str:
    """The interpreter running this check (children use the same one)."""
    return sys.executable
