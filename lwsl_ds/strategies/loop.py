"""The training loop: data -> step -> metric reduction -> hooks (detectron2-style).

The loop knows nothing about checkpoints, logging or progress bars; hooks do (see hooks.py). It reduces
each step's per-layer metrics across ranks once (one small all-reduce, one device sync) and stops the run
with :class:`NonFiniteLossError` naming the layer and step before any hook could checkpoint the bad state.
Super-net training steps a strategy over a super-net; retraining (``lwsl_ds.retrain``) steps a sub-net's
engine over ``batches_per_step`` micro-batches (gradient accumulation) through the same loop.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Iterable, Iterator

import torch

from ..common.memory_format import batch_to, memory_format
from ..space import SuperNet
from .base import NULL_TRACKER, Strategy, Tracker, UpdateBackend, step_rng

__all__ = ["Trainer", "HookBase", "NonFiniteLossError", "reduce_metrics"]


class NonFiniteLossError(RuntimeError):
    """A local loss became NaN or infinite; the message names the layer and the step."""


class HookBase:
    """Override what you need; every method receives the trainer."""

    def before_train(self, trainer: "Trainer") -> None:
        """Called once before the first step."""

    def after_step(self, trainer: "Trainer") -> None:
        """Called after every step; ``trainer.metrics`` holds the step's reduced metrics."""

    def after_epoch(self, trainer: "Trainer") -> None:
        """Called when an epoch of the loader is exhausted."""

    def after_train(self, trainer: "Trainer") -> None:
        """Called once after the last step (not after an exception)."""


def reduce_metrics(out: dict[str, torch.Tensor]) -> dict[str, float]:
    """Mean of every scalar metric over ranks (one all-reduce), as floats."""
    import torch.distributed as td

    from ..common.dist import group_size, is_multi_rank

    keys = sorted(k for k, v in out.items() if v.dim() == 0)
    if not keys:
        return {}
    vec = torch.stack([out[k].detach().float() for k in keys])
    if is_multi_rank():
        td.all_reduce(vec)
        vec = vec / group_size()
    return dict(zip(keys, vec.tolist()))


def _order(key: str) -> int:
    """Network order of a metric key: stem, layer 0..n-1, head."""
    name = key.split("/", 1)[1]
    return -1 if name == "stem" else int(name[5:]) if name.startswith("layer") else 10 ** 6


def _where(key: str) -> str:
    """'loss/layer3' -> 'layer 3', 'loss/stem' -> 'the stem', 'loss/head' -> 'the head'."""
    name = key.split("/", 1)[1]
    return f"layer {name[5:]}" if name.startswith("layer") else f"the {name}"


class Trainer:
    """Runs ``strategy`` over ``loader`` from ``start_step`` to ``total_steps``, calling hooks.

    ``batches_per_step`` > 1: a step takes that many consecutive loader batches, handed to
    ``strategy.step`` as lists (retraining's gradient accumulation); an epoch's leftover batches are skipped.
    """

    def __init__(self, net: SuperNet | torch.nn.Module, strategy: Strategy, backend: UpdateBackend, loader: Any, *,
                 seed: int, total_steps: int, start_step: int = 0, hooks: Iterable[HookBase] = (),
                 tracker: Tracker = NULL_TRACKER, device: torch.device | str = "cpu", world_size: int = 1,
                 train_seconds: float = 0.0, batches_per_step: int = 1, channels_last: bool = False) -> None:
        self.net, self.strategy, self.backend, self.loader = net, strategy, backend, loader
        self.memory_format = memory_format(channels_last)  # NHWC image batches (train.channels_last)
        self.seed, self.total_steps, self.step = seed, total_steps, start_step
        self.hooks = list(hooks)
        self.tracker, self.device, self.world_size = tracker, torch.device(device), world_size
        self.batches_per_step = batches_per_step
        self.steps_per_epoch = len(loader) // batches_per_step
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(loader)} batches per epoch give no step of {batches_per_step} batches")
        self.metrics: dict[str, float] = {}
        self.images_per_s = 0.0
        self.last_step_s = 0.0
        # Cumulative seconds spent in steps (data + strategy step + metric sync; hooks excluded, so
        # checkpoint and evaluation time do not count): the time axis of equal-time comparisons (Fig. 1).
        self.train_seconds = train_seconds
        self.stop_reason: str | None = None

    def request_stop(self, reason: str) -> None:
        """Ask the loop to end after the current step's hooks (time budget, preemption); after_train still runs."""
        if self.stop_reason is None:
            self.stop_reason = reason

    @property
    def epoch(self) -> int:
        """Epoch of the next step."""
        return self.step // self.steps_per_epoch

    @property
    def step_epoch(self) -> int:
        """Epoch of the step just taken (``epoch`` before the first step)."""
        return (self.step - 1) // self.steps_per_epoch if self.step else 0

    def _batch(self, images: Any, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(images, (list, tuple)):  # two views -> stacked [v1; v2] (2B rows), as objectives expect
            images = torch.cat(list(images), 0)
        return batch_to(images, self.device, self.memory_format), labels.to(self.device, non_blocking=True).long()

    def _step_inputs(self) -> Iterator[tuple[Any, Any, int]]:
        """(images, labels, rows on this rank) of each step from the loader's position; lists when grouped."""
        batches = (self._batch(images, labels) for images, labels in self.loader)
        if self.batches_per_step == 1:
            yield from ((x, y, y.shape[0]) for x, y in batches)
            return
        while len(group := list(itertools.islice(batches, self.batches_per_step))) == self.batches_per_step:
            yield [x for x, _ in group], [y for _, y in group], sum(y.shape[0] for _, y in group)

    def train(self) -> None:
        """The loop. Raises NonFiniteLossError on a NaN/inf local loss."""
        for h in self.hooks:
            h.before_train(self)
        self.net.train()
        while self.step < self.total_steps:
            epoch = self.epoch
            self.loader.set_epoch(epoch)
            t0 = time.perf_counter()
            for x, y, rows in self._step_inputs():
                out = self.strategy.step(self.net, x, y, self.backend, step_rng(self.seed, self.step), self.tracker)
                self.metrics = reduce_metrics(out)  # also the per-step sync point
                bad = sorted((k for k, v in self.metrics.items() if k.startswith("loss/") and not _finite(v)),
                             key=_order)
                if bad:
                    raise NonFiniteLossError(f"non-finite loss ({self.metrics[bad[0]]}) at {_where(bad[0])} in step "
                                             f"{self.step} (epoch {epoch}); stopping, the last checkpoint is intact")
                self.step += 1
                t1 = time.perf_counter()
                self.last_step_s = t1 - t0
                self.train_seconds += self.last_step_s
                self.images_per_s = rows * self.world_size / max(self.last_step_s, 1e-9)
                for h in self.hooks:
                    h.after_step(self)
                if self.step >= self.total_steps or self.step % self.steps_per_epoch == 0 or self.stop_reason:
                    break
                t0 = time.perf_counter()  # hook time (checkpoints, logging) is not step time
            if self.step % self.steps_per_epoch == 0:
                for h in self.hooks:
                    h.after_epoch(self)
            if self.stop_reason:
                break
        for h in self.hooks:
            h.after_train(self)


def _finite(v: float) -> bool:
    return v == v and v not in (float("inf"), float("-inf"))
