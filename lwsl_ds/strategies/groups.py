"""Layer groups: which contiguous layers (and which stem/decoders) each engine owns.

Here, beside the strategies, because the rule follows from which losses train which units, and both the
update backends (``lwsl_ds.engines``) and the memory accounting (``lwsl_ds.memory``) apply it.

Ownership rule: a unit (stem, choice, decoder, head) belongs to the group of the layer whose loss trains
it (the stem's loss, layer -1, counts as layer 0's group). Every loss then puts gradient into exactly one
group. Non-greedy trains the final head from the losses of layers n-2 and n-1, so those two layers must
share a group: ``per_layer``/``auto`` merge them (documented), explicit lists that split them are an error.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..config.schema import ConfigError
from ..space import SuperNet
from .base import Unit

__all__ = ["layer_costs", "partition_balanced", "resolve_layer_groups", "assign_units", "group_of_layer"]


def _module_macs(module: nn.Module, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Multiply-adds of convolutions and linear layers in one forward of ``module`` on ``x``."""
    total = [0.0]

    def hook(m: nn.Module, inp: Any, out: torch.Tensor) -> None:
        if isinstance(m, nn.Conv2d):
            total[0] += m.weight.numel() * out.shape[-1] * out.shape[-2]
        elif isinstance(m, nn.Linear):
            total[0] += m.weight.numel()

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        out = module(x)
    finally:
        for h in handles:
            h.remove()
    return total[0], out


@torch.no_grad()
def layer_costs(net: SuperNet, metric: str = "flops") -> list[float]:
    """Cost of training one layer: all its choices plus their decoder (``flops``: MACs of one image; ``params``)."""
    space = net.space
    costs: list[float] = []
    if metric == "params":
        for i, layer in enumerate(space.layers):
            p = sum(q.numel() for k in layer.choices for q in net.choice(i, k).parameters())
            costs.append(float(p + len(layer.choices) * sum(q.numel() for q in net.decoder_of(i).parameters())))
        return costs
    if metric != "flops":
        raise ValueError(f"unknown layer cost {metric!r}; choose 'flops' or 'params'")
    was_training = net.training
    net.eval()  # batch of one image: BN must not use batch statistics
    try:
        dev = next(net.parameters()).device
        for i, layer in enumerate(space.layers):
            x = torch.zeros(1, layer.in_channels, layer.in_resolution, layer.in_resolution, device=dev)
            c = 0.0
            for k in layer.choices:
                macs, y = _module_macs(net.choice(i, k), x)
                dec, _ = _module_macs(net.decoder_of(i), y)
                c += macs + dec
            costs.append(c)
    finally:
        net.train(was_training)
    return costs


def partition_balanced(costs: Sequence[float], k: int) -> list[list[int]]:
    """Split ``range(len(costs))`` into ``k`` contiguous non-empty runs minimising the largest run cost."""
    n = len(costs)
    if not 1 <= k <= n:
        raise ValueError(f"cannot split {n} layers into {k} groups")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    inf = float("inf")
    # best[g][i]: minimal max-cost of splitting the first i layers into g groups; cut[g][i]: last cut
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for g in range(1, k + 1):
        for i in range(g, n + 1):
            for j in range(g - 1, i):
                v = max(best[g - 1][j], prefix[i] - prefix[j])
                if v < best[g][i]:
                    best[g][i], cut[g][i] = v, j
    groups, i = [], n
    for g in range(k, 0, -1):
        j = cut[g][i]
        groups.append(list(range(j, i)))
        i = j
    return groups[::-1]


def _check_explicit(groups: list[list[int]], n: int) -> None:
    seen: dict[int, int] = {}
    for g, layers in enumerate(groups):
        for i in layers:
            if not 0 <= i < n:
                raise ConfigError(f"train.layer_groups: layer {i} in group {g} does not exist (layers are 0..{n - 1})")
            if i in seen:
                raise ConfigError(f"train.layer_groups: layer {i} is in groups {seen[i]} and {g}; every layer must "
                                  "be in exactly one group")
            seen[i] = g
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise ConfigError(f"train.layer_groups: layers {missing} are in no group; every layer 0..{n - 1} must be "
                          "in exactly one group")
    flat = [i for g in groups for i in g]
    if flat != list(range(n)):
        raise ConfigError(f"train.layer_groups: {groups} is not a split of 0..{n - 1} into contiguous ascending "
                          "runs (a layer group is a contiguous set of layers)")


def group_of_layer(groups: list[list[int]], layer: int) -> int:
    """Index of the group owning ``layer`` (-1, the stem, belongs to the group of layer 0)."""
    layer = max(layer, 0)
    for g, layers in enumerate(groups):
        if layer in layers:
            return g
    raise KeyError(f"layer {layer} is in no layer group {groups}")


def resolve_layer_groups(spec: str | list[list[int]], net: SuperNet, units: list[Unit], *, auto_groups: int = 2,
                         auto_cost: str = "flops", strategy: str = "") -> list[list[int]]:
    """Turn ``train.layer_groups`` into contiguous groups compatible with the units' owners."""
    n = net.num_layers
    if spec == "single":
        groups = [list(range(n))]
    elif spec == "per_layer":
        groups = [[i] for i in range(n)]
    elif spec == "auto":
        groups = partition_balanced(layer_costs(net, auto_cost), min(auto_groups, n))
    elif isinstance(spec, list):
        groups = [list(g) for g in spec]
        _check_explicit(groups, n)
    else:
        raise ConfigError(f"train.layer_groups: {spec!r} is not one of 'single', 'per_layer', 'auto' or a list")
    # A unit trained by losses of several layers forces those layers into one group.
    for u in units:
        owners = sorted({group_of_layer(groups, i) for i in u.layers})
        if len(owners) > 1:
            if isinstance(spec, list):
                raise ConfigError(f"train.layer_groups: {strategy or 'this strategy'} trains {u.name!r} from the "
                                  f"losses of layers {list(u.layers)}, which are in groups {owners}; put them in "
                                  "one group")
            lo, hi = owners[0], owners[-1]
            groups = groups[:lo] + [[i for g in groups[lo:hi + 1] for i in g]] + groups[hi + 1:]
    return groups


def assign_units(units: list[Unit], groups: list[list[int]]) -> list[list[Unit]]:
    """Units of each group (by the group of their first owning layer)."""
    out: list[list[Unit]] = [[] for _ in groups]
    for u in units:
        out[group_of_layer(groups, u.layers[0])].append(u)
    return out
