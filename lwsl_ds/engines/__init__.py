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


def build_backend(kind: str, net, strategy, ds_config, *, micro_batches="off", memory_budget_mib=None,
                  offload_inactive=False, activation_checkpointing=False, **kw):
    """``kind`` 'deepspeed' or 'reference'; other keyword arguments as the backends' constructors.

    ``micro_batches`` ('off', 'auto' or layer -> count; ``train.micro_batches``) runs layer i's losses as
    micro-batches (lwsl_ds.memory.balance): the engines count them in their accumulation windows and the
    returned backend is a :class:`~lwsl_ds.memory.MicroBatchBackend` around the engines. ``auto`` chooses the
    counts from the accounting for this net and the ds_config's per-rank batch, under ``memory_budget_mib``.
    ``offload_inactive`` (true or group indices) keeps those groups' model states in host memory while they
    are not training (DeepSpeed backend only; see offload.py). ``activation_checkpointing`` (true or group
    indices) runs every choice called by those groups' losses under activation checkpointing: the engines
    are wrapped in a :class:`~lwsl_ds.memory.CheckpointBackend` (inside the micro-batch wrapper, so each
    micro-batch is checkpointed; see lwsl_ds/memory/checkpointing.py).
    """
    from ..config.ds_config import micro_batch_size
    from ..config.schema import ConfigError
    from ..memory.checkpointing import CheckpointBackend, checkpoint_groups_of
    from ..memory.training import resolve_micro_batches

    import torch.distributed as td

    world = td.get_world_size() if td.is_available() and td.is_initialized() else 1
    batch = micro_batch_size(ds_config, world)
    plan = resolve_micro_batches(micro_batches, net, strategy.name, batch, budget_mib=memory_budget_mib)
    if kind == "deepspeed":
        from .deepspeed_engines import DeepSpeedBackend

        backend = DeepSpeedBackend(net, strategy, ds_config, micro_batches=plan, offload_groups=offload_inactive,
                                   **kw)
    elif kind == "reference":
        if offload_inactive:
            # The reference steps every group at the end of the step, so all groups' gradients stay live.
            raise ConfigError("train.offload_inactive: implemented for the DeepSpeed backend only (the reference "
                              "backend updates every group at the end of the step)")
        kw.pop("job_name", None)
        kw.pop("monitor_dir", None)
        backend = ReferenceBackend(net, strategy, ds_config, micro_batches=plan, **kw)
    else:
        raise ValueError(f"unknown backend {kind!r}; choose 'deepspeed' or 'reference'")
    ckpt = checkpoint_groups_of(activation_checkpointing, backend.groups)
    if ckpt:
        backend.plan.checkpointed = ckpt
        backend = CheckpointBackend(backend, net, [i for g in ckpt for i in backend.groups[g]], backend.groups)
    if plan:
        from ..memory.balance import MicroBatchBackend

        return MicroBatchBackend(backend, plan, batch, net.objective.views)
    return backend
