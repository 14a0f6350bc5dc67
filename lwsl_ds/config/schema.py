"""Typed config schema: plain dataclasses validated from untrusted dicts.

Every section of the experiment config is a frozen dataclass. Field constraints live in
``field(metadata=...)`` with the keys ``choices``, ``ge``, ``gt``, ``le``, ``lt`` and ``help``.
:func:`from_dict` turns a dict read from YAML into such a dataclass, or raises :class:`ConfigError`
naming the key path, the bad value and what is allowed, before any work starts.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import reprlib
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from ..common.errors import ConfigError

__all__ = ["ConfigError", "from_dict", "to_dict", "spec"]


def spec(default: Any = dataclasses.MISSING, *, help: str = "", **constraints: Any) -> Any:
    """Declare a dataclass field with a default, a help text and constraints (choices/ge/gt/le/lt)."""
    meta = {"help": help, **constraints}
    if isinstance(default, (list, dict, set)):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        inner = _type_name(args[0]) if args else "any"
        return f"list[{inner}]"
    if origin is dict:
        k, v = get_args(tp)
        return f"dict[{_type_name(k)}, {_type_name(v)}]"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _check_constraints(value: Any, meta: typing.Mapping[str, Any], path: str) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        close = difflib.get_close_matches(str(value), [str(c) for c in meta["choices"]], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: {_short(value)} is not allowed; choose one of {list(meta['choices'])}{hint}")
    bounds = (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<"))
    for key, ok, sym in bounds:
        if key in meta and isinstance(value, (int, float)) and not ok(value, meta[key]):
            raise ConfigError(f"{path}: {_short(value)} is out of range; it must be {sym} {meta[key]}")


_SCI = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)[eE][+-]?\d+$")


def _yaml11_number(value: Any) -> Any:
    """PyYAML (YAML 1.1) reads ``3.3e8`` (no dot or sign in the exponent) as a string: accept it as a number."""
    if isinstance(value, str) and _SCI.match(value.strip()):
        return float(value)
    return value


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise a ConfigError naming ``path``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        non_null = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(non_null) < len(get_args(tp)):
            return None
        if len(non_null) == 1:  # Optional[X]: X's own, more specific message
            return _convert(value, non_null[0], path)
        errors = []
        for arg in get_args(tp):
            try:
                return _convert(value, arg, path)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {_short(value)}")
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(f"{path}: expected null, got {_short(value)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed:
            return value
        close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{path}: {_short(value)} is not allowed; choose one of {list(allowed)}{hint}")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {_short(value)}")
        (inner,) = get_args(tp)[:1] or (Any,)
        items = [_convert(v, inner, f"{path}[{k}]") for k, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {_short(value)}")
        kt, vt = get_args(tp)

        def key(k: Any) -> Any:
            # JSON object keys are strings: a config read back from a manifest or search_config.json
            if kt is int and isinstance(k, str) and k.lstrip("-").isdigit():
                k = int(k)
            return _convert(k, kt, f"{path}.<key>")

        return {key(k): _convert(v, vt, f"{path}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true/false, got {type(value).__name__} {_short(value)}")
    if tp in (int, float):
        value = _yaml11_number(value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value)  # YAML reads 1e6 as a float; accept whole numbers
        raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {_short(value)}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(f"{path}: expected a finite number, got {_short(value)}")
            return float(value)
        raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {_short(value)}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {_short(value)}")
    raise TypeError(f"schema type {tp!r} at {path} is not supported")


def fold_aliases(cls: type, data: Any, path: str = "") -> Any:
    """``data`` with the old key names of ``cls.ALIASES`` (old -> new) renamed; both given and different is an error.

    A renamed key keeps loading from older configs and recorded runs; only the new name is written back.
    """
    aliases = getattr(cls, "ALIASES", None)
    if not aliases or not isinstance(data, dict) or not any(old in data for old in aliases):
        return data
    data = dict(data)
    for old, new in aliases.items():
        if old not in data:
            continue
        value = data.pop(old)
        if data.get(new) is not None and value is not None and data[new] != value:
            raise ConfigError(f"{_join(path, old)} ({_short(value)}) is the old name of {_join(path, new)} "
                              f"({_short(data[new])}): give only {_join(path, new)}")
        if value is not None or new not in data:
            data[new] = value
    return data


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``; unknown keys, bad types and ranges raise ConfigError."""
    where = path or "<config>"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {_short(data)}")
    data = fold_aliases(cls, data, path)
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{_join(path, key)}: unknown key{hint}; allowed keys: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        sub = _join(path, name)
        if name in data:
            value = _convert(data[name], hints[name], sub)
            _check_constraints(value, f.metadata, sub)
            kwargs[name] = value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required key is missing ({_type_name(hints[name])})")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None
    return obj


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config dataclass (lists, dicts, scalars), suitable for YAML/JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _short(value: Any, limit: int = 120) -> str:
    """``repr(value)`` cut to ``limit`` characters: an error line never prints a huge value."""
    r = reprlib.Repr()
    r.maxlevel, r.maxstring, r.maxother, r.maxlist, r.maxdict = 3, limit, limit, 8, 8
    text = r.repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)
