"""The plain-PyTorch update backend: torch optimizers, no DeepSpeed engine. The oracle of the tests.

It mirrors the engines' semantics exactly: one optimizer, LR schedule and gradient clipping per layer
group, gradients summed over the step's backward calls, averaged over data-parallel ranks (all-reduce)
when a process group with several ranks exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import torch

from ..common.atomic import atomic_path
from ..common.dist import group_rank, group_size
from ..config.schema import ConfigError
from ..space import SuperNet
from ..strategies.base import Strategy
from .optim import build_optimizer, build_scheduler, set_frozen
from .plan import GroupPlan, group_override

__all__ = ["ReferenceBackend"]

T = TypeVar("T")


class ReferenceBackend:
    """Update backend over plain torch optimizers (one per layer group)."""

    kind = "reference"

    def __init__(self, net: SuperNet, strategy: Strategy, ds_config: Mapping[str, Any], *, layer_groups="single",
                 auto_groups: int = 2, auto_cost: str = "flops", total_steps: int = 1,
                 group_overrides: Mapping[Any, Mapping[str, Any]] | None = None, job_name: str = "train",
                 monitor_dir: str | Path | None = None, micro_batches: Mapping[int, int] | None = None,
                 offload_groups: bool | Sequence[int] = ()) -> None:
        """As :class:`~lwsl_ds.engines.DeepSpeedBackend` (one constructor for every backend of the registry);
        ``job_name`` and ``monitor_dir`` name a monitor this backend does not have."""
        from ..config.ds_config import merge_config

        if offload_groups:
            # The reference steps every group at the end of the step, so all groups' gradients stay live.
            raise ConfigError("train.offload_inactive: implemented for the DeepSpeed backend only (the reference "
                              "backend updates every group at the end of the step)")
        self.net = net
        self.plan = GroupPlan.build(net, strategy, layer_groups, auto_groups=auto_groups, auto_cost=auto_cost,
                                    micro_batches=micro_batches)
        self.groups = self.plan.groups
        self.optimizers, self.schedulers, self.clips = [], [], []
        for g, units in enumerate(self.plan.units):
            cfg = merge_config(ds_config, group_override(group_overrides, g))
            opt = build_optimizer(cfg.get("optimizer"), units)
            self.optimizers.append(opt)
            self.schedulers.append(build_scheduler(cfg.get("scheduler"), opt, total_steps))
            self.clips.append(float(cfg.get("gradient_clipping", 0.0)))
        self._calls = [0] * len(self.groups)
        self.global_steps = 0

    def run(self, layer: int, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)``."""
        return fn(*args)

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """``loss.backward()``; gradients accumulate until ``step``."""
        loss.backward()
        self._calls[self.plan.group_of(layer)] += 1

    def freeze(self, units: Iterable[str]) -> None:
        """Skip these units' parameter groups at the next ``step``."""
        names = set(units)
        for opt in self.optimizers:
            set_frozen(opt, names)

    def _all_reduce(self, params: list[torch.nn.Parameter]) -> None:
        import torch.distributed as td

        world = group_size()
        if world == 1:
            return
        for p in params:
            if p.grad is not None:  # every rank samples the same path, so the same grads are None
                td.all_reduce(p.grad)
                p.grad.div_(world)

    def step(self) -> None:
        """Per group: average over ranks, clip, optimizer step, zero grads, LR schedule."""
        if self._calls != self.plan.calls:
            raise RuntimeError(f"backward calls per group {self._calls} != planned {self.plan.calls}: the strategy "
                               "and its backward_calls disagree")
        for opt, sched, clip in zip(self.optimizers, self.schedulers, self.clips):
            params = [p for grp in opt.param_groups for p in grp["params"]]
            self._all_reduce(params)
            if clip > 0:
                torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            if sched is not None:
                sched.step()
            set_frozen(opt, set())
        self._calls = [0] * len(self.groups)
        self.global_steps += 1

    def lr(self) -> float:
        """Current learning rate of group 0."""
        return float(self.optimizers[0].param_groups[0]["lr"])

    # ---- checkpoints ------------------------------------------------------------------------------
    def save(self, directory, tag: str) -> None:
        """Write net, optimizer and schedule states to ``directory/reference.pt`` (rank 0 only)."""
        if group_rank() != 0:
            return
        state = {"tag": tag, "net": self.net.state_dict(), "optimizers": [o.state_dict() for o in self.optimizers],
                 "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers]}
        with atomic_path(Path(directory) / "reference.pt") as tmp:  # a crash mid-write keeps the previous file
            torch.save(state, tmp)

    def load(self, directory, tag: str) -> None:
        """Restore what :meth:`save` wrote."""
        from ..common.safe_io import load_tensor_file

        state = load_tensor_file(Path(directory) / "reference.pt")
        self.net.load_state_dict(state["net"])
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"]):
            if sch is not None and s is not None:
                sch.load_state_dict(s)
