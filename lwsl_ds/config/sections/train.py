"""`train:` section of the experiment config: super-net training (strategy, objective, layer groups).

The batch size is NOT here: it lives only in the ds_config (``train_micro_batch_size_per_gpu``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from ..schema import ConfigError, spec
from .parallel import ParallelConfig

GroupSpec = Union[Literal["single", "per_layer", "auto"], list[list[int]]]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of the super-net training phase."""

    seed: int = spec(0, ge=0, help="seed of this phase's random choices (mixed with the global seed)")
    strategy: Literal["spos", "greedy", "non_greedy"] = spec(
        "non_greedy", help="spos: single-path uniform sampling, end-to-end CE; greedy: Alg. 1; non_greedy: Alg. 2")
    objective: Literal["ce", "infonce"] = spec("ce", help="local objective of every decoder and of the head")
    temperature: float = spec(0.1, gt=0, help="infonce: NT-Xent temperature")
    proj_dim: int = spec(128, ge=1, help="infonce: projection size of decoders and head")
    mlp_decoder: bool = spec(False, help="infonce: decoders/head use an MLP projection instead of one FC")
    label_smoothing: float = spec(0.0, ge=0, lt=1, help="ce: label smoothing")
    epochs: int = spec(1, ge=1, help="passes over the training data")
    max_steps: Optional[int] = spec(None, ge=1, help="stop after this many steps in total (null: epochs decide)")
    max_minutes: Optional[float] = spec(None, gt=0, help="stop once this many minutes were spent in training steps "
                                                         "(checkpoints/logging excluded; null: no time budget)")
    layer_groups: GroupSpec = spec("single", help="how layers map to DeepSpeed engines: single (one engine), "
                                                  "per_layer, auto (auto_groups groups balanced by cost), or "
                                                  "explicit lists of contiguous 0-based layer indices")
    auto_groups: int = spec(2, ge=1, help="layer_groups=auto: number of groups")
    auto_cost: Literal["flops", "params"] = spec("flops", help="layer_groups=auto: cost of a layer")
    group_overrides: dict[Union[int, str], dict[str, Any]] = spec(
        dict(), help="per-group ds_config overrides, keyed by group index, e.g. {1: {zero_optimization: {stage: 1}}}")
    layer_input_init: Literal["zero", "input"] = spec(
        "zero", help="x_(i+1) = mean_j f_ij(x_i) (zero: Alg. 1 line 6) or x_i + mean_j f_ij(x_i) (input: Alg. 2 "
                     "line 6 read literally; only where layer i keeps its shape)")
    extend: Literal["refuse", "replan"] = spec(
        "refuse", help="--resume with a longer schedule (max_steps / epochs raised): refuse (the old cosine would "
                       "train the extra steps at its final lr) or replan the cosine over the new length from the "
                       "current step (logged); see lwsl_ds/engines/extend.py")
    log_every: int = spec(10, ge=1, help="steps between metric lines (JSON lines + monitor)")
    checkpoint_every: int = spec(0, ge=0, help="steps between checkpoints (0: at the end of every epoch only)")
    keep_checkpoints: int = spec(2, ge=1, help="checkpoints kept in the run directory (oldest deleted)")
    threads: Optional[int] = spec(None, ge=1, help="CPU threads per rank (default: cores / local ranks)")
    progress: bool = spec(True, help="progress on rank 0: a bar with ETA in a terminal, periodic lines when piped")
    heldout_archs: int = spec(3, ge=0, help="at the end, score this many sampled sub-nets on the held-out split "
                                            "as the search does (BN recalibration, at most 10 batches) and log "
                                            "them (heldout.json); 0: skip")
    dist_timeout_s: float = spec(600.0, gt=0, help="a collective that waits longer than this (a peer rank hung or "
                                 "stopped) ends the job naming that rank; every process group, DeepSpeed's too")
    parallel: ParallelConfig = spec(ParallelConfig(), help="data parallel (default) or layer-parallel training")
    micro_batches: Union[Literal["off", "auto"], dict[int, int]] = spec(
        "off", help="balanced memory (greedy/non_greedy, ce): run layer i's losses as micro-batches; auto: counts "
                    "chosen from the memory accounting under memory_budget_mib; or explicit {layer: count} (-1 = "
                    "stem). Equal updates without batch norm; see docs/memory.md for BN statistics")
    memory_budget_mib: Optional[float] = spec(None, gt=0, help="micro_batches=auto: activation budget per layer "
                                                               "(null: 2x the largest unavoidable per-layer floor)")
    offload_inactive: Union[bool, list[int]] = spec(
        False, help="keep the model states (params, grads, optimizer) of these layer groups (true: all) in host "
                    "memory while another group trains; one host<->device copy per group and step (DeepSpeed "
                    "backend, greedy/non_greedy)")
    activation_checkpointing: Union[bool, list[int]] = spec(
        False, help="run every choice module called by these layer groups' losses (true: all groups) under "
                    "activation checkpointing: only its input is kept, its activations are recomputed in "
                    "backward (one extra forward per choice; same updates, BN statistics advance once)")

    def validate(self) -> None:
        """Cross-field checks: explicit layer groups are non-empty lists of non-negative ints."""
        if isinstance(self.layer_groups, list):
            if not self.layer_groups or any(not g for g in self.layer_groups):
                raise ConfigError(f"train.layer_groups: every group needs at least one layer, got {self.layer_groups}")
            if any(i < 0 for g in self.layer_groups for i in g):
                raise ConfigError(f"train.layer_groups: layer indices are 0-based and >= 0, got {self.layer_groups}")
        if self.memory_budget_mib is not None and self.micro_batches != "auto":
            raise ConfigError("train.memory_budget_mib: only used with train.micro_batches: auto")
        if isinstance(self.offload_inactive, list) and any(g < 0 for g in self.offload_inactive):
            raise ConfigError(f"train.offload_inactive: group indices are >= 0, got {self.offload_inactive}")
        if isinstance(self.activation_checkpointing, list) and any(g < 0 for g in self.activation_checkpointing):
            raise ConfigError("train.activation_checkpointing: group indices are >= 0, got "
                              f"{self.activation_checkpointing}")
        if self.parallel.mode == "layer" and self.activation_checkpointing:
            raise ConfigError("train.activation_checkpointing: not implemented for train.parallel.mode=layer (the "
                              "layer-parallel trainer does not run its losses through build_backend)")
        if self.parallel.mode == "layer" and (self.micro_batches != "off" or self.offload_inactive):
            raise ConfigError("train.micro_batches / train.offload_inactive: not implemented for "
                              "train.parallel.mode=layer (each rank set holds one layer group there already)")
        for k in self.group_overrides:
            if not str(k).isdigit():
                raise ConfigError(f"train.group_overrides: key {k!r} is not a group index (0, 1, ...)")
