"""Hooks of the training loop: checkpoints, JSON-lines metrics + DeepSpeed monitors, progress bar."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ..common.checkpoint import fault_point, save_checkpoint
from ..common.logging import JsonlWriter, get_logger
from ..common.seeding import capture_rng_state
from .loop import HookBase, Trainer

__all__ = ["CheckpointHook", "MetricsHook", "ProgressHook", "FaultHook", "TimeBudgetHook"]


class CheckpointHook(HookBase):
    """Checkpoint every ``every`` steps (0: never mid-epoch), at every epoch end and after the last step."""

    def __init__(self, run_dir: str | Path, manifest: Callable[[Trainer], dict[str, Any]], every: int = 0,
                 keep: int = 2) -> None:
        self.run_dir, self.manifest, self.every, self.keep = Path(run_dir), manifest, every, keep
        self.last_saved = -1

    def _save(self, t: Trainer) -> None:
        if t.step == self.last_saved:
            return
        save_checkpoint(self.run_dir, t.backend, t.net, self.manifest(t), capture_rng_state(), keep=self.keep)
        self.last_saved = t.step
        get_logger().info("checkpoint at step %d", t.step)

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        if self.every and t.step % self.every == 0:
            self._save(t)

    def after_epoch(self, t: Trainer) -> None:  # noqa: D102
        self._save(t)

    def after_train(self, t: Trainer) -> None:  # noqa: D102
        self._save(t)


class MetricsHook(HookBase):
    """Every ``every`` steps (and the last): one JSON line on rank 0, events to each group's DeepSpeed monitor."""

    def __init__(self, path: str | Path, every: int = 10, is_main: bool = True) -> None:
        self.every, self.is_main = every, is_main
        self.writer = JsonlWriter(path) if is_main else None
        self.t0 = time.perf_counter()
        self.images = 0

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        self.images += t.images_per_s * t.last_step_s
        if not (t.step % self.every == 0 or t.step == t.total_steps or t.stop_reason):
            return
        now = time.perf_counter()
        rate = self.images / max(now - self.t0, 1e-9)
        self.t0, self.images = now, 0
        lr = t.backend.lr() if hasattr(t.backend, "lr") else None
        rec = {"step": t.step, "epoch": t.epoch if t.step % t.steps_per_epoch else t.step // t.steps_per_epoch - 1,
               "lr": lr, "images_per_s": round(rate, 2),
               "train_seconds": round(t.train_seconds, 3), **{k: round(v, 6) for k, v in t.metrics.items()}}
        if self.writer is not None:
            self.writer.write(rec)
            get_logger().info("step %d/%d lr %.3g %.1f img/s %s", t.step, t.total_steps, lr or 0.0, rate,
                              " ".join(f"{k}={v:.4f}" for k, v in t.metrics.items() if k.startswith("loss/")))
        write = getattr(t.backend, "write_events", None)
        if write is not None and self.is_main:
            groups = t.backend.groups
            for g, layers in enumerate(groups):
                ev = [(f"train/{k}", v, t.step) for k, v in t.metrics.items()
                      if any(k.endswith(f"layer{i}") for i in layers) or (g == 0 and k.endswith("stem"))
                      or (g == len(groups) - 1 and k.endswith("head"))]
                ev += [("train/lr", lr or 0.0, t.step), ("train/images_per_s", rate, t.step)]
                write(ev, group=g)

    def after_train(self, t: Trainer) -> None:  # noqa: D102
        if self.writer is not None:
            self.writer.close()


class ProgressHook(HookBase):
    """Progress on rank 0 with the mean local loss: a bar with ETA in a terminal, periodic lines when piped."""

    def __init__(self, enabled: bool = True, tty: bool | None = None, desc: str = "train") -> None:
        self.enabled, self.tty, self.desc, self.bar = enabled, tty, desc, None

    def before_train(self, t: Trainer) -> None:  # noqa: D102
        if self.enabled:
            from ..common.progress import Progress

            self.bar = Progress(t.total_steps, initial=t.step, desc=self.desc, tty=self.tty)

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        if self.bar is not None:
            losses = [v for k, v in t.metrics.items() if k.startswith("loss/")]
            self.bar.update(1, loss=sum(losses) / max(len(losses), 1))

    def after_train(self, t: Trainer) -> None:  # noqa: D102
        if self.bar is not None:
            self.bar.close()


class FaultHook(HookBase):
    """Test-only: ``LWSL_FAULT=after_step@<k>`` SIGKILLs the process right after step k (before its checkpoint)."""

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        fault_point("after_step", t.step)


class TimeBudgetHook(HookBase):
    """Stop the run once ``trainer.train_seconds`` reaches ``seconds`` (equal-time comparisons of strategies).

    Each rank reads its own clock, so the decision is all-reduced (max): every rank stops after the same
    step. Cost: one int all-reduce per step.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        import torch
        import torch.distributed as td

        from ..common.dist import is_multi_rank

        over = t.train_seconds >= self.seconds
        if is_multi_rank():
            flag = torch.tensor([int(over)], dtype=torch.int32, device=t.device if td.get_backend() == "nccl"
                                else "cpu")
            td.all_reduce(flag, op=td.ReduceOp.MAX)
            over = bool(flag.item())
        if over:
            t.request_stop(f"time budget of {self.seconds:.0f} s reached after {t.train_seconds:.1f} s")


class PreemptionHook(HookBase):
    """Stop after the current step once any rank got SIGUSR1/SIGTERM (``lwsl_ds.common.preemption``).

    Every step, on every rank, polls ``preemption.should_stop()`` (one int all-reduce, as TimeBudgetHook),
    so all ranks stop after the same step; CheckpointHook then writes the checkpoint in ``after_train``
    and the launcher requeues. ``reason`` is what this hook asked for (None: it did not stop the run).
    """

    def __init__(self, preemption: Any) -> None:
        self.preemption = preemption
        self.reason: str | None = None

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        if self.preemption.should_stop() and self.reason is None:  # the collective runs on every step
            self.reason = f"preempted ({self.preemption.signal_name or 'signal received by another rank'})"
            t.request_stop(self.reason)

    def stopped(self, t: Trainer) -> bool:
        """True when this hook ended ``t``'s run before its last step (not a time budget, not the end)."""
        return self.reason is not None and t.stop_reason == self.reason and t.step < t.total_steps


__all__ += ["PreemptionHook"]
