"""Parameter digests per rank: the check that data-parallel ranks ended with bit-identical weights.

Only rank 0 saves weights, so a rank that silently diverged would go unnoticed. ``gather_digests``
hashes every rank's tensors (sha256 over the raw bytes, state-dict order) and collects them on rank 0.
Parameters and buffers are hashed separately: parameters are what the optimizer keeps in sync;
buffers (batch-norm running statistics) are each rank's own unless a strategy synchronizes them.
Cost: one pass over the model's bytes on every rank (~1 s per GB) and one small all-gather.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

__all__ = ["tensor_digest", "state_digest", "module_digests", "gather_digests", "write_digests"]


def tensor_digest(items: list[tuple[str, torch.Tensor]]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes of ``items`` in the given order."""
    h = hashlib.sha256()
    for name, v in items:
        t = v.detach().to("cpu").contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def state_digest(module: torch.nn.Module) -> str:
    """One sha256 over every parameter and buffer (state-dict order): equal digests = bit-identical models."""
    return tensor_digest(list(module.state_dict().items()))


def module_digests(module: torch.nn.Module) -> dict[str, str]:
    """``{"params": sha256, "buffers": sha256}`` of ``module`` (names in state-dict order)."""
    params = dict(module.named_parameters())
    state = module.state_dict(keep_vars=True)
    return {"params": tensor_digest([(k, v) for k, v in state.items() if k in params]),
            "buffers": tensor_digest([(k, v) for k, v in state.items() if k not in params])}


def gather_digests(module: torch.nn.Module) -> list[dict[str, Any]]:
    """Every rank's :func:`module_digests` (a collective: call it on all ranks); rank order."""
    import torch.distributed as td

    from .dist import group_size, is_multi_rank

    mine = module_digests(module)
    if not is_multi_rank():
        return [{"rank": 0, **mine}]
    everyone: list[Any] = [None] * group_size()
    td.all_gather_object(everyone, mine)
    return [{"rank": r, **d} for r, d in enumerate(everyone)]


def write_digests(path: str | Path, digests: list[dict[str, Any]], **extra: Any) -> Path:
    """Write ``{**extra, "ranks": digests, "params_equal": bool}`` as JSON (rank 0 calls it)."""
    from .atomic import write_atomic

    doc = {**extra, "params_equal": len({d["params"] for d in digests}) == 1, "ranks": digests}
    write_atomic(Path(path), json.dumps(doc, indent=1))
    return Path(path)
