"""A whole layer-parallel training run from an experiment config: what a launcher calls on every rank.

``launchers/train_layer_parallel.py`` is the command line; ``launchers/train.py`` dispatches to
:func:`run_layer_parallel` when the experiment asks for ``train.parallel.mode: layer`` (docs/layer_parallel.md).
The parts both training paths share (space, data, seeded super-net, recorded config, ``supernet.pt``) are
built by :mod:`lwsl_ds.supernet_run`.

Run directory ``<run_root>/<name>/supernet`` (or the launcher's ``--run_dir``): ``config.yaml``,
``ds_config.json``, ``parallel.yaml``, ``fingerprint.json``,
``layer_groups.json`` (groups and measured seconds per layer), ``metrics_rank<r>.jsonl`` (each rank logs
the losses of its own layers), ``checkpoints_layer_parallel/step<N>/rank<r>.pt`` (+ ``.done`` markers) and
``supernet.pt`` (assembled by rank 0 from every group's part at the end).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from ..config.schema import ConfigError
from ..supernet_run import (RunRequest, SuperNetRun, build_run, extend_schedule, open_run, save_supernet,
                            write_run_config)
from .config import ParallelConfig
from .topology import Topology

__all__ = ["run_layer_parallel", "train_layer_parallel", "CKPT_DIR"]

CKPT_DIR = "checkpoints_layer_parallel"
FINGERPRINT_FILE = "fingerprint.json"  # what a --resume must not change (lwsl_ds/config/fingerprint.py)
log = logging.getLogger("lwsl_ds.parallel")


def run_layer_parallel(req: RunRequest, par: ParallelConfig, key: str = "train.parallel.data_parallel") -> int:
    """A launcher's layer-parallel run on this rank; every input is checked before any process group. Returns 0.

    ``key`` names the data-parallel setting in errors (``--parallel data_parallel`` for the dedicated launcher).
    """
    from ..common.dist import shutdown
    from ..common.launch_env import detect
    from ..common.logging import setup_logging
    from ..config.ds_config import validate_ds_config
    from ..strategies import get_strategy
    from .factory import require_layerwise

    env = detect()
    topo = Topology.of_world(env.world_size, par.data_parallel, env.rank, key)
    validate_ds_config(req.ds, topo.data_parallel, where=req.ds_where)  # batch arithmetic per group: D ranks
    require_layerwise(get_strategy(req.cfg.train.strategy))
    run_dir = open_run(req, env.world_size)
    setup_logging(env.rank, run_dir / "train.log")
    train_layer_parallel(req, par, topo, run_dir)
    shutdown()
    return 0


def train_layer_parallel(req: RunRequest, par: ParallelConfig, topo: Topology, run_dir: Path) -> Path:
    """Train the super-net of ``req`` layer-parallel on the launched ranks of ``topo``; returns the run directory."""
    from ..common.dist import init_distributed
    from .factory import build_layer_parallel_trainer

    env = init_distributed(timeout_s=par.timeout_s)
    t, ckpt_dir = req.cfg.train, run_dir / CKPT_DIR
    resumed = _resume_tag(req, run_dir, topo.world_size) is not None
    run = build_run(req.cfg, req.ds, data_rank=topo.data_rank, data_ranks=topo.data_parallel,
                         local_rank=env.local_rank, reads_data=topo.is_first, share=_from_rank0)
    groups, secs = _layer_groups(run, topo.groups, run_dir, resumed)
    trainer = build_layer_parallel_trainer(run.net, run.strategy, req.ds, layer_groups=groups, parallel=par,
                                           seed=run.seed, total_steps=run.total, group_overrides=t.group_overrides,
                                           batch_size=run.batch, backend=req.backend, job_name=req.cfg.name,
                                           monitor_dir=run_dir / "monitor", topology=topo,
                                           resolution=run.data_cfg.out_resolution)
    if topo.rank == 0:
        _write_records(req, run, par, run_dir, groups, secs, world=topo.world_size, first=not resumed)
        log.info("layer-parallel: %d groups x %d data ranks, groups %s, %d steps\n%s", topo.groups,
                 topo.data_parallel, groups, run.total, trainer.plan.describe())
    start = trainer.load(ckpt_dir) if resumed else 0
    if start:  # a longer schedule than the checkpoint's: re-plan or refuse (never the extra steps at lr 0)
        extend_schedule(trainer.backend, old_total=None, total=run.total, step=start, mode=t.extend,
                        loud=topo.rank == 0)
    every = t.checkpoint_every or run.steps_per_epoch
    _train(trainer, run, run_dir / f"metrics_rank{topo.rank}.jsonl", start, every, ckpt_dir)
    _assemble(trainer, run, run_dir)  # ends with a barrier: all tags complete
    trainer.prune(ckpt_dir, t.keep_checkpoints)
    return run_dir


def _resume_tag(req: RunRequest, run_dir: Path, world: int) -> Optional[str]:
    """The checkpoint tag every rank completed, which only ``--resume`` may continue, and only of this experiment."""
    from ..config.fingerprint import check_resume
    from ..common.safe_io import read_json_object
    from .trainer import latest_complete_tag

    tag = latest_complete_tag(run_dir / CKPT_DIR, world)
    if tag is not None and not req.resume:
        raise ConfigError(f"{run_dir} already holds layer-parallel checkpoints (latest {tag}); pass --resume "
                          "or choose another name=/run_root=")
    fp_file = run_dir / FINGERPRINT_FILE
    if tag is not None:  # the same experiment, or refused before anything is built
        if not fp_file.is_file():
            raise ConfigError(f"{fp_file}: missing, so --resume cannot check that this is the same experiment "
                              f"(a run from an older version); {req.new_run_hint}")
        check_resume(read_json_object(fp_file, "fingerprint"), req.fingerprint(world), str(fp_file),
                     req.new_run_hint)
    return tag


def _from_rank0(facts: Optional[dict]) -> dict:
    """Rank 0's loader facts (steps per epoch, total steps, class count) on every rank: only group 0 reads data."""
    import torch.distributed as td

    box = [facts]
    td.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def _layer_groups(run: SuperNetRun, groups: int, run_dir: Path, resumed: bool) -> tuple[list, Optional[list]]:
    """(layer groups, measured seconds per layer or None): ``auto`` measured over ``groups``, a list as given."""
    import json

    from ..common.dist import device
    from .balance import measured_groups

    t = run.cfg.train
    # drawn on every rank, also when unused: the global RNG then continues as in every other run
    r = run.data_cfg.out_resolution  # the side the images arrive at, which may differ from the space's
    probe = torch.randn(run.batch * run.views, run.space.in_channels, r, r, device=device())
    saved = run_dir / "layer_groups.json"
    if resumed and saved.exists():  # re-measuring could move a boundary: keep the saved one
        return json.loads(saved.read_text())["groups"], None
    if t.layer_groups == "auto":
        return measured_groups(run.net, run.strategy, probe, torch.zeros(run.batch, dtype=torch.long,
                                                                         device=device()), groups)
    if isinstance(t.layer_groups, list):
        return t.layer_groups, None
    raise ConfigError(f"train.layer_groups: {t.layer_groups!r} with parallel.mode=layer; use 'auto' (balanced by "
                      f"measured time over world/data_parallel = {groups} groups) or explicit lists of layers")


def _write_records(req: RunRequest, run: SuperNetRun, par: ParallelConfig, run_dir: Path, groups: list,
                   secs: Optional[list], *, world: int, first: bool) -> None:
    """Rank 0: recorded config, ds_config, parallel.yaml, the first run's fingerprint, the layer groups."""
    import yaml

    from ..common.atomic import write_atomic, write_json_atomic

    write_run_config(run_dir, req.cfg, run.recorded(groups), req.ds)
    write_atomic(run_dir / "parallel.yaml", yaml.safe_dump(dataclasses.asdict(par), sort_keys=False))
    if first:  # the first run's fingerprint is the one every resume must match
        write_json_atomic(run_dir / FINGERPRINT_FILE, req.fingerprint(world), sort_keys=True)
    saved = run_dir / "layer_groups.json"
    if secs is not None or not saved.exists():
        write_json_atomic(saved, {"groups": groups, "layer_seconds": secs}, indent=None)


def _batches(loader: Any, start: int, total: int, spe: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
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


def _step_check(metrics: Any, rank: int, group: int, log_every: int, total: int) -> Callable[[int, dict], None]:
    """Per step: stop on a non-finite loss (the last complete checkpoint stays intact), log this rank's losses."""
    def on_step(step: int, out: dict) -> None:
        vals = {k: float(v) for k, v in out.items() if v.dim() == 0}
        bad = [k for k, v in vals.items() if k.startswith("loss/") and not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"non-finite {bad[0]} in step {step} on rank {rank}; stopping, the last "
                                     "complete checkpoint is intact")
        if (step + 1) % log_every == 0 or step + 1 == total:
            metrics.write({"step": step + 1, "rank": rank, "group": group, **vals})

    return on_step


def _train(trainer: Any, run: SuperNetRun, metrics_path: Path, start: int, every: int, ckpt_dir: Path) -> None:
    """The pipeline from ``start`` to the end, checkpoints every ``every`` steps and after the last one."""
    from ..common.logging import JsonlWriter

    t, topo = run.cfg.train, trainer.topo
    metrics = JsonlWriter(metrics_path)
    try:
        data = _batches(run.loader, start, run.total, run.steps_per_epoch) if run.loader is not None else None
        trainer.train(data, start_step=start, max_steps=run.total, checkpoint_every=every, ckpt_dir=ckpt_dir,
                      keep_checkpoints=t.keep_checkpoints,
                      on_step=_step_check(metrics, topo.rank, topo.group, t.log_every, run.total))
    finally:
        metrics.close()
    if trainer.step_count % every:  # the final state too, so a longer run can continue from it
        trainer.save(ckpt_dir, f"step{trainer.step_count}", keep=t.keep_checkpoints)


def _assemble(trainer: Any, run: SuperNetRun, run_dir: Path) -> None:
    """Every group's data rank 0 writes its units; rank 0 joins them into ``supernet.pt``.

    The base is the initial super-net (same seed), so modules no group trains (non-greedy's stem decoder)
    hold their initial weights, as in a synchronous run.
    """
    from ..common.atomic import atomic_path
    from ..common.dist import barrier
    from ..common.seeding import seed_everything
    from ..space import SuperNet

    parts, topo = run_dir / "parts", trainer.topo
    if topo.data_rank == 0:
        parts.mkdir(parents=True, exist_ok=True)
        state = {f"{u.name}.{k}": v for u in trainer.plan.units[topo.group] for k, v in u.module.state_dict().items()}
        with atomic_path(parts / f"group{topo.group}.pt") as tmp:
            torch.save(state, tmp)
    barrier()
    if topo.rank == 0:
        seed_everything(run.seed)
        with torch.device("cpu"):
            full = SuperNet(run.space, run.objective)
        sd = full.state_dict()
        for g in range(topo.groups):
            sd.update(torch.load(parts / f"group{g}.pt", map_location="cpu", weights_only=True))
        full.load_state_dict(sd)
        log.info("done: super-net weights in %s", save_supernet(full.state_dict(), run_dir))
    barrier()
