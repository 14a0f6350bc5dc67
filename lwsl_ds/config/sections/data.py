"""`data:` section of the experiment config."""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import spec


@dataclass(frozen=True)
class DataConfig:
    """Settings of the data phase."""

    seed: int = spec(0, ge=0, help="seed of this phase's random choices")
