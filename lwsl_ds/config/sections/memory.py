"""`memory:` section of the experiment config: accounting report settings and the balanced-memory levers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from ..schema import ConfigError, spec


@dataclass(frozen=True)
class MemoryConfig:
    """Settings of the memory phase (profiling/memory_report.py) and of balanced layer-wise training."""

    seed: int = spec(0, ge=0, help="seed of this phase's random choices (rng: sample)")
    strategies: list[str] = spec(["spos", "greedy", "non_greedy"], help="strategies to account; spos is the "
                                                                         "100% reference")
    batch_sizes: list[int] = spec([128], help="per-rank batch sizes to account")
    resolution: Optional[int] = spec(None, ge=8, le=1024, help="input side; default: the space's resolution")
    rng: Literal["worst", "sample"] = spec("worst", help="worst: every random draw (SPOS path, non-greedy's "
                                                         "stacked choice) takes the largest choice, the peak "
                                                         "over training; sample: draw as training does")
    balance: Literal["off", "auto", "explicit"] = spec(
        "off", help="per-layer micro-batching: auto plans it from the accounting; explicit uses micro_batches")
    budget_mib: Optional[float] = spec(None, gt=0, help="balance=auto: activation budget per layer; "
                                                        "default floor_factor x the largest unavoidable floor")
    floor_factor: float = spec(2.0, ge=1.0, help="balance=auto without budget_mib: budget = this x the largest "
                                                 "per-layer floor (batch, layer input, accumulator)")
    micro_batches: dict[int, int] = spec(dict(), help="balance=explicit: layer (-1 = stem) -> micro-batches")
    checkpoint_groups: list[int] = spec(list(), help="layer groups whose choices run under activation "
                                                     "checkpointing")
    offload_groups: bool = spec(False, help="keep the model states of layer groups that are not training in "
                                            "host memory (needs one update per group when it finishes)")
    # The CUDA context alone measured at 723 MiB in nvidia-smi right after the first CUDA call
    # (discuss.pytorch.org/t/what-is-the-reason-for-pytorchs-gpu-memory-floor/73021); not measured here (no
    # GPU). Allocator cache and cuDNN/cuBLAS workspaces come on top and are not included.
    device_overhead_mib: float = spec(
        723.0, ge=0, help="device-level view without a GPU: fixed MiB added to every strategy (the CUDA context; "
                          "allocator cache and library workspaces not included); see docs/memory.md")
    reduce_bucket_size: int = spec(20_000_000, ge=1, help="ZeRO 1/2 reduce bucket elements per engine used "
                                                          "in the model-state accounting")

    def validate(self) -> None:
        """Cross-field checks: known strategies, positive batches, an explicit plan only with balance=explicit."""
        bad = [s for s in self.strategies if s not in ("spos", "greedy", "non_greedy")]
        if bad:
            raise ConfigError(f"memory.strategies: unknown {bad}; choose from ['spos', 'greedy', 'non_greedy']")
        if not self.strategies:
            raise ConfigError("memory.strategies: at least one strategy is required")
        if not self.batch_sizes or any(b < 1 for b in self.batch_sizes):
            raise ConfigError(f"memory.batch_sizes: need positive integers, got {self.batch_sizes}")
        if self.balance == "explicit" and not self.micro_batches:
            raise ConfigError("memory.micro_batches: required when memory.balance is 'explicit'")
        if self.micro_batches and self.balance != "explicit":
            raise ConfigError("memory.micro_batches: only used with memory.balance: explicit")
        for layer, m in self.micro_batches.items():
            if layer < -1 or m < 1:
                raise ConfigError(f"memory.micro_batches: layer {layer} -> {m}; layers are >= -1 (stem) and "
                                  "counts >= 1")
        if any(g < 0 for g in self.checkpoint_groups):
            raise ConfigError(f"memory.checkpoint_groups: group indices are >= 0, got {self.checkpoint_groups}")
