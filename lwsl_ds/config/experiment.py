"""The whole experiment config: one typed section per phase (see ``sections/``)."""

from __future__ import annotations

from dataclasses import dataclass

from .schema import spec
from .sections.data import DataConfig
from .sections.memory import MemoryConfig
from .sections.rank import RankConfig
from .sections.retrain import RetrainConfig
from .sections.search import SearchConfig
from .sections.space import SpaceConfig
from .sections.train import TrainConfig


@dataclass(frozen=True)
class ExperimentConfig:
    """Top level of ``configs/<name>.yaml``."""

    name: str = spec("experiment", help="run name; the run directory is <run_root>/<name>")
    seed: int = spec(0, ge=0, help="global seed (data order, sampling, initialisation)")
    run_root: str = spec("runs", help="folder holding run directories")
    space: SpaceConfig = spec(SpaceConfig())
    data: DataConfig = spec(DataConfig())
    train: TrainConfig = spec(TrainConfig())
    search: SearchConfig = spec(SearchConfig())
    retrain: RetrainConfig = spec(RetrainConfig())
    rank: RankConfig = spec(RankConfig())
    memory: MemoryConfig = spec(MemoryConfig())
