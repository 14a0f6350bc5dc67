"""The whole experiment config: one typed section per phase (see ``sections/``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .schema import ConfigError, spec
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

    def validate(self) -> None:
        """The run name is a name: the run directory <run_root>/<name> never leaves run_root."""
        check_run_name(self.name)
        if not self.run_root.strip() or "\0" in self.run_root:
            raise ConfigError(f"run_root: {self.run_root!r} is not a folder path")


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=@-]{0,127}")


def check_run_name(name: str, key: str = "name") -> str:
    """Return ``name`` if it is a plain run name (letters, digits, ``_ . + = @ -``), else raise ConfigError."""
    if not name:
        raise ConfigError(f"{key}: empty; the run would be written straight into run_root beside other runs. "
                          "Set name=<run name>")
    shown = name if len(name) <= 80 else name[:80] + "..."
    if "/" in name or "\\" in name or name in (".", "..") or not _NAME.fullmatch(name):
        raise ConfigError(f"{key}: {shown!r} is not a plain run name (no path separators, no '..', no leading "
                          "'.' or '-', at most 128 of letters, digits and _ . + = @ -); the run directory is "
                          "<run_root>/<name>: choose the folder with run_root=")
    return name
