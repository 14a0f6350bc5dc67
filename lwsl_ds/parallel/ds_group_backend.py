"""The DeepSpeed engine of one layer group in a layer-parallel run.

The engine recipe of :class:`lwsl_ds.engines.DeepSpeedBackend`, reused from there (``build_group_engine``,
``micro_step``, ``check_window``: toolkit-built optimizer with skippable groups, one micro-step per backward
call, ``scale_wrt_gas=False``, the anchor and ``clone()`` tricks), but only the rank's own group is built, and the engine's data-parallel group is the D ranks of that
group, given to DeepSpeed through a minimal ``mpu`` (without it the engine would average gradients over
the whole world, i.e. with ranks that own *other* layers).

Checkpoints: ``engine.save_checkpoint`` holds two world-wide barriers, which would stall the pipeline
until every group reached the tag; this backend therefore saves module, optimizer and schedule state
itself, inside the layer-parallel trainer's per-rank file. That is exact for ZeRO 0 (the optimizer is the
toolkit's own torch optimizer); ZeRO 1/2 partition the optimizer state and are refused at save time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, TypeVar

import torch

from ..engines.deepspeed_engines import anchor_of, build_group_engine, check_window, micro_step
from ..engines.optim import set_frozen
from ..engines.plan import GroupPlan, group_override
from .group_backend import OneGroupBackend

__all__ = ["GroupMPU", "DeepSpeedGroupBackend"]

T = TypeVar("T")


class GroupMPU:
    """What DeepSpeed asks an ``mpu`` for: data parallel = the group's ranks, no model parallelism."""

    def __init__(self, dp_group: Any, solo_group: Any) -> None:
        import torch.distributed as td

        self.dp, self.solo = dp_group, solo_group
        self._dp_ranks = td.get_process_group_ranks(dp_group)

    def get_data_parallel_group(self):  # noqa: D102
        return self.dp

    def get_data_parallel_world_size(self) -> int:  # noqa: D102
        return len(self._dp_ranks)

    def get_data_parallel_rank(self) -> int:  # noqa: D102
        import torch.distributed as td

        return td.get_rank(self.dp)

    def get_data_parallel_group_ranks(self) -> list[int]:  # noqa: D102
        return list(self._dp_ranks)

    def get_model_parallel_group(self):  # noqa: D102
        return self.solo

    def get_model_parallel_world_size(self) -> int:  # noqa: D102
        return 1

    def get_model_parallel_rank(self) -> int:  # noqa: D102
        return 0


class DeepSpeedGroupBackend(OneGroupBackend):
    """Update backend over the DeepSpeed engine of one layer group (data parallel inside the group)."""

    kind = "deepspeed"

    def __init__(self, plan: GroupPlan, group: int, ds_config: Mapping[str, Any], *, dp_group: Any, solo_group: Any,
                 total_steps: int = 1, group_overrides: Mapping[Any, Mapping[str, Any]] | None = None,
                 job_name: str = "train", monitor_dir: str | Path | None = None) -> None:
        import torch.distributed as td

        from ..config.ds_config import derive_group_config

        self._own(plan, group)
        cfg = derive_group_config(ds_config, group_override(group_overrides, group), group=group,
                                  backward_calls=plan.calls[group], world_size=td.get_world_size(dp_group),
                                  job_name=f"{job_name}_group{group}", monitor_dir=monitor_dir)
        self.zero_stage = int(cfg.get("zero_optimization", {}).get("stage", 0))
        self.engine, self.optimizer = build_group_engine(self.units, cfg, total_steps=total_steps,
                                                         mpu=GroupMPU(dp_group, solo_group))
        self.config = cfg
        self._anchor = anchor_of(self.units)

    def _forward(self, fn: Callable[..., T], *args: Any) -> T:
        return self.engine(fn, *args)

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """One micro-step (see lwsl_ds/engines/deepspeed_engines.py ``micro_step``)."""
        self._check(layer)
        micro_step(self.engine, self._anchor, loss)

    def step(self) -> None:
        """Check the engine closed its accumulation window; clear freezes."""
        check_window(self.engine, self.group)
        set_frozen(self.optimizer, set())

    @property
    def global_steps(self) -> int:
        """Optimizer steps taken."""
        return int(self.engine.global_steps)

    def lr(self) -> float:
        """Current learning rate."""
        return float(self.engine.get_lr()[0])

    def state_dict(self) -> dict:
        """Units' states, optimizer, schedule, engine counters (ZeRO 0 only, see the module docstring)."""
        if self.zero_stage != 0:
            raise NotImplementedError(f"layer group {self.group}: checkpoints of layer-parallel runs support "
                                      f"ZeRO stage 0 only (this engine uses stage {self.zero_stage})")
        e = self.engine
        return {**self._units_state(),
                "scheduler": e.lr_scheduler.state_dict() if e.lr_scheduler is not None else None,
                "global_steps": int(e.global_steps), "global_samples": int(e.global_samples),
                "micro_steps": int(e.micro_steps)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        if self.zero_stage != 0:
            raise NotImplementedError("layer-parallel checkpoints support ZeRO stage 0 only")
        e = self.engine
        self._load_units_state(state)
        if e.lr_scheduler is not None and state["scheduler"] is not None:
            e.lr_scheduler.load_state_dict(state["scheduler"])
        e.global_steps, e.global_samples, e.micro_steps = (int(state["global_steps"]), int(state["global_samples"]),
                                                           int(state["micro_steps"]))
