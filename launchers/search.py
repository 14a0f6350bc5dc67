"""Evolutionary search over a trained super-net under MACs/params limits.

    python launchers/search.py --config configs/demo.yaml       # the super-net in <run_root>/<name>/supernet
    python launchers/search.py --checkpoint runs/demo/supernet search.max_macs=400e6   # the run's recorded config
    deepspeed --num_gpus 2 launchers/search.py --config configs/demo.yaml --checkpoint runs/demo/supernet
    torchrun --standalone --nproc_per_node 2 launchers/search.py --config ... --checkpoint ...
    python launchers/search.py ... --set search.max_macs=330e6 --set search.generations=5

Writes into ``search.out_dir`` (default: ``search/`` next to the super-net folder, i.e.
``<run_root>/<name>/search``; a folder of another phase is refused): ``best_arch.yaml`` (loadable with
``lwsl_ds.space.load_arch``, i.e. by retraining), ``candidates.jsonl`` (one line per evaluated
candidate), ``search.png`` (top-1 vs MACs, Pareto front, constraint lines) and ``search_state.json``
(rewritten after every generation; running the same command again resumes, ``--restart`` starts over).
Candidates of a generation are split over the ranks; the result equals a 1-rank run.
Preemption: on SIGUSR1/SIGTERM the search stops after the current generation (whose state is on disk),
rank 0 requeues the Slurm job (launchers/slurm/search.sbatch) or the process exits 0 outside Slurm; the
same command continues, with the same result as an uninterrupted search. The work: lwsl_ds/search/phase.py.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lwsl_ds, not the venv's

from lwsl_ds.config.cli_args import add_override_args, add_supernet_args, launcher_parser, overrides_of  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``--local_rank`` is accepted for the deepspeed launcher and ignored)."""
    p = launcher_parser(__doc__)
    add_supernet_args(p, "search section; its space/objective must agree with the run")
    add_override_args(p)
    p.add_argument("--out", default=None, help="output folder (overrides search.out_dir)")
    p.add_argument("--restart", action="store_true", help="ignore a saved search state and start over")
    p.add_argument("--device", default=None, help="torch device (default: this rank's GPU, else cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--dist-timeout", type=float, default=1800.0,
                   help="seconds a rank waits in a collective (above the longest generation's scoring share)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, plan (config errors first), search, write the outputs; returns the exit code."""
    # First of all: a SIGUSR1 arriving while torch imports must set the flag, not kill the rank.
    from lwsl_ds.common.preemption import Preemption

    preemption = Preemption.install()
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from lwsl_ds.common.entry import exit_code_of
    from lwsl_ds.search.phase import SearchOptions, plan_search, run_search

    options = SearchOptions(restart=args.restart, device=args.device, progress=not args.no_progress,
                            dist_timeout=args.dist_timeout)
    return exit_code_of(lambda: run_search(plan_search(args.checkpoint, args.config, overrides_of(args), args.out),
                                           options, preemption))


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
