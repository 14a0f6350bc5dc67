"""Model states per engine: parameters, gradients, optimizer states and DeepSpeed's own buffers.

A formula per ZeRO stage, read off DeepSpeed 0.19.8 (``runtime/zero/stage_1_and_2.py``, ``runtime/engine.py``)
and checked against real engines by ``bench/memory_groups.py`` (numbers in docs/memory.md):

* ZeRO 0: parameters and gradients in the compute dtype; bf16/fp16 add an fp32 master copy and fp32
  gradients; the optimizer state in fp32 (Adam: 2 values per parameter, SGD with momentum: 1).
* ZeRO 1/2: the parameters live in one flat buffer per group (compute dtype) and the engine keeps an fp32
  master *partition* (a clone, even in fp32 training) of N/W elements; optimizer state is N/W; ZeRO 1 keeps
  full-size gradients until the boundary, ZeRO 2 only a partition; both allocate reduce buckets of
  ``reduce_bucket_size`` elements (two with ``overlap_comm``) **per engine**, which is why many engines need
  small buckets: the default 5e8 elements is 2 GB per engine in fp32.

Bucket sizes used here (override per engine): ``reduce_bucket_size`` = ``allgather_bucket_size`` = 2e7
elements (80 MB fp32): larger than any single tensor of the paper super-net (the biggest, the head's
1984x1000 FC, is 2e6 elements) so a bucket never splits a tensor, yet small enough that 16 engines cost
1.3 GB rather than 32 GB.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Literal

from torch import nn

__all__ = ["EngineSettings", "EngineStates", "engine_states", "DEFAULT_BUCKET", "DTYPE_BYTES", "module_params",
           "offloaded_device_states"]

DEFAULT_BUCKET = 20_000_000  # elements; see the module docstring
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
OPT_STATES = {"adam": 2, "adamw": 2, "sgd": 1, "sgd_nomomentum": 0}


@dataclass(frozen=True)
class EngineSettings:
    """What the model-state formula needs to know of every engine (the ds_config's systems knobs)."""

    zero_stage: int = 0
    world_size: int = 1  # data-parallel ranks of the engine
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    optimizer: str = "adam"
    reduce_bucket_size: int = DEFAULT_BUCKET


@dataclass(frozen=True)
class EngineStates:
    """Bytes of one engine's model states on one rank (``transient``: exists only inside backward/step)."""

    name: str
    num_params: int
    zero_stage: int
    params: int
    grads: int
    master: int
    optimizer: int
    buckets: int
    transient: int = 0

    @property
    def total(self) -> int:
        """Persistent bytes held by the engine for the whole step."""
        return self.params + self.grads + self.master + self.optimizer + self.buckets

    def to_dict(self) -> dict:
        """Plain-JSON form, with the total."""
        return {**asdict(self), "total": self.total}


def module_params(modules: Iterable[nn.Module]) -> int:
    """Number of distinct trainable parameter elements of some modules (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for m in modules:
        for p in m.parameters():
            if p.requires_grad:
                seen[id(p)] = p.numel()
    return sum(seen.values())


def engine_states(num_params: int, *, name: str = "engine", zero_stage: int = 0, world_size: int = 1,
                  precision: Literal["fp32", "bf16", "fp16"] = "fp32", optimizer: str = "adam",
                  reduce_bucket_size: int = DEFAULT_BUCKET, overlap_comm: bool = False,
                  contiguous_gradients: bool = True) -> EngineStates:
    """Model-state bytes of one engine on one rank, by ZeRO stage, precision and optimizer."""
    if zero_stage not in (0, 1, 2):
        raise ValueError(f"zero_stage: {zero_stage!r} is not accounted; choose 0, 1 or 2")
    if precision not in DTYPE_BYTES:
        raise ValueError(f"precision: {precision!r} is not one of {list(DTYPE_BYTES)}")
    if optimizer not in OPT_STATES:
        raise ValueError(f"optimizer: {optimizer!r} is not one of {list(OPT_STATES)}")
    if world_size < 1:
        raise ValueError(f"world_size: must be >= 1, got {world_size}")
    n, c, w = num_params, DTYPE_BYTES[precision], world_size
    part = -(-n // w)  # ceil: ZeRO pads the flat buffer to a multiple of the world size
    mixed = precision != "fp32"
    opt_per = OPT_STATES[optimizer] * 4  # optimizer states are fp32
    if zero_stage == 0:
        params, grads = c * n, c * n + (4 * n if mixed else 0)
        master = 4 * n if mixed else 0
        optim = opt_per * n
        buckets = 0
        # engine.allreduce_gradients flattens gradients into buffers of allreduce_bucket_size elements
        transient = c * min(n, reduce_bucket_size) if w > 1 else 0
    else:
        params = c * n
        master = 4 * part  # single_partition_of_fp32_groups: a clone even in fp32 training
        optim = opt_per * part
        # ZeRO 1 keeps full .grad until the boundary, then the fp32 partition gradient; ZeRO 2 only partitions
        grads = (c * n if zero_stage == 1 else c * part) + 4 * part
        nbuf = (2 if overlap_comm else 1) if contiguous_gradients else 0
        bucket_dtype = 4 if zero_stage == 1 else c  # ZeRO 1 stages the fp32 accumulator (0.19.8)
        buckets = nbuf * reduce_bucket_size * bucket_dtype
        transient = 0
    return EngineStates(name, n, zero_stage, params, grads, master, optim, buckets, transient)


def offloaded_device_states(groups: list[EngineStates], *, prefetch: bool = True,
                            read_only_next: list[int] | None = None,
                            offloaded: Iterable[int] | None = None) -> int:
    """Device bytes when the ``offloaded`` groups' model states (default: all) wait in host memory while inactive.

    As implemented by ``train.offload_inactive`` (lwsl_ds/engines/offload.py): an offloaded group keeps only
    its ZeRO 1/2 reduce buckets on the device while inactive (DeepSpeed 0.19.8 does not move them); groups
    not offloaded keep everything. With ``prefetch`` the next offloaded group's states are counted as copied
    in while the current one trains (the implementation does not prefetch: pass False to match it).
    ``read_only_next[g]`` adds the bytes of parameters group g uses read-only from group g+1 when g+1 is
    offloaded (non-greedy: layer i+1's choices at a group boundary, fetched as device copies).
    """
    off = set(range(len(groups))) if offloaded is None else set(offloaded)
    extra = read_only_next or [0] * len(groups)
    base = sum(st.buckets if g in off else st.total for g, st in enumerate(groups))
    worst = base
    for g, st in enumerate(groups):
        now = base + (st.total - st.buckets if g in off else 0)
        if g + 1 < len(groups) and g + 1 in off:
            now += extra[g]
            if prefetch:
                now += groups[g + 1].total - groups[g + 1].buckets
        worst = max(worst, now)
    return worst
