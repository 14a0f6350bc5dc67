"""Score a list of candidates with every rank: split round-robin, gather, merge in the original order.

Works with any initialised ``torch.distributed`` process group (gloo on CPU, nccl on GPU) and falls
back to a plain loop when there is none, so a 1-rank run and an N-rank run produce the same list.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ..common.dist import group_rank, group_size

__all__ = ["score_distributed", "broadcast_object"]


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (identity without a process group)."""
    import torch.distributed as td

    if group_size() == 1:
        return obj
    box = [obj if group_rank() == src else None]
    td.broadcast_object_list(box, src=src)
    return box[0]


def score_distributed(items: Sequence[Any], score: Callable[[Any], float],
                      on_done: Callable[[], None] | None = None) -> list[float]:
    """``[score(x) for x in items]`` computed by all ranks: rank r scores items r, r+W, r+2W, ...

    Every rank must call this with the same ``items`` (the search broadcasts them first). Scores travel
    as Python floats through ``all_gather_object``, so they arrive bit-identical on every rank.
    """
    import torch.distributed as td

    rank, world = group_rank(), group_size()
    mine = []
    for i in range(rank, len(items), world):
        mine.append((i, float(score(items[i]))))
        if on_done is not None:
            on_done()
    if world == 1:
        return [s for _, s in mine]
    gathered: list[Any] = [None] * world
    td.all_gather_object(gathered, mine)
    out: list[float | None] = [None] * len(items)
    for part in gathered:
        for i, s in part:
            out[i] = s
    if any(s is None for s in out):
        raise RuntimeError("distributed scoring lost candidates: ranks disagree on the candidate list")
    return out  # type: ignore[return-value]
