"""What one retraining run needs, read and checked before any process group or data exists.

:func:`arch_path` finds the architecture (``--arch``, ``retrain.arch``, or the experiment's search result),
:func:`check_ds_config` the DeepSpeed config, :func:`build_job` checks the arch against the experiment and
refuses to overwrite checkpoints it was not told to resume or discard. The experiment config (the
search's own, ``--config`` and overrides on top) is resolved by the caller with
``lwsl_ds.search.loading.experiment_for_arch``: the search package sits above this one.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from ..common.checkpoint import RETRAIN, list_checkpoints, read_checkpoint
from ..config.ds_config import load_ds_config, micro_batch_size, validate_ds_config
from ..config.schema import ConfigError
from ..space import Arch, SearchSpace

__all__ = ["RetrainJob", "prepare_ds_config", "check_ds_config", "arch_path", "build_job"]


class RetrainJob(NamedTuple):
    """Everything one retraining run needs, validated (built by :func:`build_job`)."""

    exp: Any  # ExperimentConfig
    ds_config: dict
    space: SearchSpace
    arch: Arch
    run_dir: Path
    resume: str | None  # None: fresh run; "auto": latest checkpoint of run_dir if any; else a checkpoint path
    ds_config_path: str


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


def arch_path(config: str | None, arch: str | None, overrides: Sequence[str]) -> str:
    """``arch``, else ``retrain.arch`` of the config, else the experiment's ``search/best_arch.yaml``."""
    if arch:
        return arch
    if not config:
        raise ConfigError("no architecture: pass --arch <arch.yaml> (or --config with retrain.arch set)")
    from ..config.layout import phase_dir
    from ..config.loader import load_experiment

    base = load_experiment(config, list(overrides))
    found = phase_dir(base, "search") / "best_arch.yaml"
    if base.retrain.arch or found.is_file():
        return base.retrain.arch or str(found)
    raise ConfigError(f"{config}: no architecture: pass --arch <arch.yaml>, set retrain.arch, or run "
                      f"the search first (no {found})")


def check_ds_config(ds_config: str) -> dict:
    """The raw retraining ds_config, checked for the world size the environment announces."""
    raw_ds = load_ds_config(ds_config)
    world = int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_STEP_NUM_TASKS") or 1)
    prepare_ds_config(raw_ds, world, ds_config)  # fail fast; re-checked with the real world size later
    return raw_ds


def build_job(exp: Any, raw_ds: dict, ds_config: str, arch: str, *, config: str | None = None,
              run_dir: str | None = None, resume: str | None = None, restart: bool = False) -> RetrainJob:
    """Check the arch against the experiment and the run directory (``resume``: None, "auto" or a checkpoint)."""
    from ..config.layout import claim, phase_dir
    from ..space import load_arch

    space, the_arch, _ = load_arch(arch)
    if exp.data.out_resolution != space.resolution:
        raise ConfigError(f"{config}: data resolution {exp.data.out_resolution} differs from the resolution "
                          f"{space.resolution} of space {space.name!r} in {arch}; set data.resolution")
    folder = claim(Path(run_dir) if run_dir else phase_dir(exp, "retrain"), "retrain")
    if resume not in (None, "auto"):
        read_checkpoint(resume, verify=False, layout=RETRAIN)  # a named checkpoint must exist and be complete
    existing = list_checkpoints(folder, RETRAIN)
    if existing and resume is None and not restart:
        raise ConfigError(f"{folder}: already holds checkpoints ({existing[-1].name}); pass --resume auto to "
                          "continue, --restart to start over, or another --run_dir")
    return RetrainJob(exp, raw_ds, space, the_arch, folder, resume, ds_config)
