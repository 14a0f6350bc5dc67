"""Super-net training: spos, greedy (Alg. 1) or non-greedy (Alg. 2), one DeepSpeed engine per layer group.

Launch lines (the same script everywhere; CPU ranks use gloo, GPUs NCCL)::

    deepspeed --num_gpus 2 launchers/train.py --ds_config ds_configs/train_cpu.json --config configs/train_demo.yaml
    torchrun --standalone --nproc_per_node 2 launchers/train.py --ds_config ds_configs/train_cpu.json \\
        --config configs/train_demo.yaml train.strategy=greedy
    python launchers/train.py --ds_config ds_configs/train_cpu.json --config configs/train_demo.yaml train.max_steps=20
    python launchers/train.py ... --resume        # continue the run in <run_root>/<name> from its latest checkpoint
    torchrun --standalone --nproc_per_node 2 launchers/train.py --ds_config ds_configs/train_cpu.json \\
        --config configs/train_demo.yaml train.strategy=greedy train.parallel.mode=layer   # layer-parallel

Outputs in the run directory ``<run_root>/<name>``: ``config.yaml`` (as resolved: class count, resolution, layer
groups, micro-batch plan; later phases load it), ``ds_config.json``, ``metrics.jsonl``,
``train.log``, ``checkpoints/<tag>/`` (every engine, manifest, RNG), ``supernet.pt`` (final weights) and
``param_digests.json`` (every rank's sha256 of its final parameters/buffers: ranks must agree).

Preemption: on SIGUSR1/SIGTERM every rank stops after the same step, the checkpoint is written, no
``supernet.pt``; under Slurm rank 0 runs ``scontrol requeue`` (launchers/slurm/train.sbatch passes
``--resume``, so the requeued job continues by itself), elsewhere the process exits 0 and the same
command with ``--resume`` continues. See docs/multinode.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: --ds_config, --config, overrides (--set a.b=c or trailing a.b=c), --resume, --backend."""
    from lwsl_ds.config.cli_args import add_override_args

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ds_config", required=True, help="DeepSpeed JSON (batch size, optimizer, ZeRO, precision)")
    p.add_argument("--config", required=True, help="experiment YAML (space, data, train)")
    add_override_args(p)
    p.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    p.add_argument("--backend", choices=["deepspeed", "reference"], default="deepspeed",
                   help="reference: plain torch optimizers (the oracle; for tests and benchmarks)")
    p.add_argument("--local_rank", type=int, default=None, help="set by the deepspeed launcher")
    return p.parse_args(argv)


def _train_layer_parallel(cfg, ds, args, env, preemption) -> int:
    """``train.parallel.mode=layer``: rank set g owns layer group g (see docs/layer_parallel.md)."""
    # This trainer does not poll the preemption flag: give SIGUSR1/SIGTERM their previous action back
    # (kill) rather than swallow them; resume from its last checkpoint works as after any kill.
    preemption.uninstall()
    import torch

    from lwsl_ds.common.dist import shutdown
    from lwsl_ds.common.logging import setup_logging
    from lwsl_ds.config import ConfigError
    from lwsl_ds.parallel.run import train_layer_parallel

    par = cfg.train.parallel
    if env.world_size % par.data_parallel:
        raise ConfigError(f"train.parallel.data_parallel={par.data_parallel} does not divide the world size "
                          f"{env.world_size}")
    if not torch.cuda.is_available():  # CPU: split this node's cores between its ranks
        local = int(os.environ.get("LOCAL_WORLD_SIZE", env.world_size))
        torch.set_num_threads(cfg.train.threads or max(1, (os.cpu_count() or 1) // max(local, 1)))
    setup_logging(env.rank, Path(cfg.run_root) / cfg.name / "train.log")
    train_layer_parallel(cfg, ds, par, resume=args.resume, backend=args.backend)
    shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse, validate, build, train."""
    # First of all: a SIGUSR1 arriving during the imports must set the flag, not kill the rank.
    from lwsl_ds.common.preemption import Preemption

    preemption = Preemption.install()
    args = parse_args(argv)
    import dataclasses

    from lwsl_ds.config import load_experiment, to_dict
    from lwsl_ds.config.recorded import recorded_yaml, resolve_num_classes, resolve_run_config
    from lwsl_ds.config.cli_args import overrides_of
    from lwsl_ds.config.ds_config import load_ds_config, micro_batch_size, validate_ds_config
    from lwsl_ds.common.launch_env import detect

    # ---- everything that can be wrong with the input fails here, before any process group or data
    cfg = load_experiment(args.config, overrides_of(args))
    ds = load_ds_config(args.ds_config)
    env = detect()
    if cfg.train.parallel.mode == "layer":  # batch arithmetic is per layer group (data_parallel ranks)
        return _train_layer_parallel(cfg, ds, args, env, preemption)
    validate_ds_config(ds, env.world_size, where=args.ds_config)

    import torch

    if not torch.cuda.is_available():  # CPU: split the cores between the ranks of this node
        local = int(os.environ.get("LOCAL_WORLD_SIZE", env.world_size))
        torch.set_num_threads(cfg.train.threads or max(1, (os.cpu_count() or 1) // max(local, 1)))

    from lwsl_ds.common.checkpoint import find_latest, load_rng, write_atomic
    from lwsl_ds.common.digest import gather_digests, write_digests
    from lwsl_ds.common.dist import barrier, device, init_distributed, is_main, shutdown
    from lwsl_ds.common.logging import setup_logging
    from lwsl_ds.common.seeding import restore_rng_state, seed_everything
    from lwsl_ds.data import build_loader
    from lwsl_ds.engines import build_backend
    from lwsl_ds.objectives import get_objective
    from lwsl_ds.space import SuperNet, load_space
    from lwsl_ds.strategies import get_strategy
    from lwsl_ds.strategies.hooks import CheckpointHook, FaultHook, MetricsHook, ProgressHook, TimeBudgetHook
    from lwsl_ds.strategies.hooks import PreemptionHook
    from lwsl_ds.strategies.loop import Trainer

    env = init_distributed()
    run_dir = Path(cfg.run_root) / cfg.name
    log = setup_logging(env.rank, run_dir / "train.log")
    latest = find_latest(run_dir)
    if latest is not None and not args.resume:
        raise SystemExit(f"{run_dir} already holds checkpoints (latest {latest[0].name}); pass --resume to "
                         "continue it, or choose another name= / run_root=")
    if args.resume and latest is None:
        log.warning("--resume: no checkpoint in %s, starting from scratch", run_dir)

    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
    data_cfg = cfg.data if cfg.data.resolution is not None else dataclasses.replace(cfg.data,
                                                                                    resolution=space.resolution)
    t = cfg.train
    seed = cfg.seed * 1000 + t.seed
    views = 2 if t.objective == "infonce" else 1
    loader = build_loader(data_cfg, "train", batch_size=micro_batch_size(ds, env.world_size), augment="train",
                          views=views, rank=env.rank, world_size=env.world_size, local_rank=env.local_rank,
                          seed=cfg.seed, drop_last=True)
    space = resolve_num_classes(space, cfg, loader.num_classes)  # the data's class count unless the config sets one
    objective = get_objective(t.objective, space.num_classes, proj_dim=t.proj_dim, temperature=t.temperature,
                              mlp=t.mlp_decoder, label_smoothing=t.label_smoothing)
    seed_everything(seed)  # identical initial weights on every rank
    net = SuperNet(space, objective).to(device())
    strategy = get_strategy(t.strategy, layer_input_init=t.layer_input_init)
    total = len(loader) * t.epochs if t.max_steps is None else min(t.max_steps, len(loader) * t.epochs)
    backend = build_backend(args.backend, net, strategy, ds, layer_groups=t.layer_groups, auto_groups=t.auto_groups,
                            auto_cost=t.auto_cost, total_steps=total, group_overrides=t.group_overrides,
                            job_name=cfg.name, monitor_dir=run_dir / "monitor",
                            micro_batches=t.micro_batches, memory_budget_mib=t.memory_budget_mib,
                            offload_inactive=t.offload_inactive, activation_checkpointing=t.activation_checkpointing)
    # What a later phase needs to rebuild this run (class count, resolution, groups, micro-batch plan), as resolved.
    recorded = resolve_run_config(cfg, space=space, data_resolution=data_cfg.out_resolution, groups=backend.groups,
                                  micro_batches=getattr(backend, "micro_batches", None))
    log.info("%s super-net, %s strategy, %s objective, %d rank(s), %d steps of %d images/rank\n%s",
             space.name, t.strategy, t.objective, env.world_size, total, micro_batch_size(ds, env.world_size),
             backend.plan.describe())

    start, train_seconds = 0, 0.0
    if args.resume and latest is not None:
        ck_dir, manifest = latest
        backend.load(ck_dir, manifest["tag"])
        loader.load_state_dict(manifest["data"])
        start = int(manifest["step"])
        train_seconds = float(manifest.get("train_seconds", 0.0))
        rng = load_rng(ck_dir, env.rank)
        if rng is not None:
            restore_rng_state(rng)
        log.info("resumed from %s (step %d)", ck_dir, start)
    elif is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / "config.yaml", recorded_yaml(cfg, recorded))
        write_atomic(run_dir / "ds_config.json", json.dumps(ds, indent=1))
    barrier()

    def manifest(tr: Trainer) -> dict:
        return {"step": tr.step, "epoch": tr.step // tr.steps_per_epoch, "total_steps": tr.total_steps,
                "data": loader.state_dict(), "world_size": env.world_size, "backend": args.backend,
                "strategy": t.strategy, "groups": backend.groups,
                "train_seconds": tr.train_seconds, "config": to_dict(recorded), "ds_config": ds}

    # Stop requests first, so the metrics and checkpoint hooks of the same step see them.
    hooks = [TimeBudgetHook(t.max_minutes * 60)] if t.max_minutes is not None else []
    # Preemption after the time budget: a budget reached at the same step ends the run normally.
    preempt = PreemptionHook(preemption)
    hooks += [preempt, FaultHook(), MetricsHook(run_dir / "metrics.jsonl", t.log_every, is_main()),
             CheckpointHook(run_dir, manifest, t.checkpoint_every, t.keep_checkpoints),
             ProgressHook(t.progress and is_main() and sys.stderr.isatty())]
    trainer = Trainer(net, strategy, backend, loader, seed=seed, total_steps=total, start_step=start, hooks=hooks,
                      device=device(), world_size=env.world_size, train_seconds=train_seconds)
    trainer.train()
    if trainer.stop_reason:
        log.info("stopped early at step %d/%d: %s", trainer.step, total, trainer.stop_reason)
    if preempt.stopped(trainer):  # the checkpoint of this step is on disk (CheckpointHook.after_train)
        _exit_preempted(preemption, run_dir, trainer.step, total, log)
    digests = gather_digests(net)  # every rank, before rank 0 saves: the ranks must hold the same weights
    if is_main():
        tmp = run_dir / "supernet.pt.tmp"
        torch.save(net.state_dict(), tmp)
        os.replace(tmp, run_dir / "supernet.pt")
        write_digests(run_dir / "param_digests.json", digests, step=trainer.step, world_size=env.world_size)
        if len({d["params"] for d in digests}) > 1:
            log.error("ranks ended with different parameters: %s", digests)
        log.info("done: %d steps, super-net weights in %s", trainer.step, run_dir / "supernet.pt")
    barrier()
    shutdown()
    return 0


def _exit_preempted(preemption, run_dir: Path, step: int, total: int, log) -> None:
    """After a preemption checkpoint: say how the run continues, requeue under Slurm, exit 0 (no supernet.pt)."""
    from lwsl_ds.common.dist import is_main

    if is_main():
        if os.environ.get("SLURM_JOB_ID"):
            how = (f"requeueing Slurm job {os.environ['SLURM_JOB_ID']}; it resumes by itself "
                   "(train.sbatch passes --resume)")
        else:
            how = "rerun the same command with --resume to continue"
        log.warning("preempted at step %d/%d by %s: checkpoint written under %s, no supernet.pt; %s", step, total,
                    preemption.signal_name or "a signal to another rank", run_dir / "checkpoints", how)
    preemption.requeue_and_exit(0)


if __name__ == "__main__":
    from lwsl_ds.config import ConfigError
    from lwsl_ds.strategies.loop import NonFiniteLossError

    try:
        sys.exit(main())
    except ConfigError as e:  # bad input: one clear line, no traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(3)
