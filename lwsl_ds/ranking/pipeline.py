"""The rank phase from a config: pick archs, resolve ground truth and FLOPs, score (sharded over ranks),
compare, measure representation shift, write the report. Used by ``launchers/rank.py`` and the benchmark.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..common.atomic import write_json_atomic
from ..common.dist import group_rank, group_size
from ..config.schema import ConfigError
from ..config.sections.rank import RankConfig
from ..search.scoring import build_evaluator  # re-exported: rank.py and the benchmark import it from here
from ..space import Arch, SearchSpace
from .report import RankingReport, compare, write_report
from .sampling import parse_arch_list, sample_archs
from .shift import ShiftResult, representation_shift
from .truth import GroundTruth, load_truth

__all__ = ["resolve_truth", "flops_lookup", "select_archs", "score_sharded", "run_shift", "run_ranking",
           "build_evaluator"]


def resolve_truth(cfg: RankConfig, space: SearchSpace) -> GroundTruth:
    """The configured ground truth; ``rank.truth`` defaults to NAS-Bench-Macro for that space only."""
    spec_ = cfg.truth
    if spec_ is None:
        if space.name != "nasbench_macro":
            raise ConfigError(f"rank.truth: required for space {space.name!r} (a CSV/JSON file of arch -> "
                              "accuracy); only the nasbench_macro space has a built-in ground truth")
        spec_ = "nasbench_macro"
    return load_truth(spec_, space, nasbench_path=cfg.nasbench_path, keys=cfg.nasbench_keys,
                      metric=cfg.nasbench_metric)


def flops_lookup(space: SearchSpace, truth: GroundTruth) -> Callable[[Arch], float]:
    """FLOPs of an arch: from the ground-truth table when it has them (NAS-Bench-Macro), else the cost table."""
    if truth.flops is not None:
        table = truth.flops
        return lambda a: table[a.key]
    from ..flops import build_cost_table

    cost = build_cost_table(space)
    return lambda a: float(cost.cost(a).flops)


def _read_arch_file(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"rank.archs_file: {path} not found")
    return [ln.split("#", 1)[0].strip() for ln in p.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def select_archs(cfg: RankConfig, space: SearchSpace, truth: GroundTruth,
                 flops: Optional[Callable[[Arch], float]] = None) -> list[Arch]:
    """The given list (``rank.archs`` / ``rank.archs_file``) or a seeded sample of archs with ground truth."""
    if cfg.archs or cfg.archs_file:
        where = "rank.archs" if cfg.archs else f"rank.archs_file {cfg.archs_file}"
        archs = parse_arch_list(space, cfg.archs or _read_arch_file(str(cfg.archs_file)), where)
        missing = [a.key for a in archs if a.key not in truth.accuracy]
        if missing:
            raise ConfigError(f"{where}: {len(missing)} arch(s) have no ground truth in {truth.source}, e.g. "
                              f"{missing[0]!r}" + (f" ({truth.notes['keys']})" if "keys" in truth.notes else ""))
        too_big = [k for k in cfg.top_k if k > len(archs)]
        if too_big:
            raise ConfigError(f"rank.top_k: {too_big[0]} is larger than the {len(archs)} archs listed in {where}")
        return archs
    return sample_archs(space, cfg.num_archs, seed=cfg.seed, pool=truth.keys(), stratify=cfg.stratify,
                        flops=flops, strata=cfg.strata)


def score_sharded(archs: list[Arch], score: Callable[[Arch], float], *, progress: bool = False) -> list[float]:
    """Score every arch once over all ranks (round-robin, gathered in order; see search.distributed).

    The progress bar (rank 0) counts rank 0's share. Non-finite scores are errors.
    """
    from ..search.distributed import score_distributed

    rank, world = group_rank(), group_size()
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(range(0, len(archs), world)), desc="scoring archs" + (f" (rank 0 of {world})"
                   if world > 1 else ""), unit="arch", dynamic_ncols=True)
    try:
        scores = score_distributed(archs, score, on_done=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    bad = [(a.key, s) for a, s in zip(archs, scores) if not math.isfinite(s)]
    if bad:
        raise ValueError(f"arch {bad[0][0]}: score {bad[0][1]} is not finite")
    return scores


def run_shift(supernet, cfg: RankConfig, batches: Iterable[object], out_dir: str | Path, *,
              device="cpu", title: str = "") -> ShiftResult:
    """Measure representation shift of ``rank.shift_layer`` and write ``shift.json`` + ``shift_heatmap.png``."""
    from .plots import heatmap_png

    res = representation_shift(supernet, batches, layer=cfg.shift_layer, num_images=cfg.shift_images,
                               seed=cfg.seed, bn=cfg.shift_bn, device=device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "shift.json", res.as_dict())
    head = f"{title}  " if title else ""
    heatmap_png(out / "shift_heatmap.png", res.matrix, res.names,
                title=f"{head}layer {res.layer}: off-diagonal mean {res.off_diagonal_mean:.3f} "
                      f"({res.num_images} images, BN {res.bn})")
    return res


def run_ranking(space: SearchSpace, cfg: RankConfig, score: Callable[[Arch], float], out_dir: str | Path | None, *,
                truth: Optional[GroundTruth] = None, archs: Optional[list[Arch]] = None, progress: bool = False,
                meta: Optional[dict] = None, title: str = "") -> RankingReport:
    """Select archs, score them (sharded when a process group exists), compare with the truth, write files.

    Only global rank 0 writes (``out_dir=None`` writes nothing).
    """
    truth = truth or resolve_truth(cfg, space)
    flops = flops_lookup(space, truth) if (cfg.stratify == "flops" or truth.flops is None) else None
    archs = archs or select_archs(cfg, space, truth, flops)
    scores = score_sharded(archs, score, progress=progress)
    floor_flops = None if truth.flops is not None else {a.key: flops(a) for a in archs}  # type: ignore[misc]
    report = compare(archs, scores, truth, top_k=cfg.top_k, resamples=cfg.bootstrap, confidence=cfg.confidence,
                     seed=cfg.seed, flops=floor_flops, meta={"space": space.name, **(meta or {})}, bands=cfg.bands)
    if out_dir is not None and group_rank() == 0:
        write_report(report, out_dir, title=title)
    return report
