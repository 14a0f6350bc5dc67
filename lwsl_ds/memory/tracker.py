"""Activation accounting of one training step: every tensor storage born during the step, when it dies,
whether autograd saved it for backward, and which strategy phase (stem, layer i, head, backward) it
belongs to.

How: a ``TorchDispatchMode`` sees every aten op's outputs (forward, backward and optimizer, on any device,
including ``meta``), so each new storage is registered with its size at birth and a weakref callback
records its death; ``saved_tensors_hooks`` marks the storages autograd keeps for backward. Storages that
existed before the step (parameters, buffers, the input batch) are never registered, so they are
excluded by construction; gradients of parameters are marked by a post-accumulate-grad hook and counted
as model states, not activations. The peak is computed afterwards from the event timeline, so it is the
true peak over the whole step, not a sum of parts.

Costs: one Python call per aten op (a paper-space layer-wise step on ``meta`` is about 10^5 ops, a few
seconds). The pack hook returns ``t.detach()``, never ``t``: returning ``t`` itself leaks the whole graph
when a forward runs without backward (measured: hundreds of MiB per call, not freed by gc).

Example::

    tracker = StepTracker()
    with tracker:
        strategy.step(net, images, labels, backend, rng, tracker=tracker)
    profile = tracker.profile()
    profile.peak_bytes, profile.phases[0].peak_bytes
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["StepTracker", "StepProfile", "PhaseProfile", "CATEGORIES", "saved_bytes"]

# Categories of the live activation bytes at a peak, in the order a storage is classified:
#   saved     kept by autograd for a backward that has not run yet
#   carried   crosses a phase boundary: layer input, the running layer-input accumulator, metrics
#   transient everything else alive at that moment: outputs, incoming gradients, temporaries
CATEGORIES = ("saved", "carried", "transient")


@dataclass
class _Record:
    """One storage born during the step."""

    nbytes: int
    born: int
    phase: int
    died: int | None = None
    saved_at: int | None = None
    grad: bool = False


@dataclass
class PhaseProfile:
    """Accounted activation memory of one phase (stem = layer -1; SPOS head/backward = layer n)."""

    name: str
    layer: int
    peak_bytes: int = 0
    saved_bytes: int = 0  # distinct storages autograd saved during this phase (dedup by storage)
    breakdown: dict[str, int] = field(default_factory=dict)  # CATEGORIES at the phase's peak

    @property
    def label(self) -> str:
        """Short label: 'stem', 'L3', 'head', 'backward'."""
        return "stem" if self.layer == -1 and self.name == "stem" else (
            f"L{self.layer}" if self.name == "layer" else self.name)


@dataclass
class StepProfile:
    """Accounted activations of one step: overall peak, its breakdown, and per-phase peaks."""

    peak_bytes: int
    breakdown: dict[str, int]
    peak_phase: str
    saved_total_bytes: int
    phases: list[PhaseProfile]
    num_storages: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"peak_bytes": self.peak_bytes, "breakdown": self.breakdown, "peak_phase": self.peak_phase,
                "saved_total_bytes": self.saved_total_bytes, "num_storages": self.num_storages,
                "phases": [{"name": p.name, "layer": p.layer, "label": p.label, "peak_bytes": p.peak_bytes,
                            "saved_bytes": p.saved_bytes, "breakdown": p.breakdown} for p in self.phases]}


class _Mode(TorchDispatchMode):
    """Registers the storage of every op output it has not seen yet."""

    def __init__(self, tracker: "StepTracker") -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        # An output sharing a storage with an input (a view, an in-place or out= op) is not an allocation;
        # skipping those keeps parameters, buffers and the input batch (born before the step) out.
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and id(t.untyped_storage()) not in inputs:
                self.tracker._register(t)
        return out


class StepTracker:
    """Records the storages of one step; also a strategy ``Tracker`` (``phase(name, layer)``)."""

    def __init__(self, params: nn.Module | None = None) -> None:
        self._records: dict[int, _Record] = {}  # key: a private serial per storage
        self._keys: dict[int, int] = {}  # id(live storage object) -> serial
        self._refs: dict[int, weakref.ref] = {}
        self._clock = 0
        self._phase_stack: list[int] = []
        self._phases: list[tuple[str, int, int, int | None]] = [("outside", -2, 0, None)]
        self._saved_in_phase: dict[int, set[int]] = {}
        self._module = params
        self._grad_hooks: list[Any] = []
        self._stack = contextlib.ExitStack()

    # ---- the Tracker protocol -------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name: str, layer: int) -> Iterator[None]:
        """Attribute everything born inside to phase (name, layer)."""
        idx = len(self._phases)
        self._phases.append((name, layer, self._tick(), None))
        self._phase_stack.append(idx)
        try:
            yield
        finally:
            self._phase_stack.pop()
            n, l, start, _ = self._phases[idx]
            self._phases[idx] = (n, l, start, self._tick())

    # ---- recording ------------------------------------------------------------------------------
    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def _current_phase(self) -> int:
        return self._phase_stack[-1] if self._phase_stack else 0

    def _register(self, t: torch.Tensor) -> int | None:
        st = t.untyped_storage()
        key = self._keys.get(id(st))
        if key is not None:
            return key
        nbytes = st.nbytes()
        if nbytes == 0:
            return None
        key = len(self._records)
        self._records[key] = _Record(nbytes, self._tick(), self._current_phase())
        sid = id(st)
        self._keys[sid] = key

        def died(_ref: Any, key: int = key, sid: int = sid) -> None:
            self._records[key].died = self._tick()
            self._keys.pop(sid, None)
            self._refs.pop(sid, None)

        # Storage Python objects are preserved while the storage lives, so the weakref fires at its death.
        self._refs[sid] = weakref.ref(st, died)
        return key

    def adopt(self, tensors) -> None:
        """Track storages that exist already (born now), e.g. parameters a library will replace."""
        for t in tensors:
            self._register(t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = self._keys.get(id(t.untyped_storage()))
        if key is not None:  # None: a parameter, buffer or the input batch (existed before the step)
            rec = self._records[key]
            if rec.saved_at is None:
                rec.saved_at = self._clock
            self._saved_in_phase.setdefault(self._current_phase(), set()).add(key)
        return t.detach()  # never t itself: that leaks the graph of a forward without backward

    @staticmethod
    def _unpack(t: torch.Tensor) -> torch.Tensor:
        return t

    def _mark_grad(self, p: torch.Tensor) -> None:
        if p.grad is not None:
            key = self._keys.get(id(p.grad.untyped_storage()))
            if key is not None:
                self._records[key].grad = True

    def __enter__(self) -> "StepTracker":
        if self._module is not None:
            for p in self._module.parameters():
                if p.requires_grad:
                    self._grad_hooks.append(p.register_post_accumulate_grad_hook(self._mark_grad))
        self._stack.enter_context(torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack))
        self._stack.enter_context(_Mode(self))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stack.close()
        for h in self._grad_hooks:
            h.remove()
        self._grad_hooks.clear()
        self._end = self._tick()

    # ---- analysis -------------------------------------------------------------------------------
    def _timeline(self) -> list[tuple[int, int]]:
        """(time, live activation bytes after the event) for every birth and death, in time order."""
        events: list[tuple[int, int]] = []
        for r in self._records.values():
            if r.grad:
                continue
            events.append((r.born, r.nbytes))
            if r.died is not None:
                events.append((r.died, -r.nbytes))
        events.sort()
        live, out = 0, []
        for t, d in events:
            live += d
            out.append((t, live))
        return out

    def _breakdown(self, t: int, start: int, end: int) -> dict[str, int]:
        """Live activation bytes at time ``t`` by category, relative to the phase [start, end]."""
        out = dict.fromkeys(CATEGORIES, 0)
        for r in self._records.values():
            if r.grad or r.born > t or (r.died is not None and r.died <= t):
                continue
            if r.saved_at is not None and r.saved_at <= t:
                out["saved"] += r.nbytes
            elif r.born < start or r.died is None or r.died > end:
                out["carried"] += r.nbytes
            else:
                out["transient"] += r.nbytes
        return out

    def profile(self) -> StepProfile:
        """The step's accounted activation memory (call after the ``with`` block)."""
        timeline = self._timeline()
        end = getattr(self, "_end", self._clock)

        def peak_in(start: int, stop: int) -> tuple[int, int]:
            # live bytes at the start of the window, then every event inside it
            best_t, best, live = start, 0, 0
            for t, v in timeline:
                if t <= start:
                    live = v
                    best, best_t = live, start
                elif t <= stop:
                    if v > best:
                        best, best_t = v, t
                else:
                    break
            return best, best_t

        phases = []
        for idx, (name, layer, start, stop) in enumerate(self._phases[1:], start=1):
            stop = end if stop is None else stop
            peak, t = peak_in(start, stop)
            saved = sum(self._records[k].nbytes for k in self._saved_in_phase.get(idx, ()))
            phases.append(PhaseProfile(name, layer, peak, saved, self._breakdown(t, start, stop)))
        peak, t = peak_in(0, end)
        where = "outside"
        for name, layer, start, stop in self._phases[1:]:
            if start <= t <= (end if stop is None else stop):
                where = f"{name}:{layer}"
        owner = [p for p in self._phases[1:] if p[2] <= t <= (end if p[3] is None else p[3])]
        bstart, bstop = (owner[-1][2], owner[-1][3] or end) if owner else (0, end)
        saved_total = sum(r.nbytes for r in self._records.values() if r.saved_at is not None and not r.grad)
        return StepProfile(peak, self._breakdown(t, bstart, bstop), where, saved_total, phases,
                           len(self._records))


def saved_bytes(fn, *args: Any) -> int:
    """Bytes autograd saves for backward while running ``fn(*args)`` (dedup by storage, params excluded)."""
    tracker = StepTracker()
    with tracker:
        out = fn(*args)
    prof = tracker.profile()
    del out
    return prof.saved_total_bytes
