"""One error path for every launcher: the project's errors become one line on stderr and exit code 2.

Usage, as the last line of a launcher::

    if __name__ == "__main__":
        run_main(main)

Reported as ``error: <message>`` (exit 2, no traceback): config errors (:class:`ConfigError`), data errors
(``DataError``), checkpoint errors (:class:`CheckpointError`), file-system errors (``OSError``: missing,
read-only, not a directory, disk full - the message names the path) and a collective that timed out
because a peer rank stopped (the message names the rank, see ``dist.describe_peer_failure``). A
non-finite loss exits 3 as before. Anything else is a bug and keeps its traceback. ``--debug`` (removed
from the command line before the launcher parses it) or ``LWSL_DEBUG=1`` prints the traceback too.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable, NoReturn

__all__ = ["run_main", "describe_error", "exit_code_of"]

_MAX = 600  # characters of one error line: a message never prints a huge value


def _one_line(text: str) -> str:
    text = str(text)
    if "Original Traceback" in text:  # re-raised from a DataLoader worker: keep the worker's own error line
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith("Error") else last
    text = " ".join(text.split())
    return text if len(text) <= _MAX else text[:_MAX] + " ..."


def _is_collective_failure(e: BaseException) -> bool:
    name = type(e).__name__
    text = str(e)
    return name in ("DistBackendError", "DistNetworkError", "DistStoreError") or (
        isinstance(e, RuntimeError) and any(s in text for s in ("Timed out waiting", "Connection closed by peer",
                                                                "Connection reset by peer", "[gloo", "gloo/")))


def describe_error(e: BaseException) -> tuple[str, int] | None:
    """(one-line message, exit code) for an error the user can fix, None for a bug (keeps its traceback)."""
    from .errors import CheckpointError, ConfigError, DataError, DiskFullError

    kind = type(e).__name__
    if kind == "NonFiniteLossError":
        return _one_line(str(e)), 3
    if isinstance(e, (ConfigError, CheckpointError, DataError)):
        return _one_line(str(e)), 2
    if isinstance(e, UnicodeDecodeError):
        return _one_line(f"a file is not UTF-8 text ({e})"), 2
    if isinstance(e, DiskFullError):
        return _one_line(f"{e.strerror}; free space there, then run the same command with --resume"), 2
    if isinstance(e, OSError):
        import errno

        path = e.filename or ""
        what = {errno.ENOSPC: "no space left on the device; free space, then resume with the same command",
                errno.EROFS: "read-only file system; choose a writable run_root / --out / --run_dir",
                errno.EACCES: "permission denied", errno.ENOTDIR: "a path component is a file, not a folder",
                errno.EEXIST: "exists already", errno.EISDIR: "is a folder, not a file",
                errno.ENOENT: "no such file or folder"}.get(e.errno)
        msg = f"{path}: {what or e.strerror or e}" if path else f"{what or e}"
        return _one_line(msg), 2
    if _is_collective_failure(e):
        from .dist import describe_peer_failure

        return _one_line(describe_peer_failure(e)), 2
    return None


def exit_code_of(run: Callable[[], int | None]) -> int:
    """``run()``'s exit code; a config or data error prints one ``error:`` line and returns 2 instead.

    For a launcher's ``main(argv)``, which tests and benchmarks call in-process: they get 2, not an exception.
    Everything else propagates to :func:`run_main` (a collective failure must exit without clean-up there).
    """
    from .errors import ConfigError, DataError

    try:
        return run() or 0
    except (ConfigError, DataError) as e:
        print(f"error: {_one_line(str(e))}", file=sys.stderr, flush=True)
        return 2


def run_main(main: Callable[[], int | None]) -> NoReturn:
    """Run a launcher's ``main()`` and exit: its code, or one ``error:`` line and 2 for a known error."""
    debug = os.environ.get("LWSL_DEBUG", "") not in ("", "0")
    if "--debug" in sys.argv[1:]:
        debug = True
        sys.argv = [a for a in sys.argv if a != "--debug"]
    try:
        code = main()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except BaseException as e:  # noqa: BLE001 - sorted into "user can fix" and "bug" below
        found = describe_error(e)
        if found is None or debug:
            traceback.print_exc()
        if found is None:  # a bug: traceback, then exit without process-group clean-up that could hang
            sys.stderr.flush()
            os._exit(1)
        msg, code = found
        where = f"rank {os.environ.get('RANK')}: " if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1 else ""
        print(f"error: {where}{msg}", file=sys.stderr, flush=True)
        # os._exit: a rank whose peer hangs must not block again in process-group clean-up at exit.
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code or 0)
