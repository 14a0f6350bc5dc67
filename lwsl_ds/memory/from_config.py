"""The memory report's settings read from an experiment YAML (and optionally its ds_config).

``profiling/memory_report.py --config <experiment.yaml>`` (:func:`memory_settings`) accounts the run the experiment describes: its
space and resolution, the strategy, layer groups and memory levers of ``train:`` (``cfg.train.levers``, the
object training builds its backend with), the report settings of ``memory:``, and batch / ZeRO / precision
from ``--ds_config`` (else ``memory.batch_sizes``). Command-line flags override every value.
``--run <super-net folder>`` (:func:`run_settings`) takes the same from a training run's recorded config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

from ..config.schema import ConfigError

__all__ = ["memory_settings", "run_settings", "ds_settings", "resolve_groups"]


def resolve_groups(cfg: Any, space: Any) -> list[list[int]]:
    """``train.layer_groups`` as explicit contiguous groups (``auto`` balanced by the configured cost)."""
    spec = cfg.train.layer_groups
    n = space.num_layers
    if spec == "single":
        return [list(range(n))]
    if spec == "per_layer":
        return [[i] for i in range(n)]
    if spec == "auto":
        from ..strategies.groups import layer_costs, partition_balanced
        from ..objectives import objective_of
        from ..space import SuperNet

        net = SuperNet(space, objective_of(cfg.train, space.num_classes))  # the decoders training builds
        return partition_balanced(layer_costs(net, cfg.train.auto_cost), min(cfg.train.auto_groups, n))
    return [list(g) for g in spec]


def memory_settings(cfg: Any, ds: Optional[dict] = None) -> dict[str, Any]:
    """Report settings of experiment ``cfg``: keys as memory_report.py's flags (space, resolution, batch, ...)."""
    from ..space import load_space

    m, t = cfg.memory, cfg.train
    resolution = m.resolution or cfg.space.resolution or cfg.data.resolution
    space = load_space(cfg.space.name, resolution, cfg.space.num_classes)
    groups = resolve_groups(cfg, space)
    systems = ds_settings(ds) if ds is not None else {"batch": list(m.batch_sizes), "zero": 0, "precision": "fp32"}
    strategies = list(m.strategies)
    if t.strategy not in strategies:
        strategies.append(t.strategy)
    levers = t.levers
    return {"space": cfg.space.name, "resolution": space.resolution, **systems, "strategies": strategies,
            "objective": t.objective, "rng": m.rng, "balance": "auto" if levers.micro_batches == "auto" else "off",
            "budget_mib": levers.memory_budget_mib, "floor_factor": m.floor_factor, "groups": groups,
            "offload": levers.offload_groups(len(groups)) or None,
            "checkpoint_groups": levers.checkpoint_groups(groups), "overhead_mib": m.device_overhead_mib}


def ds_settings(ds: Mapping[str, Any], world_size: int = 1) -> dict[str, Any]:
    """Per-rank batch, ZeRO stage and precision of a ds_config, keyed as the report's flags."""
    from ..config.ds_config import micro_batch_size

    precision = "bf16" if (ds.get("bf16") or {}).get("enabled") else \
        "fp16" if (ds.get("fp16") or {}).get("enabled") else "fp32"
    return {"batch": [micro_batch_size(ds, world_size)], "zero": int((ds.get("zero_optimization") or {}).get("stage", 0)),
            "precision": precision}


def run_settings(run: Path, doc: Optional[Mapping[str, Any]]) -> tuple[dict[str, Any], Any]:
    """(report settings keyed as its flags, experiment config) of training run folder ``run`` with recorded
    config ``doc`` (None: the run has none)."""
    import json

    from ..common.checkpoint import find_latest
    from ..config.loader import parse_experiment

    if doc is None or not (run / "ds_config.json").is_file():
        raise ConfigError(f"--run {run}: not a training run directory (needs config.yaml and ds_config.json)")
    cfg = parse_experiment(dict(doc))
    t = cfg.train
    if not isinstance(t.layer_groups, list):
        raise ConfigError(f"--run {run}: its config records layer_groups={t.layer_groups!r}, not the resolved "
                          "groups (a run from before resolved configs); pass --space/--resolution/--groups")
    latest = find_latest(run)
    systems = ds_settings(json.loads((run / "ds_config.json").read_text()),
                          int(latest[1].get("world_size", 1)) if latest is not None else 1)
    if systems["zero"] > 2:
        raise ConfigError(f"--run {run}: ZeRO stage {systems['zero']} in its ds_config; the report accounts 0-2")
    return {"space": cfg.space.name, "resolution": cfg.space.resolution, **systems, "objective": t.objective,
            "offload": (None if t.offload_inactive is False else [] if t.offload_inactive is True
                        else list(t.offload_inactive)),
            "checkpoint_groups": t.levers.checkpoint_groups(t.layer_groups)}, cfg
