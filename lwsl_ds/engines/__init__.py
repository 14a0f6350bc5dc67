"""Update backends: one DeepSpeed engine per layer group, and the plain-PyTorch reference (the oracle).

``DeepSpeedBackend`` imports DeepSpeed only when constructed, so ``import lwsl_ds.engines`` stays light.
"""

from __future__ import annotations

from .groups import layer_costs, partition_balanced, resolve_layer_groups
from .plan import GroupPlan
from .reference import ReferenceBackend

__all__ = ["GroupPlan", "ReferenceBackend", "DeepSpeedBackend", "build_backend", "layer_costs",
           "partition_balanced", "resolve_layer_groups"]


def __getattr__(name: str):
    if name == "DeepSpeedBackend":
        from .deepspeed_engines import DeepSpeedBackend

        return DeepSpeedBackend
    raise AttributeError(name)


def build_backend(kind: str, net, strategy, ds_config, **kw):
    """``kind`` 'deepspeed' or 'reference'; keyword arguments as the backends' constructors."""
    if kind == "deepspeed":
        from .deepspeed_engines import DeepSpeedBackend

        return DeepSpeedBackend(net, strategy, ds_config, **kw)
    if kind == "reference":
        kw.pop("job_name", None)
        kw.pop("monitor_dir", None)
        return ReferenceBackend(net, strategy, ds_config, **kw)
    raise ValueError(f"unknown backend {kind!r}; choose 'deepspeed' or 'reference'")
