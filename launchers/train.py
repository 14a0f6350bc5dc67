"""Super-net training: spos, greedy (Alg. 1) or non-greedy (Alg. 2), one DeepSpeed engine per layer group.

Launch lines (the same script everywhere; CPU ranks use gloo, GPUs NCCL)::

    deepspeed --num_gpus 2 launchers/train.py --ds_config ds_configs/train_cpu.json --config configs/train_demo.yaml
    torchrun --standalone --nproc_per_node 2 launchers/train.py --ds_config ds_configs/train_cpu.json \\
        --config configs/train_demo.yaml train.strategy=greedy
    python launchers/train.py --ds_config ds_configs/train_cpu.json --config configs/train_demo.yaml train.max_steps=20
    python launchers/train.py ... --resume        # continue <run_root>/<name>/supernet from its latest checkpoint
    python launchers/train.py ... --resume train.max_steps=80 train.extend=replan   # train longer (re-planned cosine)
    torchrun --standalone --nproc_per_node 2 launchers/train.py --ds_config ds_configs/train_cpu.json \\
        --config configs/train_demo.yaml train.strategy=greedy train.parallel.mode=layer   # layer-parallel

Outputs in the super-net folder ``<run_root>/<name>/supernet`` of the experiment (``--run_dir`` for another,
e.g. a second super-net; a folder of another phase is refused, see lwsl_ds/config/layout.py):
``config.yaml`` (as resolved: class count, resolution, layer groups, micro-batch plan; later phases load it),
``ds_config.json``, ``metrics.jsonl``, ``heldout.json`` (the end-of-training check),
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
    p.add_argument("--run_dir", default=None, help="super-net folder (default: <run_root>/<name>/supernet)")
    p.add_argument("--resume", action="store_true", help="continue from the run directory's latest checkpoint")
    p.add_argument("--backend", choices=["deepspeed", "reference"], default="deepspeed",
                   help="reference: plain torch optimizers (the oracle; for tests and benchmarks)")
    p.add_argument("--local_rank", type=int, default=None, help="set by the deepspeed launcher")
    return p.parse_args(argv)


def supernet_dir(cfg, args: argparse.Namespace) -> Path:
    """The super-net folder (--run_dir or <run_root>/<name>/supernet), checked and marked as the super-net's."""
    from lwsl_ds.config.layout import claim, phase_dir

    return claim(Path(args.run_dir) if args.run_dir else phase_dir(cfg, "supernet"), "supernet")


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
    run_dir = supernet_dir(cfg, args)
    setup_logging(env.rank, run_dir / "train.log")
    train_layer_parallel(cfg, ds, par, resume=args.resume, backend=args.backend, run_dir=run_dir)
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

    # ---- the run directory: a new run, or a resume of the same experiment from verified files
    from lwsl_ds.common.atomic import write_atomic
    from lwsl_ds.common.checkpoint import find_latest, load_rng
    from lwsl_ds.config.fingerprint import check_resume, saved_train_fingerprint, train_fingerprint
    from lwsl_ds.common.safe_io import remove_stale
    from lwsl_ds.config import ConfigError

    run_dir = supernet_dir(cfg, args)
    latest = find_latest(run_dir, verify=args.resume)  # resume: every file checked against its sha256.json
    if latest is not None and not args.resume:
        raise ConfigError(f"{run_dir} already holds checkpoints (latest {latest[0].name}); pass --resume to "
                          "continue it, or choose another name= / run_root= / --run_dir")
    if latest is not None:  # the same experiment, or refused before anything is built or written
        check_resume(saved_train_fingerprint(latest[1]), train_fingerprint(cfg, ds, env.world_size, args.backend),
                     str(latest[0] / "manifest.json"), f"start a new run with another name= (not {cfg.name!r})")
    if env.rank == 0:  # leftovers of writers killed mid-write (supernet.pt.tmp, a half checkpoint, ...)
        remove_stale(run_dir, ["*.tmp"])
        remove_stale(run_dir / "checkpoints", ["*.tmp"])

    import torch

    if not torch.cuda.is_available():  # CPU: split the cores between the ranks of this node
        local = int(os.environ.get("LOCAL_WORLD_SIZE", env.world_size))
        torch.set_num_threads(cfg.train.threads or max(1, (os.cpu_count() or 1) // max(local, 1)))

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

    env = init_distributed(cfg.train.dist_timeout_s)
    log = setup_logging(env.rank, run_dir / "train.log")
    if args.resume and latest is None:
        log.warning("--resume: no checkpoint in %s, starting from scratch", run_dir)

    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
    data_cfg = cfg.data if cfg.data.resolution is not None else dataclasses.replace(cfg.data,
                                                                                    resolution=space.resolution)
    t = cfg.train
    seed = cfg.seed * 1000 + t.seed
    views = 2 if t.objective == "infonce" else 1
    # "fit": the train split minus data.holdout, which the search scores on (lwsl_ds/data/sources.py)
    loader = build_loader(data_cfg, "fit", batch_size=micro_batch_size(ds, env.world_size), augment="train",
                          views=views, rank=env.rank, world_size=env.world_size, local_rank=env.local_rank,
                          seed=cfg.seed, drop_last=True)
    from lwsl_ds.data.loader import describe_pipeline

    log.info("%s", describe_pipeline(data_cfg, loader, "fit"))
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
        from lwsl_ds.engines.extend import extend_schedules, schedulers_of

        line = extend_schedules(schedulers_of(backend), old_total=manifest.get("total_steps"), total=total,
                                step=start, mode=t.extend, key="train.extend")
        if line:
            log.warning("%s", line)
    elif is_main():
        run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run_dir / "config.yaml", recorded_yaml(cfg, recorded))
        write_atomic(run_dir / "ds_config.json", json.dumps(ds, indent=1))
    barrier()

    fingerprint = train_fingerprint(cfg, ds, env.world_size, args.backend)

    def manifest(tr: Trainer) -> dict:
        return {"step": tr.step, "epoch": tr.step // tr.steps_per_epoch, "total_steps": tr.total_steps,
                "data": loader.state_dict(), "world_size": env.world_size, "backend": args.backend,
                "strategy": t.strategy, "groups": backend.groups,
                "train_seconds": tr.train_seconds, "config": to_dict(recorded), "ds_config": ds,
                "fingerprint": fingerprint}

    # Stop requests first, so the metrics and checkpoint hooks of the same step see them.
    hooks = [TimeBudgetHook(t.max_minutes * 60)] if t.max_minutes is not None else []
    # Preemption after the time budget: a budget reached at the same step ends the run normally.
    preempt = PreemptionHook(preemption)
    hooks += [preempt, FaultHook(), MetricsHook(run_dir / "metrics.jsonl", t.log_every, is_main()),
             CheckpointHook(run_dir, manifest, t.checkpoint_every, t.keep_checkpoints),
             ProgressHook(t.progress and is_main())]  # a bar in a terminal, periodic lines when piped
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
        if t.heldout_archs:
            _heldout_check(net, dataclasses.replace(cfg, data=data_cfg), run_dir, t.heldout_archs, log)
    barrier()
    shutdown()
    return 0


def _heldout_check(net, cfg, run_dir: Path, archs: int, log) -> None:
    """Score a few sampled sub-nets on held-out data (rank 0, after supernet.pt is written); never fails the run."""
    from lwsl_ds.common.dist import device
    from lwsl_ds.search.check import heldout_check

    try:
        doc = heldout_check(net, cfg, run_dir, archs=archs, device=device())
    except Exception as e:  # the weights are saved; a failed check must not fail the run
        log.warning("held-out check skipped: %s: %s", type(e).__name__, str(e).splitlines()[0] if str(e) else "")
        return
    scores = ", ".join(f"{a['named']} {100 * a['score']:.2f}%" for a in doc["archs"])
    log.info("held-out check (%s, %d images): %s", doc["split"], doc["images"], scores)


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
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
