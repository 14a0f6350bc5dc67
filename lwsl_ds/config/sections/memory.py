"""`memory:` section of the experiment config: settings of the memory report (profiling/memory_report.py).

The memory levers themselves are ``train.*`` keys (sections/train.py, :class:`~.train.Levers`): the report
accounts what training runs. Configs written before that carried the levers here too; those keys still
load as aliases (:data:`LEVER_ALIASES`, moved by :func:`move_lever_aliases`):

====================================  ==========================================
old key                               same as
====================================  ==========================================
``memory.balance: auto``              ``train.micro_batches: auto``
``memory.balance: explicit`` +
``memory.micro_batches: {l: m}``      ``train.micro_batches: {l: m}``
``memory.budget_mib``                 ``train.memory_budget_mib``
``memory.checkpoint_groups: [g..]``   ``train.activation_checkpointing: [g..]``
``memory.offload_groups: true``       ``train.offload_inactive: true``
====================================  ==========================================
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal, Optional

from ..schema import ConfigError, spec

__all__ = ["MemoryConfig", "LEVER_ALIASES", "move_lever_aliases"]

# old memory.* key -> the train.* key it stands for
LEVER_ALIASES = {"balance": "micro_batches", "micro_batches": "micro_batches", "budget_mib": "memory_budget_mib",
                 "checkpoint_groups": "activation_checkpointing", "offload_groups": "offload_inactive"}


@dataclass(frozen=True)
class MemoryConfig:
    """Settings of the memory phase (profiling/memory_report.py); the levers it accounts are ``train.*``."""

    seed: int = spec(0, ge=0, help="seed of this phase's random choices (rng: sample)")
    strategies: list[str] = spec(["spos", "greedy", "non_greedy"], help="strategies to account; spos is the "
                                                                         "100% reference")
    batch_sizes: list[int] = spec([128], help="per-rank batch sizes to account")
    resolution: Optional[int] = spec(None, ge=8, le=1024, help="input side; default: the space's resolution")
    rng: Literal["worst", "sample"] = spec("worst", help="worst: every random draw (SPOS path, non-greedy's "
                                                         "stacked choice) takes the largest choice, the peak "
                                                         "over training; sample: draw as training does")
    floor_factor: float = spec(2.0, ge=1.0, help="the report's balanced rows without train.memory_budget_mib: "
                                                 "budget = this x the largest per-layer floor (batch, layer "
                                                 "input, accumulator); training's auto plan uses 2")
    # The CUDA context alone measured at 723 MiB in nvidia-smi right after the first CUDA call
    # (discuss.pytorch.org/t/what-is-the-reason-for-pytorchs-gpu-memory-floor/73021); not measured here (no
    # GPU). Allocator cache and cuDNN/cuBLAS workspaces come on top and are not included.
    device_overhead_mib: float = spec(
        723.0, ge=0, help="device-level view without a GPU: fixed MiB added to every strategy (the CUDA context; "
                          "allocator cache and library workspaces not included); see docs/memory.md")
    reduce_bucket_size: int = spec(20_000_000, ge=1, help="ZeRO 1/2 reduce bucket elements per engine used "
                                                          "in the model-state accounting")

    def validate(self) -> None:
        """Cross-field checks: known strategies, positive batch sizes."""
        bad = [s for s in self.strategies if s not in ("spos", "greedy", "non_greedy")]
        if bad:
            raise ConfigError(f"memory.strategies: unknown {bad}; choose from ['spos', 'greedy', 'non_greedy']")
        if not self.strategies:
            raise ConfigError("memory.strategies: at least one strategy is required")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"memory.batch_sizes: need positive integers, got {self.batch_sizes}")


def move_lever_aliases(data: Any) -> Any:
    """The experiment dict with the old ``memory.*`` lever keys moved to their ``train.*`` keys.

    Default values (a recorded config of an older run lists every key) move nothing. An alias and its
    ``train.*`` key set to different values raise ConfigError naming both.
    """
    mem = data.get("memory") if isinstance(data, dict) else None
    if not isinstance(mem, dict) or not any(k in mem for k in LEVER_ALIASES):
        return data
    out = copy.deepcopy(data)
    mem = out["memory"]
    old = {k: mem.pop(k) for k in LEVER_ALIASES if k in mem}
    balance, plan = old.get("balance", "off"), old.get("micro_batches") or {}
    if balance not in ("off", "auto", "explicit"):
        raise ConfigError(f"memory.balance: {balance!r} is not one of ['off', 'auto', 'explicit'] (an alias of "
                          "train.micro_batches)")
    if (balance == "explicit") != bool(plan):
        raise ConfigError("memory.micro_batches: set together with memory.balance: explicit (the pair is an alias "
                          "of train.micro_batches: {layer: count})")
    moved = {"balance": "auto" if balance == "auto" else plan or None, "budget_mib": old.get("budget_mib"),
             "checkpoint_groups": old.get("checkpoint_groups") or None, "offload_groups": old.get("offload_groups")
             or None}
    train = out.setdefault("train", {})
    if not isinstance(train, dict):
        return out  # from_dict names the bad train section
    for key, value in moved.items():
        if value is None:
            continue
        new = LEVER_ALIASES[key]
        if new in train and train[new] != value:
            raise ConfigError(f"memory.{key}: an alias of train.{new}, which is set to {train[new]!r}; keep "
                              f"train.{new} only")
        train[new] = value
    return out
