"""A whole layer-parallel training run from an experiment config: what a launcher calls on every rank.

``launchers/train_layer_parallel.py`` is the command line; ``launchers/train.py`` can dispatch to
:func:`train_layer_parallel` when the experiment asks for ``parallel.mode: layer`` (docs/layer_parallel.md).

Run directory ``<run_root>/<name>/supernet`` (or the launcher's ``--run_dir``): ``config.yaml``,
``ds_config.json``, ``parallel.yaml``,
``layer_groups.json`` (groups and measured seconds per layer), ``metrics_rank<r>.jsonl`` (each rank logs
the losses of its own layers), ``checkpoints_layer_parallel/step<N>/rank<r>.pt`` (+ ``.done`` markers) and
``supernet.pt`` (assembled by rank 0 from every group's part at the end).
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch

from ..config.schema import ConfigError
from .config import ParallelConfig

__all__ = ["train_layer_parallel", "CKPT_DIR"]

CKPT_DIR = "checkpoints_layer_parallel"
FINGERPRINT_FILE = "fingerprint.json"  # what a --resume must not change (lwsl_ds/config/fingerprint.py)
log = logging.getLogger("lwsl_ds.parallel")


def _batches(loader, start: int, total: int, spe: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Group 0's batches from global step ``start`` to ``total`` (views stacked as the objectives expect)."""
    step = start
    loader.load_state_dict({"epoch": start // spe, "position": start % spe})
    while step < total:
        for images, labels in loader:
            if isinstance(images, (list, tuple)):
                images = torch.cat(list(images), 0)
            yield images, labels.long()
            step += 1
            if step >= total:
                return
        loader.set_epoch(step // spe)


def _resolve_groups(t, net, strategy, groups: int, images: torch.Tensor, labels: torch.Tensor):
    """train.layer_groups in layer mode: auto -> measured balance over ``groups``; a list as given."""
    from .balance import measured_groups

    if t.layer_groups == "auto":
        return measured_groups(net, strategy, images, labels, groups)
    if isinstance(t.layer_groups, list):
        return t.layer_groups, None
    raise ConfigError(f"train.layer_groups: {t.layer_groups!r} with parallel.mode=layer; use 'auto' (balanced by "
                      f"measured time over world/data_parallel = {groups} groups) or explicit lists of layers")


def train_layer_parallel(cfg, ds: Mapping[str, Any], par: ParallelConfig, *, resume: bool = False,
                         backend: str = "deepspeed", run_dir: Path | None = None) -> Path:
    """Train the super-net of ``cfg`` layer-parallel on the already-launched ranks; returns the run directory."""
    import dataclasses

    import torch.distributed as td
    import yaml

    from ..common.atomic import write_atomic
    from ..common.dist import device, init_distributed
    from ..common.seeding import seed_everything
    from ..config.ds_config import micro_batch_size, validate_ds_config
    from ..config.recorded import recorded_yaml, resolve_num_classes, resolve_run_config
    from ..data import build_loader
    from ..objectives import get_objective
    from ..space import SuperNet, load_space
    from ..strategies import get_strategy
    from .trainer import LayerParallelTrainer, latest_complete_tag

    env = init_distributed(timeout_s=par.timeout_s)
    world, rank = env.world_size, env.rank
    if world % par.data_parallel:
        raise ConfigError(f"parallel.data_parallel={par.data_parallel} does not divide the {world} launched ranks")
    G, D = world // par.data_parallel, par.data_parallel
    validate_ds_config(ds, D, where="ds_config")  # batch arithmetic per group: D data-parallel ranks
    t = cfg.train
    if t.strategy == "spos":
        raise ConfigError("train.strategy=spos with parallel.mode=layer: SPOS back-propagates end-to-end through "
                          "every group; use greedy or non_greedy (or parallel.mode=data)")
    if run_dir is None:  # the experiment's super-net folder (lwsl_ds/config/layout.py)
        from ..config.layout import claim, phase_dir

        run_dir = claim(phase_dir(cfg, "supernet"), "supernet")
    ckpt_dir = run_dir / CKPT_DIR
    tag = latest_complete_tag(ckpt_dir, world)
    if tag is not None and not resume:
        raise ConfigError(f"{run_dir} already holds layer-parallel checkpoints (latest {tag}); pass --resume "
                          "or choose another name=/run_root=")
    from ..config.fingerprint import check_resume, train_fingerprint

    fingerprint, fp_file = train_fingerprint(cfg, ds, world, backend), run_dir / FINGERPRINT_FILE
    if resume and tag is not None:  # the same experiment, or refused before anything is built
        if not fp_file.is_file():
            raise ConfigError(f"{fp_file}: missing, so --resume cannot check that this is the same experiment "
                              f"(a run from an older version); start a new run with another name= (not {cfg.name!r})")
        check_resume(json.loads(fp_file.read_text()), fingerprint, str(fp_file),
                     f"start a new run with another name= (not {cfg.name!r})")
    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
    data_cfg = cfg.data if cfg.data.resolution is not None else dataclasses.replace(cfg.data,
                                                                                    resolution=space.resolution)
    views = 2 if t.objective == "infonce" else 1
    micro = micro_batch_size(ds, D)
    group, data_rank = rank // D, rank % D
    loader = None
    info: list[Any] = [None]
    if group == 0:  # only the first group reads images
        loader = build_loader(data_cfg, "fit", batch_size=micro, augment="train", views=views, rank=data_rank,
                              world_size=D, local_rank=env.local_rank, seed=cfg.seed, drop_last=True)
        spe = len(loader)
        total = spe * t.epochs if t.max_steps is None else min(t.max_steps, spe * t.epochs)
        info = [{"spe": spe, "total": total, "num_classes": loader.num_classes}]
    td.broadcast_object_list(info, src=0)
    spe, total, num_classes = info[0]["spe"], info[0]["total"], info[0]["num_classes"]
    space = resolve_num_classes(space, cfg, num_classes)  # the data's class count unless the config sets one
    objective = get_objective(t.objective, space.num_classes, proj_dim=t.proj_dim, temperature=t.temperature,
                              mlp=t.mlp_decoder, label_smoothing=t.label_smoothing)
    seed = cfg.seed * 1000 + t.seed
    seed_everything(seed)  # identical initial weights on every rank (the replicas rely on it: version 0)
    net = SuperNet(space, objective).to(device())
    strategy = get_strategy(t.strategy, layer_input_init=t.layer_input_init)
    probe = torch.randn(micro * views, space.in_channels, space.resolution, space.resolution, device=device())
    saved = run_dir / "layer_groups.json"
    if resume and tag is not None and saved.exists():  # re-measuring could move a boundary: keep the saved one
        groups, secs = json.loads(saved.read_text())["groups"], None
    else:
        groups, secs = _resolve_groups(t, net, strategy, G, probe, torch.zeros(micro, dtype=torch.long,
                                                                                device=device()))
    trainer = LayerParallelTrainer(net, strategy, ds, layer_groups=groups, parallel=par, seed=seed,
                                   total_steps=total, group_overrides=t.group_overrides, batch_size=micro,
                                   backend=backend, job_name=cfg.name, monitor_dir=run_dir / "monitor")
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        recorded = resolve_run_config(cfg, space=space, data_resolution=data_cfg.out_resolution, groups=groups)
        write_atomic(run_dir / "config.yaml", recorded_yaml(cfg, recorded))
        write_atomic(run_dir / "ds_config.json", json.dumps(dict(ds), indent=1))
        write_atomic(run_dir / "parallel.yaml", yaml.safe_dump(dataclasses.asdict(par), sort_keys=False))
        if not (resume and tag is not None):  # the first run's fingerprint is the one every resume must match
            write_atomic(fp_file, json.dumps(fingerprint, indent=1, sort_keys=True))
        if secs is not None or not saved.exists():
            write_atomic(saved, json.dumps({"groups": groups, "layer_seconds": secs}))
        log.info("layer-parallel: %d groups x %d data ranks, groups %s, %d steps\n%s", G, D, groups, total,
                 trainer.plan.describe())
    start = trainer.load(ckpt_dir) if (resume and tag is not None) else 0
    if start:  # a longer schedule than the checkpoint's: re-plan or refuse (never the extra steps at lr 0)
        from ..engines.extend import extend_schedules, schedulers_of

        line = extend_schedules(schedulers_of(trainer.backend), old_total=None, total=total, step=start,
                                mode=t.extend, key="train.extend")
        if line and rank == 0:
            log.warning("%s", line)
    every = t.checkpoint_every or spe
    metrics = open(run_dir / f"metrics_rank{rank}.jsonl", "a") if run_dir.exists() else None

    def on_step(step: int, out: dict) -> None:
        vals = {k: float(v) for k, v in out.items() if v.dim() == 0}
        bad = [k for k, v in vals.items() if k.startswith("loss/") and not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"non-finite {bad[0]} in step {step} on rank {rank}; stopping, the last "
                                     "complete checkpoint is intact")
        if metrics is not None and ((step + 1) % t.log_every == 0 or step + 1 == total):
            metrics.write(json.dumps({"step": step + 1, "rank": rank, "group": group, **vals}) + "\n")
            metrics.flush()

    data = _batches(loader, start, total, spe) if loader is not None else None
    trainer.train(data, start_step=start, max_steps=total, checkpoint_every=every, ckpt_dir=ckpt_dir,
                  keep_checkpoints=t.keep_checkpoints, on_step=on_step)
    if metrics is not None:
        metrics.close()
    if trainer.step_count % every:  # the final state too, so a longer run can continue from it
        trainer.save(ckpt_dir, f"step{trainer.step_count}", keep=t.keep_checkpoints)
    _assemble(trainer, run_dir, space, objective, rank, data_rank, seed)  # ends with a barrier: all tags complete
    trainer.prune(ckpt_dir, t.keep_checkpoints)
    return run_dir


def _assemble(trainer, run_dir: Path, space, objective, rank: int, data_rank: int, seed: int) -> None:
    """Every group's data rank 0 writes its units; rank 0 joins them into ``supernet.pt``.

    The base is the initial super-net (same seed), so modules no group trains (non-greedy's stem decoder)
    hold their initial weights, as in a synchronous run.
    """
    import torch.distributed as td

    from ..space import SuperNet

    parts = run_dir / "parts"
    if data_rank == 0:
        parts.mkdir(parents=True, exist_ok=True)
        state = {f"{u.name}.{k}": v for u in trainer.plan.units[trainer.topo.group]
                 for k, v in u.module.state_dict().items()}
        torch.save(state, parts / f"group{trainer.topo.group}.pt")
    td.barrier()
    if rank == 0:
        from ..common.seeding import seed_everything

        seed_everything(seed)
        with torch.device("cpu"):
            full = SuperNet(space, objective)
        sd = full.state_dict()
        for g in range(trainer.topo.groups):
            sd.update(torch.load(parts / f"group{g}.pt", map_location="cpu", weights_only=True))
        full.load_state_dict(sd)
        tmp = run_dir / "supernet.pt.tmp"
        torch.save(full.state_dict(), tmp)
        os.replace(tmp, run_dir / "supernet.pt")
        log.info("done: super-net weights in %s", run_dir / "supernet.pt")
    td.barrier()
