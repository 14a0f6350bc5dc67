"""Measured device peaks on CUDA (``max_memory_allocated``), to set beside the accounted numbers.

Runs the same real strategy step as the accounting, on real tensors on the GPU, with the accounting
backend (no optimizer). The measured peak includes the parameters, the gradients that exist at that
moment and the batch; :func:`measure_step` returns it with the matching accounted figure. With a
micro-batch ``plan`` (the balanced layer-wise mode) the step runs under the same ``MicroBatchBackend`` as
training and as the accounting. Without CUDA it returns a dict with a ``skipped`` reason instead (never a
fake number). The allocator cache is emptied first, so ``reserved_bytes`` is this step's reserve, not an
earlier measurement's. Note: DeepSpeed's ``see_memory_usage`` resets the peak statistics as a side effect;
do not call it in between.
"""

from __future__ import annotations

import gc
import random
from typing import Any, Mapping

import torch

from .levers import NO_LEVERS, Levers, wrap_levers
from .step import AccountingBackend, WorstCaseRng, account_step, build_net

__all__ = ["cuda_available_reason", "measure_step"]


def cuda_available_reason() -> str | None:
    """None when a CUDA device can be measured, otherwise why not."""
    if not torch.cuda.is_available():
        return "no CUDA device on this machine (torch.cuda.is_available() is False)"
    return None


def measure_step(space: str, strategy: str, batch_size: int, *, resolution: int | None = None,
                 objective: str = "ce", rng: str = "worst", seed: int = 0, warmup: int = 1,
                 plan: Mapping[int, int] | None = None) -> dict[str, Any]:
    """Measured peak bytes of one step on CUDA next to the accounted one (same draws), or a skip reason."""
    why = cuda_available_reason()
    if why:
        return {"skipped": why}
    from ..strategies import get_strategy

    gc.collect()
    torch.cuda.empty_cache()  # earlier measurements' cached blocks would count in this step's reserve
    torch.manual_seed(seed)
    net = build_net(space, objective, "cuda", resolution)
    sp = net.space
    strat = get_strategy(strategy)
    views = net.objective.views
    levers = Levers(micro_batches=dict(plan)) if plan else NO_LEVERS
    backend = wrap_levers(AccountingBackend([list(range(sp.num_layers))]), net, levers, batch_size)
    images = torch.randn(batch_size * views, sp.in_channels, sp.resolution, sp.resolution, device="cuda")
    labels = torch.randint(0, sp.num_classes, (batch_size,), device="cuda")
    draw = (lambda: WorstCaseRng(sp)) if rng == "worst" else (lambda: random.Random(seed))
    for _ in range(warmup):  # cuDNN autotuning and lazy workspaces happen on the first step
        strat.step(net, images, labels, backend, draw())
        net.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()  # parameters, buffers, batch
    torch.cuda.reset_peak_memory_stats()
    strat.step(net, images, labels, backend, draw())
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    grads = sum(p.grad.untyped_storage().nbytes() for p in net.parameters() if p.grad is not None)
    net.zero_grad(set_to_none=True)
    reserved = torch.cuda.max_memory_reserved()
    acc = account_step(space, strategy, batch_size, resolution=resolution, objective=objective, rng=rng, seed=seed,
                       levers=levers)
    return {"measured_peak_bytes": peak, "measured_step_bytes": peak - base, "baseline_bytes": base,
            "grads_at_end_bytes": grads, "reserved_bytes": reserved,
            "accounted_activation_bytes": acc.profile.peak_bytes,
            "accounted_step_upper_bytes": acc.profile.peak_bytes + grads,
            "accounted_activation_peak_bytes": acc.activation_peak, "accounted_device_peak_bytes": acc.device_peak,
            "micro_batches": {str(k): v for k, v in (plan or {}).items()},
            "device": torch.cuda.get_device_name()}
