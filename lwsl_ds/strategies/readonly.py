"""Read-only use of a module inside another module's loss (non-greedy: f_{i+1,k} stacked on f_ij)."""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

__all__ = ["read_only_call"]


def read_only_call(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` with gradient flowing to ``x`` only: no gradient to its weights, buffers not updated.

    Parameters are passed detached and buffers cloned, so in train mode BatchNorm normalises with the
    batch statistics (exactly as the module itself would) but updates only the throw-away clones: its
    running statistics stay those of its own training. Cost: one copy of the module's buffers per call.
    """
    params = {n: p.detach() for n, p in module.named_parameters()}
    buffers = {n: b.clone() for n, b in module.named_buffers()}
    in_dtype = x.dtype
    if params:
        dtype = next(iter(params.values())).dtype
        if x.is_floating_point() and x.dtype != dtype:
            x = x.to(dtype)
    out = functional_call(module, {**params, **buffers}, (x,), strict=True)
    # A module of another layer group may run in another precision (e.g. a bf16 group next to an fp32 one):
    # hand the result back in the caller's precision, for the caller's own modules.
    return out.to(in_dtype) if out.is_floating_point() and out.dtype != in_dtype else out
