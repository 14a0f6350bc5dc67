"""The layer-group plan shared by both backends: groups, their units, backward calls per step."""

from __future__ import annotations

from dataclasses import dataclass

from ..space import SuperNet
from ..strategies.base import Strategy, Unit
from .groups import assign_units, group_of_layer, resolve_layer_groups

__all__ = ["GroupPlan"]


@dataclass
class GroupPlan:
    """Which layers, units and how many backward calls per step each layer group has."""

    groups: list[list[int]]
    units: list[list[Unit]]
    calls: list[int]

    @classmethod
    def build(cls, net: SuperNet, strategy: Strategy, layer_groups="single", *, auto_groups: int = 2,
              auto_cost: str = "flops") -> "GroupPlan":
        """Resolve ``layer_groups`` for ``strategy`` on ``net``."""
        units = strategy.units(net)
        groups = resolve_layer_groups(layer_groups, net, units, auto_groups=auto_groups, auto_cost=auto_cost,
                                      strategy=strategy.name)
        return cls(groups, assign_units(units, groups), strategy.group_backward_calls(net, groups))

    def group_of(self, layer: int) -> int:
        """Group index owning ``layer`` (-1 = stem -> group of layer 0)."""
        return group_of_layer(self.groups, layer)

    def describe(self) -> str:
        """One line per group: layers, units, backward calls per step."""
        lines = []
        for g, (layers, units, calls) in enumerate(zip(self.groups, self.units, self.calls)):
            extra = [u.name for u in units if not u.name.startswith("layers.")]
            lines.append(f"group {g}: layers {layers[0]}..{layers[-1]}, {len(units)} units (+{', '.join(extra)}), "
                         f"{calls} backward calls/step")
        return "\n".join(lines)
