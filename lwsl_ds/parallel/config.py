"""Re-export: the settings of layer-parallel training live in the config schema (``train.parallel``)."""

from ..config.sections.parallel import ParallelConfig

__all__ = ["ParallelConfig"]
