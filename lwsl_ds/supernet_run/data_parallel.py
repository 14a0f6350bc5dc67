"""The data-parallel super-net run (``train.parallel.mode: data``): every rank trains every layer group.

Validate -> claim the folder and check a resume -> process group -> build (build.py) -> the update backend
with the memory levers -> resume or record the config -> the hook loop (strategies/loop.py) -> finalize
(finalize.py). The outputs are listed in launchers/train.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Optional

from ..common.logging import get_logger
from .build import RunRequest, SuperNetRun, build_run, extend_schedule, open_run, write_run_config
from .finalize import exit_preempted, finish_data_parallel

__all__ = ["train_supernet"]

log = get_logger("lwsl_ds.supernet_run")
Checkpoint = tuple[Path, dict[str, Any]]


def train_supernet(req: RunRequest, preemption: Any) -> int:
    """Validate, build, (resume,) train and finalize the run on this rank; returns the exit code (0)."""
    from ..common.dist import barrier, init_distributed, is_main
    from ..common.launch_env import detect
    from ..common.logging import setup_logging
    from ..config.ds_config import micro_batch_size, validate_ds_config

    # ---- everything that can be wrong with the input fails here, before any process group or data
    env = detect()
    validate_ds_config(req.ds, env.world_size, where=req.ds_where)
    run_dir = open_run(req, env.world_size)
    latest = _resume_point(req, run_dir, env.rank, env.world_size)

    env = init_distributed(req.cfg.train.dist_timeout_s)
    setup_logging(env.rank, run_dir / "train.log")
    if req.resume and latest is None:
        log.warning("--resume: no checkpoint in %s, starting from scratch", run_dir)
    run = build_run(req.cfg, req.ds, data_rank=env.rank, data_ranks=env.world_size, local_rank=env.local_rank)
    backend = _backend(req, run, run_dir)
    # What a later phase needs to rebuild this run (class count, resolution, groups, micro-batch plan), as resolved.
    recorded = run.recorded(backend.groups, getattr(backend, "micro_batches", None))
    t = req.cfg.train
    log.info("%s super-net, %s strategy, %s objective, %d rank(s), %d steps of %d images/rank\n%s",
             run.space.name, t.strategy, t.objective, env.world_size, run.total,
             micro_batch_size(req.ds, env.world_size), backend.plan.describe())
    start, train_seconds = 0, 0.0
    if latest is not None:
        start, train_seconds = _restore(latest, run, backend, env.rank)
    elif is_main():
        write_run_config(run_dir, req.cfg, recorded, req.ds)
    barrier()
    return _train(req, run, backend, recorded, run_dir, preemption, start, train_seconds)


def _resume_point(req: RunRequest, run_dir: Path, rank: int, world_size: int) -> Optional[Checkpoint]:
    """The checkpoint a ``--resume`` continues (files checked against their sha256.json), or None for a new run.

    Refuses checkpoints without ``--resume`` and a resume of another experiment, before anything is built.
    """
    from ..common.checkpoint import find_latest
    from ..config.fingerprint import check_resume, saved_train_fingerprint
    from ..common.safe_io import remove_stale
    from ..config import ConfigError

    latest = find_latest(run_dir, verify=req.resume)
    if latest is not None and not req.resume:
        raise ConfigError(f"{run_dir} already holds checkpoints (latest {latest[0].name}); pass --resume to "
                          "continue it, or choose another name= / run_root= / --run_dir")
    if latest is not None:  # the same experiment, or refused before anything is built or written
        check_resume(saved_train_fingerprint(latest[1]), req.fingerprint(world_size),
                     str(latest[0] / "manifest.json"), req.new_run_hint)
    if rank == 0:  # leftovers of writers killed mid-write (supernet.pt.tmp, a half checkpoint, ...)
        remove_stale(run_dir, ["*.tmp"])
        remove_stale(run_dir / "checkpoints", ["*.tmp"])
    return latest


def _backend(req: RunRequest, run: SuperNetRun, run_dir: Path) -> Any:
    """The update backend over every layer group with the memory levers: the one ``build_backend`` call."""
    from ..engines import build_backend

    t = req.cfg.train
    return build_backend(req.backend, run.net, run.strategy, req.ds, layer_groups=t.layer_groups,
                         auto_groups=t.auto_groups, auto_cost=t.auto_cost, total_steps=run.total,
                         group_overrides=t.group_overrides, job_name=req.cfg.name, monitor_dir=run_dir / "monitor",
                         levers=t.levers)


def _restore(latest: Checkpoint, run: SuperNetRun, backend: Any, rank: int) -> tuple[int, float]:
    """Engines, data position and this rank's RNG from the checkpoint; returns (step, training seconds so far)."""
    from ..common.checkpoint import load_rng
    from ..common.seeding import restore_rng_state

    ck_dir, manifest = latest
    backend.load(ck_dir, manifest["tag"])
    run.loader.load_state_dict(manifest["data"])
    start = int(manifest["step"])
    rng = load_rng(ck_dir, rank)
    if rng is not None:
        restore_rng_state(rng)
    log.info("resumed from %s (step %d)", ck_dir, start)
    extend_schedule(backend, old_total=manifest.get("total_steps"), total=run.total, step=start,
                    mode=run.cfg.train.extend)
    return start, float(manifest.get("train_seconds", 0.0))


def _manifest(req: RunRequest, run: SuperNetRun, backend: Any, recorded: Any, world_size: int) -> Callable:
    """What every checkpoint records beside the engines: step, data position, config, fingerprint."""
    from ..config import to_dict

    fingerprint = req.fingerprint(world_size)

    def manifest(tr: Any) -> dict:
        return {"step": tr.step, "epoch": tr.step // tr.steps_per_epoch, "total_steps": tr.total_steps,
                "data": run.loader.state_dict(), "world_size": world_size, "backend": req.backend,
                "strategy": run.cfg.train.strategy, "groups": backend.groups,
                "train_seconds": tr.train_seconds, "config": to_dict(recorded), "ds_config": req.ds,
                "fingerprint": fingerprint}

    return manifest


def _train(req: RunRequest, run: SuperNetRun, backend: Any, recorded: Any, run_dir: Path, preemption: Any,
           start: int, train_seconds: float) -> int:
    """The hook loop from ``start`` to the end (or a stop request), then the final weights; returns 0."""
    from ..common.dist import device, is_main, shutdown, world
    from ..strategies.hooks import CheckpointHook, FaultHook, MetricsHook, PreemptionHook, ProgressHook
    from ..strategies.hooks import TimeBudgetHook
    from ..strategies.loop import Trainer

    t, ranks = req.cfg.train, world().world_size
    # Stop requests first, so the metrics and checkpoint hooks of the same step see them.
    hooks: list[Any] = [TimeBudgetHook(t.max_minutes * 60)] if t.max_minutes is not None else []
    # Preemption after the time budget: a budget reached at the same step ends the run normally.
    preempt = PreemptionHook(preemption)
    hooks += [preempt, FaultHook(), MetricsHook(run_dir / "metrics.jsonl", t.log_every, is_main()),
              CheckpointHook(run_dir, _manifest(req, run, backend, recorded, ranks), t.checkpoint_every,
                             t.keep_checkpoints),
              ProgressHook(t.progress and is_main())]  # a bar in a terminal, periodic lines when piped
    trainer = Trainer(run.net, run.strategy, backend, run.loader, seed=run.seed, total_steps=run.total,
                      start_step=start, hooks=hooks, device=device(), world_size=ranks, train_seconds=train_seconds,
                      channels_last=t.channels_last)
    trainer.train()
    if trainer.stop_reason:
        log.info("stopped early at step %d/%d: %s", trainer.step, run.total, trainer.stop_reason)
    if preempt.stopped(trainer):  # the checkpoint of this step is on disk (CheckpointHook.after_train)
        exit_preempted(preemption, run_dir, trainer.step, run.total)
    finish_data_parallel(run.net, run_dir, step=trainer.step, world_size=ranks,
                         heldout_cfg=dataclasses.replace(req.cfg, data=run.data_cfg), heldout_archs=t.heldout_archs)
    shutdown()
    return 0
