"""The DeepSpeed engine of one layer group in a layer-parallel run.

Same engine recipe as :class:`lwsl_ds.engines.DeepSpeedBackend` (toolkit-built optimizer with skippable
groups, one micro-step per backward call, ``scale_wrt_gas=False``, the anchor and ``clone()`` tricks),
but only the rank's own group is built, and the engine's data-parallel group is the D ranks of that
group, given to DeepSpeed through a minimal ``mpu`` (without it the engine would average gradients over
the whole world, i.e. with ranks that own *other* layers).

Checkpoints: ``engine.save_checkpoint`` holds two world-wide barriers, which would stall the pipeline
until every group reached the tag; this backend therefore saves module, optimizer and schedule state
itself, inside the layer-parallel trainer's per-rank file. That is exact for ZeRO 0 (the optimizer is the
toolkit's own torch optimizer); ZeRO 1/2 partition the optimizer state and are refused at save time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

import torch

from ..engines.optim import build_optimizer, build_scheduler, set_frozen
from ..engines.plan import GroupPlan

__all__ = ["GroupMPU", "DeepSpeedStageBackend"]

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


class DeepSpeedStageBackend:
    """Update backend over the DeepSpeed engine of one layer group (data parallel inside the group)."""

    kind = "deepspeed"

    def __init__(self, plan: GroupPlan, group: int, ds_config: Mapping[str, Any], *, dp_group: Any, solo_group: Any,
                 total_steps: int = 1, group_overrides: Mapping[Any, Mapping[str, Any]] | None = None,
                 job_name: str = "train", monitor_dir: str | Path | None = None) -> None:
        import deepspeed
        import torch.distributed as td

        from ..config.ds_config import derive_group_config

        self.plan, self.group, self.groups = plan, group, plan.groups
        self.units = plan.units[group]
        ov = (group_overrides or {}).get(group, (group_overrides or {}).get(str(group), {}))
        dp = td.get_world_size(dp_group)
        cfg = derive_group_config(ds_config, ov, group=group, backward_calls=plan.calls[group], world_size=dp,
                                  job_name=f"{job_name}_group{group}", monitor_dir=monitor_dir)
        self.zero_stage = int(cfg.get("zero_optimization", {}).get("stage", 0))
        opt_cfg, sched_cfg = cfg.pop("optimizer", None), cfg.pop("scheduler", None)
        from ..engines.deepspeed_engines import GroupModule, group_dtype

        module = GroupModule(self.units, group_dtype(cfg))
        self.optimizer = build_optimizer(opt_cfg, self.units)
        self.engine, _, _, _ = deepspeed.initialize(
            model=module, optimizer=self.optimizer, config=cfg, mpu=GroupMPU(dp_group, solo_group),
            lr_scheduler=(lambda o: build_scheduler(sched_cfg, o, total_steps)) if sched_cfg else None)
        from ..common.safe_io import secure_engine

        secure_engine(self.engine)  # checkpoint files read weights-only (DeepSpeed's default runs pickles)
        self.config = cfg
        self._anchor = min((p for u in self.units for p in u.module.parameters()), key=lambda p: p.numel())

    def _check(self, layer: int) -> None:
        if self.plan.group_of(layer) != self.group:
            raise RuntimeError(f"layer {layer} belongs to layer group {self.plan.group_of(layer)}, not to this "
                               f"rank's group {self.group}")

    def run(self, layer: int, fn: Callable[..., T], *args: Any) -> T:
        """``engine(fn, *args)``."""
        self._check(layer)
        return self.engine(fn, *args)

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """One micro-step (see lwsl_ds/engines/deepspeed_engines.py for the anchor and ``clone``)."""
        self._check(layer)
        loss = loss + 0.0 * self._anchor.view(-1)[0]
        self.engine.backward(loss.clone(), scale_wrt_gas=False)
        self.engine.step()

    def freeze(self, units: Iterable[str]) -> None:
        """Skip these units' parameter groups at the coming optimizer step."""
        set_frozen(self.optimizer, set(units))

    def step(self) -> None:
        """Check the engine closed its accumulation window; clear freezes."""
        e = self.engine
        if e.micro_steps % e.gradient_accumulation_steps() != 0:
            raise RuntimeError(f"layer group {self.group}: {e.micro_steps} micro-steps is not a multiple of its "
                               f"{e.gradient_accumulation_steps()} backward calls per step")
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
        return {"units": {u.name: u.module.state_dict() for u in self.units},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": e.lr_scheduler.state_dict() if e.lr_scheduler is not None else None,
                "global_steps": int(e.global_steps), "global_samples": int(e.global_samples),
                "micro_steps": int(e.micro_steps)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        if self.zero_stage != 0:
            raise NotImplementedError("layer-parallel checkpoints support ZeRO stage 0 only")
        e = self.engine
        for u in self.units:
            u.module.load_state_dict(state["units"][u.name])
        self.optimizer.load_state_dict(state["optimizer"])
        if e.lr_scheduler is not None and state["scheduler"] is not None:
            e.lr_scheduler.load_state_dict(state["scheduler"])
        e.global_steps, e.global_samples, e.micro_steps = (int(state["global_steps"]), int(state["global_samples"]),
                                                           int(state["micro_steps"]))
