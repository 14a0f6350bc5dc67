"""Asynchronous layer-parallel super-net training: rank set g owns layer group g, activations flow forward.

Per step t, rank (g, d): take batch t (group 0: from its data shard; others: the layer input and labels
received from (g-1, d)), run the group's part of the layer-wise step (:func:`group_step`), apply the
group's update, send the next group's layer input and labels forward. No gradient ever crosses a group
boundary (layer inputs are detached means), so group g starts batch t+1 as soon as it sent batch t: the
groups form a pipeline that is only bounded by the queue depth. Greedy needs nothing else and gives the
synchronous run's parameters exactly. Non-greedy reads the next group's first layer: see ``replica.py``.

Built by :func:`lwsl_ds.parallel.factory.build_layer_parallel_trainer` (every rank of a
``torchrun --nproc_per_node 2`` job)::

    trainer = build_layer_parallel_trainer(net, get_strategy("greedy"), ds_config, layer_groups="auto",
                                           parallel=ParallelConfig(mode="layer"), seed=0, total_steps=100)
    trainer.train(batches if trainer.topo.is_first else None, max_steps=100)
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import torch

from ..config.schema import ConfigError
from ..engines.plan import GroupPlan
from ..space import SuperNet
from ..strategies.base import StepOutput, step_rng
from ..strategies.layerwise import LayerwiseStrategy
from .channel import KIND_STOP, LayerInputFormat, Receiver, Sender
from .config import ParallelConfig
from .replica import ReplicaOwner, ReplicaReceiver
from .group_backend import group_step
from .topology import Topology
from .watchdog import Watchdog

__all__ = ["LayerParallelTrainer", "Links", "latest_complete_tag", "release_unowned"]

TAG = re.compile(r"^step(\d+)$")


def release_unowned(net: SuperNet, keep: Iterable[torch.nn.Module]) -> int:
    """Move every module of ``net`` not in ``keep`` (nor inside one) to ``meta``; returns bytes freed."""
    keep_ids = {id(p) for m in keep for p in [*m.parameters(), *m.buffers()]}
    freed = 0
    for name, mod in net.named_modules():
        own = [*mod.parameters(recurse=False), *mod.buffers(recurse=False)]
        if own and not any(id(t) in keep_ids for t in own):
            freed += sum(t.numel() * t.element_size() for t in own)
            mod.to("meta")
    return freed


def latest_complete_tag(ckpt_dir: str | Path, world_size: int) -> str | None:
    """Newest ``stepN`` tag for which every rank wrote its done marker, or None."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return None
    tags = sorted(((int(m.group(1)), p.name) for p in d.iterdir() if (m := TAG.match(p.name))), reverse=True)
    for _, tag in tags:
        if all((d / tag / f"rank{r}.done").exists() for r in range(world_size)):
            return tag
    return None


@dataclass
class Links:
    """One rank's ends of the pipeline: layer inputs in and out (with their message layouts), the replica links."""

    recv: Optional[Receiver] = None                # from (g-1, d); not on the first group
    fmt_in: Optional[LayerInputFormat] = None
    send: Optional[Sender] = None                  # to (g+1, d); not on the last group
    fmt_out: Optional[LayerInputFormat] = None
    replica: Optional[ReplicaReceiver] = None      # non-greedy: the next group's first layer, read-only
    owner: Optional[ReplicaOwner] = None           # non-greedy: refreshes of this group's first layer, sent back


class LayerParallelTrainer:
    """One rank of a layer-parallel run: its group's backend, its links, its replica, the step loop."""

    def __init__(self, net: SuperNet, strategy: LayerwiseStrategy, plan: GroupPlan, topo: Topology, backend: Any,
                 links: Links, *, parallel: ParallelConfig, seed: int, device: torch.device) -> None:
        """Hold one rank's parts as given; :func:`~lwsl_ds.parallel.factory.build_layer_parallel_trainer` builds
        and validates them."""
        self.net, self.strategy, self.plan, self.topo, self.backend = net, strategy, plan, topo, backend
        self.cfg, self.seed, self.device = parallel, seed, device
        self.layers = plan.groups[topo.group]
        self.recv, self.send, self.replica, self.owner = links.recv, links.send, links.replica, links.owner
        self.fmt_in, self.fmt_out = links.fmt_in, links.fmt_out
        self.step_count = 0
        self.wait_s = 0.0  # time blocked on receiving layer inputs
        self.replica_wait_s = 0.0  # time blocked on the next group's replica refreshes

    # ---- the loop ---------------------------------------------------------------------------------
    def train(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None, *, start_step: int = 0,
              max_steps: int | None = None, checkpoint_every: int = 0, ckpt_dir: str | Path | None = None,
              keep_checkpoints: int = 2,
              on_step: Callable[[int, StepOutput], None] | None = None) -> list[StepOutput]:
        """Run until the first group's batches end (or ``max_steps``); returns this rank's per-step metrics.

        ``batches`` (group 0 only) must start at ``start_step`` (a resumed run skips what it trained).
        """
        if self.topo.is_first and batches is None:
            raise ValueError("the first layer group needs batches")
        if checkpoint_every and ckpt_dir is None:
            raise ValueError("checkpoint_every needs ckpt_dir")
        self.step_count = start_step
        if self.owner is not None:
            self.owner.resend_after_resume(start_step)
        it = iter(batches) if self.topo.is_first else None
        dog = Watchdog(self.cfg.timeout_s, f"rank {self.topo.rank} (layer group {self.topo.group})")
        outs: list[StepOutput] = []
        try:
            while True:
                step = self.step_count
                if self.topo.is_first:
                    if max_steps is not None and step >= max_steps:
                        break
                    try:
                        x, labels = next(it)  # type: ignore[arg-type]
                    except StopIteration:
                        break
                    x, labels = x.to(self.device), labels.to(self.device)
                else:
                    t0 = time.perf_counter()
                    (kind, sent_step, batch, _), buf = self.recv.recv()  # type: ignore[union-attr]
                    self.wait_s += time.perf_counter() - t0
                    if kind == KIND_STOP:
                        break
                    if sent_step != step:
                        raise RuntimeError(f"rank {self.topo.rank}: received batch of step {sent_step}, expected "
                                           f"{step} (the ranks resumed from different checkpoints?)")
                    x, labels = self.fmt_in.decode(buf, batch)  # type: ignore[union-attr]
                ensure = (lambda s=step: self.replica.ensure(s)) if self.replica is not None else None
                out, nxt = group_step(self.strategy, self.net, self.layers, x, labels, self.backend,
                                      step_rng(self.seed, step), before_last_layer=ensure)
                self.backend.step()
                if self.send is not None:
                    self.send.send(self.fmt_out.encode(step, labels, nxt, self.device))  # type: ignore[union-attr]
                del x, nxt
                self.step_count = step + 1
                if self.owner is not None:
                    self.owner.after_step(self.step_count)
                outs.append(out)
                dog.beat()
                if on_step is not None:
                    on_step(step, out)
                if checkpoint_every and self.step_count % checkpoint_every == 0:
                    self.save(ckpt_dir, f"step{self.step_count}", keep=keep_checkpoints)  # type: ignore[arg-type]
            self.close()
        finally:
            dog.stop()
        return outs

    def close(self) -> None:
        """Shut the links down in an order that leaves nothing pending (see channel.py)."""
        if self.send is not None:
            self.send.close(self.cfg.queue_depth)
            self.send = None
        if self.owner is not None:
            self.owner.close()
            self.owner = None
        if self.replica is not None:
            self.replica.close()
            self.replica_wait_s = self.replica.waited_s
            self.replica = None

    # ---- checkpoints ------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """This rank's part: its group's modules, optimizer and schedule, replica state, step."""
        return {"step": self.step_count, "group": self.topo.group, "layers": self.layers,
                "groups": self.plan.groups, "world_size": self.topo.world_size,
                "backend": self.backend.state_dict(),
                "replica": self.replica.state_dict() if self.replica is not None else None,
                "owner": self.owner.state_dict() if self.owner is not None else None}

    def save(self, ckpt_dir: str | Path, tag: str, keep: int = 2) -> Path:
        """Write ``ckpt_dir/tag/rank<r>.pt`` then its done marker; no collective (the pipeline keeps flowing).

        Every rank saves under the same tag when *it* finishes that step; a tag is complete (loadable) once
        all ranks' markers exist. Older tags are deleted only when ``keep`` newer complete tags exist.
        """
        d = Path(ckpt_dir) / tag
        d.mkdir(parents=True, exist_ok=True)
        r = self.topo.rank
        from ..common.atomic import atomic_path, write_json_atomic
        from ..common.safe_io import file_sha256, save_tensor_file

        with atomic_path(d / f"rank{r}.pt") as tmp:
            save_tensor_file(self.state_dict(), tmp)
        # the marker, written last, holds the file's SHA-256: load() checks it before reading anything
        write_json_atomic(d / f"rank{r}.done", {"step": self.step_count, "sha256": file_sha256(d / f"rank{r}.pt")},
                          indent=None)
        self.prune(Path(ckpt_dir), keep)
        return d

    def prune(self, ckpt_dir: str | Path, keep: int) -> None:
        """Delete this rank's files of tags older than the ``keep`` newest complete tags (and emptied folders)."""
        ckpt_dir = Path(ckpt_dir)
        if not ckpt_dir.is_dir():
            return
        world = self.topo.world_size
        tags = sorted((int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := TAG.match(p.name)))
        complete = [s for s, p in tags if all((p / f"rank{q}.done").exists() for q in range(world))]
        if len(complete) < keep:
            return
        floor = complete[-keep]
        r = self.topo.rank
        for s, p in tags:
            if s < floor:
                for f in (p / f"rank{r}.pt", p / f"rank{r}.done"):
                    f.unlink(missing_ok=True)
                try:
                    p.rmdir()  # the last rank to delete its files removes the folder
                except OSError:
                    pass

    def load(self, ckpt_dir: str | Path, tag: str | None = None) -> int:
        """Restore this rank from ``tag`` (default: the newest complete one); returns the step to resume at."""
        tag = tag or latest_complete_tag(ckpt_dir, self.topo.world_size)
        if tag is None:
            raise FileNotFoundError(f"{ckpt_dir}: no checkpoint tag that every one of the "
                                    f"{self.topo.world_size} ranks completed")
        path = Path(ckpt_dir) / tag / f"rank{self.topo.rank}.pt"
        from ..common.safe_io import check_file_sha256, load_tensor_file

        check_file_sha256(path, path.with_suffix(".done"))
        state = load_tensor_file(path, map_location=self.device)
        if state["groups"] != self.plan.groups or state["world_size"] != self.topo.world_size:
            raise ConfigError(f"{path}: saved with layer groups {state['groups']} on {state['world_size']} ranks; "
                              f"this run has {self.plan.groups} on {self.topo.world_size}")
        self.backend.load_state_dict(state["backend"])
        if self.replica is not None:
            self.replica.load_state_dict(state["replica"])
        if self.owner is not None:
            self.owner.load_state_dict(state["owner"])
        self.step_count = int(state["step"])
        return self.step_count
