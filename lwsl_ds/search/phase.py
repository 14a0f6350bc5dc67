"""The search phase as ``launchers/search.py`` runs it: resolve, count costs, resume, score, write the outputs.

    phase = plan_search(checkpoint, config, overrides, out)       # config errors first, nothing loaded yet
    code = run_search(phase, options, preemption)                 # 0; a user error raises (one line, exit 2)

Order matters for the user: the run's recorded config and the output folder are checked before torch is
imported; the cost table and the constraint check come before the super-net or any data is loaded (an
infeasible limit fails in seconds); a finished search rewrites its outputs without loading either.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from ..common.dist import barrier, group_rank, group_size, has_group

__all__ = ["SearchPhase", "SearchOptions", "plan_search", "run_search"]

log = logging.getLogger("lwsl_ds.search")


@dataclass(frozen=True)
class SearchPhase:
    """What one search works on: the merged config, the super-net folder and the output / cache folders."""

    cfg: Any
    checkpoint: Path
    out_dir: Path
    cache_dir: Path
    label: str  # names the config in error lines: --config, else --checkpoint


@dataclass(frozen=True)
class SearchOptions:
    """Command-line settings that are not part of the config."""

    restart: bool = False
    device: Optional[str] = None
    progress: bool = True
    dist_timeout: float = 1800.0


def plan_search(checkpoint: Optional[str], config: Optional[str], overrides: Sequence[str],
                out: Optional[str] = None) -> SearchPhase:
    """The run's recorded config with ``config`` and ``overrides`` on top, and the claimed output folder."""
    from ..config.layout import beside_supernet, claim
    from .loading import experiment_for_run, supernet_of

    ckpt = supernet_of(checkpoint, config, overrides)
    cfg = experiment_for_run(ckpt, config, overrides)
    out_dir = Path(out or cfg.search.out_dir or beside_supernet(ckpt, cfg, "search"))
    claim(out_dir, "search", option="--out", write=int(os.environ.get("RANK", "0")) == 0)
    cache_dir = Path(cfg.search.cache_dir) if cfg.search.cache_dir else out_dir / "cache"
    return SearchPhase(cfg, ckpt, out_dir, cache_dir, str(config or checkpoint))


def open_group(timeout_s: float) -> bool:
    """Create the process group only when launched with several ranks; True when this call created it.

    Only a group this call created is destroyed at the end: called in-process (the benchmark, the regret
    test) the search must not tear down its caller's group.
    """
    if has_group() or (int(os.environ.get("WORLD_SIZE", "1")) <= 1 and "SLURM_NTASKS" not in os.environ):
        return False
    from ..common.dist import init_distributed

    init_distributed(timeout_s=timeout_s)
    return True


def close_group(owned: bool) -> None:
    """Wait for every rank, then destroy the group if this search created it."""
    barrier()
    if owned and has_group():
        import torch.distributed as td

        td.destroy_process_group()


def _build(phase: SearchPhase, restart: bool) -> tuple[Any, Any, Any]:
    """(space, cost table, Search): rank 0 counts the costs, the others read its cache; limits checked."""
    from ..config.schema import ConfigError
    from ..flops import build_cost_table
    from ..space import load_space
    from .evolution import Search

    cfg = phase.cfg
    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
    table = build_cost_table(space, phase.cache_dir) if group_rank() == 0 else None
    barrier()
    if table is None:
        table = build_cost_table(space, phase.cache_dir)
    try:
        search = Search(space, table, cfg.search, out_dir=phase.out_dir, restart=restart,
                        extra_fingerprint={"checkpoint": str(phase.checkpoint.resolve())})
    except ConfigError as e:  # InfeasibleConstraint included: the message names the feasible range
        raise type(e)(f"{phase.label}: {e}") from None
    return space, table, search


def _log_start(phase: SearchPhase, table: Any, search: Any) -> None:
    from .scoring import scoring_split_text

    s = phase.cfg.search
    log.info("%s", table.summary())
    log.info("candidates are scored on the %s; retraining reports on the val split", scoring_split_text(phase.cfg))
    log.info("search: %s, %d x %d candidates, %s, %d rank(s), output %s", s.algorithm, s.generations,
             s.population, search.constraints.describe(), group_size(), phase.out_dir)


def run_search(phase: SearchPhase, options: SearchOptions, preemption: Any) -> int:
    """Run (or resume) the search of ``phase`` on every rank; rank 0 writes the outputs. Returns 0."""
    owned = open_group(options.dist_timeout)
    space, table, search = _build(phase, options.restart)
    main_rank = group_rank() == 0
    if main_rank:
        _log_start(phase, table, search)
    t0 = time.time()
    search.resume()
    if search.done:  # finished before: rewrite the outputs without loading the super-net or any data
        if main_rank:
            log.info("search in %s already finished (%d evaluations); writing the outputs", phase.out_dir,
                     len(search.history))
            s = phase.cfg.search
            write_outputs(space, search, phase, t0=t0,
                          objective=phase.cfg.train.objective if s.objective == "auto" else s.objective)
        close_group(owned)
        return 0
    evaluator, images = _evaluator(phase, options.device)
    search.run(evaluator.score, progress=main_rank and options.progress and sys.stderr.isatty(),
               on_generation=_after_generation(phase, space, preemption))
    if main_rank:  # the FLOPs baseline beside the pick: did the super-net change it?
        from ..common.atomic import write_json_atomic
        from .baseline import BASELINE_FILE, baseline_record

        base = baseline_record(table, search.constraints, search.history, evaluator.score)
        write_json_atomic(phase.out_dir / BASELINE_FILE, base)
        write_outputs(space, search, phase, objective=evaluator.objective, t0=t0, images=images)
    close_group(owned)
    return 0


def _evaluator(phase: SearchPhase, device: Optional[str]) -> tuple[Any, Optional[int]]:
    """(evaluator, scored images or None): the super-net loaded, the configured estimator built."""
    import torch

    from ..common.dist import device as rank_device
    from ..data.loader import describe_pipeline
    from .loading import load_supernet_from_run
    from .scoring import build_evaluator

    s = phase.cfg.search
    supernet = load_supernet_from_run(phase.checkpoint, config=phase.cfg)
    evaluator, scored = build_evaluator(supernet, phase.cfg, device=torch.device(device) if device else rank_device())
    if scored is None:  # search.score_table: every score read from the table, no data loaded
        log.info("scores read from %s (%s)", s.score_table, s.estimator)
        return evaluator, None
    if group_rank() == 0:
        log.info("%s", describe_pipeline(phase.cfg.data, scored, "scored"))
    return evaluator, scored.num_samples if s.val_batches is None else min(scored.num_samples,
                                                                           s.val_batches * s.batch_size)


def _after_generation(phase: SearchPhase, space: Any, preemption: Any):
    """The per-generation hook: log and plot (rank 0); stop after this generation when preempted (every rank)."""
    from .report import plot_search

    s = phase.cfg.search

    def hook(search: Any, new: list[dict]) -> None:
        if group_rank() == 0:
            best = search.result().best
            log.info("generation %d/%d: %d new, best %s score %.4f (%s) at %.2fM MACs, %.3fM params",
                     search.generation, s.generations, len(new), best["arch"], best["score"], s.estimator,
                     best[s.cost_metric] / 1e6, best["params"] / 1e6)
            plot_search(phase.out_dir / "search.png", search.history, metric=s.cost_metric, max_macs=s.max_macs,
                        min_macs=s.min_macs, best=best,
                        title=f"{space.name}: {s.algorithm}, {search.constraints.describe()}")
        # Every rank, after the generation's state was written (rank 0, atomic): one int all-reduce.
        if preemption.should_stop() and not search.done:
            exit_preempted(preemption, search)

    return hook


def exit_preempted(preemption: Any, search: Any) -> None:
    """Say how the search continues, requeue under Slurm (rank 0), exit 0; the state file is already written."""
    if group_rank() == 0:
        how = (f"requeueing Slurm job {os.environ['SLURM_JOB_ID']}; it continues by itself"
               if os.environ.get("SLURM_JOB_ID") else "run the same command again (without --restart) to continue")
        log.warning("preempted by %s after generation %d/%d: state in %s (best_arch.yaml comes at the end); %s",
                    preemption.signal_name or "a signal to another rank", search.generation, search.cfg.generations,
                    search.state_path, how)
    logging.shutdown()  # flush before os._exit
    preemption.requeue_and_exit(0)


def write_outputs(space: Any, search: Any, phase: SearchPhase, *, objective: str, t0: float,
                  images: Optional[int] = None) -> None:
    """Best arch YAML (loadable by retraining), the plot and the resolved config (rank 0 only)."""
    from ..common.atomic import write_json_atomic
    from ..config.schema import to_dict
    from ..space import parse_arch, save_arch
    from .baseline import BASELINE_FILE, describe_baseline
    from .report import plot_search
    from .scoring import scoring_split_text

    cfg, s, out_dir = phase.cfg, phase.cfg.search, phase.out_dir
    result = search.result()
    best = result.best
    path = save_arch(out_dir / "best_arch.yaml", space, parse_arch(space, best["arch"]), score=best["score"],
                     flops=best["flops"], conv_linear=best["conv_linear"], params=best["params"],
                     objective=objective, algorithm=s.algorithm, evaluations=result.evaluations,
                     constraints=search.constraints.describe(), checkpoint=str(phase.checkpoint),
                     score_split=scoring_split_text(cfg, images))
    plot_search(out_dir / "search.png", result.history, metric=s.cost_metric, max_macs=s.max_macs,
                min_macs=s.min_macs, best=best, title=f"{space.name}: {s.algorithm}, {search.constraints.describe()}")
    write_json_atomic(out_dir / "search_config.json", to_dict(cfg))
    base_path = out_dir / BASELINE_FILE
    base = json.loads(base_path.read_text()) if base_path.is_file() else None
    log.info("done in %.0f s: %d evaluations%s; best %s (%s) score %.4f (%s) on the %s, %.2fM MACs -> %s; %s",
             time.time() - t0, result.evaluations, " (space exhausted)" if result.exhausted else "",
             best["arch"], best["named"], best["score"], s.estimator, scoring_split_text(cfg, images),
             best[s.cost_metric] / 1e6, path, describe_baseline(base, best, s.cost_metric))
