"""The rank phase as ``launchers/rank.py`` runs it: everything cheap checked first, then load, score, compare, shift.

    phase = plan_rank(checkpoint, config, overrides, out)   # truth, arch list, output folder: no torch yet
    run_rank(phase, device=None, progress=True, title="")   # every rank scores its share; rank 0 writes

Bad ground truth, arch lists and output folders fail before the super-net or any data is loaded.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..config.schema import ConfigError

__all__ = ["RankPhase", "plan_rank", "run_rank"]


@dataclass(frozen=True)
class RankPhase:
    """What one ranking works on: merged config, super-net folder, space, ground truth, archs, output folder."""

    cfg: Any
    checkpoint: Path
    config: Optional[str]
    space: Any
    truth: Any
    archs: list
    out: Path


def plan_rank(checkpoint: Optional[str], config: Optional[str], overrides: Sequence[str],
              out: Optional[str] = None) -> RankPhase:
    """The run's recorded config with ``config`` / ``overrides`` on top, the ground truth and the archs to score."""
    from ..config.layout import beside_supernet, check_folder
    from ..search.loading import experiment_for_run, supernet_of
    from ..space import load_space
    from .pipeline import flops_lookup, resolve_truth, select_archs

    ckpt = supernet_of(checkpoint, config, overrides)
    cfg = experiment_for_run(ckpt, config, overrides)
    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
    truth = resolve_truth(cfg.rank, space)  # bad truth / arch lists fail here, before any loading
    archs = select_archs(cfg.rank, space, truth, flops_lookup(space, truth) if cfg.rank.stratify == "flops" else None)
    folder = Path(out) if out else beside_supernet(ckpt, cfg, "rank")
    check_folder(folder, "rank", option="--out")
    return RankPhase(cfg, ckpt, config, space, truth, archs, folder)


def run_rank(phase: RankPhase, *, device: Optional[str] = None, progress: bool = True, title: str = "") -> int:
    """Score ``phase.archs`` (sharded over the ranks of a multi-rank launch), compare, measure shift; returns 0."""
    from ..common import dist

    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if multi:
        dist.init_distributed()
    import torch

    torch.manual_seed(phase.cfg.seed)
    dev = torch.device(device) if device else dist.device()
    supernet, evaluator, val_loader = _load(phase, dev)
    t0 = time.perf_counter()
    report = _rank(phase, evaluator, progress=progress and dist.is_main() and sys.stderr.isatty(), title=title)
    if dist.is_main():
        rank_cfg, s = phase.cfg.rank, phase.cfg.search
        print(report.summary())
        print(f"scored {len(phase.archs)} archs ({s.estimator} estimator) in {time.perf_counter() - t0:.1f} s "
              f"-> {phase.out}/ranking.json")
        if rank_cfg.shift:
            from .pipeline import run_shift

            res = run_shift(supernet, rank_cfg, val_loader, phase.out, device=dev, title=title)
            print(f"representation shift, layer {res.layer} ({', '.join(res.names)}): off-diagonal mean "
                  f"{res.off_diagonal_mean:.4f} over {res.num_images} images -> {phase.out}/shift.json")
    dist.barrier()
    if multi:
        dist.shutdown()
    return 0


def _load(phase: RankPhase, device: Any) -> tuple[Any, Any, Any]:
    """(super-net on ``device``, evaluator, scored loader); rank 0 claims the output folder in between."""
    from ..common import dist
    from ..search.loading import load_supernet_from_run
    from .pipeline import build_evaluator

    supernet = load_supernet_from_run(phase.checkpoint, config=phase.cfg).to(device)
    if supernet.space.name != phase.space.name:
        raise ConfigError(f"checkpoint holds space {supernet.space.name!r}, config says {phase.space.name!r}")
    if dist.is_main():
        from ..config.layout import claim

        claim(phase.out, "rank", option="--out")
    evaluator, val_loader = build_evaluator(supernet, phase.cfg, device=device)
    return supernet, evaluator, val_loader


def _rank(phase: RankPhase, evaluator: Any, *, progress: bool, title: str) -> Any:
    """Score, compare with the truth and write ``ranking.json`` + the scatter plot (rank 0)."""
    from .pipeline import run_ranking

    s = phase.cfg.search
    meta = {"checkpoint": str(phase.checkpoint), "config": str(phase.config) if phase.config else None,
            "recal_batches": s.recal_batches, "val_batches": s.val_batches, "estimator": s.estimator}
    return run_ranking(phase.space, phase.cfg.rank, evaluator.score, phase.out, truth=phase.truth,
                       archs=phase.archs, progress=progress, meta=meta, title=title)
