"""Read experiment YAML safely, apply ``a.b=c`` overrides and validate into the typed schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from .schema import ConfigError, from_dict

__all__ = ["load_yaml", "apply_overrides", "load_experiment", "parse_experiment"]


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file with the safe loader; syntax errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        with path.open("r", encoding="utf-8") as f:
            return yaml.safe_load(f)  # safe: never constructs Python objects from tags
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of ``data`` with ``a.b=c`` overrides applied (values parsed as YAML scalars)."""
    import copy

    out = copy.deepcopy(data) if data else {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected the form key.path=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key in {key!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {e}") from None
        node = out
        for depth, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(parts[:depth + 1])} is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return out


def parse_experiment(data: Any, overrides: Iterable[str] = ()):
    """Validate a plain dict (plus overrides) into an :class:`ExperimentConfig`."""
    from .experiment import ExperimentConfig

    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"<config>: the top level must be a mapping, got {type(data).__name__}")
    return from_dict(ExperimentConfig, apply_overrides(data or {}, overrides))


def load_experiment(path: str | Path, overrides: Iterable[str] = ()):
    """Load ``configs/<name>.yaml`` plus overrides into a validated :class:`ExperimentConfig`."""
    try:
        return parse_experiment(load_yaml(path), overrides)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
