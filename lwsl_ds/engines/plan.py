"""The layer-group plan shared by both backends: groups, their units, backward calls per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..space import SuperNet
from ..strategies.base import Strategy, Unit
from ..strategies.groups import assign_units, group_of_layer, resolve_layer_groups

__all__ = ["GroupPlan", "group_override"]


def group_override(overrides: Mapping[Any, Mapping[str, Any]] | None, group: int) -> Mapping[str, Any]:
    """``train.group_overrides`` entry of ``group`` (keyed by int, or by str from YAML/JSON); {} when none."""
    if not overrides:
        return {}
    return overrides.get(group, overrides.get(str(group), {}))


@dataclass
class GroupPlan:
    """Which layers, units and how many backward calls per step each layer group has."""

    groups: list[list[int]]
    units: list[list[Unit]]
    calls: list[int]
    micro_batches: dict[int, int] = field(default_factory=dict)  # layer (-1 = stem) -> micro-batches
    offload: list[int] = field(default_factory=list)  # groups whose states wait in host memory when inactive
    checkpointed: list[int] = field(default_factory=list)  # groups whose losses run choices checkpointed

    @classmethod
    def build(cls, net: SuperNet, strategy: Strategy, layer_groups="single", *, auto_groups: int = 2,
              auto_cost: str = "flops", micro_batches: Mapping[int, int] | None = None) -> "GroupPlan":
        """Resolve ``layer_groups`` for ``strategy`` on ``net``; with ``micro_batches`` (layer -> M), layer i's
        losses run as M micro-batches, each one backward call of its engine's accumulation window."""
        units = strategy.units(net)
        groups = resolve_layer_groups(layer_groups, net, units, auto_groups=auto_groups, auto_cost=auto_cost,
                                      strategy=strategy.name)
        if micro_batches:
            from ..memory.balance import micro_group_calls

            calls = micro_group_calls(strategy, net, groups, micro_batches)
        else:
            calls = strategy.group_backward_calls(net, groups)
        return cls(groups, assign_units(units, groups), calls, dict(micro_batches or {}))

    def group_of(self, layer: int) -> int:
        """Group index owning ``layer`` (-1 = stem -> group of layer 0)."""
        return group_of_layer(self.groups, layer)

    def describe(self) -> str:
        """One line per group: layers, units, backward calls per step."""
        lines = []
        for g, (layers, units, calls) in enumerate(zip(self.groups, self.units, self.calls)):
            extra = [u.name for u in units if not u.name.startswith("layers.")]
            line = (f"group {g}: layers {layers[0]}..{layers[-1]}, {len(units)} units (+{', '.join(extra)}), "
                    f"{calls} backward calls/step")
            own = [i for i in ([-1] if 0 in layers else []) + list(layers) if self.micro_batches.get(i, 1) > 1]
            if own:
                line += ", micro-batches " + " ".join(f"{'stem' if i < 0 else f'L{i}'}:{self.micro_batches[i]}"
                                                      for i in own)
            if g in self.offload:
                line += ", model states in host memory when inactive"
            if g in self.checkpointed:
                line += ", choices under activation checkpointing"
            lines.append(line)
        return "\n".join(lines)
