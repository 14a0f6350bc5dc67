"""A run's recorded config: what training resolved from data and environment, and how later phases use it.

Training writes the config of a run with every value it derived filled in (class count from the data,
resolution, layer groups chosen by ``auto``, the ``auto`` micro-batch plan), so a later phase (search, rank,
retrain, memory report) rebuilds the same super-net from the run alone. A later phase starts from that
recorded config; the keys its own config or command line sets explicitly go on top, except the run's
identity (what the trained weights fix: :data:`IDENTITY`), where a different explicit value is refused with
one line naming both values.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Mapping, Optional

from .schema import ConfigError, to_dict

__all__ = ["IDENTITY", "resolve_num_classes", "resolve_run_config", "resolved_header", "recorded_yaml",
           "merge_with_run"]

# Keys the trained super-net fixes: its shapes (space, objective head) and the resolution it was trained and
# costed at. Every other key of a later phase's config may differ from the run's.
IDENTITY = ("space.name", "space.resolution", "space.num_classes", "data.resolution", "train.objective",
            "train.proj_dim", "train.mlp_decoder")

# Values training resolves; listed in the comment header of the recorded config.yaml.
RESOLVED = ("space.resolution", "space.num_classes", "data.resolution", "train.layer_groups", "train.micro_batches",
            "train.memory_budget_mib")


def resolve_num_classes(space: Any, cfg: Any, data_classes: int) -> Any:
    """The space with the data's class count when ``space.num_classes`` is not set in the config.

    Both objectives: with ce it sizes the heads; with infonce the heads ignore it, but the search's cost
    table counts the final FC of the sub-net that will be deployed on this data.
    """
    if cfg.space.num_classes is None and data_classes != space.num_classes:
        return space.with_overrides(num_classes=data_classes)
    return space


def resolve_run_config(cfg: Any, *, space: Any, data_resolution: int, groups: list[list[int]],
                       micro_batches: Optional[Mapping[int, int]] = None) -> Any:
    """``cfg`` with the values training derived written in: the config a later phase can rebuild the run from."""
    t = cfg.train
    train = dataclasses.replace(t, layer_groups=[list(g) for g in groups])
    if t.micro_batches == "auto":  # the plan the accounting chose; its budget is spent (and refused without auto)
        train = dataclasses.replace(train, micro_batches={int(k): int(v) for k, v in (micro_batches or {}).items()}
                                    or "off", memory_budget_mib=None)
    return dataclasses.replace(
        cfg, space=dataclasses.replace(cfg.space, resolution=space.resolution, num_classes=space.num_classes),
        data=dataclasses.replace(cfg.data, resolution=data_resolution), train=train)


def resolved_header(given: Any, resolved: Any) -> str:
    """YAML comment lines naming each value training resolved (given -> recorded); '' when none changed."""
    a, b = to_dict(given), to_dict(resolved)
    lines = [f"#   {key}: {_flow(_get(a, key))} -> {_flow(_get(b, key))}" for key in RESOLVED
             if _get(a, key) != _get(b, key)]
    if not lines:
        return ""
    return "# Resolved by training from the data and the environment (given -> recorded):\n" + "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    """One-line YAML of a value (flow style), as it would read in the config."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def recorded_yaml(given: Any, resolved: Any) -> str:
    """The text of a run's ``config.yaml``: the resolved config, after a header naming what was resolved."""
    import yaml

    return resolved_header(given, resolved) + yaml.safe_dump(to_dict(resolved), sort_keys=False)


def merge_with_run(recorded: Optional[Mapping[str, Any]], given: Optional[Mapping[str, Any]], *,
                   where: str) -> dict[str, Any]:
    """A later phase's config as a plain dict: the run's recorded config, then the keys ``given`` sets.

    ``given`` is the phase's own config (YAML data plus overrides, before defaults are filled in), so only
    keys it names explicitly count. An identity key set to another non-null value than the run's raises
    ConfigError; a null one takes the run's value. A ``data.source`` other than the run's replaces the
    run's whole ``data`` section (another data set), keeping its resolution.
    """
    if recorded is None:
        return copy.deepcopy(dict(given or {}))
    out = copy.deepcopy(dict(recorded))
    for key in IDENTITY:
        mine, theirs = _get(given or {}, key), _get(out, key)
        if mine is not None and theirs is not None and mine != theirs:
            raise ConfigError(f"{where}: {key}={mine!r} conflicts with the trained super-net ({key}={theirs!r} in "
                              "its recorded config); drop the setting, later phases take it from the run")
    given = dict(given or {})
    data = given.get("data")
    if isinstance(data, Mapping) and data.get("source") not in (None, _get(out, "data.source")):
        # Another data set (e.g. retraining on full ImageNet after an ImageNet-100 search): its own section, whole,
        # not the run's lists and roots under another source; the resolution stays the run's unless it sets one.
        out["data"] = {"resolution": _get(out, "data.resolution")}
    _merge(out, given)
    for key in IDENTITY:  # an explicit null keeps the run's value
        if _get(out, key) is None and _get(recorded, key) is not None:
            _set(out, key, _get(recorded, key))
    return out


def _merge(base: dict, top: Mapping[str, Any]) -> None:
    """Deep-merge ``top`` into ``base`` for config sections (mappings of mappings); values replace."""
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict) and _is_section(base[k]):
            _merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)


def _is_section(d: Mapping[str, Any]) -> bool:
    # A config section has string keys; value mappings such as train.micro_batches {0: 2} or
    # train.group_overrides {1: {...}} have int keys and are replaced whole.
    return all(isinstance(k, str) and not k.isdigit() for k in d)


def _get(d: Mapping[str, Any], key: str) -> Any:
    node: Any = d
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _set(d: dict, key: str, value: Any) -> None:
    *head, last = key.split(".")
    node = d
    for part in head:
        node = node.setdefault(part, {})
    node[last] = value
