"""The retraining loop: one DeepSpeed engine over a fresh sub-net, EMA, eval, checkpoints, preemption, export.

``prepare`` checks everything that can be checked before a process group exists (configs, arch, data
resolution, the run directory); ``run`` trains. Every rank runs the same code; rank 0 logs, exports
and writes the plain weight files. See docs/retrain.md for the recipe and the exactness guarantees.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..common import dist
from ..common.preemption import Preemption
from ..config.fingerprint import check_resume, retrain_fingerprint
from ..common.safe_io import remove_stale, secure_engine
from ..config.ds_config import micro_batch_size, validate_ds_config
from ..config.schema import ConfigError
from ..space import Arch, SearchSpace, build_subnet, describe, export_subnet
from . import checkpoint as ckpt_io
from .ema import ModelEma
from .recipe import WarmupCosine, build_optimizer, scaled_lr

__all__ = ["RetrainJob", "prepare_ds_config", "run", "params_digest"]


@dataclass(frozen=True)
class RetrainJob:
    """Everything one retraining run needs, validated (built by ``launchers/retrain.py``)."""

    exp: Any  # ExperimentConfig
    ds_config: dict
    ds_config_path: str
    space: SearchSpace
    arch: Arch
    run_dir: Path
    resume: str | None  # None: fresh run; "auto": latest checkpoint of run_dir if any; else a checkpoint path


def prepare_ds_config(raw: dict, world_size: int, where: str) -> dict:
    """Validate a retraining ds_config and return the dict for ``deepspeed.initialize``."""
    for key in ("optimizer", "scheduler"):
        if key in raw:
            raise ConfigError(f"{where}: {key!r} is not used for retraining; the optimizer and the lr schedule "
                              "are set in the retrain: section of the experiment config (one source of truth)")
    for key in ("bf16", "fp16"):
        if isinstance(raw.get(key), dict) and raw[key].get("enabled"):
            raise ConfigError(f"{where}: {key}.enabled casts the whole model, batch norm statistics included; "
                              "use \"torch_autocast\": {\"enabled\": true, \"dtype\": \"bfloat16\"} (bf16 "
                              "compute, fp32 weights and batch norm)")
    if raw.get("zero_optimization", {}).get("stage", 0) == 3:
        raise ConfigError(f"{where}: zero_optimization.stage 3 partitions the weights the EMA reads every step; "
                          "use stage 0, 1 or 2 (a sub-net fits on one device)")
    validate_ds_config(raw, world_size, where=where)
    cfg = copy.deepcopy(raw)
    micro = micro_batch_size(cfg, world_size)
    gas = int(cfg.get("gradient_accumulation_steps", 1))
    cfg["train_micro_batch_size_per_gpu"] = micro
    cfg["gradient_accumulation_steps"] = gas
    cfg["train_batch_size"] = micro * gas * world_size
    cfg["zero_allow_untested_optimizer"] = True  # RMSprop is a client optimizer, plain torch
    cfg.setdefault("steps_per_print", 10**9)  # our own log lines; DeepSpeed's would repeat them per rank
    return cfg


def params_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (state-dict order): equal digests = bit-identical models."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _log(record: dict, run_dir: Path) -> None:
    line = json.dumps(record)
    print(line, flush=True)
    with open(run_dir / "retrain_log.jsonl", "a") as f:
        f.write(line + "\n")


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@torch.no_grad()
def average_buffers(module: torch.nn.Module) -> None:
    """Average floating buffers (BN running statistics) over ranks, in place; a collective.

    DeepSpeed all-reduces gradients only: each rank's BN statistics would drift apart on its own data
    shard, and the checkpoint (rank 0's module) would not restore the other ranks. Averaging them after
    every optimizer step keeps every rank bit-identical (what DDP's broadcast_buffers does, with the
    statistics of all shards). Cost: one all-reduce of 2 x channels floats per BN layer per step.
    """
    import torch.distributed as td

    if not (td.is_initialized() and td.get_world_size() > 1):
        return
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    if not bufs:
        return
    flat = torch.cat([b.detach().reshape(-1).float() for b in bufs])
    td.all_reduce(flat)
    flat /= td.get_world_size()
    offset = 0
    for b in bufs:
        n = b.numel()
        b.copy_(flat[offset:offset + n].view_as(b).to(b.dtype))
        offset += n


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device, max_batches: int | None) -> dict[str, float]:
    """Top-1 and CE loss over this rank's shard of the val split, summed over ranks."""
    import torch.distributed as td

    model.eval()
    stats = torch.zeros(3, dtype=torch.float64)
    loader.set_epoch(0)
    loader.load_state_dict({"epoch": 0, "position": 0})
    for i, (x, y) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        x, y = x.to(device), y.to(device).long()
        logits = model(x).float()
        stats += torch.tensor([(logits.argmax(1) == y).sum().item(), y.numel(),
                               F.cross_entropy(logits, y, reduction="sum").item()], dtype=torch.float64)
    if td.is_initialized() and td.get_world_size() > 1:
        td.all_reduce(stats)
    correct, total, loss = stats.tolist()
    return {"top1": correct / max(total, 1), "loss": loss / max(total, 1), "samples": int(total)}


def run(job: RetrainJob, preemption: Preemption | None = None) -> dict[str, Any]:
    """Train ``job.arch`` from scratch (or resume), evaluate, checkpoint and export; returns the final record."""
    import deepspeed

    from ..data import build_loader

    exp, rc = job.exp, job.exp.retrain
    env = dist.init_distributed(rc.dist_timeout_s)
    rank, world = env.rank, env.world_size
    device = dist.device()
    if rank == 0:  # leftovers of a save killed half-way (also removed by the next save)
        remove_stale(ckpt_io.checkpoint_dir(job.run_dir), [".tmp-*", "latest.tmp"])
    print(f"[retrain] rank {rank}/{world} joined (style {env.style}, node {env.node_rank}, "
          f"local rank {env.local_rank}, device {device})", file=sys.stderr, flush=True)
    ds_cfg = prepare_ds_config(job.ds_config, world, job.ds_config_path)
    micro, gas = ds_cfg["train_micro_batch_size_per_gpu"], ds_cfg["gradient_accumulation_steps"]
    global_batch = ds_cfg["train_batch_size"]
    seed = exp.seed * 1_000_003 + rc.seed  # one number from the two seeds; any injective mix would do

    train_loader = build_loader(exp.data, "train", batch_size=micro, augment=rc.augment, rank=rank,
                                world_size=world, local_rank=env.local_rank, seed=seed, drop_last=True)
    val_loader = build_loader(exp.data, "val", batch_size=micro, augment="val", rank=rank, world_size=world,
                              local_rank=env.local_rank, seed=seed)
    if rank == 0:
        from ..data.loader import describe_pipeline

        print(f"[retrain] {describe_pipeline(exp.data, train_loader, 'train')}; val split {val_loader.num_samples} "
              "images", file=sys.stderr, flush=True)
    steps_per_epoch = len(train_loader) // gas
    if steps_per_epoch < 1:
        raise ConfigError(f"{len(train_loader)} micro-batches per epoch and rank are fewer than "
                          f"gradient_accumulation_steps={gas}: no optimizer step per epoch")
    micro_per_epoch = steps_per_epoch * gas
    total_steps = max(1, math.ceil(rc.epochs * steps_per_epoch))
    warmup = int(round(rc.warmup_epochs * steps_per_epoch))
    stop_at = min(total_steps, rc.max_steps or total_steps)
    eval_every = max(1, int(round(rc.eval_every_epochs * steps_per_epoch)))
    num_classes = train_loader.num_classes

    # The checkpoint to resume from is verified (digests, experiment fingerprint) before any engine exists.
    fingerprint = retrain_fingerprint(exp, job.ds_config, world, job.arch.key, job.space.name)
    meta_base = {"arch": job.arch.key, "space": job.space.name, "world_size": world, "global_batch": global_batch,
                 "ds_config": job.ds_config_path, "fingerprint": fingerprint}
    ckpt = None
    if job.resume == "auto":
        ckpt = ckpt_io.find_latest(job.run_dir)
    elif job.resume is not None:
        ckpt = Path(job.resume)
    if ckpt is not None:
        meta = ckpt_io.verify(ckpt)  # every file matches its digest before anything of it is loaded
        if meta["world_size"] != world or meta["arch"] != job.arch.key:
            raise ckpt_io.CheckpointError(
                f"{ckpt}: written by a run with world size {meta['world_size']} and arch {meta['arch']}; this run "
                f"has {world} and {job.arch.key} (an exact resume needs the same of both)")
        check_resume(meta.get("fingerprint"), fingerprint, str(ckpt / "meta.json"),
                     "start a new run with another --run_dir (or --restart to discard these checkpoints)")

    # Identical initialisation on every rank (DeepSpeed also broadcasts rank 0's weights).
    torch.manual_seed(seed)
    model = build_subnet(job.space, job.arch, num_outputs=num_classes, dropout=rc.dropout).to(device)
    eval_model = copy.deepcopy(model)
    lr = scaled_lr(rc, global_batch)
    optimizer = build_optimizer(rc, model, lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup, rc.min_lr_ratio))
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, lr_scheduler=scheduler,
                                           config=ds_cfg, dist_init_required=False)
    secure_engine(engine)  # its checkpoint files are read weights-only (DeepSpeed's default runs pickles)
    ema = ModelEma(engine.module, rc.ema_decay) if rc.ema_decay is not None else None
    torch.manual_seed(seed + 7919 * (rank + 1))  # dropout differs per rank, reproducibly

    step, epoch, last_saved = 0, 0, -1
    if ckpt is not None:
        engine.load_checkpoint(str(ckpt / "ds"), tag="state")
        if ema is not None:
            ema.load_state_dict(ckpt_io.load_weights(ckpt, ema=True))
        _set_rng_state(ckpt_io.load_rank_state(ckpt, rank))
        train_loader.load_state_dict(meta["loader"])
        step, epoch, last_saved = meta["step"], meta["loader"]["epoch"], meta["step"]
        if rank == 0:
            print(f"[retrain] resumed from {ckpt} at step {step}", file=sys.stderr, flush=True)
        from ..engines.extend import extend_schedules

        line = extend_schedules([engine.lr_scheduler], old_total=None, total=total_steps, step=step, mode=rc.extend,
                                key="retrain.extend")
        if line and rank == 0:
            print(f"[retrain] {line}", file=sys.stderr, flush=True)

    def save(reason: str) -> None:
        nonlocal last_saved
        done = train_loader.position >= micro_per_epoch
        loader_state = {"epoch": epoch + 1, "position": 0} if done else {"epoch": epoch, "position": train_loader.position}
        ckpt_io.save(job.run_dir, step, engine=engine, rank=rank, barrier=dist.barrier,
                     meta={**meta_base, "loader": loader_state, "reason": reason},
                     model_state={k: v.detach().cpu() for k, v in engine.module.state_dict().items()},
                     ema_state=ema.state_dict() if ema is not None else None, rank_state=_rng_state(),
                     keep=rc.keep_checkpoints)
        last_saved = step

    use_ema = ema is not None and rc.eval_with_ema

    def eval_weights() -> torch.nn.Module:
        """eval_model holding the weights that are evaluated and exported (EMA or raw)."""
        if use_ema:
            return ema.copy_to(eval_model)
        eval_model.load_state_dict(engine.module.state_dict())
        return eval_model

    def eval_record() -> dict[str, float]:
        return evaluate(eval_weights(), val_loader, device, rc.eval_batches)

    if rank == 0:
        job.run_dir.mkdir(parents=True, exist_ok=True)
        _log({"event": "start", "arch": job.arch.key, "named": describe(job.space, job.arch), "world_size": world,
              "global_batch": global_batch, "lr": lr, "steps_per_epoch": steps_per_epoch, "total_steps": total_steps,
              "stop_at": stop_at, "start_step": step}, job.run_dir)
    autocast = ds_cfg.get("torch_autocast", {}).get("enabled", False)
    t0, seen = time.monotonic(), 0
    from ..common.progress import Progress

    bar = Progress(stop_at, initial=step, desc="retrain", enabled=rank == 0)  # bar in a terminal, lines when piped
    engine.train()
    while step < stop_at:
        train_loader.set_epoch(epoch)
        stopped = False
        for x, y in train_loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True).long()
            logits = engine(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=rc.label_smoothing)
            engine.backward(loss)
            boundary = engine.is_gradient_accumulation_boundary()
            engine.step()
            seen += x.shape[0]
            if not boundary:
                continue
            step += 1
            bar.update(1, loss=loss.item())
            average_buffers(engine.module)
            if ema is not None:
                ema.update(engine.module, step)
            if rank == 0 and (step % rc.log_every_steps == 0 or step == stop_at):
                _log({"event": "train", "step": step, "epoch": epoch, "loss": loss.item(),
                      "lr": scheduler.get_last_lr()[0], "img_per_s_rank": seen / (time.monotonic() - t0),
                      "autocast": autocast}, job.run_dir)
            if step % eval_every == 0 and step < stop_at:
                rec = eval_record()
                engine.train()
                if rank == 0:
                    _log({"event": "eval", "step": step, "ema": use_ema, **rec}, job.run_dir)
            if step % rc.checkpoint_every_steps == 0:
                save("periodic")
            if preemption is not None and preemption.should_stop():
                if last_saved != step:
                    save("preempted")
                if rank == 0:
                    _log({"event": "preempted", "step": step}, job.run_dir)
                preemption.requeue_and_exit(0)
            if step >= stop_at or train_loader.position >= micro_per_epoch:
                stopped = step >= stop_at
                break
        if not stopped:
            epoch += 1
    bar.close()
    if last_saved != step:
        save("final")
    final = eval_record()
    digest = params_digest(engine.module)
    print(f"[retrain] rank {rank} final step {step} params sha256 {digest}", file=sys.stderr, flush=True)
    record = {"event": "final", "step": step, "params_sha256": digest, "ema": use_ema, "split": "val",
              **final}
    if rank == 0:
        if rc.export:
            from ..data.preprocess import preprocess_doc, write_preprocess

            paths = export_subnet(job.run_dir / "export", eval_weights().cpu(), job.space, job.arch, num_classes=num_classes,
                                  top1=final["top1"], ema=record["ema"], step=step)
            # The val preprocessing travels with the model: lwsl predict needs no training config.
            paths["preprocess"] = write_preprocess(job.run_dir / "export", preprocess_doc(
                exp.data, class_names=train_loader.class_names, in_channels=job.space.in_channels))
            record["export"] = {k: str(v) for k, v in paths.items()}
        _log(record, job.run_dir)
        (job.run_dir / "final.json").write_text(json.dumps(record, indent=1))
    dist.barrier()
    return record
