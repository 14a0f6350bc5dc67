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
docs/ranking.md; the work: lwsl_ds/ranking/phase.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lwsl_ds, not the venv's


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: config, checkpoint, output folder, overrides."""
    from lwsl_ds.config.cli_args import add_override_args, add_supernet_args, launcher_parser

    p = launcher_parser(__doc__)
    add_supernet_args(p, "rank and search sections")
    p.add_argument("--out", default=None, help="output folder (default: rank/ next to the super-net folder)")
    p.add_argument("--device", default=None, help="torch device (default: this rank's GPU, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--title", default="", help="label put before the figure titles (e.g. the strategy)")
    add_override_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, plan (cheap checks first), then load, score, compare, measure shift, write; returns the exit code."""
    args = parse_args(argv)
    from lwsl_ds.common.entry import exit_code_of
    from lwsl_ds.ranking.phase import plan_rank, run_rank

    from lwsl_ds.config.cli_args import overrides_of

    overrides = overrides_of(args)
    return exit_code_of(lambda: run_rank(plan_rank(args.checkpoint, args.config, overrides, args.out),
                                         device=args.device, progress=not args.no_progress, title=args.title))


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
