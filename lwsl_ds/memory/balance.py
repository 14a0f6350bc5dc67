"""Balanced layer-wise memory: micro-batches inside a layer, activation checkpointing inside a choice.

**Micro-batching** (gradient accumulation inside one layer). :class:`MicroBatchBackend` wraps any update
backend: when a strategy runs a loss of layer i (``backend.run(i, fn, ...)``), the wrapper splits every
batch-sized tensor argument into ``plan[i]`` micro-batches, runs forward + backward of each (loss scaled by
the micro-batch's share of the batch, so the accumulated gradient is the full-batch mean gradient) and
hands back the full-batch (loss, acc, output); the strategy's own ``backward`` of that loss is then a
no-op. No strategy code changes, but a DeepSpeed backend must count the extra backward calls in its
accumulation window: use :func:`micro_backward_calls` where it reads ``strategy.backward_calls(net)``.

Exactness: with a per-sample-mean loss (``ce``) and no batch norm the update equals the unbalanced one
(up to float summation order). With batch norm, each micro-batch is normalised with its own statistics
(the gradients differ, like ghost batch norm) and the running statistics are updated once per
micro-batch (M updates per step instead of 1: with momentum 0.1 the running average forgets
1 - 0.9^M of its past per step). ``infonce`` over micro-batches keeps the two views of each image
together but sees fewer negatives, so it is a different loss; the plan is refused for it unless asked.

**Checkpointing** inside a choice: see :mod:`lwsl_ds.memory.checkpointing`.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, TypeVar

import torch
from torch import nn

from .checkpointing import checkpoint_choices  # lives there; re-exported for existing imports

__all__ = ["MicroBatchBackend", "micro_backward_calls", "micro_group_calls", "split_batch", "checkpoint_choices", "plan_micro_batches"]

T = TypeVar("T")


def split_batch(t: torch.Tensor, parts: int, views: int = 1) -> list[torch.Tensor]:
    """Split along dim 0 into ``parts`` near-equal chunks; with 2 views ([v1; v2]) chunk c is [v1_c; v2_c]."""
    if views == 1:
        return list(t.tensor_split(parts))
    halves = t.tensor_split(views)
    return [torch.cat(chunks) for chunks in zip(*(h.tensor_split(parts) for h in halves))]


class MicroBatchBackend:
    """Wrap an update backend so that layer i's losses run as ``plan[i]`` micro-batches (see module doc)."""

    def __init__(self, inner: Any, plan: Mapping[int, int], batch_size: int, views: int = 1) -> None:
        bad = {k: v for k, v in plan.items() if not isinstance(v, int) or v < 1 or v > batch_size}
        if bad:
            raise ValueError(f"micro-batch plan: counts must be ints in 1..{batch_size}, got {bad}")
        self.inner = inner
        self.micro_batches = dict(plan)  # not "plan": that name is the inner backend's GroupPlan
        self.batch_size = batch_size
        self.views = views
        self._done: set[int] = set()  # ids of losses already back-propagated micro-batch by micro-batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # groups, freeze, step, ... pass through

    def run(self, layer: int, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` over micro-batches with a backward after each; returns full-batch (loss, acc, out)."""
        parts = self.micro_batches.get(layer, 1)
        if parts == 1:
            return self.inner.run(layer, fn, *args)
        rows = self.batch_size * self.views
        split = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor) and a.dim() > 0 and a.shape[0] == rows]
        if not split:
            raise ValueError(f"layer {layer}: no argument has the batch size {rows} to split into micro-batches")
        chunks = {i: split_batch(args[i], parts, self.views) for i in split}
        loss_sum = acc_sum = None
        out: torch.Tensor | None = None
        offsets = [0] * self.views
        for c in range(parts):
            a = list(args)
            for i in split:
                a[i] = chunks[i][c]
            share = a[split[0]].shape[0] / rows
            res = self.inner.run(layer, fn, *a)
            if not (isinstance(res, tuple) and len(res) == 3):
                raise TypeError(f"layer {layer}: micro-batching needs a layer-wise loss returning (loss, acc, "
                                f"output), got {type(res).__name__}; SPOS is not micro-batched per layer")
            loss, acc, y = res
            self.inner.backward(layer, loss * share)  # frees this micro-batch's graph before the next one
            loss_sum = loss.detach() * share if loss_sum is None else loss_sum + loss.detach() * share
            acc_sum = acc * share if acc_sum is None else acc_sum + acc * share
            del loss
            # Write the detached output into one full-batch buffer (no list of chunks + cat: that would
            # hold the output twice).
            if out is None:
                out = y.new_empty((rows, *y.shape[1:]))
            step = y.shape[0] // self.views
            for v in range(self.views):
                start = v * (rows // self.views) + offsets[v]
                out[start:start + step].copy_(y[v * step:(v + 1) * step])
                offsets[v] += step
            del y
        assert loss_sum is not None and out is not None
        self._done.add(id(loss_sum))
        return loss_sum, acc_sum, out  # type: ignore[return-value]

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """No-op for a loss this wrapper already back-propagated; otherwise the inner backward."""
        if id(loss) in self._done:
            self._done.discard(id(loss))
            return
        self.inner.backward(layer, loss)


def micro_backward_calls(calls: Mapping[int, int], plan: Mapping[int, int]) -> dict[int, int]:
    """Backward calls per layer once layer i's losses run as plan[i] micro-batches (DeepSpeed's window)."""
    return {layer: n * plan.get(layer, 1) for layer, n in calls.items()}


def micro_group_calls(strategy: Any, net: nn.Module, groups: list[list[int]], plan: Mapping[int, int]) -> list[int]:
    """Drop-in for ``strategy.group_backward_calls(net, groups)`` when layers run as micro-batches."""
    calls = micro_backward_calls(strategy.backward_calls(net), plan)
    return [sum(calls.get(i, 0) for i in g) + (calls.get(-1, 0) if 0 in g else 0) for g in groups]


def plan_micro_batches(work: Mapping[int, int], floor: Mapping[int, int], budget: int,
                       batch_size: int) -> dict[int, int]:
    """Smallest micro-batch count M per layer with floor + work * ceil(B / M) / B <= budget (M <= B).

    ``work[i]``: accounted bytes of layer i that scale with the micro-batch (at the full batch B);
    ``floor[i]``: bytes that do not (input batch, layer input, accumulator, full-batch output buffer).
    A layer whose floor alone exceeds the budget gets M = B (the best it can do).
    """
    plan = {}
    for layer, w in work.items():
        f = floor.get(layer, 0)
        m = 1
        while m < batch_size and f + w * math.ceil(batch_size / m) / batch_size > budget:
            m += 1
        plan[layer] = m
    return plan
