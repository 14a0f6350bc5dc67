"""Activation checkpointing inside a choice module (``train.activation_checkpointing``).

A checkpointed choice runs its forward under ``torch.utils.checkpoint`` (non-reentrant): autograd keeps only
its input (and the output the caller holds anyway); the activations inside the choice (expanded hidden maps,
BN and activation inputs, SE) are recomputed in its backward. Cost: one extra forward of the choice per
backward; the update is unchanged.

Which calls: :class:`CheckpointBackend` wraps an update backend and, while it runs a loss of a checkpointed
layer group (``backend.run(layer, fn, ...)``), every choice module that loss calls runs checkpointed:

- the trained choices (greedy/non-greedy: f_ij; SPOS: the path's choices of that group);
- non-greedy's read-only f_{i+1,k} stacked on f_ij (and on the stem). It is checkpointed too, because its
  activations are saved for the backward into f_ij and sit in the *caller's* peak: a group that asks for
  checkpointing would otherwise keep a full choice's activations per loss. The recomputation re-enters
  ``functional_call`` with the same detached parameters and cloned buffers the read-only call used, so it
  still puts no gradient into f_{i+1,k}'s weights and does not touch its running statistics. The rule is
  "calls made by a checkpointed group's losses", whichever group owns the called module.

Batch norm: the recomputation would update running statistics a second time; each recomputation snapshots
the module's BN buffers (running mean/var, ``num_batches_tracked``) and restores them afterwards, so they
advance once per forward as without checkpointing (train-mode BN normalises with batch statistics, so the
recomputed values are the same either way). Cost: one copy of the module's BN buffers per recomputation.

The patch is an instance attribute ``forward`` that lives only while the loss runs: ``state_dict``,
deepcopy and pickling of the net are never affected.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Callable, Iterable, Iterator, TypeVar

import torch
from torch import nn

__all__ = ["CheckpointBackend", "checkpoint_choices"]

T = TypeVar("T")


def _bn_state(module: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(b, b.clone()) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for b in m.buffers()]


def _restoring_bn(module: nn.Module, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
    saved = _bn_state(module)  # recomputation: keep BN running statistics as they were after the forward
    try:
        return fn()
    finally:
        with torch.no_grad():
            for buf, old in saved:
                buf.copy_(old)


def _checkpointed_forward(module: nn.Module, original: Callable[..., torch.Tensor],
                          read_only: bool) -> Callable[..., torch.Tensor]:
    from torch.func import functional_call
    from torch.utils.checkpoint import checkpoint

    bypass = [False]  # set while a read-only recomputation re-enters functional_call (and so this forward)

    def forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if bypass[0] or not torch.is_grad_enabled():
            return original(x)
        params = dict(self.named_parameters())
        if not params:
            return original(x)
        # Inside read_only_call's functional_call, named_parameters() are the detached copies it passed.
        ro = not any(p.requires_grad for p in params.values())
        if ro and not read_only:
            return original(x)
        bound = {**params, **dict(self.named_buffers())} if ro else None
        calls = [0]

        def recompute_read_only(inp: torch.Tensor) -> torch.Tensor:
            bypass[0] = True
            try:
                return functional_call(self, bound, (inp,), strict=True)
            finally:
                bypass[0] = False

        def run(inp: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            if calls[0] == 1:
                return original(inp)
            if ro:
                return _restoring_bn(self, lambda: recompute_read_only(inp))
            return _restoring_bn(self, lambda: original(inp))

        return checkpoint(run, x, use_reentrant=False)

    return types.MethodType(forward, module)


@contextlib.contextmanager
def checkpoint_choices(modules: Iterable[nn.Module], read_only: bool = True) -> Iterator[None]:
    """Within the block, the given choice modules run their forward under activation checkpointing.

    ``read_only``: also checkpoint calls through ``read_only_call`` (recomputed with the same detached
    parameters, see the module doc); with False those run as usual.
    """
    patched = []
    try:
        for m in modules:
            if "forward" in m.__dict__:
                raise ValueError(f"{type(m).__name__}: forward is already patched (nested checkpoint_choices?)")
            m.forward = _checkpointed_forward(m, m.forward, read_only)  # instance attribute: state_dict unchanged
            patched.append(m)
        yield
    finally:
        for m in patched:
            del m.forward


class CheckpointBackend:
    """Wrap an update backend so that the losses of checkpointed layers run their choices checkpointed.

    ``layers``: checkpointed layers (0-based; the stem's loss, layer -1, counts as layer 0's: it belongs to
    group 0). While a loss of such a layer runs, the choices of the checkpointed layers of its group and of
    the next layer (non-greedy's read-only call) are patched; other calls run as usual.
    """

    def __init__(self, inner: Any, net: nn.Module, layers: Iterable[int], groups: list[list[int]]) -> None:
        self.inner = inner
        self.checkpoint_layers = sorted(set(layers))
        space, n = net.space, net.num_layers
        bad = [i for i in self.checkpoint_layers if not 0 <= i < n]
        if bad:
            raise ValueError(f"activation checkpointing: layers {bad} do not exist ({n} layers)")
        ck = set(self.checkpoint_layers)
        self._targets: dict[int, list[nn.Module]] = {}
        for g in groups:
            own = [i for i in g if i in ck]
            for i in own:
                callee = {j for j in (*own, i + 1) if j < n}
                self._targets[i] = [m for j in sorted(callee) for m in
                                    (net.choice(j, k) for k in space.layers[j].choices)
                                    if any(True for _ in m.parameters())]
        if 0 in ck:
            self._targets[-1] = self._targets[0]  # the stem's loss reads layer 0's choices (non-greedy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # groups, plan, freeze, step, save, ... pass through

    def run(self, layer: int, fn: Callable[..., T], *args: Any) -> T:
        """``inner.run`` with the choices of a checkpointed layer's loss under activation checkpointing."""
        mods = self._targets.get(layer)
        if not mods:
            return self.inner.run(layer, fn, *args)
        with checkpoint_choices(mods):
            return self.inner.run(layer, fn, *args)

    def backward(self, layer: int, loss: torch.Tensor) -> None:
        """``inner.backward`` (the recomputation happens in there)."""
        self.inner.backward(layer, loss)
