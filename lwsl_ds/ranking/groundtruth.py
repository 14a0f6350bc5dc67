"""Ground truth for a space without a benchmark table: train K sampled archs from scratch, briefly, and record
their held-out top-1 (a CSV that :func:`lwsl_ds.ranking.truth.load_truth_file` reads).

Each arch is trained in this process by the retraining loop (``lwsl_ds.retrain.trainer.run``, one DeepSpeed
engine, the experiment's ``retrain`` recipe) for a fixed number of optimizer steps whose cosine schedule
ends at that step, then evaluated on the whole val split. Archs are a seeded sample stratified by FLOPs
(cheap and expensive archs both present for small K). Every arch keeps its run directory; an arch whose
``final.json`` exists is not trained again, so an interrupted generation resumes where it stopped.

Cost: K x (steps x one sub-net step + one val pass + one DeepSpeed checkpoint); see docs/demo.md for the
numbers on the demo space. A short training ranks archs by how fast they learn, which is what a one-shot
super-net can predict at best; its noise is the seed-to-seed spread of one short run (not averaged).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..common.atomic import atomic_path, write_atomic, write_json_atomic
from ..config.schema import ConfigError
from ..space import Arch, SearchSpace, describe
from .sampling import sample_archs
from .truth import GroundTruth, load_truth_file

__all__ = ["TruthSettings", "pick_archs", "generate_truth", "experiment_loader", "default_out"]

TRUTH_FILE = "truth.csv"
ARCHS_FILE = "archs.txt"


@dataclass(frozen=True)
class TruthSettings:
    """How the ground truth is made: how many archs, how long each trains, and the seed of the sample."""

    num_archs: int = 10
    steps: int = 100
    seed: int = 0
    strata: Optional[int] = None  # FLOPs bins; None: one bin per 2 archs (at least 2 bins)

    def check(self) -> None:
        """Clear errors for settings that cannot work."""
        if self.num_archs < 2:
            raise ConfigError(f"ground truth: num_archs {self.num_archs} must be >= 2 (a ranking needs two archs)")
        if self.steps < 1:
            raise ConfigError(f"ground truth: steps {self.steps} must be >= 1")
        if self.strata is not None and not 1 <= self.strata <= self.num_archs:
            raise ConfigError(f"ground truth: strata {self.strata} must be in 1..num_archs ({self.num_archs})")


def pick_archs(space: SearchSpace, settings: TruthSettings) -> list[Arch]:
    """The seeded sample of archs, stratified by fvcore FLOPs of the space's cost table; sorted by FLOPs."""
    from ..flops import build_cost_table

    cost = build_cost_table(space)
    flops: Callable[[Arch], float] = lambda a: float(cost.cost(a).flops)  # noqa: E731
    strata = settings.strata or max(2, settings.num_archs // 2)
    archs = sample_archs(space, settings.num_archs, seed=settings.seed, stratify="flops", flops=flops,
                         strata=min(strata, settings.num_archs))
    return sorted(archs, key=lambda a: (flops(a), a))


def _overrides(steps: int, steps_per_epoch: int) -> list[str]:
    """Retrain overrides for one short run: the schedule spans exactly ``steps``; no mid-run eval, no export."""
    epochs = steps / steps_per_epoch
    # max_steps as well: epochs x steps_per_epoch may round up to steps + 1 in floating point.
    return [f"retrain.epochs={epochs!r}", f"retrain.max_steps={steps}", "retrain.export=false",
            f"retrain.eval_every_epochs={epochs!r}", f"retrain.checkpoint_every_steps={steps}",
            f"retrain.log_every_steps={max(1, steps // 4)}", "retrain.keep_checkpoints=1",
            f"retrain.warmup_epochs={min(0.1 * epochs, 0.2)!r}"]


def _steps_per_epoch(exp, micro_batch: int) -> int:
    """Optimizer steps per epoch of the train split at this micro batch (one process, no accumulation)."""
    from ..data import build_loader

    loader = build_loader(exp.data, "train", batch_size=micro_batch, augment="val", drop_last=True)
    return len(loader)


def _train_one(exp, ds_config: dict, ds_config_path: str, space: SearchSpace, arch: Arch, run_dir: Path) -> dict:
    """Train ``arch`` with the retraining loop (resuming its own checkpoint) and return its final record."""
    from ..retrain.trainer import RetrainJob, run

    run_dir.mkdir(parents=True, exist_ok=True)
    job = RetrainJob(exp=exp, ds_config=ds_config, ds_config_path=ds_config_path, space=space, arch=arch,
                     run_dir=run_dir, resume="auto")
    # The loop prints one JSON line per log step; keep them in the arch's folder, not on the console.
    with open(run_dir / "stdout.log", "a") as log, contextlib.redirect_stdout(log):
        return run(job)


def experiment_loader(config: Optional[str | Path], checkpoint: Optional[str | Path] = None,
                      overrides: Sequence[str] = ()) -> Callable[[Sequence[str]], object]:
    """``extra -> experiment config``: ``config`` and ``overrides`` (plus ``extra``), on top of the recorded config
    of the super-net run ``checkpoint`` when one is given (as the search and the ranking read it)."""
    if checkpoint is None and config is None:
        raise ConfigError("pass --config <experiment.yaml> or --checkpoint <super-net folder> (its recorded config)")
    if checkpoint is not None:
        from ..search.loading import experiment_for_run, supernet_of

        run = supernet_of(checkpoint)
        return lambda extra: experiment_for_run(run, config, [*overrides, *extra])
    from ..config.loader import load_experiment

    return lambda extra: load_experiment(str(config), [*overrides, *extra])


def default_out(config: Optional[str | Path], checkpoint: Optional[str | Path], overrides: Sequence[str]) -> Path:
    """``groundtruth/`` next to the super-net folder of ``checkpoint`` (only with one: a bare config has no run)."""
    if checkpoint is None:
        raise ConfigError("--out is required without --checkpoint (the ground truth then belongs to no run)")
    from ..config.layout import beside_supernet

    return beside_supernet(Path(checkpoint), experiment_loader(config, checkpoint, overrides)([]), "groundtruth")


def generate_truth(config: Optional[str | Path], ds_config: str | Path, out_dir: str | Path, settings: TruthSettings,
                   *, overrides: Sequence[str] = (), progress: bool = True,
                   checkpoint: Optional[str | Path] = None) -> GroundTruth:
    """Train ``settings.num_archs`` sampled archs for ``settings.steps`` steps each; write and return the truth.

    The experiment is ``config`` plus ``overrides``, on top of the recorded config of ``checkpoint`` (a
    trained super-net run) when given. Writes ``<out_dir>/truth.csv`` (arch, named, accuracy, flops,
    params, steps, seconds), ``archs.txt`` (one key per line, for ``rank.archs_file``), ``meta.json`` and
    one run directory per arch.
    """
    from ..config.ds_config import load_ds_config, micro_batch_size
    from ..flops import build_cost_table
    from ..retrain.trainer import prepare_ds_config
    from ..space import load_space

    settings.check()
    out = Path(out_dir)
    experiment = experiment_loader(config, checkpoint, overrides)
    exp = experiment([])
    space = load_space(exp.space.name, exp.space.resolution, exp.space.num_classes)
    raw_ds = load_ds_config(str(ds_config))
    prepare_ds_config(raw_ds, 1, str(ds_config))  # same checks as the retrain launcher, before any training
    if int(raw_ds.get("gradient_accumulation_steps", 1)) != 1:
        raise ConfigError(f"{ds_config}: ground truth needs gradient_accumulation_steps 1 (steps are optimizer "
                          "steps of one micro batch)")
    spe = _steps_per_epoch(exp, micro_batch_size(raw_ds, 1))
    exp = experiment(_overrides(settings.steps, spe))
    archs = pick_archs(space, settings)
    cost = build_cost_table(space)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    rows = []
    for i, arch in enumerate(archs):
        row, top1, state = _arch_row(exp, raw_ds, str(ds_config), space, cost, arch, out / arch.key)
        rows.append(row)
        if progress:
            print(f"[ground truth {i + 1}/{len(archs)}] {row['named']:<24} {row['flops'] / 1e6:.2f}M MACs  "
                  f"top-1 {top1:.3f}  ({state})", file=sys.stderr, flush=True)
    _write_csv(out / TRUTH_FILE, rows)
    write_atomic(out / ARCHS_FILE, "".join(f"{r['arch']}  # {r['named']}\n" for r in rows))
    meta = {"config": str(config) if config is not None else None, "ds_config": str(ds_config),
            "checkpoint": str(checkpoint) if checkpoint is not None else None, "overrides": list(overrides),
            "num_archs": settings.num_archs, "steps": settings.steps, "seed": settings.seed,
            "steps_per_epoch": spe, "epochs": settings.steps / spe, "space": space.name,
            "seconds": round(time.perf_counter() - t_all, 1)}
    write_json_atomic(out / "meta.json", meta)
    return load_truth_file(out / TRUTH_FILE, space)


def _arch_row(exp, ds_config: dict, ds_config_path: str, space: SearchSpace, cost, arch: Arch,
              run_dir: Path) -> tuple[dict, float, str]:
    """(truth row, top-1, how) of ``arch``: trained now, or read from its ``final.json`` if a run finished it."""
    final_path = run_dir / "final.json"
    t0 = time.perf_counter()
    if final_path.is_file():
        rec = json.loads(final_path.read_text())
        seconds = float(rec.get("gt_seconds", float("nan")))
        state = "done before"
    else:
        rec = _train_one(exp, ds_config, ds_config_path, space, arch, run_dir)
        seconds = time.perf_counter() - t0
        write_json_atomic(final_path, {**rec, "gt_seconds": seconds})  # the arch's "done" marker: whole or absent
        state = f"{seconds:.0f} s"
    top1 = float(rec["top1"])
    if not (0.0 <= top1 <= 1.0 and math.isfinite(top1)):
        raise RuntimeError(f"arch {arch.key}: top-1 {top1} from {final_path} is not in [0, 1]")
    c = cost.cost(arch)
    row = {"arch": arch.key, "named": describe(space, arch), "accuracy": f"{top1:.4f}", "flops": int(c.flops),
           "params": int(c.params), "steps": int(rec["step"]), "seconds": f"{seconds:.1f}"}
    return row, top1, state


def _write_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` as CSV atomically (a reader never sees half a table)."""
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
