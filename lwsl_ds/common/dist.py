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

Every group carries it, not only the world group: DeepSpeed creates its data-parallel groups with
``torch.distributed.new_group(ranks)`` and no timeout, which falls back to torch's 30-minute default, so
a rank stopped inside ZeRO's gradient-norm all-reduce used to hang its peers for half an hour. The
default for groups created without one (``distributed_c10d.default_pg_timeout``) is therefore set to
``timeout_s`` too. To name the rank that stopped, each rank bumps a counter in the rendezvous store every
second (one daemon thread, one small store request a second); after a timed-out collective
:func:`describe_peer_failure` reports the ranks whose counter no longer moves.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta

from .launch_env import LaunchEnv, detect, resolve

__all__ = ["init_distributed", "world", "is_main", "barrier", "shutdown", "device", "describe_peer_failure",
           "has_group", "group_size", "group_rank", "is_multi_rank", "set_cpu_threads", "check_divides"]

_ENV: LaunchEnv | None = None
_TIMEOUT_S: float | None = None
_BEAT_S = 1.0  # heartbeat period
_BEAT_STOP = threading.Event()


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

    global _TIMEOUT_S
    from torch.distributed import distributed_c10d

    timeout = timedelta(seconds=timeout_s)
    # Groups created later without a timeout (DeepSpeed's data-parallel groups) get this one, not 30 min.
    distributed_c10d.default_pg_timeout = timeout
    if hasattr(distributed_c10d, "default_pg_nccl_timeout"):
        distributed_c10d.default_pg_nccl_timeout = timeout
    deepspeed.init_distributed(auto_mpi_discovery=False, verbose=False, timeout=timeout)
    _ENV, _TIMEOUT_S = env, float(timeout_s)
    if td.get_world_size() > 1:
        _start_heartbeat(td.get_rank())
    return env


def _store():
    from torch.distributed import distributed_c10d

    return distributed_c10d._get_default_store()


def _start_heartbeat(rank: int) -> None:
    """Bump ``lwsl/beat/<rank>`` in the rendezvous store every second until shutdown (a stopped rank stops)."""
    store = _store()
    _BEAT_STOP.clear()

    def beat() -> None:
        while not _BEAT_STOP.wait(_BEAT_S):
            try:
                store.add(f"lwsl/beat/{rank}", 1)
            except Exception:  # noqa: BLE001 - the store host is gone: the collective's own error reports it
                return

    threading.Thread(target=beat, name="lwsl-heartbeat", daemon=True).start()


def describe_peer_failure(error: BaseException) -> str:
    """One line for a collective that failed or timed out: which ranks stopped beating, and what to do."""
    import torch.distributed as td

    first = " ".join(str(error).split())[:160]
    limit = f"{_TIMEOUT_S:g} s" if _TIMEOUT_S else "the timeout"
    tail = (f"a collective did not complete within {limit} ({first}); the job ends here - look at that rank's "
            "log and node, then resume with --resume")
    if not is_multi_rank():
        return tail
    _BEAT_STOP.set()
    me, n = td.get_rank(), td.get_world_size()
    try:
        store = _store()
        store.set_timeout(timedelta(seconds=3))
        before = [int(store.add(f"lwsl/beat/{r}", 0)) for r in range(n)]
        time.sleep(3 * _BEAT_S)
        after = [int(store.add(f"lwsl/beat/{r}", 0)) for r in range(n)]
    except Exception:  # noqa: BLE001 - the store lives in rank 0's process (MASTER_ADDR)
        return f"rank 0 (it hosts the rendezvous store) stopped responding: {tail}"
    stopped = [r for r in range(n) if r != me and after[r] == before[r]]
    if stopped:
        return f"rank {', '.join(map(str, stopped))} stopped responding: {tail}"
    return f"a peer rank failed: {tail}"


def world() -> LaunchEnv:
    """This process's place in the job (read from the environment before ``init_distributed``)."""
    return _ENV if _ENV is not None else detect()


def is_main() -> bool:
    """True on global rank 0 (the rank that logs, writes reports and exports)."""
    return world().rank == 0


def has_group() -> bool:
    """True when a torch.distributed process group exists (the one check every module asks)."""
    import torch.distributed as td

    return td.is_available() and td.is_initialized()


def group_size() -> int:
    """World size of the process group; 1 when there is none (a single plain process)."""
    import torch.distributed as td

    return td.get_world_size() if has_group() else 1


def group_rank() -> int:
    """Rank in the process group; 0 when there is none."""
    import torch.distributed as td

    return td.get_rank() if has_group() else 0


def is_multi_rank() -> bool:
    """True when a process group of more than one rank exists (collectives are needed)."""
    return group_size() > 1


def set_cpu_threads(requested: int | None, local_ranks: int) -> int:
    """Set torch's intra-op threads: ``requested``, else the cores split evenly over this node's ranks; returns it."""
    import torch

    # More threads than cores per rank only oversubscribe: ranks on one node would fight for the same cores.
    n = requested or max(1, (os.cpu_count() or 1) // max(local_ranks, 1))
    torch.set_num_threads(n)
    return n


def check_divides(data_parallel: int, world_size: int, key: str) -> None:
    """Refuse a data-parallel width that does not divide the launched ranks, naming the config ``key``."""
    from .errors import ConfigError

    if data_parallel < 1 or world_size % data_parallel:
        raise ConfigError(f"{key}={data_parallel} does not divide the world size {world_size} "
                          "(launch a multiple of it, or change the key)")


def barrier() -> None:
    """Wait for every rank; a no-op when no process group exists (a single plain process)."""
    import torch.distributed as td

    if is_multi_rank():
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

    _BEAT_STOP.set()
    if has_group():
        td.destroy_process_group()
    _ENV = None
