"""Hooks of retraining on the shared loop (``lwsl_ds.strategies.loop.Trainer``): EMA, log, eval, checkpoints.

With ``strategies.hooks.ProgressHook`` and ``PreemptionHook`` they are everything the retraining loop does
besides the step itself (``retrain.step.RetrainStep``). Rank 0 logs; every hook runs on every rank, so
the collectives inside (evaluation, checkpoint barriers) line up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..common.seeding import capture_rng_state
from ..strategies.hooks import PreemptionHook
from ..strategies.loop import HookBase, Trainer
from . import checkpoint as ckpt_io
from .ema import ModelEma
from .evaluate import Evaluator

__all__ = ["RunLog", "EmaHook", "TrainLogHook", "EvalHook", "RetrainCheckpointHook"]


class RunLog:
    """Rank 0's events: one JSON line each on stdout and appended to ``<run dir>/retrain_log.jsonl``."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.path, self.enabled = Path(run_dir) / "retrain_log.jsonl", enabled

    def __call__(self, record: dict[str, Any]) -> None:
        """Print and append ``record`` (rank 0 only; other ranks do nothing)."""
        if not self.enabled:
            return
        line = json.dumps(record)
        print(line, flush=True)
        with open(self.path, "a") as f:  # reopened per line: a killed run keeps every line written so far
            f.write(line + "\n")


class EmaHook(HookBase):
    """Update the EMA of ``module`` after every optimizer step."""

    def __init__(self, ema: ModelEma, module: Any) -> None:
        self.ema, self.module = ema, module

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        self.ema.update(self.module, t.step)


class TrainLogHook(HookBase):
    """Every ``every`` steps and the last: step, epoch, loss (mean over ranks), lr, images/s of this rank."""

    def __init__(self, log: RunLog, every: int, scheduler: Any, images_per_step: int, autocast: bool) -> None:
        self.log, self.every, self.scheduler = log, every, scheduler
        self.images_per_step, self.autocast = images_per_step, autocast
        self.t0, self.start = 0.0, 0

    def before_train(self, t: Trainer) -> None:  # noqa: D102
        self.t0, self.start = time.monotonic(), t.step

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        if t.step % self.every and t.step != t.total_steps:
            return
        seen = (t.step - self.start) * self.images_per_step  # since this process started, evaluations included
        self.log({"event": "train", "step": t.step, "epoch": t.step_epoch, "loss": t.metrics["loss/head"],
                  "lr": self.scheduler.get_last_lr()[0], "img_per_s_rank": seen / (time.monotonic() - self.t0),
                  "autocast": self.autocast})


class EvalHook(HookBase):
    """Evaluate every ``every`` steps before the last (the last is the final evaluation); a collective."""

    def __init__(self, evaluator: Evaluator, every: int, log: RunLog) -> None:
        self.evaluator, self.every, self.log = evaluator, every, log

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        if t.step % self.every == 0 and t.step < t.total_steps:
            self.log({"event": "eval", "step": t.step, "ema": self.evaluator.use_ema, **self.evaluator()})


class RetrainCheckpointHook(HookBase):
    """Checkpoint every ``every`` steps, and after the last step unless that one is saved already.

    The last one's reason is ``preempted`` when ``preempt`` ended the run early, else ``final``. The
    loader state of a checkpoint at an epoch's end points at the next epoch, so a resume starts it afresh.
    """

    def __init__(self, run_dir: Path, engine: Any, ema: ModelEma | None, meta: dict[str, Any], every: int,
                 keep: int, preempt: PreemptionHook | None = None) -> None:
        self.run_dir, self.engine, self.ema, self.meta = run_dir, engine, ema, meta
        self.every, self.keep, self.preempt = every, keep, preempt
        self.last_saved = -1

    def _save(self, t: Trainer, reason: str) -> None:
        loader = t.loader
        done = loader.position >= t.steps_per_epoch * t.batches_per_step
        state = {"epoch": loader.epoch + 1, "position": 0} if done else loader.state_dict()
        ckpt_io.save(self.run_dir, t.step, engine=self.engine, meta={**self.meta, "loader": state, "reason": reason},
                     model_state={k: v.detach().cpu() for k, v in self.engine.module.state_dict().items()},
                     ema_state=self.ema.state_dict() if self.ema is not None else None,
                     rank_state=capture_rng_state(), keep=self.keep)
        self.last_saved = t.step

    def before_train(self, t: Trainer) -> None:  # noqa: D102
        self.last_saved = t.step  # a fresh run starts at 0 (nothing to save), a resumed one at its checkpoint

    def after_step(self, t: Trainer) -> None:  # noqa: D102
        if t.step % self.every == 0:
            self._save(t, "periodic")

    def after_train(self, t: Trainer) -> None:  # noqa: D102
        if self.last_saved != t.step:
            self._save(t, "preempted" if self.preempt is not None and self.preempt.stopped(t) else "final")
