"""Preemption: a signal sets a flag, the training loop checkpoints, the job requeues and later resumes.

Slurm sends ``SIGUSR1`` ahead of the time limit with ``#SBATCH --signal=USR1@120`` (or on demand with
``scancel --signal=USR1 <job>``) and ``SIGTERM`` before killing a job. The handler only sets a flag:
doing I/O inside a signal handler while the main thread is half-way through a collective would
deadlock the ranks. The loop polls :meth:`Preemption.should_stop` once per step; the flag is
all-reduced (max) so every rank stops after the *same* step even when only some ranks got the
signal, then the caller writes its checkpoint and calls :meth:`Preemption.requeue_and_exit`.
The requeued job runs the same batch script again (same job id, ``SLURM_RESTART_COUNT`` > 0) and the
launcher resumes from the latest checkpoint of the run directory.

Example::

    pre = Preemption.install()
    for step in range(start, steps):
        train_step(...)
        if pre.should_stop():
            save_checkpoint(...)
            pre.requeue_and_exit()

Cost: one all-reduce of a single int per poll (tens of microseconds with gloo on one node).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import NoReturn

from .dist import barrier, group_rank, has_group, is_multi_rank

__all__ = ["Preemption", "requeue_job"]

DEFAULT_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)


class Preemption:
    """Owner of the preemption flag; create it with :meth:`install`."""

    def __init__(self, signals: tuple[int, ...] = DEFAULT_SIGNALS) -> None:
        self.signals = tuple(signals)
        self.received: int | None = None  # the first signal number seen, or None
        self._previous: dict[int, object] = {}  # handlers before install(), for uninstall()

    @classmethod
    def install(cls, signals: tuple[int, ...] = DEFAULT_SIGNALS) -> "Preemption":
        """Install handlers for ``signals`` (main thread only) and return the flag owner."""
        self = cls(signals)
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def uninstall(self) -> None:
        """Put back the handlers found by :meth:`install`; a signal already received is delivered again.

        For code paths that do not poll the flag (e.g. layer-parallel training): there a swallowed
        signal would only delay the kill, so they get the signals' previous behaviour back.
        """
        for sig, old in self._previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        self._previous = {}
        if self.received is not None:
            signal.raise_signal(self.received)

    @property
    def signal_name(self) -> str | None:
        """Name of the first signal this process received (``'SIGUSR1'``), or None."""
        return signal.Signals(self.received).name if self.received is not None else None

    def _handle(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signum
            # os.write, not print: the signal may land while the main thread is inside a buffered
            # stderr write (logging, progress bar), and print would then raise "reentrant call".
            msg = (f"[preemption] rank {os.environ.get('RANK', '0')} got {signal.Signals(signum).name}: "
                   "will checkpoint and stop at the next step (generation) boundary\n")
            try:
                os.write(2, msg.encode())
            except OSError:
                pass

    @property
    def requested(self) -> bool:
        """True once this process received one of the signals (no communication)."""
        return self.received is not None

    def should_stop(self) -> bool:
        """True on every rank when any rank received a signal; a collective: call it on all ranks."""
        import torch.distributed as td

        local = self.requested
        if not is_multi_rank():
            return local
        import torch

        backend = td.get_backend()
        dev = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
        flag = torch.tensor([1 if local else 0], dtype=torch.int32, device=dev)
        td.all_reduce(flag, op=td.ReduceOp.MAX)
        return bool(flag.item())

    def requeue_and_exit(self, code: int = 0) -> NoReturn:
        """After the checkpoint is written: wait for all ranks, requeue the Slurm job from rank 0, exit.

        Outside Slurm there is nothing to requeue: the process just exits with ``code``, and the next
        manual run resumes from the checkpoint.
        """
        barrier()  # every rank's checkpoint shard is on disk before the job is killed
        rank = group_rank() if has_group() else int(os.environ.get("RANK", "0"))
        if rank == 0:
            requeue_job()
        sys.stdout.flush()
        sys.stderr.flush()
        # No destroy_process_group: peers may already be gone (requeue kills the job) and a
        # teardown collective could block; the OS closes the sockets.
        os._exit(code)


def requeue_job(job_id: str | None = None) -> bool:
    """``scontrol requeue <job>`` for the current Slurm job; False (and a message) outside Slurm or on error."""
    job = job_id or os.environ.get("SLURM_JOB_ID")
    if not job:
        print("[preemption] not a Slurm job: exiting without requeue; rerun to resume", file=sys.stderr)
        return False
    try:
        out = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"[preemption] scontrol requeue {job} failed: {e}", file=sys.stderr)
        return False
    if out.returncode != 0:
        print(f"[preemption] scontrol requeue {job} failed ({out.returncode}): {out.stderr.strip()}",
              file=sys.stderr)
        return False
    print(f"[preemption] requeued Slurm job {job}", file=sys.stderr, flush=True)
    return True
