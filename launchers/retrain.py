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

Writes into the retraining folder (``--run_dir``, default ``<run_root>/<name>/retrain`` of the config; a
folder of another phase, e.g. the super-net's, is refused):
``checkpoints/step_<N>/`` (atomic, the last ``retrain.keep_checkpoints``), ``retrain_log.jsonl``,
``final.json`` (top-1 of the EMA weights, parameter digest) and ``export/`` (``weights.pt``,
``arch.yaml``, ``subnet.pt2`` loadable with ``torch.export.load`` alone).
``--resume auto`` continues from the latest checkpoint (or starts when there is none; more ``retrain.epochs``
than the checkpoint's run planned need ``retrain.extend=replan``); the result is
bit-identical to an uninterrupted run with the same world size (torchvision data backend).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from lwsl_ds.config.cli_args import add_override_args, overrides_of  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line arguments (``--local_rank`` is accepted for the deepspeed launcher and ignored)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=None, help="experiment YAML with a retrain: section, on top of the config the "
                                                  "--arch was searched with (default: that config alone)")
    p.add_argument("--ds_config", "--deepspeed_config", dest="ds_config", required=True,
                   help="DeepSpeed JSON: batch size, ZeRO stage, precision, gradient clipping")
    p.add_argument("--arch", default=None, help="arch YAML from search (default: retrain.arch of the config, else "
                                                "<run_root>/<name>/search/best_arch.yaml)")
    p.add_argument("--run_dir", default=None, help="retraining folder (default: <run_root>/<name>/retrain)")
    add_override_args(p)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", default=None, metavar="auto|CHECKPOINT",
                   help="'auto': continue from the run directory's latest checkpoint, start fresh when there is "
                        "none; or a checkpoint folder (<run dir>/checkpoints/step_<N>)")
    g.add_argument("--restart", action="store_true", help="delete the run directory's checkpoints and start over")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_job(args: argparse.Namespace):
    """Read and check configs, arch and run directory before any process group or data exists."""
    import os

    from lwsl_ds.config.ds_config import load_ds_config
    from lwsl_ds.config.layout import claim, phase_dir
    from lwsl_ds.config.loader import load_experiment
    from lwsl_ds.config.schema import ConfigError
    from lwsl_ds.retrain import checkpoint as ckpt_io
    from lwsl_ds.retrain.trainer import RetrainJob, prepare_ds_config
    from lwsl_ds.space import load_arch

    raw_ds = load_ds_config(args.ds_config)
    world = int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_STEP_NUM_TASKS") or 1)
    prepare_ds_config(raw_ds, world, args.ds_config)  # fail fast; re-checked with the real world size later
    arch_path = args.arch
    if not arch_path and args.config:  # retrain.arch of the config, else the experiment's search result
        base = load_experiment(args.config, overrides_of(args))
        found = phase_dir(base, "search") / "best_arch.yaml"
        arch_path = base.retrain.arch or (str(found) if found.is_file() else None)
        if not arch_path:
            raise ConfigError(f"{args.config}: no architecture: pass --arch <arch.yaml>, set retrain.arch, or run "
                              f"the search first (no {found})")
    if not arch_path:
        raise ConfigError("no architecture: pass --arch <arch.yaml> (or --config with retrain.arch set)")
    # the search's config (the super-net run's, resolved), --config and overrides on top
    from lwsl_ds.search.loading import experiment_for_arch

    exp = experiment_for_arch(arch_path, args.config, overrides_of(args))
    space, arch, _ = load_arch(arch_path)
    if exp.data.out_resolution != space.resolution:
        raise ConfigError(f"{args.config}: data resolution {exp.data.out_resolution} differs from the resolution "
                          f"{space.resolution} of space {space.name!r} in {arch_path}; set data.resolution")
    run_dir = claim(Path(args.run_dir) if args.run_dir else phase_dir(exp, "retrain"), "retrain")
    resume = args.resume
    if resume not in (None, "auto"):
        ckpt_io.read_meta(resume)  # a named checkpoint must exist and be complete
    existing = ckpt_io.list_checkpoints(run_dir)
    if existing and resume is None:
        if not args.restart:
            raise ConfigError(f"{run_dir}: already holds checkpoints ({existing[-1].name}); pass --resume auto to "
                              "continue, --restart to start over, or another --run_dir")
    return exp, raw_ds, space, arch, run_dir, resume, RetrainJob


def main(argv: list[str] | None = None) -> int:
    """Parse, build, train; returns the exit code."""
    # Install the preemption handler first: a SIGUSR1 that arrives during the imports would otherwise
    # kill the rank (default action) instead of asking for a checkpoint.
    from lwsl_ds.common.preemption import Preemption

    preemption = Preemption.install()
    args = parse_args(argv)
    from lwsl_ds.config.schema import ConfigError
    from lwsl_ds.retrain.checkpoint import CheckpointError

    try:
        exp, raw_ds, space, arch, run_dir, resume, RetrainJob = build_job(args)
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from lwsl_ds.common import dist
    from lwsl_ds.retrain import checkpoint as ckpt_io
    from lwsl_ds.retrain.trainer import run

    if args.restart and dist.world().rank == 0:
        shutil.rmtree(ckpt_io.checkpoint_dir(run_dir), ignore_errors=True)
    job = RetrainJob(exp=exp, ds_config=raw_ds, ds_config_path=args.ds_config, space=space, arch=arch,
                     run_dir=run_dir, resume=resume)
    from lwsl_ds.data import DataError

    try:
        run(job, preemption)
    except (ConfigError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except DataError as e:  # missing root, empty class folder, unreadable file: the line names the path
        print(f"error: {e.one_line()}", file=sys.stderr)
        return 2
    dist.shutdown()
    return 0


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
