"""Update backends: one DeepSpeed engine per layer group, and the plain-PyTorch reference (the oracle).

``BACKENDS`` maps a backend name (``--backend``) to its class; :func:`build_backend` builds one for a
training run with its memory levers around it. DeepSpeed itself is imported only when a
``DeepSpeedBackend`` is constructed, so ``import lwsl_ds.engines`` stays light.
"""

from __future__ import annotations

from typing import Any

from ..common.dist import group_size
from ..config.ds_config import micro_batch_size
from ..config.schema import ConfigError
from ..config.sections.train import Levers
from ..strategies.groups import layer_costs, partition_balanced, resolve_layer_groups
from .deepspeed_engines import DeepSpeedBackend
from .plan import GroupPlan
from .reference import ReferenceBackend

__all__ = ["BACKENDS", "GroupPlan", "ReferenceBackend", "DeepSpeedBackend", "backend_class", "build_backend",
           "layer_costs", "partition_balanced", "resolve_layer_groups"]

# name -> update backend class; every one takes (net, strategy, ds_config, *, layer_groups, auto_groups,
# auto_cost, total_steps, group_overrides, job_name, monitor_dir, micro_batches, offload_groups)
BACKENDS: dict[str, type] = {"deepspeed": DeepSpeedBackend, "reference": ReferenceBackend}


def backend_class(kind: str) -> type:
    """The update backend class called ``kind``; ValueError naming the known ones otherwise."""
    if kind not in BACKENDS:
        raise ValueError(f"unknown backend {kind!r}; choose from {sorted(BACKENDS)}")
    return BACKENDS[kind]


def build_backend(kind: str, net, strategy, ds_config, *, levers: Levers | None = None, micro_batches="off",
                  memory_budget_mib=None, offload_inactive=False, activation_checkpointing=False, **kw: Any):
    """The update backend of a training run: ``BACKENDS[kind]`` with the memory ``levers`` around it.

    ``levers`` (:class:`~lwsl_ds.config.sections.train.Levers`, e.g. ``cfg.train.levers``) or, the same
    four values one by one, ``micro_batches`` / ``memory_budget_mib`` / ``offload_inactive`` /
    ``activation_checkpointing`` (docs/memory.md); other keyword arguments go to the backend's constructor.
    The levers are resolved for this net and the ds_config's per-rank batch (``auto`` micro-batches planned
    from the accounting) and wrapped by :func:`lwsl_ds.memory.wrap_levers`, as the accounting does.
    """
    from ..memory.levers import resolve_levers, wrap_levers

    loose = Levers(micro_batches, memory_budget_mib, offload_inactive, activation_checkpointing)
    if levers is None:
        levers = loose
    elif loose != Levers():
        raise ConfigError("build_backend: pass the memory levers either as levers= or as keywords, not both")
    cls = backend_class(kind)
    batch = micro_batch_size(ds_config, group_size())
    levers = resolve_levers(levers, net, strategy.name, batch)
    backend = cls(net, strategy, ds_config, micro_batches=levers.plan, offload_groups=levers.offload_inactive, **kw)
    return wrap_levers(backend, net, levers, batch)
