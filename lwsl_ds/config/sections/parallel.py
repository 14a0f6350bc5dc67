"""Settings of layer-parallel super-net training (``train.parallel: layer``).

The ``train.parallel`` field of ``TrainConfig``; ``launchers/train.py`` dispatches ``mode: layer`` to
lwsl_ds.parallel (see docs/layer_parallel.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..schema import spec

__all__ = ["ParallelConfig"]


@dataclass(frozen=True)
class ParallelConfig:
    """How ranks split the work: data parallel only, or one layer group per set of ranks."""

    mode: Literal["data", "layer"] = spec(
        "data", help="data: every rank runs every layer group (data parallel); layer: rank set g owns layer "
                     "group g and layer inputs flow forward point-to-point (asynchronous pipeline)")
    data_parallel: int = spec(1, ge=1, help="layer mode: ranks per layer group (world size = groups x this)")
    queue_depth: int = spec(2, ge=1, le=64, help="layer mode: batches in flight per group boundary (sends "
                                                 "posted ahead / receives pre-posted); memory = depth x one "
                                                 "layer input")
    replica_refresh_every: int = spec(1, ge=1, help="layer mode, non_greedy: refresh the read-only replica of "
                                                    "the next group's first layer every K owner steps")
    replica_lag: int = spec(1, ge=0, help="layer mode, non_greedy: step t uses the next group's first layer "
                                          "as of step t - lag (0 = exactly the synchronous weights, at the cost "
                                          "of waiting for the next group)")
    timeout_s: float = spec(300.0, gt=0, help="layer mode: a rank that sees no progress (or a peer that "
                                              "stops answering) for this long ends the job")
