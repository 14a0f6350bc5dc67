"""Optimizers and LR schedules built from a ds_config's ``optimizer``/``scheduler`` sections.

The toolkit builds the optimizer itself (for the reference and, as DeepSpeed's client optimizer, for the
engines) for one reason: single-path sampling must leave unsampled choices untouched, and ZeRO 1/2 hand
them zero gradients. Every unit gets its own parameter group (ZeRO flattens per group, so a group stays
one choice), and a group flagged ``frozen`` is skipped by ``step`` (its gradient is dropped first), so
neither its parameters nor its Adam moments or step count move.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch

from ..config.schema import ConfigError
from ..strategies.base import Unit

__all__ = ["SkippableAdam", "SkippableAdamW", "SkippableSGD", "build_optimizer", "build_scheduler", "set_frozen"]


def _drop_frozen_grads(opt: torch.optim.Optimizer) -> None:
    for g in opt.param_groups:
        if g.get("frozen"):
            for p in g["params"]:
                p.grad = None  # torch optimizers skip parameters without gradient


class SkippableAdam(torch.optim.Adam):
    """torch Adam that skips parameter groups flagged ``frozen``."""

    def step(self, closure=None):  # noqa: D102
        _drop_frozen_grads(self)
        return super().step(closure)


class SkippableAdamW(torch.optim.AdamW):
    """torch AdamW that skips parameter groups flagged ``frozen``."""

    def step(self, closure=None):  # noqa: D102
        _drop_frozen_grads(self)
        return super().step(closure)


class SkippableSGD(torch.optim.SGD):
    """torch SGD that skips parameter groups flagged ``frozen``."""

    def step(self, closure=None):  # noqa: D102
        _drop_frozen_grads(self)
        return super().step(closure)


def set_frozen(opt: torch.optim.Optimizer, names: set[str]) -> None:
    """Flag the parameter groups of the named units (all others unflagged)."""
    for g in opt.param_groups:
        g["frozen"] = g.get("unit") in names


def build_optimizer(cfg: Mapping[str, Any] | None, units: list[Unit]) -> torch.optim.Optimizer:
    """Optimizer over ``units`` (one parameter group each; parameter-free units left out)."""
    if not cfg:
        raise ConfigError("ds_config: no 'optimizer' section; set e.g. {\"type\": \"Adam\", \"params\": {\"lr\": 0.01}}")
    t = str(cfg["type"]).lower()
    p = dict(cfg.get("params", {}))
    p.pop("torch_adam", None)  # we always use torch's implementation
    groups = [{"params": list(u.module.parameters()), "unit": u.name} for u in units if u.has_params]
    if not groups:
        raise ConfigError("layer group without trainable parameters")
    if "betas" in p:
        p["betas"] = tuple(p["betas"])
    if t == "adam":
        adam_w = p.pop("adam_w_mode", True)  # DeepSpeed's default: "Adam" means AdamW
        p.pop("bias_correction", None)
        return (SkippableAdamW if adam_w else SkippableAdam)(groups, **p)
    if t == "adamw":
        p.pop("bias_correction", None)
        return SkippableAdamW(groups, **p)
    if t == "sgd":
        return SkippableSGD(groups, **p)
    raise ConfigError(f"optimizer.type: unknown optimizer {cfg['type']!r}; supported: ['Adam', 'AdamW', 'SGD']")


def build_scheduler(cfg: Mapping[str, Any] | None, opt: torch.optim.Optimizer, total_steps: int):
    """DeepSpeed's LR schedule class named by ``cfg`` (``total_num_steps`` filled in when absent); None = constant."""
    if not cfg:
        return None
    t = cfg.get("type")
    params = dict(cfg.get("params", {}))
    if t == "Cosine":
        return _cosine(opt, total_steps, params)
    from deepspeed.runtime import lr_schedules

    if t in ("WarmupCosineLR", "WarmupDecayLR") and params.get("total_num_steps", "auto") == "auto":
        params["total_num_steps"] = max(1, int(total_steps))
    cls = getattr(lr_schedules, str(t), None)
    if cls is None:
        raise ConfigError(f"scheduler.type: unknown scheduler {t!r}")
    try:
        return cls(opt, **params)
    except TypeError as e:
        raise ConfigError(f"scheduler.params: {e}") from None


class _CosineFactor:
    """lr factor of the "Cosine" schedule: linear warmup, then cosine from 1 to ``min_ratio`` (picklable)."""

    def __init__(self, total: int, warmup: int, min_ratio: float) -> None:
        self.total, self.warmup, self.min_ratio = total, warmup, min_ratio

    def __call__(self, step: int) -> float:
        import math

        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * (1 + math.cos(math.pi * progress)) / 2


def _cosine(opt: torch.optim.Optimizer, total_steps: int, params: dict):
    """The paper's schedule (cosine annealing from the optimizer's lr, no warmup by default), stepped per step.

    DeepSpeed's WarmupCosineLR starts at lr 0 and forces >= 2 warmup steps, hence this toolkit type.
    """
    allowed = {"total_num_steps", "warmup_num_steps", "min_ratio"}
    bad = set(params) - allowed
    if bad:
        raise ConfigError(f"scheduler.params: unknown keys {sorted(bad)} for 'Cosine'; allowed: {sorted(allowed)}")
    total = params.get("total_num_steps", "auto")
    total = max(1, int(total_steps)) if total == "auto" else int(total)
    factor = _CosineFactor(total, int(params.get("warmup_num_steps", 0)), float(params.get("min_ratio", 0.0)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)
