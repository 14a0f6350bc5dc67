"""Who am I in the job: map launcher and Slurm variables to RANK/WORLD_SIZE/LOCAL_RANK/MASTER_*.

Three launch styles are recognised, in this order:

``launcher``
    ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` are already set: ``deepspeed``, ``torchrun`` or,
    under Slurm, one ``deepspeed --no_ssh --node_rank=$SLURM_NODEID --hostfile HF`` per node
    (``srun --ntasks-per-node=1``). Those variables win over the Slurm ones, which then describe
    the per-node launcher task, not the rank.
``slurm``
    one task per GPU (``srun --ntasks-per-node=<gpus>``): ``SLURM_PROCID``, ``SLURM_NTASKS``
    (``SLURM_STEP_NUM_TASKS`` inside a step), ``SLURM_LOCALID`` and ``SLURM_NODEID`` become the
    rank variables; ``MASTER_ADDR`` defaults to the first node of the allocation and
    ``MASTER_PORT`` to a port derived from the job id (identical on every task without talking).
``single``
    a plain ``python`` process: rank 0 of 1 on 127.0.0.1 and a free port.

Example::

    env = resolve()            # detect and export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
    print(env.rank, env.world_size, env.style)
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Literal, Mapping, MutableMapping

__all__ = ["LaunchEnv", "LaunchEnvError", "detect", "apply", "resolve", "first_host", "free_port"]

Style = Literal["launcher", "slurm", "single"]

# Ports derived from the Slurm job id land in [BASE, BASE + SPAN): above the well-known and
# registered-service crowd, below Linux's default ephemeral range (32768+), so that a port picked
# by the kernel for an unrelated socket rarely collides with ours.
_PORT_BASE = 15000
_PORT_SPAN = 15000


class LaunchEnvError(RuntimeError):
    """The environment describes an impossible or incomplete distributed launch."""


@dataclass(frozen=True)
class LaunchEnv:
    """Place of this process in the job."""

    rank: int
    world_size: int
    local_rank: int
    node_rank: int
    master_addr: str
    master_port: int
    style: Style


def _int(environ: Mapping[str, str], key: str) -> int:
    raw = environ[key]
    try:
        return int(raw)
    except ValueError:
        raise LaunchEnvError(f"environment variable {key}={raw!r} is not an integer") from None


def first_host(nodelist: str) -> str:
    """First host name of a Slurm node list (``n[1-2],m3`` -> ``n1``; zero padding kept)."""
    nodelist = nodelist.strip()
    if not nodelist:
        raise LaunchEnvError("empty Slurm node list")
    head = nodelist
    depth = 0
    for i, ch in enumerate(nodelist):  # the first top-level comma ends the first host pattern
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            head = nodelist[:i]
            break
    if "[" not in head:
        return head
    prefix, rest = head.split("[", 1)
    inside, suffix = rest.split("]", 1) if "]" in rest else (rest, "")
    first = inside.split(",", 1)[0].split("-", 1)[0]
    return f"{prefix}{first}{suffix}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host`` (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _check(env: LaunchEnv) -> LaunchEnv:
    if env.world_size < 1:
        raise LaunchEnvError(f"WORLD_SIZE={env.world_size} must be >= 1")
    if not 0 <= env.rank < env.world_size:
        raise LaunchEnvError(f"RANK={env.rank} is outside 0..WORLD_SIZE-1={env.world_size - 1}")
    if env.local_rank < 0:
        raise LaunchEnvError(f"LOCAL_RANK={env.local_rank} must be >= 0")
    if not 0 < env.master_port < 65536:
        raise LaunchEnvError(f"MASTER_PORT={env.master_port} is not a TCP port")
    return env


def detect(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """Read the launch style and this process's place in the job from ``environ`` (default os.environ)."""
    e = os.environ if environ is None else environ
    if all(k in e for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")):
        world = _int(e, "WORLD_SIZE")
        if world > 1 and "MASTER_ADDR" not in e:
            raise LaunchEnvError(f"RANK/WORLD_SIZE={world} are set but MASTER_ADDR is not")
        port = _int(e, "MASTER_PORT") if "MASTER_PORT" in e else (free_port() if world == 1 else 29500)
        node = _int(e, "GROUP_RANK") if "GROUP_RANK" in e else (
            _int(e, "SLURM_NODEID") if "SLURM_NODEID" in e else 0)
        return _check(LaunchEnv(_int(e, "RANK"), world, _int(e, "LOCAL_RANK"), node,
                                e.get("MASTER_ADDR", "127.0.0.1"), port, "launcher"))
    # SLURM_STEP_ID marks a task started by srun; the batch script itself also carries SLURM_PROCID=0
    # and SLURM_NTASKS=<all tasks>, and treating it as rank 0 of N would wait forever for N-1 peers.
    if "SLURM_PROCID" in e and "SLURM_STEP_ID" in e and e.get("SLURM_STEP_ID") not in ("batch", "extern"):
        ntasks_key = "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in e else "SLURM_NTASKS"
        if ntasks_key not in e:
            raise LaunchEnvError("SLURM_PROCID is set but neither SLURM_STEP_NUM_TASKS nor SLURM_NTASKS is")
        world = _int(e, ntasks_key)
        if "MASTER_ADDR" in e:
            addr = e["MASTER_ADDR"]
        else:
            nodes = e.get("SLURM_STEP_NODELIST") or e.get("SLURM_JOB_NODELIST") or e.get("SLURM_NODELIST")
            if not nodes:
                raise LaunchEnvError("Slurm task without MASTER_ADDR and without SLURM_JOB_NODELIST")
            addr = first_host(nodes)
        if "MASTER_PORT" in e:
            port = _int(e, "MASTER_PORT")
        elif "SLURM_JOB_ID" in e:
            port = _PORT_BASE + _int(e, "SLURM_JOB_ID") % _PORT_SPAN
        else:
            raise LaunchEnvError("Slurm task without MASTER_PORT and without SLURM_JOB_ID")
        return _check(LaunchEnv(_int(e, "SLURM_PROCID"), world, _int(e, "SLURM_LOCALID") if "SLURM_LOCALID" in e
                                else 0, _int(e, "SLURM_NODEID") if "SLURM_NODEID" in e else 0, addr, port, "slurm"))
    port = _int(e, "MASTER_PORT") if "MASTER_PORT" in e else free_port()
    return _check(LaunchEnv(0, 1, 0, 0, e.get("MASTER_ADDR", "127.0.0.1"), port, "single"))


def apply(env: LaunchEnv, environ: MutableMapping[str, str] | None = None) -> None:
    """Export ``env`` as RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (what torch/DeepSpeed read)."""
    e = os.environ if environ is None else environ
    e["RANK"] = str(env.rank)
    e["WORLD_SIZE"] = str(env.world_size)
    e["LOCAL_RANK"] = str(env.local_rank)
    e["MASTER_ADDR"] = env.master_addr
    e["MASTER_PORT"] = str(env.master_port)


def resolve(environ: MutableMapping[str, str] | None = None) -> LaunchEnv:
    """Detect the launch style and export the rank variables; idempotent."""
    env = detect(environ)
    apply(env, environ)
    return env
