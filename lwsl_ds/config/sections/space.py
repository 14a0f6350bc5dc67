"""`space:` section: which search-space preset (or YAML file) and optional overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..schema import spec


@dataclass(frozen=True)
class SpaceConfig:
    """Search space selection."""

    name: str = spec("demo", help="preset name (paper, nasbench_macro, demo) or a path to a space YAML")
    resolution: Optional[int] = spec(None, ge=8, le=1024, help="input resolution; default: the preset's")
    num_classes: Optional[int] = spec(None, ge=2, help="classes of the final head; default: the preset's")
