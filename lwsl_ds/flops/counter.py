"""Count one module's MACs (fvcore convention) and parameters for one input shape.

Convention (see docs/flops.md): fvcore's ``FlopCountAnalysis`` counts one multiply-add as one "flop",
i.e. it reports MACs. It counts convolutions (bias excluded), linear layers (bias excluded), batch norm
(eval mode: one per element, so always trace in eval mode) and adaptive average pooling (one per input
element). It skips element-wise ops (sigmoid, mul, add, activations). We add one handle: ``aten::mean``
(how our models pool globally, in the head and in squeeze-excite) is counted like
``adaptive_avg_pool2d``, one per input element, so "pooling is included" holds for our networks too.
``conv_linear`` is the view that keeps only convolutions and linear layers (NAS-Bench-Macro's ``flops``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

__all__ = ["ModuleCost", "count_module", "CONV_LINEAR_OPS"]

# fvcore's operator names (keys of ``by_operator()``) that make up the conv+linear view.
CONV_LINEAR_OPS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum")


@dataclass(frozen=True)
class ModuleCost:
    """MACs (fvcore total), MACs of conv+linear only, parameter count, and the per-operator split."""

    flops: int
    conv_linear: int
    params: int
    by_operator: dict[str, int] = field(default_factory=dict)
    skipped_ops: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form for the JSON cache."""
        return {"flops": self.flops, "conv_linear": self.conv_linear, "params": self.params,
                "by_operator": dict(self.by_operator), "skipped_ops": list(self.skipped_ops)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModuleCost":
        """Inverse of :meth:`to_dict`."""
        return cls(int(d["flops"]), int(d["conv_linear"]), int(d["params"]),
                   {k: int(v) for k, v in d.get("by_operator", {}).items()}, tuple(d.get("skipped_ops", ())))


def _mean_handle(inputs: list[Any], outputs: list[Any]) -> int:
    """Global average pooling written as ``x.mean(dims)``: one MAC per input element (as fvcore's pool)."""
    from fvcore.nn.jit_handles import get_shape

    shape = get_shape(inputs[0])
    n = 1
    for s in shape or ():
        n *= int(s)
    return n


def count_module(module: nn.Module, input_shape: tuple[int, ...]) -> ModuleCost:
    """Trace ``module`` in eval mode on zeros of ``input_shape`` and count MACs and parameters.

    Costs about 40 ms per MBConv block at 224 px (one JIT trace). Parameters are counted once per
    unique tensor (shared parameters are not double counted).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # fvcore imports torch.jit.script (deprecated)
        from fvcore.nn import FlopCountAnalysis

    params = sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
    was_training = module.training
    module.eval()  # BN is counted differently in train mode; deployment cost is eval mode
    try:
        x = torch.zeros(*input_shape)
        if not list(module.parameters()) and not list(module.buffers()) and isinstance(module, nn.Identity):
            return ModuleCost(0, 0, params)  # nothing to trace (fvcore cannot trace a graph with no ops)
        analysis = FlopCountAnalysis(module, x)
        analysis.set_op_handle("aten::mean", _mean_handle)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            total = int(analysis.total())
            by_op = {k: int(v) for k, v in analysis.by_operator().items()}
            skipped = tuple(sorted(analysis.unsupported_ops()))
    finally:
        module.train(was_training)
    conv_linear = sum(v for k, v in by_op.items() if k in CONV_LINEAR_OPS)
    return ModuleCost(total, conv_linear, params, by_op, skipped)
