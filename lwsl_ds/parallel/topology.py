"""Which rank owns which layer group, and the process groups a layer-parallel run talks over.

Ranks are laid out group-major: rank = g * D + d, where g is the layer group and d the data-parallel
index inside the group. Rank (g, d) receives layer inputs from (g-1, d) and sends them to (g+1, d); its
gradients are averaged over the D ranks of group g only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Topology", "Comms", "build_comms"]


@dataclass(frozen=True)
class Topology:
    """G layer groups x D data-parallel ranks; this process's rank."""

    groups: int
    data_parallel: int
    rank: int

    @classmethod
    def of_world(cls, world_size: int, data_parallel: int, rank: int,
                 key: str = "train.parallel.data_parallel") -> "Topology":
        """``world_size / data_parallel`` groups; refuses a width that does not divide the world, naming ``key``."""
        from ..common.dist import check_divides

        check_divides(data_parallel, world_size, key)
        return cls(world_size // data_parallel, data_parallel, rank)

    def __post_init__(self) -> None:
        world = self.groups * self.data_parallel
        if not 0 <= self.rank < world:
            raise ValueError(f"rank {self.rank} is outside a world of {self.groups} layer groups x "
                             f"{self.data_parallel} data-parallel ranks = {world}")

    @property
    def world_size(self) -> int:
        """G x D."""
        return self.groups * self.data_parallel

    @property
    def group(self) -> int:
        """Layer group this rank owns."""
        return self.rank // self.data_parallel

    @property
    def data_rank(self) -> int:
        """Index of this rank among the ranks of its group (its data shard)."""
        return self.rank % self.data_parallel

    def rank_of(self, group: int, data_rank: int) -> int:
        """Global rank of (group, data_rank)."""
        return group * self.data_parallel + data_rank

    def group_ranks(self, group: int) -> list[int]:
        """Global ranks of one layer group."""
        return [self.rank_of(group, d) for d in range(self.data_parallel)]

    @property
    def is_first(self) -> bool:
        """True on the group that reads images (stem and first layers)."""
        return self.group == 0

    @property
    def is_last(self) -> bool:
        """True on the group holding the final head."""
        return self.group == self.groups - 1


@dataclass
class Comms:
    """Process groups of one rank: its data-parallel group, and one group per link to each neighbour.

    Forward data and replica refreshes use *separate* groups: on NCCL, point-to-point ops of one
    communicator run in order on one stream, so a receive waiting for a replica would block a later
    send of layer inputs behind it (deadlock). Separate groups cost one communicator each.
    """

    dp: Any
    solo: Any = None        # this rank alone (DeepSpeed's "model parallel" group of size 1)
    fwd_in: Any = None      # from (g-1, d)
    fwd_out: Any = None     # to (g+1, d)
    replica_in: Any = None  # from (g+1, d): refreshed weights of its first layer
    replica_out: Any = None  # to (g-1, d)


def build_comms(topo: Topology) -> Comms:
    """Create every subgroup (all ranks must call this, in the same order) and keep this rank's."""
    import torch.distributed as td

    mine: dict[str, Any] = {}
    for r in range(topo.world_size):  # one-rank groups: DeepSpeed's model-parallel group (size 1)
        pg = td.new_group([r])
        if r == topo.rank:
            mine["solo"] = pg
    for g in range(topo.groups):  # data-parallel groups
        pg = td.new_group(topo.group_ranks(g))
        if g == topo.group:
            mine["dp"] = pg
    for g in range(topo.groups - 1):  # links g -> g+1, one pair per data rank, two groups per pair
        for d in range(topo.data_parallel):
            pair = [topo.rank_of(g, d), topo.rank_of(g + 1, d)]
            fwd = td.new_group(pair)
            rep = td.new_group(pair)
            if topo.rank == pair[0]:
                mine["fwd_out"], mine["replica_in"] = fwd, rep
            elif topo.rank == pair[1]:
                mine["fwd_in"], mine["replica_out"] = fwd, rep
    return Comms(**mine)
