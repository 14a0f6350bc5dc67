"""Host-resident model states of inactive layer groups: move one engine's states host <-> compute device.

Layer-wise training uses one layer group at a time, and a DeepSpeed engine applies its update at the last
backward call of its accumulation window, i.e. as soon as the group's layers are done for the step. So a
group's parameters, gradients and optimizer state are only needed on the device between its first
``run`` and its last ``backward`` of a step; :class:`GroupOffload` parks them in host memory (pinned on
CUDA) the rest of the time. **Cost**: one device->host and one host->device copy of the group's states per
step (synchronous, no prefetch overlap), plus the pinned host memory itself; at ZeRO 1/2 also DeepSpeed's
own overhead (three ``gc.collect()`` per ``offload_states``, ~1 s per call measured on the 2-core CPU machine,
and pinned buffers allocated anew at every offload because ``reload_states`` drops them).

* ZeRO 1/2: DeepSpeed 0.19.8's own ``engine.offload_states`` / ``reload_states`` for the fp32 master
  partition (``hp_params``), the flat compute-dtype parameters (``lp_params``) and partitioned gradients
  (``lp_grads``). The reduce buckets (``contiguous_grad_buffer``) are not moved by 0.19.8 at ZeRO 1/2: they
  stay on the device. The inner optimizer's state is moved here (not by DeepSpeed), because DeepSpeed moves
  *every* state tensor to the device on reload, including torch Adam's ``step`` counters that torch keeps
  on the host.
* ZeRO 0 in fp32: no DeepSpeed support (the engine's optimizer is the torch one), so ``param.data``,
  ``param.grad`` and the torch optimizer's state tensors are moved here. ZeRO 0 with bf16/fp16 (DeepSpeed's
  own mixed-precision wrappers with fp32 master copies) is refused.
* ZeRO 3 is refused: the toolkit does not train it layer-wise.

Non-greedy's last layer of a group runs the next layer's choices read-only (they belong to the next group):
:meth:`GroupOffload.fetch` gives those parameters a device copy without reloading the whole group; the next
reload replaces the copies.

On a machine without a GPU host and device are the same memory, but every move still copies into a
separate tensor, so the code path and its exactness are exercised (tests/engines/test_offload.py).
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import nn

from ..config.schema import ConfigError

__all__ = ["GroupOffload", "check_offload_supported"]


def check_offload_supported(engine: Any, group: int) -> None:
    """Raise a ConfigError naming the group if its engine's setup cannot be offloaded."""
    stage = engine.zero_optimization_stage()
    if stage not in (0, 1, 2):
        raise ConfigError(f"train.offload_inactive: layer group {group} uses ZeRO {stage}; offload supports "
                         "ZeRO 0 (fp32), 1 and 2")
    if stage == 0 and (engine.bfloat16_enabled() or engine.fp16_enabled()):
        raise ConfigError(f"train.offload_inactive: layer group {group} runs ZeRO 0 with bf16/fp16, whose "
                         "DeepSpeed optimizer wrapper keeps fp32 master copies this toolkit does not move; use "
                         "ZeRO 1 or 2 for that group (train.group_overrides) or fp32")


class GroupOffload:
    """Moves one engine's parameters, gradients and optimizer state between host and compute device."""

    def __init__(self, engine: Any, group: int, device: torch.device) -> None:
        check_offload_supported(engine, group)
        self.engine = engine
        self.group = group
        self.device = torch.device(device)
        self.zero = engine.zero_optimization_stage()
        self.pin = self.device.type == "cuda"  # pinned host memory: faster, asynchronous-capable copies
        self.resident = True
        self._fetched = False
        self.moves = {"to_host": 0, "to_device": 0, "fetch": 0}
        self._host: dict[int, torch.Tensor] = {}  # id(device tensor slot) -> reusable host buffer

    # ---- helpers ----------------------------------------------------------------------------------
    def _host_buffer(self, key: Any, t: torch.Tensor) -> torch.Tensor:
        """A host tensor like ``t`` for slot ``key``, allocated (and pinned) once and reused."""
        buf = self._host.get(key)
        if buf is None or buf.shape != t.shape or buf.dtype != t.dtype:
            buf = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=self.pin)
            self._host[key] = buf
        return buf

    def _to_host(self, key: Any, t: torch.Tensor) -> torch.Tensor:
        buf = self._host_buffer(key, t)
        buf.copy_(t)
        return buf

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        # A fresh device tensor even when host == device (CPU), so the path really copies everywhere.
        return torch.empty(t.shape, dtype=t.dtype, device=self.device).copy_(t, non_blocking=self.pin)

    def _opt_states(self, opt: torch.optim.Optimizer):
        """(state dict, key, tensor) of every optimizer state tensor that lives on the compute device."""
        for p, st in opt.state.items():
            for k, v in st.items():
                # torch Adam keeps its step counters on the host unless capturable: leave them there.
                if torch.is_tensor(v) and k != "step" and v.device.type == self.device.type:
                    yield id(p), st, k, v

    def _opt_states_host(self, opt: torch.optim.Optimizer):
        for p, st in opt.state.items():
            for k, v in st.items():
                if torch.is_tensor(v) and (id(p), k) in self._host and v is self._host[(id(p), k)]:
                    yield st, k, v

    def _inner_optimizer(self) -> torch.optim.Optimizer:
        """The torch optimizer that holds the state tensors (ZeRO 1/2 wrap it)."""
        opt = self.engine.optimizer
        return opt.optimizer if self.zero in (1, 2) else opt

    # ---- the moves --------------------------------------------------------------------------------
    @torch.no_grad()
    def to_host(self) -> None:
        """Park parameters, gradients and optimizer state in host memory (no-op if already there)."""
        if not self.resident:
            return
        opt = self._inner_optimizer()
        for pid, st, k, v in list(self._opt_states(opt)):
            st[k] = self._to_host((pid, k), v)
        if self.zero in (1, 2):
            from deepspeed.runtime.zero.offload_config import OffloadDeviceEnum, OffloadStateTypeEnum

            self.engine.offload_states(include=[OffloadStateTypeEnum.hp_params, OffloadStateTypeEnum.lp_params,
                                                OffloadStateTypeEnum.lp_grads],
                                       device=OffloadDeviceEnum.cpu, pin_memory=self.pin)
        else:
            for p in self.engine.module.parameters():
                g, p.grad = p.grad, None  # DeepSpeed sets gradients to None after its step; kept if not
                p.data = self._to_host((id(p), "data"), p.data)
                if g is not None:
                    p.grad = self._to_host((id(p), "grad"), g)
        if self.pin:
            torch.cuda.synchronize(self.device)  # the device copies may be freed only after the copy
        self.resident = False
        self._fetched = False
        self.moves["to_host"] += 1

    @torch.no_grad()
    def to_device(self) -> None:
        """Bring parameters, gradients and optimizer state back to the compute device (no-op if there)."""
        if self.resident:
            return
        # Optimizer state first: DeepSpeed's reload_states re-links its optimizer-state fragments
        # (_link_all_hp_params), which must then see the device tensors.
        for st, k, v in list(self._opt_states_host(self._inner_optimizer())):
            st[k] = self._to_device(v)
        if self.zero in (1, 2):
            self.engine.reload_states()
        else:
            for p in self.engine.module.parameters():
                g, p.grad = p.grad, None
                p.data = self._to_device(self._host[(id(p), "data")])
                if g is not None:
                    p.grad = self._to_device(g)
        self.resident = True
        self._fetched = False
        self.moves["to_device"] += 1

    @torch.no_grad()
    def fetch(self, modules: Iterable[nn.Module]) -> None:
        """Device copies of these modules' parameters for read-only use while the group stays on the host."""
        if self.resident or self._fetched:
            return
        # Copy whole storages and keep every parameter's offset and strides: under ZeRO 1/2 a unit's
        # parameters are views of one flat buffer, and a layout change alters CPU convolution rounding
        # (~1e-8), which would make offloaded runs differ from resident ones.
        by_storage: dict[int, list[nn.Parameter]] = {}
        for m in modules:
            for p in m.parameters():
                by_storage.setdefault(p.untyped_storage().data_ptr(), []).append(p)
        for ps in by_storage.values():
            st = ps[0].untyped_storage()
            dtype = ps[0].dtype
            flat = torch.empty(0, dtype=dtype, device=ps[0].device).set_(st, 0, (st.nbytes() // ps[0].element_size(),))
            dev = self._to_device(flat)
            for p in ps:
                p.data = dev.as_strided(p.shape, p.stride(), p.storage_offset())
        self._fetched = True
        self.moves["fetch"] += 1

    def host_bytes(self) -> int:
        """Bytes of the host buffers this offloader keeps (ZeRO 0 states and every optimizer state)."""
        return sum(b.numel() * b.element_size() for b in self._host.values())
