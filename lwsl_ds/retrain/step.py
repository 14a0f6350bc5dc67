"""One retraining step: every micro-batch through the sub-net's DeepSpeed engine, then BN statistics synced.

:class:`RetrainStep` is the "strategy" the hook-based loop (``lwsl_ds.strategies.loop.Trainer``) drives for
retraining: the loop hands it the step's micro-batches (``batches_per_step`` = the ds_config's
``gradient_accumulation_steps``) and reduces the loss it returns across ranks, as for the super-net.
"""

from __future__ import annotations

import random
from typing import Any

import torch
import torch.nn.functional as F

from ..common.dist import group_size, is_multi_rank
from ..strategies.base import NULL_TRACKER, StepOutput, Tracker

__all__ = ["RetrainStep", "average_buffers"]


@torch.no_grad()
def average_buffers(module: torch.nn.Module) -> None:
    """Average floating buffers (BN running statistics) over ranks, in place; a collective.

    DeepSpeed all-reduces gradients only: each rank's BN statistics would drift apart on its own data
    shard, and the checkpoint (rank 0's module) would not restore the other ranks. Averaging them after
    every optimizer step keeps every rank bit-identical (what DDP's broadcast_buffers does, with the
    statistics of all shards). Cost: one all-reduce of 2 x channels floats per BN layer per step.
    """
    import torch.distributed as td

    if not is_multi_rank():
        return
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    if not bufs:
        return
    flat = torch.cat([b.detach().reshape(-1).float() for b in bufs])
    td.all_reduce(flat)
    flat /= group_size()
    offset = 0
    for b in bufs:
        n = b.numel()
        b.copy_(flat[offset:offset + n].view_as(b).to(b.dtype))
        offset += n


class RetrainStep:
    """Cross-entropy (with label smoothing) of a sub-net, one optimizer step per call."""

    name = "retrain"

    def __init__(self, label_smoothing: float) -> None:
        self.label_smoothing = label_smoothing

    def step(self, engine: Any, images: torch.Tensor | list[torch.Tensor], labels: torch.Tensor | list[torch.Tensor],
             backend: Any = None, rng: random.Random | None = None, tracker: Tracker = NULL_TRACKER) -> StepOutput:
        """Forward, backward and ``engine.step()`` of each micro-batch; returns the last one's loss."""
        xs, ys = (images, labels) if isinstance(images, list) else ([images], [labels])
        for i, (x, y) in enumerate(zip(xs, ys)):
            loss = F.cross_entropy(engine(x).float(), y, label_smoothing=self.label_smoothing)
            engine.backward(loss)
            boundary = engine.is_gradient_accumulation_boundary()
            engine.step()
            if boundary != (i == len(xs) - 1):  # the engine's window and the loop's grouping must agree
                raise RuntimeError(f"micro-batch {i + 1} of {len(xs)}: the engine's gradient accumulation "
                                   f"boundary is {'here' if boundary else 'not at the last one'}")
        average_buffers(engine.module)
        return {"loss/head": loss.detach()}
