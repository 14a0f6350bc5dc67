"""The plain-PyTorch update backend: torch optimizers, no DeepSpeed engine. The oracle of the tests.

It mirrors the engines' semantics exactly: one optimizer, LR schedule and gradient clipping per layer
group, gradients summed over the step's backward calls, averaged over data-parallel ranks (all-reduce)
when a process group with several ranks exists.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, TypeVar

import torch

from ..space import SuperNet
from ..strategies.base import Strategy
from .optim import build_optimizer, build_scheduler, set_frozen
from .plan import GroupPlan

__all__ = ["ReferenceBackend"]

T = TypeVar("T")


class ReferenceBackend:
    """Update backend over plain torch optimizers (one per layer group)."""

    kind = "reference"

    def __init__(self, net: SuperNet, strategy: Strategy, ds_config: Mapping[str, Any], *, layer_groups="single",
                 auto_groups: int = 2, auto_cost: str = "flops", total_steps: int = 1,
                 group_overrides: Mapping[Any, Mapping[str, Any]] | None = None,
                 micro_batches: Mapping[int, int] | None = None) -> None:
        from ..config.ds_config import merge_config

        self.net = net
        self.plan = GroupPlan.build(net, strategy, layer_groups, auto_groups=auto_groups, auto_cost=auto_cost,
                                    micro_batches=micro_batches)
        self.groups = self.plan.groups
        self.optimizers, self.schedulers, self.clips = [], [], []
        for g, units in enumerate(self.plan.units):
            cfg = merge_config(ds_config, (group_overrides or {}).get(g, (group_overrides or {}).get(str(g), {})))
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

        if not (td.is_available() and td.is_initialized()) or td.get_world_size() == 1:
            return
        world = td.get_world_size()
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
        import torch.distributed as td
        from pathlib import Path

        if td.is_available() and td.is_initialized() and td.get_rank() != 0:
            return
        state = {"tag": tag, "net": self.net.state_dict(), "optimizers": [o.state_dict() for o in self.optimizers],
                 "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers]}
        torch.save(state, Path(directory) / "reference.pt")

    def load(self, directory, tag: str) -> None:
        """Restore what :meth:`save` wrote."""
        from pathlib import Path

        from ..common.safe_io import load_tensor_file

        state = load_tensor_file(Path(directory) / "reference.pt")
        self.net.load_state_dict(state["net"])
        for o, s in zip(self.optimizers, state["optimizers"]):
            o.load_state_dict(s)
        for sch, s in zip(self.schedulers, state["schedulers"]):
            if sch is not None and s is not None:
                sch.load_state_dict(s)
