"""The settings of layer-parallel training: the ``train.parallel`` section, or ``--parallel key=value`` items."""

from __future__ import annotations

from ..config.sections.parallel import ParallelConfig

__all__ = ["ParallelConfig", "parallel_from_items"]


def parallel_from_items(items: list[str]) -> ParallelConfig:
    """``["k=v", ...]`` (``--parallel``) -> a validated ParallelConfig with mode 'layer' (YAML scalars for values)."""
    import yaml

    from ..config.schema import ConfigError, from_dict

    raw: dict = {"mode": "layer"}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--parallel {item!r}: expected KEY=VALUE")
        raw[key.strip()] = yaml.safe_load(value)
    try:
        return from_dict(ParallelConfig, raw)
    except ConfigError as e:
        raise ConfigError(f"--parallel: {e}") from None
