"""Retraining: one DeepSpeed engine over a fresh sub-net, trained by the super-net's hook-based loop.

``prepare_ds_config`` checks the DeepSpeed config before a process group exists; ``run`` builds the
loaders, the engine and the hooks (EMA, log, eval, checkpoints, preemption: ``retrain/hooks.py``), runs
``lwsl_ds.strategies.loop.Trainer`` with :class:`~lwsl_ds.retrain.step.RetrainStep`, then evaluates and
exports. Every rank runs the same code; rank 0 logs, exports and writes the plain weight files. See
docs/retrain.md for the recipe and the exactness guarantees.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..common import dist
from ..common.atomic import write_json_atomic
from ..common.checkpoint import RETRAIN, find_latest
from ..common.digest import state_digest
from ..config.fingerprint import check_resume, retrain_fingerprint
from ..common.preemption import Preemption
from ..common.safe_io import remove_stale, secure_engine
from ..common.seeding import rank_seed, restore_rng_state, run_seed, seed_everything
from ..space import build_subnet, describe, export_subnet
from ..strategies.hooks import PreemptionHook, ProgressHook
from ..strategies.loop import HookBase, Trainer
from . import checkpoint as ckpt_io
from .ema import ModelEma
from .evaluate import Evaluator
from .hooks import EmaHook, EvalHook, RetrainCheckpointHook, RunLog, TrainLogHook
from .job import RetrainJob, prepare_ds_config
from .recipe import Schedule, WarmupCosine, build_optimizer, scaled_lr
from .step import RetrainStep

__all__ = ["RetrainJob", "prepare_ds_config", "run"]


@dataclass
class _Parts:
    """What ``run`` builds before the loop: loaders, step counts, engine, EMA, evaluation copy, lr."""

    train_loader: Any
    val_loader: Any
    schedule: Schedule
    engine: Any = None
    ema: ModelEma | None = None
    eval_model: torch.nn.Module | None = None
    lr: float = 0.0


def _say(line: str) -> None:
    print(f"[retrain] {line}", file=sys.stderr, flush=True)


def _loaders(job: RetrainJob, ds_cfg: dict, env: Any, seed: int) -> tuple[Any, Any]:
    """This rank's shard of the train split (augmented, drop_last) and of the val split, micro-batch sized."""
    from ..data import build_loader
    from ..data.loader import describe_pipeline

    exp, micro = job.exp, ds_cfg["train_micro_batch_size_per_gpu"]
    where = {"rank": env.rank, "world_size": env.world_size, "local_rank": env.local_rank, "seed": seed}
    train = build_loader(exp.data, "train", batch_size=micro, augment=exp.retrain.augment, drop_last=True, **where)
    val = build_loader(exp.data, "val", batch_size=micro, augment="val", **where)
    if env.rank == 0:
        _say(f"{describe_pipeline(exp.data, train, 'train')}; val split {val.num_samples} images")
    return train, val


def _checkpoint_to_resume(job: RetrainJob, world: int, fingerprint: str) -> tuple[Path, dict] | None:
    """The verified checkpoint to resume from (digests, world size, arch, experiment fingerprint), or None."""
    if job.resume is None:
        return None
    found = (find_latest(job.run_dir, layout=RETRAIN) if job.resume == "auto"
             else (Path(job.resume), ckpt_io.verify(job.resume)))  # every file matches its digest before loading
    if found is None:
        return None
    ckpt, meta = found
    if meta["world_size"] != world or meta["arch"] != job.arch.key:
        raise ckpt_io.CheckpointError(
            f"{ckpt}: written by a run with world size {meta['world_size']} and arch {meta['arch']}; this run "
            f"has {world} and {job.arch.key} (an exact resume needs the same of both)")
    check_resume(meta.get("fingerprint"), fingerprint, str(ckpt / "meta.json"),
                 "start a new run with another --run_dir (or --restart to discard these checkpoints)")
    return found


def _build_engine(job: RetrainJob, ds_cfg: dict, parts: _Parts, seed: int) -> None:
    """The sub-net, identically initialised on every rank, in a DeepSpeed engine with the recipe's optimizer."""
    import deepspeed

    rc, s = job.exp.retrain, parts.schedule
    seed_everything(seed)  # identical initialisation on every rank (DeepSpeed also broadcasts rank 0's weights)
    model = build_subnet(job.space, job.arch, num_outputs=parts.train_loader.num_classes,
                         dropout=rc.dropout).to(dist.device())
    parts.eval_model = copy.deepcopy(model)
    parts.lr = scaled_lr(rc, ds_cfg["train_batch_size"])
    optimizer = build_optimizer(rc, model, parts.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(s.total_steps, s.warmup, rc.min_lr_ratio))
    parts.engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                                 config=ds_cfg, dist_init_required=False)
    secure_engine(parts.engine)  # its checkpoint files are read weights-only (DeepSpeed's default runs pickles)
    parts.ema = ModelEma(parts.engine.module, rc.ema_decay) if rc.ema_decay is not None else None


def _resume(job: RetrainJob, found: tuple[Path, dict], parts: _Parts, rank: int) -> int:
    """Load engine, EMA, this rank's RNG and the loader position of a checkpoint; returns its step."""
    from ..engines.extend import extend_schedules

    ckpt, meta = found
    parts.engine.load_checkpoint(str(ckpt / "ds"), tag="state")
    if parts.ema is not None:
        parts.ema.load_state_dict(ckpt_io.load_weights(ckpt, ema=True))
    restore_rng_state(ckpt_io.load_rank_state(ckpt, rank))
    parts.train_loader.load_state_dict(meta["loader"])
    if rank == 0:
        _say(f"resumed from {ckpt} at step {meta['step']}")
    line = extend_schedules([parts.engine.lr_scheduler], old_total=None, total=parts.schedule.total_steps,
                            step=meta["step"], mode=job.exp.retrain.extend, key="retrain.extend")
    if line and rank == 0:
        _say(line)
    return int(meta["step"])


def _hooks(job: RetrainJob, parts: _Parts, ds_cfg: dict, meta: dict, log: RunLog, evaluator: Evaluator,
           preempt: PreemptionHook | None, rank: int) -> list[HookBase]:
    """EMA first (evaluation and checkpoints read it), then progress, log, eval, checkpoint, preemption."""
    rc, engine = job.exp.retrain, parts.engine
    hooks: list[HookBase] = [EmaHook(parts.ema, engine.module)] if parts.ema is not None else []
    images = ds_cfg["train_micro_batch_size_per_gpu"] * ds_cfg["gradient_accumulation_steps"]
    autocast = ds_cfg.get("torch_autocast", {}).get("enabled", False)
    hooks += [ProgressHook(rank == 0, desc="retrain"),  # a bar in a terminal, lines when piped
              TrainLogHook(log, rc.log_every_steps, engine.lr_scheduler, images, autocast),
              EvalHook(evaluator, parts.schedule.eval_every, log),
              RetrainCheckpointHook(job.run_dir, engine, parts.ema, meta, rc.checkpoint_every_steps,
                                    rc.keep_checkpoints, preempt)]
    return hooks + ([preempt] if preempt is not None else [])  # asks to stop after this step's checkpoint


def _export(job: RetrainJob, evaluator: Evaluator, record: dict, class_names: list[str]) -> dict[str, str]:
    """The evaluated weights as a stand-alone export, with the val preprocessing (rank 0)."""
    from ..data.preprocess import preprocess_doc, write_preprocess

    out = job.run_dir / "export"
    paths = export_subnet(out, evaluator.weights().cpu(), job.space, job.arch, num_classes=len(class_names),
                          top1=record["top1"], ema=record["ema"], step=record["step"])
    # The val preprocessing travels with the model: lwsl predict needs no training config.
    paths["preprocess"] = write_preprocess(out, preprocess_doc(job.exp.data, class_names=class_names,
                                                               in_channels=job.space.in_channels))
    return {k: str(v) for k, v in paths.items()}


def _finish(job: RetrainJob, trainer: Trainer, evaluator: Evaluator, log: RunLog, rank: int) -> dict[str, Any]:
    """Final evaluation and parameter digest on every rank; rank 0 exports and writes ``final.json``."""
    final = evaluator()
    digest = state_digest(trainer.net.module)
    _say(f"rank {rank} final step {trainer.step} params sha256 {digest}")
    record = {"event": "final", "step": trainer.step, "params_sha256": digest, "ema": evaluator.use_ema,
              "split": "val", **final}
    if rank == 0:
        if job.exp.retrain.export:
            record["export"] = _export(job, evaluator, record, trainer.loader.class_names)
        log(record)
        write_json_atomic(job.run_dir / "final.json", record)
    dist.barrier()
    return record


def run(job: RetrainJob, preemption: Preemption | None = None) -> dict[str, Any]:
    """Train ``job.arch`` from scratch (or resume), evaluate, checkpoint and export; returns the final record."""
    exp, rc = job.exp, job.exp.retrain
    env = dist.init_distributed(rc.dist_timeout_s)
    rank, world = env.rank, env.world_size
    if rank == 0:  # leftovers of a save killed half-way (also removed by the next save)
        remove_stale(ckpt_io.checkpoint_dir(job.run_dir), RETRAIN.stale)
    _say(f"rank {rank}/{world} joined (style {env.style}, node {env.node_rank}, local rank {env.local_rank}, "
         f"device {dist.device()})")
    ds_cfg = prepare_ds_config(job.ds_config, world, job.ds_config_path)
    seed = run_seed(exp.seed, rc.seed)  # the super-net's rule
    gas = ds_cfg["gradient_accumulation_steps"]
    train_loader, val_loader = _loaders(job, ds_cfg, env, seed)
    parts = _Parts(train_loader, val_loader, Schedule.of(rc, len(train_loader), gas))
    # The checkpoint to resume from is verified (digests, experiment fingerprint) before any engine exists.
    meta = {"arch": job.arch.key, "space": job.space.name, "world_size": world,
            "global_batch": ds_cfg["train_batch_size"], "ds_config": job.ds_config_path,
            "fingerprint": retrain_fingerprint(exp, job.ds_config, world, job.arch.key, job.space.name)}
    found = _checkpoint_to_resume(job, world, meta["fingerprint"])
    _build_engine(job, ds_cfg, parts, seed)
    torch.manual_seed(rank_seed(seed, rank))  # dropout differs per rank, reproducibly
    start = _resume(job, found, parts, rank) if found is not None else 0
    evaluator = Evaluator(parts.engine, parts.eval_model, parts.ema, rc.eval_with_ema, val_loader, dist.device(),
                          rc.eval_batches, channels_last=rc.channels_last)
    log = RunLog(job.run_dir, rank == 0)
    if rank == 0:
        job.run_dir.mkdir(parents=True, exist_ok=True)
    s = parts.schedule
    log({"event": "start", "arch": job.arch.key, "named": describe(job.space, job.arch), "world_size": world,
         "global_batch": ds_cfg["train_batch_size"], "lr": parts.lr, "steps_per_epoch": s.steps_per_epoch,
         "total_steps": s.total_steps, "stop_at": s.stop_at, "start_step": start})
    preempt = PreemptionHook(preemption) if preemption is not None else None
    trainer = Trainer(parts.engine, RetrainStep(rc.label_smoothing), parts.engine, train_loader, seed=seed,
                      total_steps=s.stop_at, start_step=start, device=dist.device(), world_size=world,
                      hooks=_hooks(job, parts, ds_cfg, meta, log, evaluator, preempt, rank), batches_per_step=gas,
                      channels_last=rc.channels_last)
    trainer.train()
    if preempt is not None and preempt.stopped(trainer):  # its checkpoint is on disk (RetrainCheckpointHook)
        log({"event": "preempted", "step": trainer.step})
        preemption.requeue_and_exit(0)
    return _finish(job, trainer, evaluator, log, rank)
