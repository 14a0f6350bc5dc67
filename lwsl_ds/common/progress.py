"""Progress of a long loop: a tqdm bar with ETA in a terminal, plain periodic lines when piped.

Piped output (a log file, Slurm, the deepspeed launcher's pipes) gets one line per 10% of the work or
per ``every_s`` seconds, whichever comes first, never carriage returns.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

__all__ = ["Progress", "format_seconds"]


def format_seconds(s: float) -> str:
    """3725 -> '1:02:05'."""
    s = max(0, int(round(s)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """``update(n, loss=...)`` per step; ``close()`` at the end; disabled when ``enabled`` is false."""

    def __init__(self, total: int, *, initial: int = 0, desc: str = "train", enabled: bool = True,
                 tty: Optional[bool] = None, every_s: float = 60.0, stream: Optional[TextIO] = None) -> None:
        self.total, self.done, self.desc, self.enabled = total, initial, desc, enabled
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.every_s, self.start_step = every_s, initial
        self.t0 = self.last_t = time.monotonic()
        self.last_step = initial
        self.bar = None
        if enabled and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=self.stream)

    def update(self, n: int = 1, **postfix: float) -> None:
        """Advance by ``n`` steps; the postfix values (e.g. loss) are shown with the bar or line."""
        if not self.enabled:
            return
        self.done += n
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        tenth = max(1, self.total // 10)
        if self.done >= self.total or now - self.last_t >= self.every_s or self.done - self.last_step >= tenth:
            self._line(now, postfix)

    def _line(self, now: float, postfix: dict) -> None:
        rate = (self.done - self.start_step) / max(now - self.t0, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        extra = "".join(f", {k} {v:.4g}" for k, v in postfix.items())
        eta_text = format_seconds(eta) if eta == eta else "?"
        print(f"{self.desc}: step {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.0f}%), "
              f"{rate:.2f} steps/s, elapsed {format_seconds(now - self.t0)}, ETA {eta_text}{extra}",
              file=self.stream, flush=True)
        self.last_t, self.last_step = now, self.done

    def close(self) -> None:
        """Close the bar (a terminal) or print the last line if it was not printed (piped)."""
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done != self.last_step:
            self._line(time.monotonic(), {})
