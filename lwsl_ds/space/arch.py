"""Architectures: an immutable choice index per layer, a compact text form, parsing and sampling."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..config.schema import ConfigError
from .spec import SearchSpace

__all__ = ["Arch", "parse_arch", "describe", "sample_arch", "all_archs", "save_arch", "load_arch"]


@dataclass(frozen=True, order=True)
class Arch:
    """One choice index per searchable layer. ``str(arch)`` is the key: one digit per layer."""

    choices: tuple[int, ...]

    def __post_init__(self) -> None:
        if not all(isinstance(c, int) and 0 <= c <= 9 for c in self.choices):
            raise ValueError(f"arch choices must be ints 0..9, got {self.choices!r}")

    @property
    def key(self) -> str:
        """Compact text form, one digit per layer (NAS-Bench-Macro's key format)."""
        return "".join(str(c) for c in self.choices)

    def __str__(self) -> str:
        return self.key

    def __len__(self) -> int:
        return len(self.choices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.choices)

    def __getitem__(self, i: int) -> int:
        return self.choices[i]

    def replace(self, layer: int, choice: int) -> "Arch":
        """A copy with one layer's choice changed."""
        c = list(self.choices)
        c[layer] = choice
        return Arch(tuple(c))


def _check(space: SearchSpace, choices: list[int], text: str) -> Arch:
    n = space.num_layers
    if len(choices) != n:
        raise ConfigError(f"arch {text!r}: expected {n} layers for space {space.name!r}, got {len(choices)}")
    for layer, c in zip(space.layers, choices):
        if c not in layer.choices:
            if 0 <= c < len(space.choices):
                why = (f"choice {space.choices[c].name!r} is not allowed in layer {layer.index} "
                       f"({layer.in_channels}->{layer.out_channels} channels, stride {layer.stride}: "
                       "the layer changes shape)")
            else:
                why = f"choice index {c} does not exist (space has {len(space.choices)} choices)"
            allowed = [space.choices[k].name for k in layer.choices]
            raise ConfigError(f"arch {text!r}: {why}; allowed there: {allowed}")
    return Arch(tuple(choices))


def parse_arch(space: SearchSpace, text: str | Arch) -> Arch:
    """Parse the key form ('01210...') or the named form ('k3e4-skip-...'); reject invalid archs."""
    if isinstance(text, Arch):
        return _check(space, list(text.choices), text.key)
    s = str(text).strip()
    if not s:
        raise ConfigError("arch: empty text")
    if s.isdigit():
        return _check(space, [int(ch) for ch in s], s)
    choices = []
    for tok in s.replace(",", "-").replace(" ", "-").split("-"):
        if not tok:
            continue
        try:
            choices.append(space.choice_index(tok))
        except ValueError as e:
            raise ConfigError(f"arch {s!r}: {e}") from None
    return _check(space, choices, s)


def describe(space: SearchSpace, arch: Arch) -> str:
    """Named text form, e.g. 'k3e4-skip-k7e6'; round-trips through :func:`parse_arch`."""
    return "-".join(space.choices[c].name for c in arch)


def sample_arch(space: SearchSpace, rng: random.Random) -> Arch:
    """Uniformly sample one allowed choice per layer with the given RNG (no hidden global state)."""
    return Arch(tuple(rng.choice(layer.choices) for layer in space.layers))


def all_archs(space: SearchSpace) -> Iterator[Arch]:
    """Enumerate every arch of a (small) space in key order."""
    import itertools

    for combo in itertools.product(*(layer.choices for layer in space.layers)):
        yield Arch(tuple(combo))


def save_arch(path: str | Path, space: SearchSpace, arch: Arch, **extra: Any) -> Path:
    """Write an arch YAML (space, key, named form, extra fields such as flops/score) atomically."""
    import yaml

    from ..common.atomic import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"space": space.name, "resolution": space.resolution, "num_classes": space.num_classes,
           "arch": arch.key, "named": describe(space, arch), **extra}
    write_atomic(path, yaml.safe_dump(doc, sort_keys=False))
    return path


def load_arch(path: str | Path, space: SearchSpace | None = None) -> tuple[SearchSpace, Arch, dict]:
    """Read an arch YAML; returns (space, arch, the whole document). Loads the space when not given."""
    from ..config.loader import load_yaml
    from .spec import load_space

    doc = load_yaml(path)
    if not isinstance(doc, dict) or "arch" not in doc:
        raise ConfigError(f"{path}: not an arch file (needs at least 'space' and 'arch' keys)")
    if space is None:
        if "space" not in doc:
            raise ConfigError(f"{path}: missing 'space'")
        space = load_space(str(doc["space"]), doc.get("resolution"), doc.get("num_classes"))
    elif doc.get("space") not in (None, space.name):
        raise ConfigError(f"{path}: arch is for space {doc.get('space')!r}, not {space.name!r}")
    try:
        arch = parse_arch(space, str(doc["arch"]))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return space, arch, doc
