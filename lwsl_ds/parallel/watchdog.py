"""Ends this process when training stops making progress (a dead or hung peer), within a bounded time.

A killed peer usually breaks gloo/NCCL connections at once and the blocked operation raises; a *hung*
peer (stuck in compute, stopped, partitioned) does not. The watchdog covers that case: if no step
finished for ``timeout_s``, it prints why to stderr and calls ``os._exit`` (no clean-up that could block
on the process group). Before the first ``beat`` the limit is ``timeout_s + startup_s``: the first step of
a downstream group also waits for every upstream group's start-up and first step. Cost: one sleeping
daemon thread.
"""

from __future__ import annotations

import os
import sys
import threading
import time

__all__ = ["Watchdog"]


class Watchdog:
    """``beat()`` after every step; ``stop()`` at the end. Exits the process with ``code`` on a stall."""

    def __init__(self, timeout_s: float, what: str = "layer-parallel training", code: int = 3,
                 startup_s: float | None = None) -> None:
        self.timeout_s, self.what, self.code = float(timeout_s), what, code
        self._limit = self.timeout_s + (self.timeout_s if startup_s is None else float(startup_s))
        self._last = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="lwsl-watchdog", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """Record progress."""
        self._last = time.monotonic()
        self._limit = self.timeout_s

    def _watch(self) -> None:
        while not self._done.wait(min(1.0, self.timeout_s / 4)):
            idle = time.monotonic() - self._last
            if idle > self._limit:
                sys.stderr.write(f"[lwsl watchdog] {self.what}: no progress for {idle:.0f} s (> limit "
                                 f"{self._limit:.0f} s); a peer rank is dead or hung; exiting with code "
                                 f"{self.code}\n")
                sys.stderr.flush()
                os._exit(self.code)

    def stop(self) -> None:
        """Stop watching (training ended)."""
        self._done.set()
