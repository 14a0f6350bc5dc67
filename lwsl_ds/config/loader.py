"""Read experiment YAML safely, apply ``a.b=c`` overrides and validate into the typed schema.

Safe means more than ``yaml.safe_load`` (no Python objects): anchors and aliases (``&x`` / ``*x``) are refused,
because a few lines of nested aliases expand to billions of nodes (a "billion laughs" document ran into a
MemoryError after 51 s), and a key given twice in one mapping is an error naming the key and both lines
(plain YAML keeps the last silently). Bytes that are not UTF-8 are an error naming the file and offset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml

from .schema import ConfigError, from_dict

__all__ = ["StrictLoader", "load_yaml", "load_yaml_text", "apply_overrides", "load_experiment", "parse_experiment"]


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases and duplicate mapping keys."""

    def compose_node(self, parent, index):  # noqa: D102
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            mark = event.start_mark
            raise ConfigError(f"line {mark.line + 1}: YAML anchors and aliases (&name / *name) are not allowed; "
                              "write the value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):  # noqa: D102
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                hash(key)
            except TypeError:
                raise ConfigError(f"line {line}: a mapping key must be a scalar") from None
            if key in seen:
                shown = str(key) if len(str(key)) <= 60 else str(key)[:60] + "..."
                raise ConfigError(f"key {shown!r} is given twice (lines {seen[key]} and {line}); keep one")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str) -> Any:
    """Parse YAML text with :class:`StrictLoader` (no objects, no aliases, no duplicate keys)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader derives from SafeLoader


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML file with the safe loader; syntax errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}, line {line}); "
                          "save the file as UTF-8") from None
    try:
        return load_yaml_text(text)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {' '.join(str(e).split())[:300]}") from None


def apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Return a copy of ``data`` with ``a.b=c`` overrides applied (values parsed as YAML scalars)."""
    import copy

    out = copy.deepcopy(data) if data else {}
    for item in overrides:
        shown = item if len(item) <= 100 else item[:100] + "..."
        if "=" not in item:
            raise ConfigError(f"override {shown!r}: expected the form key.path=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {shown!r}: empty key in {key!r}")
        try:
            value = load_yaml_text(raw) if raw.strip() else ""
        except ConfigError as e:
            raise ConfigError(f"override {key!r}: {e}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"override {shown!r}: value is not valid YAML: {e}") from None
        node = out
        for depth, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"override {shown!r}: {'.'.join(parts[:depth + 1])} is not a mapping")
            node = nxt
        node[parts[-1]] = value
    return out


def parse_experiment(data: Any, overrides: Iterable[str] = ()):
    """Validate a plain dict (plus overrides) into an :class:`ExperimentConfig`."""
    from .experiment import ExperimentConfig
    from .sections.memory import move_lever_aliases

    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"<config>: the top level must be a mapping, got {type(data).__name__}")
    return from_dict(ExperimentConfig, move_lever_aliases(apply_overrides(data or {}, overrides)))


def load_experiment(path: str | Path, overrides: Iterable[str] = ()):
    """Load ``configs/<name>.yaml`` plus overrides into a validated :class:`ExperimentConfig`."""
    try:
        return parse_experiment(load_yaml(path), overrides)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
