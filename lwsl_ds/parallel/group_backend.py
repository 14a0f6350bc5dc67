"""One layer group's part of a layer-wise training step, and the update backend of one group.

``group_step`` is :meth:`LayerwiseStrategy.step` restricted to the layers of one group: it calls the
strategy's own ``train_stem``/``train_layer`` (so the two cannot drift apart), hence the same losses,
the same order of backward calls and the same random draws (the draws of earlier groups' layers are
replayed from the per-step RNG without computing anything, so every group sees exactly the choices the
synchronous run samples).

``ReferenceGroupBackend`` is the plain-PyTorch update backend of one group: the group's optimizer, schedule and
clipping, gradients averaged over the group's data-parallel ranks only. It follows
:class:`lwsl_ds.engines.ReferenceBackend` step for step (that class averages over the whole world, which
is wrong when the world holds other groups). ``OneGroupBackend`` holds what it shares with the DeepSpeed
backend of one group (ds_group_backend.py): the plan, the group, its units and optimizer, the refusal of other
groups' layers, freezing and the units' state.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Mapping, TypeVar

import torch

from ..engines.optim import build_optimizer, build_scheduler, set_frozen
from ..engines.plan import GroupPlan, group_override
from ..space import SuperNet
from ..strategies.base import NULL_TRACKER, StepOutput, Tracker, UpdateBackend
from ..strategies.layerwise import LayerwiseStrategy

__all__ = ["group_step", "replay_draws", "OneGroupBackend", "ReferenceGroupBackend"]

T = TypeVar("T")


def replay_draws(strategy: LayerwiseStrategy, net: SuperNet, upto: int, rng: random.Random) -> None:
    """Consume the draws the stem and layers ``0..upto-1`` take, in the synchronous order (no compute)."""
    strategy.rng_draws(net, -1, 0, rng)
    for i in range(upto):
        for k in net.space.layers[i].choices:
            strategy.rng_draws(net, i, k, rng)


def group_step(strategy: LayerwiseStrategy, net: SuperNet, layers: list[int], x: torch.Tensor,
               labels: torch.Tensor, backend: UpdateBackend, rng: random.Random, *,
               before_last_layer: Callable[[], None] | None = None,
               tracker: Tracker = NULL_TRACKER) -> tuple[StepOutput, torch.Tensor | None]:
    """Train ``layers`` (one group) on ``x`` (images for the first group, else its layer input).

    Returns (metrics, the next group's layer input or None after the last layer). Does not call
    ``backend.step()``. ``before_last_layer`` runs just before the group's last layer (non-greedy: bring
    the replica of the next layer up to date as late as possible).
    """
    out: StepOutput = {}
    if layers[0] == 0:
        x = strategy.train_stem(net, x, labels, backend, rng, out, tracker)
    else:
        replay_draws(strategy, net, layers[0], rng)
    for i in layers:
        if i == layers[-1] and before_last_layer is not None:
            before_last_layer()
        x = strategy.train_layer(net, i, x, labels, backend, rng, out, tracker)
    return out, x


class OneGroupBackend:
    """What the update backends of one layer group share: the plan, the group, its units and optimizer.

    A loss of a layer of another group is refused (that group lives on other ranks).
    """

    plan: GroupPlan
    group: int
    units: list
    optimizer: torch.optim.Optimizer

    def _own(self, plan: GroupPlan, group: int) -> None:
        self.plan, self.group, self.groups = plan, group, plan.groups
        self.units = plan.units[group]

    def _check(self, layer: int) -> None:
        if self.plan.group_of(layer) != self.group:
            raise RuntimeError(f"layer {layer} belongs to layer group {self.plan.group_of(layer)}, not to this "
                               f"rank's group {self.group}")

    def run(self, layer: int, fn: Callable[..., T], *args: Any) -> T:
        """The forward ``fn(*args)`` of a loss of this group's ``layer``."""
        self._check(layer)
        return self._forward(fn, *args)

    def _forward(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    def freeze(self, units: Iterable[str]) -> None:
        """Skip these units' parameter groups at the coming optimizer step."""
        set_frozen(self.optimizer, set(units))

    def _units_state(self) -> dict:
        """Units' module states and the optimizer's."""
        return {"units": {u.name: u.module.state_dict() for u in self.units},
                "optimizer": self.optimizer.state_dict()}

    def _load_units_state(self, state: dict) -> None:
        for u in self.units:
            u.module.load_state_dict(state["units"][u.name])
        self.optimizer.load_state_dict(state["optimizer"])


class ReferenceGroupBackend(OneGroupBackend):
    """Plain-PyTorch update backend of one layer group (optimizer over its units only)."""

    kind = "reference"

    def __init__(self, plan: GroupPlan, group: int, ds_config: Mapping[str, Any], *, total_steps: int = 1,
                 group_overrides: Mapping[Any, Mapping[str, Any]] | None = None, dp_group: Any = None) -> None:
        from ..config.ds_config import merge_config

        self._own(plan, group)
        self.dp_group = dp_group
        cfg = merge_config(ds_config, group_override(group_overrides, group))
        self.optimizer = build_optimizer(cfg.get("optimizer"), self.units)
        self.scheduler = build_scheduler(cfg.get("scheduler"), self.optimizer, total_steps)
        self.clip = float(cfg.get("gradient_clipping", 0.0))
        self._calls = 0
        self.global_steps = 0

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """``loss.backward()``; gradients accumulate until ``step``."""
        self._check(layer)
        loss.backward()
        self._calls += 1

    def step(self) -> None:
        """Average over the group's ranks, clip, optimizer step, zero grads, LR schedule."""
        import torch.distributed as td

        if self._calls != self.plan.calls[self.group]:
            raise RuntimeError(f"layer group {self.group}: {self._calls} backward calls, planned "
                               f"{self.plan.calls[self.group]}")
        params = [p for grp in self.optimizer.param_groups for p in grp["params"]]
        if self.dp_group is not None and td.get_world_size(self.dp_group) > 1:
            world = td.get_world_size(self.dp_group)
            for p in params:
                if p.grad is not None:
                    td.all_reduce(p.grad, group=self.dp_group)
                    p.grad.div_(world)
        if self.clip > 0:
            torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], self.clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.scheduler is not None:
            self.scheduler.step()
        set_frozen(self.optimizer, set())
        self._calls = 0
        self.global_steps += 1

    def lr(self) -> float:
        """Current learning rate."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict:
        """Units' module states, optimizer, schedule and step count."""
        return {**self._units_state(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "global_steps": self.global_steps}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self._load_units_state(state)
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.global_steps = int(state["global_steps"])
