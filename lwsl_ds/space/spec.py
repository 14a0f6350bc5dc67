"""Declarative search spaces: the YAML schema of a preset and the derived per-layer view.

A space YAML lists the choices (index = position in the list), the fixed stem, the stages of searchable
layers and the head. ``load_space`` validates it with the same typed schema as experiment configs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Literal, Optional

from ..config.schema import ConfigError, from_dict, spec

__all__ = ["ChoiceSpec", "StemOpSpec", "StageSpec", "HeadSpec", "SearchSpace", "LayerSpec", "load_space",
           "PRESETS", "preset_path"]

PRESET_DIR = Path(__file__).with_name("presets")
# The registry of spaces (name -> preset YAML); ``space.name`` may also be a path to a space YAML.
PRESETS: dict[str, Path] = {name: PRESET_DIR / f"{name}.yaml" for name in ("paper", "nasbench_macro", "demo")}


@dataclass(frozen=True)
class ChoiceSpec:
    """One candidate operation: an MBConv (kernel, expansion, SE ratio) or skip."""

    name: str = spec(help="short token used in the text form of an arch, e.g. k3e4")
    op: Literal["mbconv", "skip"] = spec(help="operation type")
    kernel: int = spec(3, choices=[1, 3, 5, 7, 9], help="depth-wise kernel size")
    expansion: float = spec(1.0, gt=0, le=16, help="hidden width = round(in_channels * expansion)")
    se_ratio: Optional[float] = spec(None, gt=0, le=1, help="squeeze-excite ratio; null = no SE")


@dataclass(frozen=True)
class StemOpSpec:
    """A fixed (not searchable) stem operation."""

    op: Literal["conv", "dwsep"] = spec(help="conv = kxk conv+BN+act; dwsep = depth-wise separable conv")
    out: int = spec(ge=1, help="output channels")
    kernel: int = spec(3, choices=[1, 3, 5, 7])
    stride: int = spec(1, choices=[1, 2])


@dataclass(frozen=True)
class StageSpec:
    """A run of searchable layers with the same output width; only the first layer strides."""

    out: int = spec(ge=1, help="output channels of every layer of the stage")
    stride: int = spec(1, choices=[1, 2], help="stride of the first layer of the stage")
    layers: int = spec(1, ge=1, le=16, help="number of searchable layers in the stage")


@dataclass(frozen=True)
class HeadSpec:
    """Final head: 1x1 conv to ``features`` channels, pool, FC."""

    features: int = spec(ge=1, help="channels of the head's 1x1 conv")
    dropout: float = spec(0.0, ge=0, lt=1)


@dataclass(frozen=True)
class LayerSpec:
    """Derived view of one searchable layer: shapes and the allowed choice indices."""

    index: int
    stage: int
    in_channels: int
    out_channels: int
    stride: int
    in_resolution: int
    choices: tuple[int, ...]

    @property
    def keeps_shape(self) -> bool:
        """True when input and output shapes are equal (a plain skip is possible)."""
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def out_resolution(self) -> int:
        """Spatial size after this layer ('same' padding)."""
        return math.ceil(self.in_resolution / self.stride)


@dataclass(frozen=True)
class SearchSpace:
    """A search space preset (the YAML file) plus derived per-layer shapes."""

    name: str = spec(help="preset name")
    resolution: int = spec(ge=8, le=1024)
    num_classes: int = spec(ge=2)
    in_channels: int = spec(3, ge=1)
    activation: Literal["relu", "relu6", "swish", "hswish"] = spec("relu")
    skip_in_reduction: Literal["forbidden", "projection"] = spec(
        "forbidden", help="in a shape-changing layer, skip is not offered (forbidden) or is a 1x1 conv+BN")
    choices: list[ChoiceSpec] = spec(list(), help="all choices; an arch stores indices into this list")
    stem: list[StemOpSpec] = spec(list())
    stages: list[StageSpec] = spec(list())
    head: HeadSpec = spec(HeadSpec(features=1280))
    description: str = spec("", help="free text")
    reference_count: Optional[float] = spec(None, help="number of architectures the source quotes")

    def validate(self) -> None:
        """Cross-field checks: unique names, at most 10 choices (one digit per layer), a stage at least."""
        names = [c.name for c in self.choices]
        if len(set(names)) != len(names):
            raise ConfigError(f"choices: duplicate choice names in {names}")
        if not 1 <= len(names) <= 10:
            raise ConfigError(f"choices: need 1..10 choices (one digit per layer in an arch key), got {len(names)}")
        if not self.stages:
            raise ConfigError("stages: at least one stage of searchable layers is required")
        for n in names:
            if not n.replace("_", "").isalnum() or n.isdigit():
                raise ConfigError(f"choices: name {n!r} must be alphanumeric and not all digits")
        for layer in self.layers:
            if not layer.choices:
                raise ConfigError(f"layer {layer.index}: no choice is allowed (only skip, but skip is forbidden "
                                  "where the shape changes)")

    # ---- derived views ---------------------------------------------------------------------------
    @cached_property
    def stem_out(self) -> tuple[int, int]:
        """(channels, resolution) after the stem."""
        ch, res = self.in_channels, self.resolution
        for op in self.stem:
            ch, res = op.out, math.ceil(res / op.stride)
        return ch, res

    @cached_property
    def layers(self) -> tuple[LayerSpec, ...]:
        """The searchable layers in network order, with shapes and allowed choices."""
        out: list[LayerSpec] = []
        ch, res = self.stem_out
        skip_ids = [k for k, c in enumerate(self.choices) if c.op == "skip"]
        for s, stage in enumerate(self.stages):
            for r in range(stage.layers):
                stride = stage.stride if r == 0 else 1
                keeps = stride == 1 and ch == stage.out
                allowed = tuple(k for k in range(len(self.choices))
                                if keeps or k not in skip_ids or self.skip_in_reduction == "projection")
                out.append(LayerSpec(len(out), s, ch, stage.out, stride, res, allowed))
                ch, res = stage.out, math.ceil(res / stride)
        return tuple(out)

    @property
    def num_layers(self) -> int:
        """Number of searchable layers n."""
        return len(self.layers)

    @property
    def last_channels(self) -> int:
        """Channels entering the head."""
        return self.layers[-1].out_channels

    def num_archs(self) -> int:
        """Exact number of distinct archs (product of the allowed choices per layer)."""
        return math.prod(len(layer.choices) for layer in self.layers)

    def choice_index(self, name: str) -> int:
        """Index of a choice by its name; ValueError listing the names otherwise."""
        for k, c in enumerate(self.choices):
            if c.name == name:
                return k
        raise ValueError(f"unknown choice {name!r} in space {self.name!r}; choices: {[c.name for c in self.choices]}")

    def with_overrides(self, resolution: int | None = None, num_classes: int | None = None) -> "SearchSpace":
        """A copy with another input resolution and/or number of classes."""
        kw = {}
        if resolution is not None:
            kw["resolution"] = resolution
        if num_classes is not None:
            kw["num_classes"] = num_classes
        return replace(self, **kw) if kw else self

    def summary(self) -> str:
        """Human-readable table of the layers and the size of the space."""
        lines = [f"search space {self.name!r}: {self.num_layers} searchable layers, input "
                 f"{self.in_channels}x{self.resolution}x{self.resolution}, {self.num_classes} classes",
                 f"choices: {', '.join(f'{k}={c.name}' for k, c in enumerate(self.choices))}",
                 f"stem: {' -> '.join(f'{o.op}{o.kernel}x{o.kernel}/s{o.stride}->{o.out}' for o in self.stem)}",
                 f"{'layer':>5} {'stage':>5} {'in':>10} {'out':>10} {'stride':>6}  choices"]
        for layer in self.layers:
            r = layer.in_resolution
            lines.append(f"{layer.index:>5} {layer.stage:>5} {f'{r}x{r}x{layer.in_channels}':>10} "
                         f"{f'{layer.out_resolution}x{layer.out_resolution}x{layer.out_channels}':>10} "
                         f"{layer.stride:>6}  {' '.join(self.choices[k].name for k in layer.choices)}")
        lines.append(f"head: 1x1 conv -> {self.head.features}, global pool, FC -> {self.num_classes}")
        n = self.num_archs()
        lines.append(f"candidate architectures: {n} ({n:.3e})")
        if self.reference_count:
            lines.append(f"the source quotes {self.reference_count:.3e}; see docs/search_spaces.md")
        return "\n".join(lines)


def preset_path(name: str) -> Path:
    """Path of a preset YAML, or ``name`` itself when it is a path to a YAML file."""
    if name in PRESETS:
        return PRESETS[name]
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        return p
    raise ConfigError(f"space.name: unknown search space {name!r}; presets: {list(PRESETS)} (or a path to a .yaml)")


def load_space(name: str, resolution: int | None = None, num_classes: int | None = None) -> SearchSpace:
    """Load a preset by name (or a space YAML by path), validated, with optional overrides."""
    from ..config.loader import load_yaml

    path = preset_path(name)
    try:
        space = from_dict(SearchSpace, load_yaml(path))
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    return space.with_overrides(resolution, num_classes)
