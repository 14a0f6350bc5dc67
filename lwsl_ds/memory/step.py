"""Account one real training step of a strategy: activations (traced) plus model states (per engine).

The strategy's own ``step`` runs unchanged on a super-net built on the ``meta`` device (shapes and sizes,
no data), under a :class:`~lwsl_ds.memory.tracker.StepTracker`; the update backend is
:class:`AccountingBackend` (forward as is, ``loss.backward()``, no optimizer: model states are accounted
by formula in :mod:`lwsl_ds.memory.states`). The paper space at 224 px and batch 256 accounts in seconds.

Paths: the training run's memory peak is set by the most expensive step, so by default every random draw
(SPOS's path, non-greedy's stacked choice) takes the choice with the most activations
(:class:`WorstCaseRng`); ``rng="sample"`` draws as training does.

Levers: ``levers`` (:class:`~lwsl_ds.config.sections.train.Levers`, the ``train.*`` keys) go through the same
:func:`~lwsl_ds.memory.levers.resolve_levers` and :func:`~lwsl_ds.memory.levers.wrap_levers` as training.

Example::

    acc = account_step("paper", "non_greedy", batch_size=128, resolution=224)
    acc.activation_peak, acc.device_peak, acc.profile.phases[3].peak_bytes
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..objectives import get_objective
from ..space import SearchSpace, SuperNet, load_space
from ..strategies import get_strategy
from ..strategies.base import Strategy
from .levers import NO_LEVERS, Levers, resolve_levers, wrap_levers
from .states import DEFAULT_BUCKET, EngineSettings, EngineStates, engine_states, offloaded_device_states
from .tracker import StepProfile, StepTracker

__all__ = ["AccountingBackend", "WorstCaseRng", "StepAccount", "account_step", "build_net", "group_states"]


class AccountingBackend:
    """Update backend for accounting: forward as is, ``loss.backward()``, no optimizer."""

    kind = "accounting"

    def __init__(self, groups: list[list[int]]) -> None:
        self.groups = groups

    def run(self, layer: int, fn, *args: Any):
        """Call ``fn(*args)``."""
        return fn(*args)

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """``loss.backward()``."""
        loss.backward()

    def freeze(self, units) -> None:
        """Nothing to freeze: there is no optimizer."""

    def step(self) -> None:
        """Nothing to update: model states are accounted by formula."""


class WorstCaseRng(random.Random):
    """An RNG whose ``choice`` among choice indices picks the one with the largest hidden width."""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__(0)
        self._cost = {k: (c.op != "skip", c.expansion, c.kernel, c.se_ratio or 0.0) for k, c in enumerate(space.choices)}

    def choice(self, seq: Sequence[Any]) -> Any:  # type: ignore[override]
        """The most expensive choice index of ``seq``."""
        return max(seq, key=lambda k: self._cost[k])


@dataclass
class StepAccount:
    """Accounted memory of one step of one strategy (bytes)."""

    strategy: str
    space: str
    resolution: int
    batch_size: int
    profile: StepProfile
    batch_bytes: int
    engines: list[EngineStates]
    device_states: int  # model states resident on the device (after offload, if any)
    plan: dict[int, int] = field(default_factory=dict)
    checkpointed: list[int] = field(default_factory=list)
    offloaded: list[int] = field(default_factory=list)  # groups whose model states wait in host memory

    @property
    def activation_peak(self) -> int:
        """Peak activation bytes of the step plus the input batch (the 'accounted tensors' view)."""
        return self.profile.peak_bytes + self.batch_bytes

    @property
    def model_states(self) -> int:
        """Model states of all engines."""
        return sum(e.total for e in self.engines)

    @property
    def device_peak(self) -> int:
        """Accounted device peak: device-resident model states + activation peak."""
        return self.device_states + self.activation_peak

    def layer_peaks(self) -> dict[str, int]:
        """Per-phase activation peak + input batch, keyed by phase label (stem, L0.., head, backward)."""
        return {p.label: p.peak_bytes + self.batch_bytes for p in self.profile.phases}

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form with every number."""
        return {"strategy": self.strategy, "space": self.space, "resolution": self.resolution,
                "batch_size": self.batch_size, "batch_bytes": self.batch_bytes,
                "activation_peak_bytes": self.activation_peak, "model_states_bytes": self.model_states,
                "device_states_bytes": self.device_states, "device_peak_bytes": self.device_peak,
                "engines": [e.to_dict() for e in self.engines], "micro_batches": {str(k): v for k, v in self.plan.items()},
                "checkpointed_layers": self.checkpointed, "offloaded_groups": self.offloaded,
                "activations": self.profile.to_dict()}


def build_net(space: SearchSpace | str, objective: str = "ce", device: str = "meta",
              resolution: int | None = None) -> SuperNet:
    """The super-net of a space on ``device`` (``meta``: no memory, shapes only)."""
    if isinstance(space, str):
        space = load_space(space, resolution=resolution)
    elif resolution is not None:
        space = space.with_overrides(resolution=resolution)
    with torch.device(device):
        net = SuperNet(space, get_objective(objective, space.num_classes))
    return net.train()


def group_states(net: SuperNet, strategy: Strategy, groups: list[list[int]], *, zero_stage: int = 0,
                 world_size: int = 1, precision: str = "fp32", optimizer: str = "adam",
                 reduce_bucket_size: int = DEFAULT_BUCKET) -> list[EngineStates]:
    """Model states of one engine per layer group (units assigned to the group of their first owner layer)."""
    from ..strategies.groups import assign_units

    out = []
    for g, units in enumerate(assign_units(strategy.units(net), groups)):
        n = sum(p.numel() for u in units for p in u.module.parameters())
        out.append(engine_states(n, name=f"group{g}", zero_stage=zero_stage, world_size=world_size,
                                 precision=precision, optimizer=optimizer, reduce_bucket_size=reduce_bucket_size))
    return out


def _read_only_bytes(net: SuperNet, groups: list[list[int]], precision: str) -> list[int]:
    """Non-greedy at a group boundary reads layer (last+1)'s choices (of the next group): their parameters.

    decoder_of(last+1) is trained by layer last's loss, so it belongs to the active group already.
    """
    from .states import DTYPE_BYTES

    n = net.num_layers
    out = []
    for layers in groups:
        nxt = layers[-1] + 1
        if nxt >= n:
            out.append(0)
            continue
        mods = [net.choice(nxt, k) for k in net.space.layers[nxt].choices]
        out.append(DTYPE_BYTES[precision] * sum(p.numel() for m in mods for p in m.parameters()))
    return out


def account_step(space: SearchSpace | str, strategy: str, batch_size: int, *, levers: Levers = NO_LEVERS,
                 groups: list[list[int]] | None = None, engine: EngineSettings = EngineSettings(),
                 resolution: int | None = None, objective: str = "ce", device: str = "meta", rng: str = "worst",
                 seed: int = 0, net: SuperNet | None = None) -> StepAccount:
    """Run one real ``strategy`` step under the tracker, with ``levers`` as training runs them, one engine per
    layer group of ``groups`` (``engine``: their ZeRO stage, precision, ...); its accounted memory."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    if rng not in ("worst", "sample"):
        raise ValueError(f"rng: {rng!r} is not one of ['worst', 'sample']")
    if net is None:
        net = build_net(space, objective, device, resolution)
    sp = net.space
    strat = get_strategy(strategy)
    groups = groups or [list(range(sp.num_layers))]
    levers = resolve_levers(levers, net, strategy, batch_size)
    offloaded = levers.offload_groups(len(groups), strategy)  # as train.offload_inactive runs it (engines/offload.py)
    if len(groups) == 1:
        offloaded = []  # one group is always the active one: nothing is ever inactive
    views = net.objective.views
    dev = next(net.parameters()).device
    images = torch.empty(batch_size * views, sp.in_channels, sp.resolution, sp.resolution, device=dev)
    labels = torch.zeros(batch_size, dtype=torch.long, device=dev)
    batch_bytes = images.untyped_storage().nbytes() + labels.untyped_storage().nbytes()
    backend = wrap_levers(AccountingBackend(groups), net, levers, batch_size)
    draw = WorstCaseRng(sp) if rng == "worst" else random.Random(seed)
    tracker = StepTracker(net)
    with tracker:
        strat.step(net, images, labels, backend, draw, tracker=tracker)
    net.zero_grad(set_to_none=True)
    engines = group_states(net, strat, groups, **dataclasses.asdict(engine))
    if offloaded:
        extra = _read_only_bytes(net, groups, engine.precision) if strategy == "non_greedy" else None
        device_states = offloaded_device_states(engines, prefetch=False, read_only_next=extra, offloaded=offloaded)
    else:
        device_states = sum(e.total for e in engines)
    return StepAccount(strategy, sp.name, sp.resolution, batch_size, tracker.profile(), batch_bytes, engines,
                       device_states, levers.plan, levers.checkpoint_layers(groups), offloaded)
