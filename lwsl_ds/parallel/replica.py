"""Non-greedy at a group boundary: a read-only replica of the next group's first layer, refreshed by its owner.

Layer b = the first layer of group g+1. Group g's last layer is trained through a sampled choice of layer b
(used read-only), so rank (g, d) holds a copy of layer b's choices. Its owner (g+1, d) sends its weights
after every K-th optimizer step ("version" s = weights after s steps; version 0 = the identical
initialisation every rank builds from the same seed).

Staleness, deterministic by construction: step t (0-based) of group g uses
``version(t) = K * floor((t - L) / K)`` (0 while t < L), i.e. weights L .. L+K-1 steps older than the
synchronous run, which uses version t. Group g waits for that version only when it reaches its last layer,
so L = 0 reproduces the synchronous run exactly but makes group g wait for group g+1 every step; L = 1
(default) overlaps fully in a balanced pipeline. Only parameters travel: ``read_only_call`` normalises
with batch statistics and never reads the replica's BN running statistics.

The owner keeps its recent versions (a few copies of one layer's parameters) so that a resumed run can
resend the versions the receiver still needs; see :meth:`ReplicaOwner.resend_after_resume`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ..space import SuperNet
from .channel import KIND_DATA, Receiver, Sender, pack, payload_view

__all__ = ["replica_modules", "flat_params", "load_flat", "needed_version", "ReplicaOwner", "ReplicaReceiver",
           "message_bytes"]


def replica_modules(net: SuperNet, layer: int) -> list[nn.Module]:
    """Choices of ``layer`` that have parameters (in choice order)."""
    mods = [net.choice(layer, k) for k in net.space.layers[layer].choices]
    return [m for m in mods if any(True for _ in m.parameters())]


def flat_params(mods: list[nn.Module]) -> torch.Tensor:
    """All parameters of ``mods`` as one detached flat tensor (a copy)."""
    return torch.cat([p.detach().reshape(-1) for m in mods for p in m.parameters()]).clone()


@torch.no_grad()
def load_flat(mods: list[nn.Module], flat: torch.Tensor) -> None:
    """Copy a :func:`flat_params` vector back into the parameters of ``mods``."""
    params = [p for m in mods for p in m.parameters()]
    total = sum(p.numel() for p in params)
    if total != flat.numel():
        raise ValueError(f"replica: {flat.numel()} values received, {total} parameters to fill")
    off = 0
    for p in params:
        n = p.numel()
        p.copy_(flat[off:off + n].view_as(p))
        off += n


def needed_version(step: int, every: int, lag: int) -> int:
    """Owner version that step ``step`` (0-based) uses: K * floor((step - L) / K), at least 0."""
    return max(0, (step - lag) // every * every)


def message_bytes(mods: list[nn.Module]) -> tuple[int, torch.dtype, int]:
    """(bytes of one refresh message, parameter dtype, number of values)."""
    from .channel import HEADER

    params = [p for m in mods for p in m.parameters()]
    dtype = params[0].dtype
    n = sum(p.numel() for p in params)
    return HEADER * 8 + n * params[0].element_size(), dtype, n


class ReplicaOwner:
    """Rank (g+1, d): sends its first layer's weights to (g, d) after every K-th step."""

    def __init__(self, mods: list[nn.Module], peer: int, group, every: int, lag: int, depth: int) -> None:
        self.mods, self.every, self.lag = mods, every, lag
        self.nbytes, _, _ = message_bytes(mods)
        # Enough in flight that the owner never waits for the receiver in steady state (see docs).
        self.sender = Sender(peer, group, depth + lag // every + 2, self.nbytes)
        self.history: OrderedDict[int, torch.Tensor] = OrderedDict({0: flat_params(mods)})
        self._keep = lag // every + 2

    def _record(self, version: int) -> torch.Tensor:
        flat = flat_params(self.mods)
        self.history[version] = flat
        while len(self.history) > self._keep:
            self.history.popitem(last=False)
        return flat

    def after_step(self, steps_done: int) -> None:
        """Call after every optimizer step with the number of steps done; sends on multiples of K."""
        if steps_done % self.every == 0:
            flat = self._record(steps_done)
            self.sender.send(pack(KIND_DATA, steps_done, 0, 0, [flat], self.nbytes, flat.device))

    def resend_after_resume(self, start_step: int) -> None:
        """Resume at ``start_step``: resend the kept versions the receiver has not loaded yet."""
        loaded = needed_version(start_step - 1, self.every, self.lag) if start_step > 0 else 0
        for v, flat in self.history.items():
            if loaded < v <= start_step:
                self.sender.send(pack(KIND_DATA, v, 0, 0, [flat], self.nbytes, flat.device))

    def state_dict(self) -> dict:
        """Kept versions (for resume)."""
        return {"history": {int(v): f for v, f in self.history.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore kept versions."""
        self.history = OrderedDict(sorted((int(v), f) for v, f in state["history"].items()))

    def close(self) -> None:
        """One stop message: the receiver keeps one receive posted."""
        self.sender.close(1)


class ReplicaReceiver:
    """Rank (g, d): loads the version each step needs, waiting for it only when it is not there yet."""

    def __init__(self, mods: list[nn.Module], peer: int, group, every: int, lag: int) -> None:
        self.mods, self.every, self.lag = mods, every, lag
        self.nbytes, self.dtype, self.count = message_bytes(mods)
        self.version = 0  # the replicas start as the shared initialisation
        self.waited_s = 0.0
        self.receiver = Receiver(peer, group, 1, self.nbytes, next(mods[0].parameters()).device)

    def ensure(self, step: int) -> int:
        """Load version ``needed_version(step)`` (skipping older ones); returns it."""
        import time

        want = needed_version(step, self.every, self.lag)
        latest = None
        t0 = time.perf_counter()
        while self.version < want:
            (kind, v, _, _), buf = self.receiver.recv()
            if kind != KIND_DATA:
                raise RuntimeError(f"replica: the owner stopped before sending version {want}")
            if v <= self.version:
                raise RuntimeError(f"replica: got version {v} after {self.version} (messages out of order)")
            self.version, latest = v, buf
        if latest is not None:
            load_flat(self.mods, payload_view(latest, 0, self.dtype, (self.count,)))
        self.waited_s += time.perf_counter() - t0
        if self.version != want:
            raise RuntimeError(f"replica: step {step} needs version {want}, owner sent {self.version}")
        return want

    def state_dict(self) -> dict:
        """Loaded version and the replica's parameters (for resume)."""
        return {"version": self.version, "params": flat_params(self.mods)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self.version = int(state["version"])
        load_flat(self.mods, state["params"])

    def close(self) -> None:
        """Drain versions never needed, up to the owner's stop message."""
        while not self.receiver.stopped:
            self.receiver.recv()
