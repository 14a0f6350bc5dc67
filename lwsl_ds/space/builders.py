"""Build the modules of a space (stem, one choice of one layer, head) from its spec.

Shared by the super-net and by standalone sub-nets, so both hold modules of identical structure.
"""

from __future__ import annotations

from torch import nn

from .ops import ConvBNAct, DepthwiseSeparable, Head, MBConv, ProjectionSkip, Skip
from .spec import LayerSpec, SearchSpace

__all__ = ["build_stem", "build_choice", "build_head"]


def build_stem(space: SearchSpace) -> nn.Sequential:
    """The fixed stem (Table I: 3x3 conv s2 -> 16, 3x3 depth-wise separable s2 -> 24)."""
    ops: list[nn.Module] = []
    ch = space.in_channels
    for op in space.stem:
        if op.op == "conv":
            ops.append(ConvBNAct(ch, op.out, op.kernel, op.stride, act=space.activation))
        else:
            ops.append(DepthwiseSeparable(ch, op.out, op.kernel, op.stride, act=space.activation))
        ch = op.out
    return nn.Sequential(*ops)


def build_choice(space: SearchSpace, layer: LayerSpec, k: int) -> nn.Module:
    """Choice ``k`` of ``layer``: an MBConv, a skip, or (NAS-Bench-Macro) a projection skip."""
    c = space.choices[k]
    if k not in layer.choices:
        raise ValueError(f"choice {c.name!r} is not allowed in layer {layer.index}")
    if c.op == "skip":
        if layer.keeps_shape:
            return Skip()
        return ProjectionSkip(layer.in_channels, layer.out_channels, layer.stride)
    return MBConv(layer.in_channels, layer.out_channels, c.kernel, layer.stride, c.expansion, c.se_ratio,
                  space.activation)


def build_head(space: SearchSpace, fc: nn.Module, dropout: float | None = None) -> Head:
    """The final head with the given FC (built by the objective for super-nets, a Linear for sub-nets)."""
    return Head(space.last_channels, space.head.features, fc, space.activation,
                space.head.dropout if dropout is None else dropout)
