"""One rank of a layer-parallel run, assembled and validated once: topology, layer groups, backend, links.

:class:`~lwsl_ds.parallel.trainer.LayerParallelTrainer` only holds what it is given; this module decides
it. Every rank must call :func:`build_layer_parallel_trainer` in the same order (it creates the process
subgroups of every link, collectively).

Example (every rank of a ``torchrun --nproc_per_node 2`` job)::

    trainer = build_layer_parallel_trainer(net, get_strategy("greedy"), ds_config, layer_groups="auto",
                                           parallel=ParallelConfig(mode="layer"), seed=0, total_steps=100)
    trainer.train(batches if trainer.topo.is_first else None, max_steps=100)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from ..config.schema import ConfigError
from ..engines.plan import GroupPlan
from ..space import SuperNet
from ..strategies.layerwise import LayerwiseStrategy
from .channel import LayerInputFormat, Receiver, Sender
from .config import ParallelConfig
from .replica import ReplicaOwner, ReplicaReceiver, replica_modules
from .group_backend import ReferenceGroupBackend
from .topology import Comms, Topology, build_comms
from .trainer import LayerParallelTrainer, Links, release_unowned

__all__ = ["build_layer_parallel_trainer", "require_layerwise", "world_topology", "layer_plan", "group_backend_of",
           "build_links"]


def require_layerwise(strategy: Any) -> None:
    """Refuse a strategy that back-propagates end-to-end (spos): no gradient may cross a group boundary."""
    if not isinstance(strategy, LayerwiseStrategy):
        raise ConfigError(f"train.strategy={strategy.name} with parallel.mode=layer: {strategy.name} back-propagates "
                          "end-to-end through every layer group; use greedy or non_greedy (or parallel.mode=data)")


def world_topology(data_parallel: int, key: str = "train.parallel.data_parallel") -> Topology:
    """This rank's place in the existing process group: ``world / data_parallel`` layer groups."""
    from ..common.dist import group_rank, group_size, has_group

    if not has_group():
        raise RuntimeError("layer-parallel training needs a process group (lwsl_ds.common.dist.init_distributed)")
    return Topology.of_world(group_size(), data_parallel, group_rank(), key)


def layer_plan(net: SuperNet, strategy: LayerwiseStrategy, layer_groups: Any, topo: Topology, *,
               auto_groups: Optional[int] = None, auto_cost: str = "flops") -> GroupPlan:
    """The layer groups, one per rank set (``auto``: balanced into ``topo.groups``); refuses another count."""
    plan = GroupPlan.build(net, strategy, layer_groups, auto_groups=auto_groups or topo.groups, auto_cost=auto_cost)
    if len(plan.groups) != topo.groups:
        raise ConfigError(f"train.parallel.mode=layer: {len(plan.groups)} layer groups {plan.groups} but world size "
                          f"{topo.world_size} / data_parallel {topo.data_parallel} = {topo.groups} rank sets; use "
                          "layer_groups: auto (auto_groups = world / data_parallel) or launch "
                          f"{len(plan.groups) * topo.data_parallel} ranks")
    return plan


def group_backend_of(kind: str, plan: GroupPlan, group: int, ds_config: Mapping[str, Any], comms: Comms, *,
                  total_steps: int, group_overrides: Optional[Mapping[Any, Mapping[str, Any]]] = None,
                  job_name: str = "train", monitor_dir: str | Path | None = None) -> Any:
    """The update backend of this rank's layer group: its DeepSpeed engine, or plain PyTorch (``reference``)."""
    if kind == "deepspeed":
        from .ds_group_backend import DeepSpeedGroupBackend

        return DeepSpeedGroupBackend(plan, group, ds_config, dp_group=comms.dp, solo_group=comms.solo,
                                     total_steps=total_steps, group_overrides=group_overrides, job_name=job_name,
                                     monitor_dir=monitor_dir)
    if kind == "reference":
        return ReferenceGroupBackend(plan, group, ds_config, total_steps=total_steps, group_overrides=group_overrides,
                            dp_group=comms.dp)
    raise ValueError(f"unknown backend {kind!r}; choose 'deepspeed' or 'reference'")


def layer_input_format(net: SuperNet, layer: int, batch: int, dtype: torch.dtype,
                       resolution: Optional[int] = None) -> LayerInputFormat:
    """Layout of the messages that carry ``layer``'s output (``batch`` samples x the objective's views).

    The super-net runs at any input side (convolutions and global pooling), so the data's ``resolution``,
    not the space's, sets the feature-map sides; the space re-derived at that side gives them.
    """
    space = net.space if resolution in (None, net.space.resolution) else net.space.with_overrides(resolution)
    spec = space.layers[layer]
    r = spec.out_resolution
    return LayerInputFormat(batch, (batch * net.objective.views, spec.out_channels, r, r), dtype)


def build_links(net: SuperNet, plan: GroupPlan, topo: Topology, comms: Comms, parallel: ParallelConfig, *,
                batch: int, rep_next: list, own_first: list, resolution: Optional[int] = None) -> Links:
    """This rank's links, created in a fixed order (receives are posted at once): in, out, replica, owner."""
    g, d, depth = topo.group, topo.data_rank, parallel.queue_depth
    first = next(p for u in plan.units[g] for p in u.module.parameters())
    links = Links()
    if not topo.is_first:
        links.fmt_in = layer_input_format(net, plan.groups[g - 1][-1], batch, first.dtype, resolution)
        links.recv = Receiver(topo.rank_of(g - 1, d), comms.fwd_in, depth, links.fmt_in.nbytes, first.device)
    if not topo.is_last:
        links.fmt_out = layer_input_format(net, plan.groups[g][-1], batch, first.dtype, resolution)
        links.send = Sender(topo.rank_of(g + 1, d), comms.fwd_out, depth, links.fmt_out.nbytes)
    K, L = parallel.replica_refresh_every, parallel.replica_lag
    if rep_next:
        links.replica = ReplicaReceiver(rep_next, topo.rank_of(g + 1, d), comms.replica_in, K, L)
    if own_first:
        links.owner = ReplicaOwner(own_first, topo.rank_of(g - 1, d), comms.replica_out, K, L, depth)
    return links


def build_layer_parallel_trainer(net: SuperNet, strategy: LayerwiseStrategy, ds_config: Mapping[str, Any], *,
                                 layer_groups: Any = "auto", auto_groups: Optional[int] = None,
                                 auto_cost: str = "flops", parallel: ParallelConfig = ParallelConfig(mode="layer"),
                                 seed: int = 0, total_steps: int = 1,
                                 group_overrides: Optional[Mapping[Any, Mapping[str, Any]]] = None,
                                 batch_size: Optional[int] = None, release: bool = True, backend: str = "reference",
                                 job_name: str = "train", monitor_dir: str | Path | None = None,
                                 topology: Optional[Topology] = None,
                                 resolution: Optional[int] = None) -> LayerParallelTrainer:
    """This rank's trainer: layer groups, the group's update backend, links and replicas, each checked once.

    ``topology`` defaults to this rank's place in the process group; ``batch_size`` to the ds_config's
    per-rank batch; ``release`` moves the modules of other groups to ``meta`` (the point of the mode);
    ``resolution`` is the side of the images the data delivers (default: the space's), which fixes the
    shape of every message between groups.
    """
    from ..config.ds_config import micro_batch_size

    require_layerwise(strategy)
    topo = topology or world_topology(parallel.data_parallel)
    plan = layer_plan(net, strategy, layer_groups, topo, auto_groups=auto_groups, auto_cost=auto_cost)
    comms = build_comms(topo)
    group_backend = group_backend_of(backend, plan, topo.group, ds_config, comms, total_steps=total_steps,
                                     group_overrides=group_overrides, job_name=job_name, monitor_dir=monitor_dir)
    g, non_greedy = topo.group, strategy.name == "non_greedy"
    rep_next = replica_modules(net, plan.groups[g + 1][0]) if non_greedy and not topo.is_last else []
    own_first = replica_modules(net, plan.groups[g][0]) if non_greedy and g > 0 else []
    if release:  # each rank holds only its group (+ the replica): the point of layer parallelism
        release_unowned(net, [u.module for u in plan.units[g]] + rep_next)
    links = build_links(net, plan, topo, comms, parallel, batch=batch_size or micro_batch_size(ds_config, 1),
                        rep_next=rep_next, own_first=own_first, resolution=resolution)
    device = next(p for u in plan.units[g] for p in u.module.parameters()).device
    return LayerParallelTrainer(net, strategy, plan, topo, group_backend, links, parallel=parallel, seed=seed, device=device)
