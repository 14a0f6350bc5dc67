"""Choice operations and fixed building blocks: MBConv (+SE), skip, projection skip, stem ops, head.

These classes are plain ``nn.Module`` subclasses with no reference to the super-net, so a sub-net built
from them is a standalone network.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

__all__ = ["make_activation", "ConvBNAct", "DepthwiseSeparable", "SqueezeExcite", "MBConv", "Skip",
           "ProjectionSkip", "Head", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=False),
    "relu6": lambda: nn.ReLU6(inplace=False),
    "swish": nn.SiLU,
    "hswish": nn.Hardswish,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module by name (relu, relu6, swish, hswish)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class ConvBNAct(nn.Sequential):
    """Conv (no bias) + BatchNorm + optional activation, 'same' padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: str | None = "relu") -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            layers.append(make_activation(act))
        super().__init__(*layers)


class DepthwiseSeparable(nn.Sequential):
    """Depth-wise kxk conv + BN + act, then point-wise 1x1 conv + BN (linear), as in Table I's stem."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, act: str = "relu") -> None:
        super().__init__(ConvBNAct(cin, cin, kernel, stride, groups=cin, act=act),
                         ConvBNAct(cin, cout, 1, act=None))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excite: GAP -> 1x1 conv (reduce) -> act -> 1x1 conv (expand) -> sigmoid gate."""

    def __init__(self, channels: int, reduced: int, act: str = "relu") -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1, bias=True)
        self.act = make_activation(act)
        self.expand = nn.Conv2d(reduced, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2) with optional squeeze-excite.

    hidden = round(cin * expansion); the SE bottleneck is max(1, int(cin * se_ratio)) channels, counted
    from the block *input* as in EfficientNet. The residual is added only when stride 1 and cin == cout.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expansion: float,
                 se_ratio: float | None = None, act: str = "relu") -> None:
        super().__init__()
        hidden = int(round(cin * expansion))
        self.expand = ConvBNAct(cin, hidden, 1, act=act) if hidden != cin else nn.Identity()
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=act)
        self.se = SqueezeExcite(hidden, max(1, int(cin * se_ratio)), act) if se_ratio else nn.Identity()
        self.project = ConvBNAct(hidden, cout, 1, act=None)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.depthwise(self.expand(x))))
        return x + out if self.use_residual else out


class Skip(nn.Identity):
    """The skip choice in a layer that keeps its shape: no parameters."""


class ProjectionSkip(nn.Sequential):
    """The 'identity' of a shape-changing layer in NAS-Bench-Macro: 1x1 conv (stride s) + BN, no act."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class Head(nn.Module):
    """Final head: 1x1 conv + BN + act -> global average pool -> dropout -> FC built by the objective."""

    def __init__(self, cin: int, features: int, fc: nn.Module, act: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = ConvBNAct(cin, features, 1, act=act)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = fc

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features before the FC (used by kNN evaluation of InfoNCE super-nets)."""
        return self.conv(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))
