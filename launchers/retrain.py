"""Retrain one architecture from scratch with DeepSpeed (one process, one node or many nodes).

    deepspeed launchers/retrain.py --ds_config ds_configs/retrain_imagenet.json \\
        --config configs/retrain_imagenet.yaml --arch runs/search/best_arch.yaml
    python launchers/retrain.py --ds_config ds_configs/retrain_cpu.json --config configs/retrain_cifar10.yaml \\
        --arch runs/demo/search/best_arch.yaml --set retrain.max_steps=20
    python launchers/retrain.py --ds_config ds_configs/retrain_cpu.json --arch runs/paper_ce/search/best_arch.yaml
        # no --config: the search's own config (the super-net run's data, classes, resolution); the run
        # directory defaults to <run_root>/<name>, and to <run_root>/<name>/retrain when that is a super-net run
    sbatch --nodes=2 --ntasks-per-node=4 --gpus-per-node=4 launchers/slurm/retrain.sbatch --ds_config ... \\
        --config ... --arch ...          # adds --resume auto: requeued jobs continue by themselves

Writes ``checkpoints/step_<N>/``, ``retrain_log.jsonl``, ``final.json`` and ``export/`` into ``--run_dir``
(default ``<run_root>/<name>/retrain``; see docs/retrain.md). ``--resume auto`` continues bit-identically
from the latest checkpoint (same world size, torchvision data backend), or starts when there is none.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lwsl_ds, not the venv's

from lwsl_ds.config.cli_args import add_override_args, launcher_parser, overrides_of  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``--local_rank`` is accepted for the deepspeed launcher and ignored)."""
    p = launcher_parser(__doc__)
    p.add_argument("--config", help="experiment YAML with a retrain: section, on top of the config the --arch "
                                    "was searched with (default: that config alone)")
    p.add_argument("--ds_config", "--deepspeed_config", dest="ds_config", required=True,
                   help="DeepSpeed JSON: batch size, ZeRO stage, precision, gradient clipping")
    p.add_argument("--arch", help="arch YAML from search (default: retrain.arch of the config, else "
                                  "<run_root>/<name>/search/best_arch.yaml)")
    p.add_argument("--run_dir", help="retraining folder (default: <run_root>/<name>/retrain)")
    add_override_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", metavar="auto|CHECKPOINT",
                   help="'auto': continue from the run directory's latest checkpoint, start fresh when there is "
                        "none; or a checkpoint folder (<run dir>/checkpoints/step_<N>)")
    g.add_argument("--restart", action="store_true", help="delete the run directory's checkpoints and start over")
    return p.parse_args(argv)


def build_job(args: argparse.Namespace):
    """Read and check configs, arch and run directory before any process group or data exists."""
    from lwsl_ds.retrain.job import arch_path, build_job, check_ds_config
    from lwsl_ds.search.loading import experiment_for_arch

    raw_ds = check_ds_config(args.ds_config)
    arch = arch_path(args.config, args.arch, overrides_of(args))
    exp = experiment_for_arch(arch, args.config, overrides_of(args))  # the search's config, --config on top
    return build_job(exp, raw_ds, args.ds_config, arch, config=args.config, run_dir=args.run_dir,
                     resume=args.resume, restart=args.restart)


def main(argv: list[str] | None = None) -> int:
    """Parse, build, train; returns the exit code."""
    # Install the preemption handler first: a SIGUSR1 that arrives during the imports would otherwise
    # kill the rank (default action) instead of asking for a checkpoint.
    from lwsl_ds.common.preemption import Preemption

    preemption = Preemption.install()
    args = parse_args(argv)
    job = build_job(args)
    from lwsl_ds.common import dist
    from lwsl_ds.retrain.checkpoint import discard
    from lwsl_ds.retrain.trainer import run

    if args.restart and dist.world().rank == 0:
        discard(job.run_dir)
    run(job, preemption)
    dist.shutdown()
    return 0


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
