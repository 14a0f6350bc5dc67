"""`train:` section of the experiment config: super-net training (strategy, objective, layer groups, levers).

The batch size is NOT here: it lives only in the ds_config (``train_micro_batch_size_per_gpu``).

The memory levers are four keys of this section (the one vocabulary; ``memory.*`` lever keys of older
configs load as aliases, see sections/memory.py) and one typed object, :class:`Levers`, validated here once
and read by training (``lwsl_ds.engines.build_backend``), by the accounting (``lwsl_ds.memory.account_step``)
and by the memory report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from ..schema import ConfigError, spec
from .parallel import ParallelConfig

GroupSpec = Union[Literal["single", "per_layer", "auto"], list[list[int]]]
MicroBatchSpec = Union[Literal["off", "auto"], dict[int, int]]
GroupChoice = Union[bool, list[int]]  # true: every layer group; or group indices


@dataclass(frozen=True)
class Levers:
    """The memory levers of one training run, as ``train.{micro_batches, memory_budget_mib, offload_inactive,
    activation_checkpointing}`` say them; checked on construction (errors name those keys).

    What needs the net or the layer groups is checked where they are known: :meth:`offload_groups`,
    :meth:`checkpoint_groups`, and ``lwsl_ds.memory.resolve_levers`` (micro-batch plan; ``auto`` planned).
    """

    micro_batches: MicroBatchSpec = "off"
    memory_budget_mib: Optional[float] = None
    offload_inactive: GroupChoice = False
    activation_checkpointing: GroupChoice = False

    def __post_init__(self) -> None:
        mb = self.micro_batches
        if not (mb in ("off", "auto") or isinstance(mb, Mapping)):
            raise ConfigError(f"train.micro_batches: {mb!r} is not 'off', 'auto' or a mapping layer -> count")
        if self.memory_budget_mib is not None and mb != "auto":
            raise ConfigError("train.memory_budget_mib: only used with train.micro_batches: auto")
        if self.memory_budget_mib is not None and not self.memory_budget_mib > 0:
            raise ConfigError(f"train.memory_budget_mib: must be > 0, got {self.memory_budget_mib}")
        for key in ("offload_inactive", "activation_checkpointing"):
            _check_group_choice(getattr(self, key), f"train.{key}")

    @property
    def plan(self) -> dict[int, int]:
        """The explicit micro-batch plan, layer (-1 = stem) -> count; {} when off. ``auto`` must be resolved first."""
        if self.micro_batches == "auto":
            raise ConfigError("train.micro_batches: 'auto' is planned from the memory accounting first "
                              "(lwsl_ds.memory.resolve_levers)")
        return {} if self.micro_batches == "off" else {int(k): v for k, v in self.micro_batches.items()}

    def offload_groups(self, n_groups: int, strategy: str = "") -> list[int]:
        """``offload_inactive`` as sorted group indices of ``n_groups`` layer groups; refused for ``spos``."""
        groups = _groups_of(self.offload_inactive, n_groups, "train.offload_inactive")
        if groups and strategy == "spos":
            raise ConfigError("train.offload_inactive: SPOS runs every layer group's forward before any backward, "
                              "so no group is ever inactive within a step; use greedy or non_greedy")
        return groups

    def checkpoint_groups(self, groups: Sequence[Sequence[int]]) -> list[int]:
        """``activation_checkpointing`` as sorted indices of the checkpointed layer groups."""
        return _groups_of(self.activation_checkpointing, len(groups), "train.activation_checkpointing",
                          f": {[list(g) for g in groups]}")

    def checkpoint_layers(self, groups: Sequence[Sequence[int]]) -> list[int]:
        """The layers of the checkpointed groups."""
        return [i for g in self.checkpoint_groups(groups) for i in groups[g]]


def _check_group_choice(spec: Any, key: str) -> None:
    """A group choice is true, false or a list of group indices >= 0."""
    if isinstance(spec, bool):
        return
    if not isinstance(spec, (list, tuple)) or not all(isinstance(g, int) and not isinstance(g, bool) for g in spec):
        raise ConfigError(f"{key}: true, false or a list of group indices, got {spec!r}")
    if any(g < 0 for g in spec):
        raise ConfigError(f"{key}: group indices are >= 0, got {list(spec)}")


def _groups_of(spec: GroupChoice, n_groups: int, key: str, shown: str = "") -> list[int]:
    """A group choice as sorted indices of ``n_groups`` groups; indices that do not exist raise ConfigError."""
    groups = list(range(n_groups)) if spec is True else [] if spec is False else sorted(set(spec))
    bad = [g for g in groups if not 0 <= g < n_groups]
    if bad:
        raise ConfigError(f"{key}: groups {bad} do not exist ({n_groups} layer groups{shown})")
    return groups


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
    channels_last: bool = spec(False, help="feed image batches in channels_last (NHWC) memory format, so the "
                                           "convolutions' activations follow it (weights stay contiguous, as "
                                           "DeepSpeed needs): a layer-wise step ran 1.3-1.5x faster on CPU "
                                           "(docs/benchmarks.md); float rounding, hence parameter digests, "
                                           "differ from the default format (data-parallel mode only)")
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

    @property
    def levers(self) -> Levers:
        """The memory levers of this section as one checked object."""
        return Levers(self.micro_batches, self.memory_budget_mib, self.offload_inactive, self.activation_checkpointing)

    def validate(self) -> None:
        """Cross-field checks: explicit layer groups are non-empty lists of non-negative ints; the levers."""
        if isinstance(self.layer_groups, list):
            if not self.layer_groups or any(not g for g in self.layer_groups):
                raise ConfigError(f"train.layer_groups: every group needs at least one layer, got {self.layer_groups}")
            if any(i < 0 for g in self.layer_groups for i in g):
                raise ConfigError(f"train.layer_groups: layer indices are 0-based and >= 0, got {self.layer_groups}")
        self.levers  # noqa: B018 -- constructing the levers checks them (once, the same code as everywhere)
        if self.parallel.mode == "layer" and self.activation_checkpointing:
            raise ConfigError("train.activation_checkpointing: not implemented for train.parallel.mode=layer (the "
                              "layer-parallel trainer does not run its losses through build_backend)")
        if self.parallel.mode == "layer" and self.channels_last:
            raise ConfigError("train.channels_last: not implemented for train.parallel.mode=layer (layer inputs "
                              "travel between ranks in fixed-size contiguous messages)")
        if self.parallel.mode == "layer" and (self.micro_batches != "off" or self.offload_inactive):
            raise ConfigError("train.micro_batches / train.offload_inactive: not implemented for "
                              "train.parallel.mode=layer (each rank set holds one layer group there already)")
        for k in self.group_overrides:
            if not str(k).isdigit():
                raise ConfigError(f"train.group_overrides: key {k!r} is not a group index (0, 1, ...)")
