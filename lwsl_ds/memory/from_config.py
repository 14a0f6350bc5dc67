"""The memory report's settings read from an experiment YAML (and optionally its ds_config).

``profiling/memory_report.py --config <experiment.yaml>`` accounts the run the experiment describes: its
space and resolution, the strategy, layer groups and memory levers of ``train:`` (``cfg.train.levers``, the
object training builds its backend with), the report settings of ``memory:``, and batch / ZeRO / precision
from ``--ds_config`` (else ``memory.batch_sizes``). Command-line flags override every value.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["memory_settings", "resolve_groups"]


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
        from ..objectives import get_objective
        from ..space import SuperNet

        net = SuperNet(space, get_objective(cfg.train.objective, space.num_classes, proj_dim=cfg.train.proj_dim))
        return partition_balanced(layer_costs(net, cfg.train.auto_cost), min(cfg.train.auto_groups, n))
    return [list(g) for g in spec]


def memory_settings(cfg: Any, ds: Optional[dict] = None) -> dict[str, Any]:
    """Report settings of experiment ``cfg``: keys as memory_report.py's flags (space, resolution, batch, ...)."""
    from ..space import load_space

    m, t = cfg.memory, cfg.train
    resolution = m.resolution or cfg.space.resolution or cfg.data.resolution
    space = load_space(cfg.space.name, resolution, cfg.space.num_classes)
    groups = resolve_groups(cfg, space)
    batch = list(m.batch_sizes)
    zero, precision = 0, "fp32"
    if ds is not None:
        batch = [int(ds["train_micro_batch_size_per_gpu"])]
        zero = int((ds.get("zero_optimization") or {}).get("stage", 0))
        precision = "bf16" if (ds.get("bf16") or {}).get("enabled") else \
            "fp16" if (ds.get("fp16") or {}).get("enabled") else "fp32"
    strategies = list(m.strategies)
    if t.strategy not in strategies:
        strategies.append(t.strategy)
    levers = t.levers
    return {"space": cfg.space.name, "resolution": space.resolution, "batch": batch, "strategies": strategies,
            "objective": t.objective, "rng": m.rng, "balance": "auto" if levers.micro_batches == "auto" else "off",
            "budget_mib": levers.memory_budget_mib, "floor_factor": m.floor_factor,
            "groups": groups, "zero": zero, "precision": precision,
            "offload": levers.offload_groups(len(groups)) or None,
            "checkpoint_groups": levers.checkpoint_groups(groups), "overhead_mib": m.device_overhead_mib}
