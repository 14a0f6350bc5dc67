"""One DeepSpeed engine per layer group, driven through the same update-backend interface as the reference.

Each engine gets its own ds_config (base + per-group override), its own optimizer (built by the toolkit
so unsampled choices can be frozen, see optim.py), LR schedule, monitor job name and checkpoint directory.
Several backward calls per step and engine are micro-steps of one accumulation window:
``gradient_accumulation_steps`` = calls per step, ``engine.backward(loss, scale_wrt_gas=False)`` then
``engine.step()`` after each; the real optimizer step happens at the window's last call. This is the
combination that matches plain PyTorch for ZeRO 0, 1 and 2 (tests/engines/test_equivalence.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence, TypeVar

import torch
from torch import nn

from ..common.safe_io import secure_engine
from ..config.ds_config import (check_optimizer_values, check_scheduler_values, derive_group_config, merge_config,
                                validate_ds_config)
from ..config.sections.train import Levers
from ..space import SuperNet
from ..strategies.base import Strategy, Unit
from .optim import build_optimizer, build_scheduler, set_frozen
from .plan import GroupPlan, group_override

__all__ = ["GroupModule", "DeepSpeedBackend", "build_group_engine", "anchor_of", "micro_step", "check_window",
           "window_closed", "group_dtype"]

T = TypeVar("T")


class GroupModule(nn.Module):
    """The modules one engine owns (shared with the super-net, not copied); ``forward(fn, *args)`` runs ``fn``.

    Strategies call choices and decoders in patterns no single forward signature covers, so the engine's
    forward takes the computation as an argument: ``engine(fn, *args)`` keeps DeepSpeed's forward
    bookkeeping (timers, backward hooks) around exactly the work of one loss.
    """

    def __init__(self, units: list[Unit], dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        # ModuleDict keys cannot contain "."; "layers.2.k3e4" is stored as "layers__2__k3e4".
        self.units = nn.ModuleDict({u.name.replace(".", "__"): u.module for u in units})
        self.dtype = dtype
        if dtype != torch.float32:
            self.to(dtype)  # DeepSpeed casts parameters, not BatchNorm running stats: cast everything first

    def forward(self, fn: Callable[..., T], *args: Any) -> T:  # noqa: D102
        if self.dtype != torch.float32:
            # Inputs come from the data or from a neighbouring group that may run in fp32: cast the
            # floating-point tensors to this group's precision (labels and other integer tensors stay).
            args = tuple(a.to(self.dtype) if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                         for a in args)
        return fn(*args)


def group_dtype(cfg: Mapping[str, Any]) -> torch.dtype:
    """The precision a layer group's engine trains in: bf16 or fp16 when its ds_config enables one, else fp32."""
    if cfg.get("bf16", {}).get("enabled"):
        return torch.bfloat16
    return torch.float16 if cfg.get("fp16", {}).get("enabled") else torch.float32


def build_group_engine(units: list[Unit], cfg: dict[str, Any], *, total_steps: int, mpu: Any = None):
    """One layer group's DeepSpeed engine from its derived ds_config ``cfg``: (engine, optimizer).

    The optimizer and schedule are built by the toolkit (skippable parameter groups, see optim.py), so they
    are popped from ``cfg``; ``mpu`` names the engine's data-parallel group (None: the whole world).
    """
    import deepspeed

    opt_cfg, sched_cfg = cfg.pop("optimizer", None), cfg.pop("scheduler", None)
    module = GroupModule(units, group_dtype(cfg))
    opt = build_optimizer(opt_cfg, units)
    engine, _, _, _ = deepspeed.initialize(
        model=module, optimizer=opt, config=cfg, mpu=mpu,
        lr_scheduler=(lambda o: build_scheduler(sched_cfg, o, total_steps)) if sched_cfg else None)
    secure_engine(engine)  # its checkpoint files are read weights-only (DeepSpeed's default runs pickles)
    return engine, opt


def anchor_of(units: list[Unit]) -> nn.Parameter:
    """The group's smallest parameter: see :func:`micro_step` for why every loss touches it."""
    return min((p for u in units for p in u.module.parameters()), key=lambda p: p.numel())


def micro_step(engine: Any, anchor: nn.Parameter, loss: torch.Tensor) -> None:
    """One micro-step of ``engine``: unscaled backward of ``loss``, then ``engine.step()`` (which updates at the
    accumulation window's last call)."""
    # + 0 * anchor: a loss that reaches no parameter of this engine (SPOS: a group whose sampled choices are
    # all skips) makes ZeRO 2's reduction crash on an empty bucket. A zero gradient on one parameter is
    # exact (g + 0 = g; on an unsampled choice it is dropped by the freeze).
    loss = loss + 0.0 * anchor.view(-1)[0]
    # clone(): DeepSpeed 0.19.8 hooks the forward's output tensors and divides their gradient by
    # gradient_accumulation_steps unless engine.backward's own hook (on the tensor it is given) has run
    # first. Here the forward's output *is* the loss, so without a node downstream of it the gradient
    # would be scaled by 1/calls despite scale_wrt_gas=False. CloneBackward passes the gradient unchanged.
    engine.backward(loss.clone(), scale_wrt_gas=False)
    engine.step()


def window_closed(engine: Any) -> bool:
    """True when ``engine`` is at the end of an accumulation window (it has just stepped, or not started)."""
    return engine.micro_steps % engine.gradient_accumulation_steps() == 0


def check_window(engine: Any, group: int) -> None:
    """Refuse a step that ends inside ``engine``'s accumulation window (the strategy and the plan disagree)."""
    if not window_closed(engine):
        raise RuntimeError(f"layer group {group}: {engine.micro_steps} micro-steps is not a multiple of its "
                           f"{engine.gradient_accumulation_steps()} backward calls per step; the strategy and "
                           "its backward_calls disagree")


class DeepSpeedBackend:
    """Update backend over one DeepSpeed engine per layer group."""

    kind = "deepspeed"

    def __init__(self, net: SuperNet, strategy: Strategy, ds_config: Mapping[str, Any], *, layer_groups="single",
                 auto_groups: int = 2, auto_cost: str = "flops", total_steps: int = 1,
                 group_overrides: Mapping[Any, Mapping[str, Any]] | None = None, job_name: str = "train",
                 monitor_dir: str | Path | None = None, micro_batches: Mapping[int, int] | None = None,
                 offload_groups: bool | Sequence[int] = ()) -> None:
        from ..common.dist import group_size, init_distributed

        init_distributed()
        world = group_size()
        validate_ds_config(ds_config, world, where="ds_config")
        from ..config.schema import ConfigError

        if group_overrides:
            bad = [k for k in group_overrides if not str(k).isdigit()]
            if bad:
                raise ConfigError(f"train.group_overrides: keys {bad} are not group indices")
        _check_precision_device(ds_config, group_overrides)
        for k, ov in (group_overrides or {}).items():  # per-group optimizer/scheduler values, before any engine
            merged = merge_config(ds_config, ov)
            if merged.get("optimizer"):
                check_optimizer_values(merged["optimizer"].get("params", {}), f"train.group_overrides.{k}: ")
            if merged.get("scheduler"):
                check_scheduler_values(merged["scheduler"].get("params", {}), f"train.group_overrides.{k}: ")
        self.net = net
        self.plan = GroupPlan.build(net, strategy, layer_groups, auto_groups=auto_groups, auto_cost=auto_cost,
                                    micro_batches=micro_batches)
        self.groups = self.plan.groups
        n_groups = len(self.groups)
        offload = Levers(offload_inactive=_group_choice(offload_groups))  # checked as train.offload_inactive
        self.plan.offload = offload.offload_groups(n_groups, strategy.name)
        for k in group_overrides or {}:
            if int(k) >= n_groups:
                raise ConfigError(f"train.group_overrides: group {k} does not exist ({n_groups} layer groups: "
                                 f"{self.groups})")
        self.engines, self.optimizers, self.configs, self._anchors = [], [], [], []
        for g, units in enumerate(self.plan.units):
            cfg = derive_group_config(ds_config, group_override(group_overrides, g), group=g,
                                      backward_calls=self.plan.calls[g], world_size=world,
                                      job_name=f"{job_name}_group{g}", monitor_dir=monitor_dir)
            engine, opt = build_group_engine(units, cfg, total_steps=total_steps)
            if world == 1 and engine.zero_optimization_stage() == 0 and not engine.bfloat16_enabled() \
                    and not engine.fp16_enabled():
                # Averaging gradients over one rank is the identity, yet DeepSpeed still flattens, all-reduces
                # and copies them back after every backward: ~5% of a small layer-wise step. ZeRO 1/2 and
                # mixed precision keep it (their optimizers gather gradients into their own buffers there).
                engine.enable_backward_allreduce = False
            self._anchors.append(anchor_of(units))
            self.engines.append(engine)
            self.optimizers.append(opt)
            self.configs.append(cfg)
        self._setup_offload(net, strategy)

    # ---- the update-backend interface -------------------------------------------------------------
    def _engine(self, layer: int):
        return self.engines[self.plan.group_of(layer)]

    def run(self, layer: int, fn: Callable[..., T], *args: Any) -> T:
        """``engine(fn, *args)`` on the engine owning ``layer``."""
        if self.offloads:
            self._make_resident(layer)
        return self._engine(layer)(fn, *args)

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """One micro-step: unscaled backward, then ``engine.step()`` (which updates at the window's end)."""
        g = self.plan.group_of(layer)
        e = self.engines[g]
        micro_step(e, self._anchors[g], loss)
        if g in self.offloads and window_closed(e):
            self.offloads[g].to_host()  # the window's last call: the group has updated, done for this step

    def freeze(self, units: Iterable[str]) -> None:
        """Skip these units' parameter groups at the coming optimizer steps."""
        names = set(units)
        for opt in self.optimizers:
            set_frozen(opt, names)

    def step(self) -> None:
        """Check every engine ended its accumulation window (i.e. stepped exactly once), clear freezes."""
        for g, e in enumerate(self.engines):
            check_window(e, g)
        for opt in self.optimizers:
            set_frozen(opt, set())
        for off in self.offloads.values():
            off.to_host()  # no-op unless a group got no backward call this step

    @property
    def global_steps(self) -> int:
        """Optimizer steps taken (engine 0's count; all engines step together)."""
        return int(self.engines[0].global_steps)

    def lr(self) -> float:
        """Current learning rate of group 0."""
        return float(self.engines[0].get_lr()[0])

    def write_events(self, events: list[tuple[str, float, int]], group: int = 0) -> None:
        """Forward events to an engine's monitor (csv/tensorboard), if one is enabled."""
        mon = getattr(self.engines[group], "monitor", None)
        if mon is not None and getattr(mon, "enabled", False):
            mon.write_events(events)

    # ---- checkpoints (call on every rank) ---------------------------------------------------------
    def save(self, directory, tag: str) -> None:
        """Each engine writes ``directory/engine{g}/<tag>/``."""
        with self._all_resident():
            for g, e in enumerate(self.engines):
                e.save_checkpoint(str(Path(directory) / f"engine{g}"), tag=tag)

    def load(self, directory, tag: str) -> None:
        """Restore every engine's module, optimizer and schedule from :meth:`save`'s layout."""
        with self._all_resident():
            for g, e in enumerate(self.engines):
                path, _ = e.load_checkpoint(str(Path(directory) / f"engine{g}"), tag=tag)
                if path is None:
                    raise FileNotFoundError(f"no checkpoint of layer group {g} under {directory}/engine{g} "
                                            f"tag {tag}")

    # ---- host-resident model states of inactive groups (offload.py) -------------------------------
    def _setup_offload(self, net: SuperNet, strategy: Strategy) -> None:
        from ..common.dist import device
        from .offload import GroupOffload

        self.offloads = {g: GroupOffload(self.engines[g], g, device()) for g in self.plan.offload}
        # Non-greedy's loss of layer i runs a choice of layer i+1 read-only; at the last layer of a group that
        # choice belongs to the next group, whose parameters then need a device copy (GroupOffload.fetch).
        self._reads_next = strategy.name == "non_greedy"
        self._net = net
        for off in self.offloads.values():
            off.to_host()  # every opted-in group starts in host memory; run() brings it in when needed

    def _make_resident(self, layer: int) -> None:
        g = self.plan.group_of(layer)
        if g in self.offloads:
            self.offloads[g].to_device()
        nxt = g + 1
        if self._reads_next and nxt in self.offloads and 0 <= layer == self.groups[g][-1]:
            net = self._net
            self.offloads[nxt].fetch([net.choice(layer + 1, k) for k in net.space.layers[layer + 1].choices])

    @contextlib.contextmanager
    def _all_resident(self) -> Iterator[None]:
        """Every group on the device (checkpoint save/load), opted-in groups back to the host afterwards."""
        for off in self.offloads.values():
            off.to_device()
        try:
            yield
        finally:
            for off in self.offloads.values():
                off.to_host()

    def offload_moves(self) -> dict[int, dict[str, int]]:
        """Per offloaded group: how often its states went to the host, came back, were fetched read-only."""
        return {g: dict(off.moves) for g, off in self.offloads.items()}


def _check_precision_device(ds_config: Mapping[str, Any], overrides: Mapping[Any, Mapping[str, Any]] | None) -> None:
    """fp16 needs a GPU (DeepSpeed's CPU accelerator refuses it only after the engine is built): refuse it early."""
    from ..config.schema import ConfigError

    if torch.cuda.is_available():
        return
    where = [("ds_config", ds_config)] + [(f"train.group_overrides.{k}", v) for k, v in (overrides or {}).items()]
    for name, cfg in where:
        fp16 = cfg.get("fp16") if isinstance(cfg, Mapping) else None
        if isinstance(fp16, Mapping) and fp16.get("enabled"):
            raise ConfigError(f"{name}: fp16.enabled needs a GPU and none is visible; use bf16 or fp32 on a CPU")


def _group_choice(spec: bool | Sequence[int]) -> bool | list[int]:
    """A group choice as :class:`Levers` holds it (true, false or a list of indices)."""
    return spec if isinstance(spec, bool) else list(spec)
