"""Bounded point-to-point queues between neighbouring layer groups (gloo on CPU, NCCL on GPU).

A message is one flat ``uint8`` buffer of fixed size: an int64 header, then payload bytes. Fixed size lets
the receiver post its receives ahead of time, which is what makes the queue asynchronous: the sender's
``isend`` of batch t+1 lands in a buffer posted while the receiver still works on batch t.

Bounds: the sender keeps at most ``depth`` sends in flight (it waits for the oldest beyond that) and the
receiver keeps exactly ``depth`` receives posted. Closing: the sender sends ``depth`` stop messages, which
match the receives the peer has posted at that moment, so no operation is left pending at shutdown.
Memory cost: 2 x depth message buffers per link.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["HEADER", "Sender", "Receiver", "LayerInputFormat", "pack", "unpack_header"]

HEADER = 4  # int64 words: kind, a (step or version), b, c
KIND_STOP, KIND_DATA = 0, 1


def pack(kind: int, a: int, b: int, c: int, payload: list[torch.Tensor], nbytes: int,
         device: torch.device | str = "cpu") -> torch.Tensor:
    """One message of exactly ``nbytes``: header (kind, a, b, c) then each payload tensor's raw bytes."""
    buf = torch.empty(nbytes, dtype=torch.uint8, device=device)
    buf[:HEADER * 8].view(torch.int64).copy_(torch.tensor([kind, a, b, c], dtype=torch.int64))
    off = HEADER * 8
    for t in payload:
        raw = t.detach().contiguous().reshape(-1).view(torch.uint8)
        if off + raw.numel() > nbytes:
            raise ValueError(f"message payload ({off + raw.numel()} bytes) exceeds the fixed size {nbytes}")
        buf[off:off + raw.numel()].copy_(raw)
        off += raw.numel()
    return buf


def unpack_header(buf: torch.Tensor) -> tuple[int, int, int, int]:
    """(kind, a, b, c) of a message."""
    return tuple(int(v) for v in buf[:HEADER * 8].view(torch.int64).cpu().tolist())  # type: ignore[return-value]


def payload_view(buf: torch.Tensor, offset: int, dtype: torch.dtype, shape: tuple[int, ...]) -> torch.Tensor:
    """A typed view of ``shape`` at byte ``offset`` after the header (no copy)."""
    n = int(torch.Size(shape).numel()) * torch.empty((), dtype=dtype).element_size()
    start = HEADER * 8 + offset
    return buf[start:start + n].view(dtype).view(shape)


@dataclass(frozen=True)
class LayerInputFormat:
    """Fixed layout of one forward message: labels padded to ``batch`` (int64), then a layer input of ``shape``.

    ``shape[0]`` is ``batch`` x views; a short last batch fills the front of both parts.
    """

    batch: int
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        """Size of every message on the link."""
        return HEADER * 8 + self.batch * 8 + int(torch.Size(self.shape).numel()) * self.dtype.itemsize

    def encode(self, step: int, labels: torch.Tensor, x: torch.Tensor, device: torch.device | str) -> torch.Tensor:
        """The message of step ``step``: its labels and layer input ``x``."""
        # labels padded to the fixed batch: the layer input starts at a fixed offset
        padded = torch.zeros(self.batch, dtype=torch.int64, device=device)
        padded[:labels.shape[0]] = labels
        return pack(KIND_DATA, step, labels.shape[0], 0, [padded, x], self.nbytes, device)

    def decode(self, buf: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(layer input, labels) of a message that carries ``batch`` samples (copies, the buffer is reused)."""
        labels = payload_view(buf, 0, torch.int64, (self.batch,))[:batch].clone()
        full = payload_view(buf, self.batch * 8, self.dtype, self.shape)
        return full[:batch * (self.shape[0] // self.batch)].clone(), labels


class Sender:
    """``isend`` with at most ``depth`` messages in flight to one peer."""

    def __init__(self, peer: int, group: Any, depth: int, nbytes: int) -> None:
        self.peer, self.group, self.depth, self.nbytes = peer, group, depth, nbytes
        self._pending: deque[tuple[Any, torch.Tensor]] = deque()  # (work, buffer kept alive until done)

    def send(self, buf: torch.Tensor) -> None:
        """Queue one message; blocks only while ``depth`` earlier ones are still in flight."""
        import torch.distributed as td

        if buf.numel() != self.nbytes:
            raise ValueError(f"message of {buf.numel()} bytes on a link of fixed size {self.nbytes}")
        while len(self._pending) >= self.depth:
            self._pending.popleft()[0].wait()
        self._pending.append((td.isend(buf, dst=self.peer, group=self.group), buf))

    def flush(self) -> None:
        """Wait until every queued message was delivered."""
        while self._pending:
            self._pending.popleft()[0].wait()

    def close(self, stops: int) -> None:
        """Send ``stops`` stop messages (one per receive the peer has posted), then flush."""
        for _ in range(stops):
            self.send(pack(KIND_STOP, -1, 0, 0, [], self.nbytes))
        self.flush()


class Receiver:
    """Keeps ``depth`` receives posted from one peer; ``recv`` returns messages in order."""

    def __init__(self, peer: int, group: Any, depth: int, nbytes: int, device: torch.device | str = "cpu") -> None:
        self.peer, self.group, self.depth, self.nbytes, self.device = peer, group, depth, nbytes, device
        self._posted: deque[tuple[Any, torch.Tensor]] = deque()
        self.stopped = False
        for _ in range(depth):
            self._post()

    def _post(self) -> None:
        import torch.distributed as td

        buf = torch.empty(self.nbytes, dtype=torch.uint8, device=self.device)
        self._posted.append((td.irecv(buf, src=self.peer, group=self.group), buf))

    def recv(self) -> tuple[tuple[int, int, int, int], torch.Tensor]:
        """Next message (header, buffer); after a stop message, drains the remaining posted receives."""
        if self.stopped:
            raise RuntimeError("receive after the peer closed the link")
        work, buf = self._posted.popleft()
        work.wait()
        head = unpack_header(buf)
        if head[0] == KIND_STOP:
            self.stopped = True
            while self._posted:  # the peer sent one stop per posted receive
                self._posted.popleft()[0].wait()
        else:
            self._post()
        return head, buf
