"""What both training paths build from one experiment config, in one order: so one seed gives one super-net.

Order matters for bit-identical runs: the loader is built first (it draws nothing from the global RNG),
then the class count is resolved from the data, the objective built, the global RNG seeded with
:func:`supernet_seed` and only then the super-net and the strategy are built. Every rank builds the same initial
weights that way (the layer-parallel replicas rely on it: their version 0 is this initialisation).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ..common.logging import get_logger

__all__ = ["RunRequest", "SuperNetRun", "supernet_seed", "open_run", "build_run", "write_run_config", "extend_schedule"]

log = get_logger("lwsl_ds.supernet_run")


@dataclass(frozen=True)
class RunRequest:
    """What a launcher parsed: the validated configs and the command-line switches of one super-net run."""

    cfg: Any                      # ExperimentConfig (overrides applied)
    ds: dict[str, Any]            # the DeepSpeed JSON
    ds_where: str = "ds_config"   # its path, named in errors
    run_dir: Optional[Path] = None  # --run_dir (default: <run_root>/<name>/supernet)
    resume: bool = False
    backend: str = "deepspeed"    # or "reference" (plain torch optimizers, the oracle)

    @classmethod
    def load(cls, config: str | Path, overrides: Iterable[str], ds_config: str | Path, *,
             run_dir: str | Path | None = None, resume: bool = False, backend: str = "deepspeed") -> "RunRequest":
        """Load and validate the experiment YAML (with overrides) and the ds_config; nothing is built yet."""
        from ..config import load_experiment
        from ..config.ds_config import load_ds_config

        return cls(load_experiment(config, overrides), load_ds_config(ds_config), str(ds_config),
                   Path(run_dir) if run_dir else None, resume, backend)

    def fingerprint(self, world_size: int) -> dict[str, Any]:
        """What a ``--resume`` of this run must not change (lwsl_ds/config/fingerprint.py)."""
        from ..config.fingerprint import train_fingerprint

        return train_fingerprint(self.cfg, self.ds, world_size, self.backend)

    @property
    def new_run_hint(self) -> str:
        """The way out of a refused resume, for the error message."""
        return f"start a new run with another name= (not {self.cfg.name!r})"


@dataclass
class SuperNetRun:
    """The built parts of one run (identical on every rank, except ``loader``: None where no data is read)."""

    cfg: Any
    space: Any
    data_cfg: Any          # cfg.data with the resolution resolved
    objective: Any
    net: Any               # SuperNet, on this rank's device
    strategy: Any
    seed: int
    views: int             # images per sample: 2 for infonce, else 1
    batch: int             # images per rank per step
    loader: Any
    steps_per_epoch: int
    total: int             # steps of the whole run

    def recorded(self, groups: list[list[int]], micro_batches: Any = None) -> Any:
        """The config as training resolved it (class count, resolution, layer groups, micro-batch plan)."""
        from ..config.recorded import resolve_run_config

        return resolve_run_config(self.cfg, space=self.space, data_resolution=self.data_cfg.out_resolution,
                                  groups=groups, micro_batches=micro_batches)


def supernet_seed(cfg: Any) -> int:
    """The one seed of super-net training (weights, per-step sampling RNG): ``common.seeding.run_seed`` of the
    experiment's and the train section's seeds, the rule retraining uses too."""
    from ..common.seeding import run_seed

    return run_seed(cfg.seed, cfg.train.seed)


def open_run(req: RunRequest, world_size: int) -> Path:
    """Split the CPU cores between this node's ranks, claim the super-net folder; returns the folder."""
    import torch

    from ..common.dist import set_cpu_threads
    from ..config.layout import claim, phase_dir

    if not torch.cuda.is_available():  # CPU: split this node's cores between its ranks
        set_cpu_threads(req.cfg.train.threads, int(os.environ.get("LOCAL_WORLD_SIZE", world_size)))
    # a folder of another phase is refused (lwsl_ds/config/layout.py)
    return claim(req.run_dir or phase_dir(req.cfg, "supernet"), "supernet")


def _loader_facts(loader: Any, t: Any) -> dict[str, int]:
    """Steps per epoch, steps of the run and the data's class count (what ranks without data are sent)."""
    spe = len(loader)
    total = spe * t.epochs if t.max_steps is None else min(t.max_steps, spe * t.epochs)
    return {"spe": spe, "total": total, "num_classes": loader.num_classes}


def _fit_loader(cfg: Any, data_cfg: Any, batch: int, views: int, rank: int, ranks: int, local_rank: int) -> Any:
    """The training loader of this data rank (split "fit": train minus data.holdout, which the search scores on)."""
    from ..data import build_loader
    from ..data.loader import describe_pipeline

    loader = build_loader(data_cfg, "fit", batch_size=batch, augment="train", views=views, rank=rank,
                          world_size=ranks, local_rank=local_rank, seed=cfg.seed, drop_last=True)
    log.info("%s", describe_pipeline(data_cfg, loader, "fit"))
    return loader


def build_run(cfg: Any, ds: dict[str, Any], *, data_rank: int, data_ranks: int, local_rank: int,
                   reads_data: bool = True, share: Optional[Callable[[Optional[dict]], dict]] = None) -> SuperNetRun:
    """Space, loader, class count, objective, seeded super-net and strategy of ``cfg``, in the order above.

    ``data_ranks`` ranks share the data (the per-rank batch is the ds_config's over them); a rank with
    ``reads_data=False`` builds no loader and gets the loader's facts through ``share`` (layer-parallel: a
    broadcast from rank 0).
    """
    from ..common.dist import device
    from ..common.seeding import seed_everything
    from ..config.ds_config import micro_batch_size
    from ..config.recorded import resolve_num_classes
    from ..objectives import objective_of
    from ..space import SuperNet, load_space
    from ..strategies import get_strategy

    t = cfg.train
    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
    data_cfg = cfg.data if cfg.data.resolution is not None else dataclasses.replace(cfg.data,
                                                                                    resolution=space.resolution)
    views, batch = (2 if t.objective == "infonce" else 1), micro_batch_size(ds, data_ranks)
    loader = _fit_loader(cfg, data_cfg, batch, views, data_rank, data_ranks, local_rank) if reads_data else None
    facts = _loader_facts(loader, t) if loader is not None else None
    facts = share(facts) if share is not None else facts
    space = resolve_num_classes(space, cfg, facts["num_classes"])  # the data's class count unless the config sets one
    objective = objective_of(t, space.num_classes)
    seed = supernet_seed(cfg)
    seed_everything(seed)  # identical initial weights on every rank
    net = SuperNet(space, objective).to(device())
    strategy = get_strategy(t.strategy, layer_input_init=t.layer_input_init)
    return SuperNetRun(cfg, space, data_cfg, objective, net, strategy, seed, views, batch, loader, facts["spe"],
                       facts["total"])


def write_run_config(run_dir: Path, cfg: Any, recorded: Any, ds: dict[str, Any]) -> None:
    """``config.yaml`` (as resolved; later phases load it) and ``ds_config.json``, atomically (rank 0)."""
    from ..common.atomic import write_atomic, write_json_atomic
    from ..config.recorded import recorded_yaml

    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config.yaml", recorded_yaml(cfg, recorded))
    write_json_atomic(run_dir / "ds_config.json", dict(ds))


def extend_schedule(backend: Any, *, old_total: Optional[int], total: int, step: int, mode: str,
                    loud: bool = True) -> None:
    """A resumed run longer than its checkpoint's schedule: re-plan or refuse (never the extra steps at lr 0)."""
    from ..engines.extend import extend_schedules, schedulers_of

    line = extend_schedules(schedulers_of(backend), old_total=old_total, total=total, step=step, mode=mode,
                            key="train.extend")
    if line and loud:
        log.warning("%s", line)
