"""``layer_groups: auto`` for layer-parallel runs: contiguous groups balanced by *measured* time per layer.

The engines' ``auto`` balances MACs; a pipeline is paced by its slowest layer group in seconds, and on CPU the
depth-wise convolutions, squeeze-excite and decoders cost far more time per MAC than point-wise
convolutions. So: time a few synchronous steps phase by phase (stem counts to layer 0; the strategy's
own phases, every choice forward + backward + decoder), take the median per layer, and split with the
same min-max partition as the engines. On several ranks, rank 0 measures and broadcasts (every rank must
use the same groups). Cost: ``warmup + steps`` synchronous steps on one batch before training.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from typing import Iterator

import torch

from ..strategies.groups import partition_balanced
from ..space import SuperNet
from ..strategies.base import Strategy, step_rng

__all__ = ["TimingTracker", "measure_layer_seconds", "measured_groups"]


class TimingTracker:
    """A strategy tracker that adds up wall time per layer (stem into layer 0)."""

    def __init__(self, num_layers: int) -> None:
        self.seconds = [0.0] * num_layers

    @contextlib.contextmanager
    def phase(self, name: str, layer: int) -> Iterator[None]:
        """Time the phase and charge it to ``layer`` (clamped to 0..n-1)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            i = min(max(layer, 0), len(self.seconds) - 1)
            self.seconds[i] += time.perf_counter() - t0


class _NoUpdate:
    """Backend that back-propagates but never updates (the measured net stays as built)."""

    def __init__(self, groups: list[list[int]]) -> None:
        self.groups = groups

    def run(self, layer, fn, *args):  # noqa: D102
        return fn(*args)

    def backward(self, layer, loss):  # noqa: D102
        loss.backward()

    def freeze(self, units):  # noqa: D102
        pass

    def step(self):  # noqa: D102
        pass


def measure_layer_seconds(net: SuperNet, strategy: Strategy, images: torch.Tensor, labels: torch.Tensor, *,
                          steps: int = 3, warmup: int = 1) -> list[float]:
    """Median seconds per layer of one training step on (images, labels), measured on a copy of ``net``."""
    probe = copy.deepcopy(net)
    backend = _NoUpdate([list(range(net.num_layers))])
    runs: list[list[float]] = []
    for s in range(warmup + steps):
        tracker = TimingTracker(net.num_layers)
        strategy.step(probe, images, labels, backend, step_rng(0, s), tracker)
        probe.zero_grad(set_to_none=True)
        if s >= warmup:
            runs.append(tracker.seconds)
    del probe
    return [statistics.median(r[i] for r in runs) for i in range(net.num_layers)]


def _atoms(net: SuperNet, strategy: Strategy) -> list[list[int]]:
    """Runs of layers that must share a group (a unit trained by several layers' losses ties them)."""
    atoms = [[i] for i in range(net.num_layers)]
    for u in strategy.units(net):
        lo, hi = min(max(i, 0) for i in u.layers), max(max(i, 0) for i in u.layers)
        if lo == hi:
            continue
        first = next(a for a, run in enumerate(atoms) if lo in run)
        last = next(a for a, run in enumerate(atoms) if hi in run)
        atoms = atoms[:first] + [[i for run in atoms[first:last + 1] for i in run]] + atoms[last + 1:]
    return atoms


def measured_groups(net: SuperNet, strategy: Strategy, images: torch.Tensor, labels: torch.Tensor, groups: int,
                    *, steps: int = 3, broadcast: bool = True) -> tuple[list[list[int]], list[float]]:
    """(layer groups balanced by measured seconds, the seconds per layer); rank 0's result on every rank.

    Layers tied by the strategy (non-greedy: n-2 and n-1 share the head) are split as one item, so the
    result always has ``groups`` groups when the strategy allows that many.
    """
    import torch.distributed as td

    from ..common.dist import group_rank, is_multi_rank

    dist = broadcast and is_multi_rank()
    payload: list = [None]
    if not dist or group_rank() == 0:
        secs = measure_layer_seconds(net, strategy, images, labels, steps=steps)
        atoms = _atoms(net, strategy)
        if groups > len(atoms):
            raise ValueError(f"{groups} layer groups requested, but {strategy.name} on {net.num_layers} layers "
                             f"allows at most {len(atoms)}")
        parts = partition_balanced([sum(secs[i] for i in a) for a in atoms], groups)
        payload = [([[i for a in part for i in atoms[a]] for part in parts], secs)]
    if dist:
        td.broadcast_object_list(payload, src=0)
    return payload[0]
