"""Evaluation during retraining: top-1 and CE loss of the evaluated weights (EMA or raw) on the val split."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..common.dist import is_multi_rank
from ..common.memory_format import batch_to, memory_format
from .ema import ModelEma

__all__ = ["evaluate", "Evaluator"]


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device, max_batches: int | None,
             fmt: torch.memory_format = torch.contiguous_format) -> dict[str, float]:
    """Top-1 and CE loss over this rank's shard of the val split, summed over ranks."""
    import torch.distributed as td

    model.eval()
    stats = torch.zeros(3, dtype=torch.float64)
    loader.set_epoch(0)
    loader.load_state_dict({"epoch": 0, "position": 0})
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x, y = batch_to(x, device, fmt), y.to(device).long()
        logits = model(x).float()
        stats += torch.tensor([(logits.argmax(1) == y).sum().item(), y.numel(),
                               F.cross_entropy(logits, y, reduction="sum").item()], dtype=torch.float64)
    if is_multi_rank():
        td.all_reduce(stats)
    correct, total, loss = stats.tolist()
    return {"top1": correct / max(total, 1), "loss": loss / max(total, 1), "samples": int(total)}


class Evaluator:
    """The weights that are evaluated and exported (the EMA when ``use_ema``, else the engine's) on the val split.

    ``eval_model`` is a copy of the sub-net (taken before DeepSpeed wraps it) the weights are loaded into,
    so evaluation never touches the training module's mode or batch-norm statistics. Cost: one extra copy
    of the sub-net's weights.
    """

    def __init__(self, engine: Any, eval_model: torch.nn.Module, ema: ModelEma | None, use_ema: bool, loader: Any,
                 device: Any, max_batches: int | None, channels_last: bool = False) -> None:
        self.engine, self.eval_model, self.ema = engine, eval_model, ema
        self.memory_format = memory_format(channels_last)
        self.use_ema = use_ema and ema is not None
        self.loader, self.device, self.max_batches = loader, device, max_batches

    def weights(self) -> torch.nn.Module:
        """``eval_model`` holding the evaluated weights."""
        if self.use_ema:
            return self.ema.copy_to(self.eval_model)
        self.eval_model.load_state_dict(self.engine.module.state_dict())
        return self.eval_model

    def __call__(self) -> dict[str, float]:
        """Top-1, loss and sample count of the evaluated weights (a collective)."""
        return evaluate(self.weights(), self.loader, self.device, self.max_batches, self.memory_format)
