"""`retrain:` section of the experiment config."""

from __future__ import annotations

from dataclasses import dataclass

from ..schema import spec


@dataclass(frozen=True)
class RetrainConfig:
    """Settings of the retrain phase."""

    seed: int = spec(0, ge=0, help="seed of this phase's random choices")
