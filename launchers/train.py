"""Super-net training: spos, greedy (Alg. 1) or non-greedy (Alg. 2), one DeepSpeed engine per layer group.

Launch lines (the same script everywhere; CPU ranks use gloo, GPUs NCCL)::

    deepspeed --num_gpus 2 launchers/train.py --ds_config ds_configs/train_cpu.json --config configs/train_demo.yaml
    torchrun --standalone --nproc_per_node 2 launchers/train.py --ds_config ds_configs/train_cpu.json \\
        --config configs/train_demo.yaml train.strategy=greedy
    python launchers/train.py --ds_config ds_configs/train_cpu.json --config configs/train_demo.yaml train.max_steps=20
    python launchers/train.py ... --resume        # continue <run_root>/<name>/supernet from its latest checkpoint
    python launchers/train.py ... --resume train.max_steps=80 train.extend=replan   # train longer (re-planned cosine)
    torchrun --standalone --nproc_per_node 2 launchers/train.py --ds_config ds_configs/train_cpu.json \\
        --config configs/train_demo.yaml train.strategy=greedy train.parallel.mode=layer   # layer-parallel

Outputs in the super-net folder ``<run_root>/<name>/supernet`` of the experiment (``--run_dir`` for another,
e.g. a second super-net; a folder of another phase is refused, see lwsl_ds/config/layout.py):
``config.yaml`` (as resolved: class count, resolution, layer groups, micro-batch plan; later phases load it),
``ds_config.json``, ``metrics.jsonl``, ``heldout.json`` (the end-of-training check),
``train.log``, ``checkpoints/<tag>/`` (every engine, manifest, RNG), ``supernet.pt`` (final weights) and
``param_digests.json`` (every rank's sha256 of its final parameters/buffers: ranks must agree).

Preemption: on SIGUSR1/SIGTERM every rank stops after the same step, the checkpoint is written, no
``supernet.pt``; under Slurm rank 0 runs ``scontrol requeue`` (launchers/slurm/train.sbatch passes
``--resume``, so the requeued job continues by itself), elsewhere the process exits 0 and the same
command with ``--resume`` continues. See docs/multinode.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lwsl_ds, not the venv's


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: --ds_config, --config, overrides (--set a.b=c or trailing a.b=c), --resume, --backend."""
    from lwsl_ds.config.cli_args import add_train_args, launcher_parser

    p = launcher_parser(__doc__)
    add_train_args(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse, validate, build, train: data-parallel, or layer-parallel with train.parallel.mode=layer."""
    # First of all: a SIGUSR1 arriving during the imports must set the flag, not kill the rank.
    from lwsl_ds.common.preemption import Preemption

    preemption = Preemption.install()
    args = parse_args(argv)
    from lwsl_ds.config.cli_args import overrides_of
    from lwsl_ds.supernet_run import RunRequest, train_supernet

    req = RunRequest.load(args.config, overrides_of(args), args.ds_config, run_dir=args.run_dir, resume=args.resume,
                          backend=args.backend)
    if req.cfg.train.parallel.mode == "layer":  # rank set g owns layer group g (docs/layer_parallel.md)
        # This trainer does not poll the preemption flag: give SIGUSR1/SIGTERM their previous action back
        # (kill) rather than swallow them; resume from its last checkpoint works as after any kill.
        preemption.uninstall()
        from lwsl_ds.parallel.run import run_layer_parallel

        return run_layer_parallel(req, req.cfg.train.parallel, key="train.parallel.data_parallel")
    return train_supernet(req, preemption)


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
