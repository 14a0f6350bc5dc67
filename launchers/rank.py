"""Rank a trained super-net's sub-nets against ground truth and measure representation shift.

Launch (one process, or several ranks that score archs round-robin with identical results)::

    .venv/bin/python launchers/rank.py --config configs/nasbench_macro.yaml --checkpoint runs/nbm_spos
    .venv/bin/python launchers/rank.py --checkpoint runs/paper_ce rank.truth=truth.csv   # the run's recorded config
    deepspeed --num_gpus 2 launchers/rank.py --config configs/nasbench_macro.yaml --checkpoint runs/nbm_spos \
        --set rank.num_archs=100 --set rank.stratify=flops

Writes ``ranking.json`` (incl. ``flops_band_tau``, the within-budget ranking), ``ranking_scatter.png``,
``shift.json``, ``shift_heatmap.png`` into ``rank/`` next to the super-net folder, i.e. ``<run_root>/<name>/rank``
(or ``--out``; a folder of another phase is refused). The estimator is ``search.estimator`` (top1 = the paper's,
default; local_acc / local_loss = local decoders). Trailing ``key=value`` arguments override the config. See
docs/ranking.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: config, checkpoint, output folder, overrides."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default=None, help="experiment YAML (rank, search sections) on top of the run's "
                                                  "recorded config (default: the run's own)")
    p.add_argument("--checkpoint", default=None, help="folder of a trained super-net (or a supernet.pt); default: "
                                                      "<run_root>/<name>/supernet of --config")
    p.add_argument("--out", default=None, help="output folder (default: rank/ next to the super-net folder)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. rank.num_archs=100 (repeatable; same as a trailing KEY=VALUE)")
    p.add_argument("--device", default=None, help="torch device (default: this rank's GPU, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--title", default="", help="label put before the figure titles (e.g. the strategy)")
    p.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # passed by `deepspeed`
    p.add_argument("overrides", nargs="*", help="config overrides key.path=value")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, validate everything cheap first, then load, score, compare, measure shift, write."""
    args = parse_args(argv)
    from lwsl_ds.config import ConfigError

    try:
        from lwsl_ds.search.loading import experiment_for_run, supernet_of

        args.checkpoint = str(supernet_of(args.checkpoint, args.config, [*args.sets, *args.overrides]))
        cfg = experiment_for_run(args.checkpoint, args.config, [*args.sets, *args.overrides])
        from lwsl_ds.ranking.pipeline import flops_lookup, resolve_truth, select_archs
        from lwsl_ds.space import load_space

        space = load_space(cfg.space.name, cfg.space.resolution, cfg.space.num_classes)
        truth = resolve_truth(cfg.rank, space)  # bad truth / arch lists fail here, before any loading
        flops = flops_lookup(space, truth) if cfg.rank.stratify == "flops" else None
        archs = select_archs(cfg.rank, space, truth, flops)
        from lwsl_ds.config.layout import beside_supernet, check_folder

        out = Path(args.out) if args.out else beside_supernet(args.checkpoint, cfg, "rank")
        check_folder(out, "rank", option="--out")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from lwsl_ds.common import dist

    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if multi:
        dist.init_distributed()
    main_rank = dist.is_main()
    import torch

    torch.manual_seed(cfg.seed)
    from lwsl_ds.ranking.pipeline import build_evaluator, run_ranking, run_shift
    from lwsl_ds.search import load_supernet_from_run

    device = torch.device(args.device) if args.device else dist.device()
    try:
        supernet = load_supernet_from_run(args.checkpoint, config=cfg).to(device)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if supernet.space.name != space.name:
        print(f"error: checkpoint holds space {supernet.space.name!r}, config says {space.name!r}", file=sys.stderr)
        return 2
    if main_rank:
        from lwsl_ds.config.layout import claim

        claim(out, "rank", option="--out")
    from lwsl_ds.data import DataError

    try:
        evaluator, val_loader = build_evaluator(supernet, cfg, device=device)
    except DataError as e:
        print(f"error: {e.one_line()}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    report = run_ranking(space, cfg.rank, evaluator.score, out, truth=truth, archs=archs,
                         progress=main_rank and not args.no_progress and sys.stderr.isatty(),
                         meta={"checkpoint": str(args.checkpoint), "config": str(args.config) if args.config else None,
                               "recal_batches": cfg.search.recal_batches, "val_batches": cfg.search.val_batches,
                               "estimator": cfg.search.estimator},
                         title=args.title)
    if main_rank:
        print(report.summary())
        print(f"scored {len(archs)} archs ({cfg.search.estimator} estimator) in {time.perf_counter() - t0:.1f} s -> {out}/ranking.json")
        if cfg.rank.shift:
            res = run_shift(supernet, cfg.rank, val_loader, out, device=device, title=args.title)
            print(f"representation shift, layer {res.layer} ({', '.join(res.names)}): off-diagonal mean "
                  f"{res.off_diagonal_mean:.4f} over {res.num_images} images -> {out}/shift.json")
    dist.barrier()
    if multi:
        dist.shutdown()
    return 0


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
