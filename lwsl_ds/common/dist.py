"""Process-group set-up shared by every launcher: one call, a bounded timeout, three helpers.

Example (the same line works under ``python``, ``deepspeed``, ``torchrun`` and ``srun``)::

    from lwsl_ds.common import dist
    env = dist.init_distributed(timeout_s=300)   # gloo on CPU, nccl on GPU, via deepspeed
    if dist.is_main():
        print("world", dist.world().world_size)
    dist.barrier()

Why the timeout matters: when one rank dies or hangs, its peers block in the next collective.
The process group is created with ``timeout_s``, so they raise after at most that long instead of
the 10-30 min defaults, the process exits non-zero and the launcher (``srun --kill-on-bad-exit``,
``deepspeed``) ends the job. A rank that *exits* usually breaks its peers' TCP connections at once;
the timeout covers the rank that hangs. Set it above the longest gap between two collectives
(a checkpoint write, an evaluation on rank 0 only).
"""

from __future__ import annotations

import os
from datetime import timedelta

from .launch_env import LaunchEnv, detect, resolve

__all__ = ["init_distributed", "world", "is_main", "barrier", "shutdown", "device"]

_ENV: LaunchEnv | None = None


def init_distributed(timeout_s: float = 600.0) -> LaunchEnv:
    """Export the rank variables, pick the device, create the process group once; returns this rank's place."""
    global _ENV
    if timeout_s <= 0:
        raise ValueError(f"timeout_s={timeout_s} must be > 0")
    import torch
    import torch.distributed as td

    if _ENV is not None and td.is_initialized():
        return _ENV
    env = resolve()
    if torch.cuda.is_available():
        # One task per GPU with --gpus-per-task sees a single device: local_rank % count maps both
        # that and the "all GPUs visible" case to the right device.
        torch.cuda.set_device(env.local_rank % torch.cuda.device_count())
        # Without async error handling NCCL ignores the timeout and a dead peer hangs forever.
        os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
    import deepspeed

    deepspeed.init_distributed(auto_mpi_discovery=False, verbose=False, timeout=timedelta(seconds=timeout_s))
    _ENV = env
    return env


def world() -> LaunchEnv:
    """This process's place in the job (read from the environment before ``init_distributed``)."""
    return _ENV if _ENV is not None else detect()


def is_main() -> bool:
    """True on global rank 0 (the rank that logs, writes reports and exports)."""
    return world().rank == 0


def barrier() -> None:
    """Wait for every rank; a no-op when no process group exists (a single plain process)."""
    import torch.distributed as td

    if td.is_available() and td.is_initialized() and td.get_world_size() > 1:
        td.barrier()


def device():
    """The torch device this rank computes on (``cuda:<i>`` after init on a GPU machine, else cpu)."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def shutdown() -> None:
    """Destroy the process group (call once at the end so gloo/nccl exit without warnings)."""
    global _ENV
    import torch.distributed as td

    if td.is_available() and td.is_initialized():
        td.destroy_process_group()
    _ENV = None
