"""The retraining recipe as objects: scaled learning rate, optimizer parameter groups, warmup+cosine schedule.

Paper (Sec. V, EfficientNet-style): RMSProp (decay 0.9, momentum 0.9), weight decay 4e-5, lr 0.045 with a
4-epoch warmup then cosine annealing. The lr scales linearly with the global batch
(:func:`scaled_lr`); weight decay applies to conv/linear weights only, as in the TensorFlow reference
(decaying BN scales and biases only hurts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config.schema import ConfigError
from ..config.sections.retrain import RetrainConfig

__all__ = ["scaled_lr", "param_groups", "build_optimizer", "WarmupCosine", "Schedule"]


@dataclass(frozen=True)
class Schedule:
    """Optimizer-step counts of one run: per epoch, of the lr schedule, warmup, where to stop, eval period."""

    steps_per_epoch: int
    total_steps: int
    warmup: int
    stop_at: int
    eval_every: int

    @classmethod
    def of(cls, cfg: RetrainConfig, micro_batches_per_epoch: int, accumulation: int) -> "Schedule":
        """The counts for ``micro_batches_per_epoch`` loader batches per rank and ``accumulation`` per step."""
        spe = micro_batches_per_epoch // accumulation
        if spe < 1:
            raise ConfigError(f"{micro_batches_per_epoch} micro-batches per epoch and rank are fewer than "
                              f"gradient_accumulation_steps={accumulation}: no optimizer step per epoch")
        total = max(1, math.ceil(cfg.epochs * spe))
        return cls(spe, total, int(round(cfg.warmup_epochs * spe)), min(total, cfg.max_steps or total),
                   max(1, int(round(cfg.eval_every_epochs * spe))))


def scaled_lr(cfg: RetrainConfig, global_batch: int) -> float:
    """``lr_per_reference * global_batch / lr_reference_batch`` (the linear scaling rule)."""
    return cfg.lr_per_reference * global_batch / cfg.lr_reference_batch


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: multi-dimensional weights with ``weight_decay``, BN parameters and biases without."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(cfg: RetrainConfig, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The configured torch optimizer (DeepSpeed gets it as a client optimizer)."""
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        # torch's alpha is TF's decay; eps sits outside the sqrt in torch and inside in TF, the 1e-3 of
        # the EfficientNet reference keeps the first steps (tiny squared averages) from exploding.
        return torch.optim.RMSprop(groups, lr=lr, alpha=cfg.rmsprop_decay, eps=cfg.rmsprop_eps,
                                   momentum=cfg.momentum)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=lr)


class WarmupCosine:
    """LR factor per optimizer step: linear warmup to 1 over ``warmup`` steps, then cosine to ``min_ratio``.

    A class rather than a lambda so that the scheduler state (saved with the checkpoint) pickles.
    """

    def __init__(self, total: int, warmup: int, min_ratio: float = 0.0) -> None:
        if total < 1 or warmup < 0:
            raise ValueError(f"total={total} must be >= 1 and warmup={warmup} >= 0")
        self.total, self.warmup, self.min_ratio = total, warmup, min_ratio

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
