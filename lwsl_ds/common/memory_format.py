"""The channels_last (NHWC) switch of image batches, one rule for training, retraining and scoring.

On CPU, convolutions follow their input's memory format, so an NHWC batch makes the whole forward and
backward NHWC while the weights stay contiguous (DeepSpeed's start-up broadcast refuses other strides).
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["memory_format", "batch_to"]


def memory_format(channels_last: bool) -> torch.memory_format:
    """``torch.channels_last`` when asked, else the default contiguous format."""
    return torch.channels_last if channels_last else torch.contiguous_format


def batch_to(images: torch.Tensor, device: Any, fmt: torch.memory_format) -> torch.Tensor:
    """``images`` on ``device`` in ``fmt`` (4-D batches only); a contiguous batch in the default format is
    returned as it is, so the default path copies nothing."""
    images = images.to(device, non_blocking=True)
    return images.contiguous(memory_format=fmt) if images.dim() == 4 else images
