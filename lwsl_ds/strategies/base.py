"""What every strategy shares: units, the update-backend interface, phase tracking, per-step RNG.

A strategy holds only the algorithm. It never touches an optimizer: it asks an :class:`UpdateBackend` to
run a forward (``run``), to back-propagate one loss (``backward``) and to finish the step (``step``).
The same strategy code therefore drives the plain-PyTorch reference (the oracle) and the DeepSpeed
engines; see docs/algorithms.md.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Protocol, TypeVar

import torch
from torch import nn

from ..space import SuperNet

__all__ = ["Unit", "UpdateBackend", "Tracker", "NullTracker", "NULL_TRACKER", "Strategy", "step_rng",
           "StepOutput"]

T = TypeVar("T")

# Per-step metrics: "loss/stem", "loss/layer3", "acc/layer3", "loss/head", ... -> detached 0-d tensors.
# Kept as tensors so a step costs no device sync; the training loop reduces them once per step.
StepOutput = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Unit:
    """A trainable part of the super-net and the layers whose losses train it (-1 = the stem's loss).

    ``name`` is the module path in the super-net (``stem``, ``layers.2.k3e4``, ``decoders.1``, ``head``),
    so optimizer groups and checkpoints read like the state_dict.
    """

    name: str
    module: nn.Module
    layers: tuple[int, ...]

    @property
    def has_params(self) -> bool:
        """False for parameter-free units (the skip choice)."""
        return any(True for _ in self.module.parameters())


class Tracker(Protocol):
    """Observer of a strategy's per-layer phases (memory accounting, timing)."""

    def phase(self, name: str, layer: int) -> contextlib.AbstractContextManager:
        """Context manager wrapping one phase; ``layer`` -1 = stem, n = head (SPOS)."""
        ...


class NullTracker:
    """The default tracker: observes nothing, costs nothing."""

    @contextlib.contextmanager
    def phase(self, name: str, layer: int) -> Iterator[None]:
        """No-op context manager."""
        yield


NULL_TRACKER = NullTracker()


class UpdateBackend(Protocol):
    """How losses become parameter updates: plain torch optimizers or DeepSpeed engines.

    Contract, per training step: ``freeze`` (optional, before any backward), then for every loss one
    ``run`` (the forward computing it) and one ``backward``; finally one ``step``. ``backward(layer, loss)``
    requires every parameter that gets gradient from ``loss`` to belong to the layer group of ``layer``.
    """

    groups: list[list[int]]

    def run(self, layer: int, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` as the forward of the engine owning ``layer`` (-1 = stem)."""
        ...

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """Back-propagate ``loss`` into the layer group of ``layer`` (gradients accumulate)."""
        ...

    def freeze(self, units: Iterable[str]) -> None:
        """Leave these units' parameters and optimizer state untouched by the coming ``step``."""
        ...

    def step(self) -> None:
        """End of the training step: every group applies its accumulated gradients once."""
        ...


def step_rng(seed: int, step: int) -> random.Random:
    """The sampling RNG of one step: identical on every rank, and a resumed run redraws the same choices."""
    return random.Random(seed * 1_000_003 + step)


class Strategy:
    """Base class: which units are trained by which layer's loss, how many backward calls, one step."""

    name = "base"
    freezes_unsampled = False  # True: units not on the sampled path must be frozen (SPOS)

    def units(self, net: SuperNet) -> list[Unit]:
        """The trained units of ``net`` with the layers whose losses train them."""
        raise NotImplementedError

    def backward_calls(self, net: SuperNet) -> dict[int, int]:
        """Number of ``backward`` calls per step for each layer (-1 = stem); fixes each engine's micro-steps."""
        raise NotImplementedError

    def group_backward_calls(self, net: SuperNet, groups: list[list[int]]) -> list[int]:
        """Backward calls per step of each layer group (the stem's count goes to the group of layer 0)."""
        calls = self.backward_calls(net)
        return [sum(calls.get(i, 0) for i in g) + (calls.get(-1, 0) if 0 in g else 0) for g in groups]

    def step(self, net: SuperNet, images: torch.Tensor, labels: torch.Tensor, backend: UpdateBackend,
             rng: random.Random, tracker: Tracker = NULL_TRACKER) -> StepOutput:
        """One training step on one batch; returns detached per-layer losses and accuracies."""
        raise NotImplementedError


def choice_unit(net: SuperNet, i: int, k: int, layers: tuple[int, ...]) -> Unit:
    """The unit of choice ``k`` of layer ``i``."""
    return Unit(f"layers.{i}.{net.space.choices[k].name}", net.choice(i, k), layers)


def decoder_name(net: SuperNet, i: int) -> str:
    """Module path of ``decoder_of(i)``."""
    if i == -1:
        return "stem_decoder"
    if i == net.num_layers - 1:
        return "head"
    return f"decoders.{i}"
