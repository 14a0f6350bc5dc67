"""Exponential moving average of a model's weights and BN statistics (evaluate and export with it)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ModelEma"]


class ModelEma:
    """fp32 shadow of every parameter and floating buffer: ``ema = decay * ema + (1 - decay) * value``.

    BN running statistics are averaged too (as timm's ModelEmaV2 does), so the EMA model evaluates
    without re-estimating them. Integer buffers (``num_batches_tracked``) are copied. Costs one extra
    copy of the weights in memory and one fused multiply-add per tensor per step.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() if v.is_floating_point() else v.detach().clone()
                       for k, v in model.state_dict().items()}

    def decay_at(self, step: int) -> float:
        """Decay used after optimizer step ``step`` (1-based): ``min(decay, (1 + step) / (10 + step))``.

        The warm-up of TensorFlow's ExponentialMovingAverage(num_updates=step), which the EfficientNet
        recipe uses: without it the EMA of a short run is still mostly the random initialisation.
        """
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        """Move the shadow towards ``model`` after optimizer step ``step``."""
        d = self.decay_at(step)
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.is_floating_point():
                s.mul_(d).add_(v.detach().float(), alpha=1 - d)
            else:
                s.copy_(v)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Plain tensors (loadable with ``weights_only=True``)."""
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the shadow; keys and shapes must match the model it was built from."""
        missing = set(self.shadow) ^ set(state)
        if missing:
            raise KeyError(f"EMA state does not match the model: differing keys {sorted(missing)[:5]}")
        for k, v in state.items():
            self.shadow[k].copy_(v)

    def copy_to(self, model: nn.Module) -> nn.Module:
        """Load the shadow into ``model`` (cast to its dtypes) and return it."""
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in self.shadow.items()})
        return model
