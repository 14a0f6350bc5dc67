"""Evolutionary search over a trained super-net under FLOPs/params limits.

    python launchers/search.py --config configs/demo.yaml       # the super-net in <run_root>/<name>/supernet
    python launchers/search.py --checkpoint runs/demo/supernet search.max_flops=400e6   # the run's recorded config
    deepspeed --num_gpus 2 launchers/search.py --config configs/demo.yaml --checkpoint runs/demo/supernet
    torchrun --standalone --nproc_per_node 2 launchers/search.py --config ... --checkpoint ...
    python launchers/search.py ... --set search.max_flops=330e6 --set search.generations=5

Writes into ``search.out_dir`` (default: ``search/`` next to the super-net folder, i.e.
``<run_root>/<name>/search``; a folder of another phase is refused): ``best_arch.yaml`` (loadable with
``lwsl_ds.space.load_arch``, i.e. by retraining), ``candidates.jsonl`` (one line per evaluated
candidate), ``search.png`` (top-1 vs FLOPs, Pareto front, constraint lines) and ``search_state.json``
(rewritten after every generation; running the same command again resumes, ``--restart`` starts over).
Candidates of a generation are split over the ranks; the result equals a 1-rank run.
Preemption: on SIGUSR1/SIGTERM the search stops after the current generation (whose state is on disk),
rank 0 requeues the Slurm job (launchers/slurm/search.sbatch) or the process exits 0 outside Slurm; the
same command continues, with the same result as an uninterrupted search.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lwsl_ds.config.cli_args import add_override_args, overrides_of  # noqa: E402

log = logging.getLogger("lwsl_ds.search")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``--local_rank`` is accepted for the deepspeed launcher and ignored)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=None, help="experiment YAML on top of the run's recorded config (default: "
                                                  "the run's own; its space/objective must agree with the run)")
    p.add_argument("--checkpoint", default=None, help="folder of the trained super-net (or its supernet.pt); "
                                                      "default: <run_root>/<name>/supernet of --config")
    add_override_args(p)
    p.add_argument("--out", default=None, help="output folder (overrides search.out_dir)")
    p.add_argument("--restart", action="store_true", help="ignore a saved search state and start over")
    p.add_argument("--device", default=None, help="torch device (default: this rank's GPU, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dist-timeout", type=float, default=1800.0,
                   help="seconds a rank waits in a collective (above the longest generation's scoring share)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _init_distributed(timeout_s: float) -> bool:
    """Create the process group only when launched with several ranks (a plain process needs none).

    Returns whether this call created it: only then does the search destroy it at the end (called in-process,
    e.g. by the benchmark or a test, it must not tear down its caller's group).
    """
    import torch.distributed as td

    if td.is_initialized() or (int(os.environ.get("WORLD_SIZE", "1")) <= 1 and "SLURM_NTASKS" not in os.environ):
        return False
    try:
        from lwsl_ds.common.dist import init_distributed
    except ImportError:  # fall back to plain torch.distributed (gloo on CPU, nccl on GPU)
        from datetime import timedelta

        import torch

        td.init_process_group("nccl" if torch.cuda.is_available() else "gloo", timeout=timedelta(seconds=timeout_s))
        return True
    init_distributed(timeout_s=timeout_s)
    return True


def main(argv: list[str] | None = None) -> int:
    """Parse, build, search, write the outputs; returns the exit code."""
    # First of all: a SIGUSR1 arriving while torch imports must set the flag, not kill the rank.
    from lwsl_ds.common.preemption import Preemption

    preemption = Preemption.install()
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lwsl_ds.config import ConfigError
    from lwsl_ds.config.layout import beside_supernet, claim
    from lwsl_ds.search.loading import experiment_for_run, supernet_of

    try:  # the run's recorded config (resolved class count, resolution, ...), --config and overrides on top
        ckpt = supernet_of(args.checkpoint, args.config, overrides_of(args))
        cfg = experiment_for_run(ckpt, args.config, overrides_of(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    scfg = cfg.search
    out_dir = Path(args.out or scfg.out_dir or beside_supernet(ckpt, cfg, "search"))
    try:
        claim(out_dir, "search", option="--out", write=int(os.environ.get("RANK", "0")) == 0)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cache_dir = Path(scfg.cache_dir) if scfg.cache_dir else out_dir / "cache"

    import torch

    from lwsl_ds.flops import build_cost_table
    from lwsl_ds.search import InfeasibleConstraint, Search
    from lwsl_ds.search.distributed import rank_and_world
    from lwsl_ds.space import load_space

    owns_group = _init_distributed(args.dist_timeout)
    rank, world = rank_and_world()
    main_rank = rank == 0
    space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)

    # Cost table first (rank 0 counts, the others read its cache), then the constraint check: an
    # infeasible limit fails here, before the super-net or any data is loaded.
    if main_rank:
        table = build_cost_table(space, cache_dir)
    _barrier()
    if not main_rank:
        table = build_cost_table(space, cache_dir)
    try:
        search = Search(space, table, scfg, out_dir=out_dir, restart=args.restart,
                        extra_fingerprint={"checkpoint": str(ckpt.resolve())})
    except (ConfigError, InfeasibleConstraint) as e:
        print(f"error: {args.config or args.checkpoint}: {e}", file=sys.stderr)
        return 2
    if main_rank:
        log.info("%s", table.summary())
        from lwsl_ds.search.scoring import scoring_split_text

        log.info("candidates are scored on the %s; retraining reports on the val split", scoring_split_text(cfg))
        log.info("search: %s, %d x %d candidates, %s, %d rank(s), output %s", scfg.algorithm, scfg.generations,
                 scfg.population, search.constraints.describe(), world, out_dir)

    t0 = time.time()
    search.resume()
    if search.done:  # finished before: rewrite the outputs without loading the super-net or any data
        if main_rank:
            log.info("search in %s already finished (%d evaluations); writing the outputs", out_dir,
                     len(search.history))
            _write_outputs(space, search, cfg, ckpt, out_dir, t0=t0,
                           objective=cfg.train.objective if scfg.objective == "auto" else scfg.objective)
        _barrier()
        _shutdown(owns_group)
        return 0

    from lwsl_ds.search.loading import load_supernet_from_run
    from lwsl_ds.search.scoring import build_evaluator

    device = torch.device(args.device) if args.device else (
        torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu"))
    from lwsl_ds.data import DataError
    from lwsl_ds.data.loader import describe_pipeline

    supernet = load_supernet_from_run(ckpt, config=cfg)
    try:
        evaluator, scored = build_evaluator(supernet, cfg, device=device)
    except DataError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return 2
    scored_images = None
    if scored is None:  # search.score_table: every score read from the table, no data loaded
        log.info("scores read from %s (%s)", scfg.score_table, scfg.estimator)
    else:
        if main_rank:
            log.info("%s", describe_pipeline(cfg.data, scored, "scored"))
        scored_images = scored.num_samples if scfg.val_batches is None else min(scored.num_samples,
                                                                                 scfg.val_batches * scfg.batch_size)

    from lwsl_ds.search.report import plot_search

    def after_generation(s: Search, new: list[dict]) -> None:
        if main_rank:
            best = s.result().best
            log.info("generation %d/%d: %d new, best %s score %.4f (%s) at %.2fM MACs, %.3fM params", s.generation,
                     scfg.generations, len(new), best["arch"], best["score"], scfg.estimator,
                     best[scfg.cost_metric] / 1e6, best["params"] / 1e6)
            plot_search(out_dir / "search.png", s.history, metric=scfg.cost_metric, max_flops=scfg.max_flops,
                        min_flops=scfg.min_flops, best=best,
                        title=f"{space.name}: {scfg.algorithm}, {s.constraints.describe()}")
        # Every rank, after the generation's state was written (rank 0, atomic): one int all-reduce.
        if preemption.should_stop() and not s.done:
            _exit_preempted(preemption, s, out_dir)

    try:
        # The per-candidate bar only in a terminal: piped logs get the one line per generation, no '\r' lines.
        search.run(evaluator.score, progress=main_rank and not args.no_progress and sys.stderr.isatty(),
                   on_generation=after_generation)
        if main_rank:  # the FLOPs baseline beside the pick: did the super-net change it?
            from lwsl_ds.search.baseline import BASELINE_FILE, baseline_record

            base = baseline_record(table, search.constraints, search.history, evaluator.score)
            (out_dir / BASELINE_FILE).write_text(json.dumps(base, indent=1))
    except DataError as e:  # an unreadable image met while scoring
        print(f"error: {e.one_line()}", file=sys.stderr)
        return 2
    if main_rank:
        _write_outputs(space, search, cfg, ckpt, out_dir, objective=evaluator.objective, t0=t0, images=scored_images)
    _barrier()
    _shutdown(owns_group)
    return 0


def _exit_preempted(preemption, search, out_dir: Path) -> None:
    """Say how the search continues, requeue under Slurm (rank 0), exit 0; the state file is already written."""
    from lwsl_ds.search.distributed import rank_and_world

    if rank_and_world()[0] == 0:
        how = (f"requeueing Slurm job {os.environ['SLURM_JOB_ID']}; it continues by itself"
               if os.environ.get("SLURM_JOB_ID") else "run the same command again (without --restart) to continue")
        log.warning("preempted by %s after generation %d/%d: state in %s (best_arch.yaml comes at the end); %s",
                    preemption.signal_name or "a signal to another rank", search.generation, search.cfg.generations,
                    search.state_path, how)
    logging.shutdown()  # flush before os._exit
    preemption.requeue_and_exit(0)


def _write_outputs(space, search, cfg, ckpt: Path, out_dir: Path, *, objective: str, t0: float,
                   images: int | None = None) -> None:
    """Best arch YAML (loadable by retraining), the plot and the resolved config (rank 0 only)."""
    from lwsl_ds.config.schema import to_dict
    from lwsl_ds.search.report import plot_search
    from lwsl_ds.search.scoring import scoring_split_text
    from lwsl_ds.space import parse_arch, save_arch

    scfg = cfg.search
    result = search.result()
    best = result.best
    path = save_arch(out_dir / "best_arch.yaml", space, parse_arch(space, best["arch"]), score=best["score"],
                     flops=best["flops"], conv_linear=best["conv_linear"], params=best["params"],
                     objective=objective, algorithm=scfg.algorithm, evaluations=result.evaluations,
                     constraints=search.constraints.describe(), checkpoint=str(ckpt),
                     score_split=scoring_split_text(cfg, images))
    plot_search(out_dir / "search.png", result.history, metric=scfg.cost_metric, max_flops=scfg.max_flops,
                min_flops=scfg.min_flops, best=best,
                title=f"{space.name}: {scfg.algorithm}, {search.constraints.describe()}")
    (out_dir / "search_config.json").write_text(json.dumps(to_dict(cfg), indent=1))
    from lwsl_ds.search.baseline import BASELINE_FILE, describe_baseline

    base_path = out_dir / BASELINE_FILE
    base = json.loads(base_path.read_text()) if base_path.is_file() else None
    log.info("done in %.0f s: %d evaluations%s; best %s (%s) score %.4f (%s) on the %s, %.2fM MACs -> %s; %s",
             time.time() - t0, result.evaluations, " (space exhausted)" if result.exhausted else "",
             best["arch"], best["named"], best["score"], scfg.estimator, scoring_split_text(cfg, images),
             best[scfg.cost_metric] / 1e6, path, describe_baseline(base, best, scfg.cost_metric))


def _barrier() -> None:
    import torch.distributed as td

    if td.is_available() and td.is_initialized() and td.get_world_size() > 1:
        td.barrier()


def _shutdown(owns_group: bool) -> None:
    import torch.distributed as td

    if owns_group and td.is_available() and td.is_initialized():
        td.destroy_process_group()


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
