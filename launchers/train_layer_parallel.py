"""Layer-parallel super-net training: rank set g owns layer group g, layer inputs flow forward (asynchronous).

Launch lines (world size = layer groups x parallel.data_parallel; set ``train.layer_groups=auto``)::

    torchrun --standalone --nproc_per_node 2 launchers/train_layer_parallel.py --ds_config ds_configs/train_cpu.json \\
        --config configs/train_demo.yaml train.layer_groups=auto train.strategy=greedy
    deepspeed --num_gpus 4 launchers/train_layer_parallel.py --ds_config ds_configs/train_gpu_zero2.json \\
        --config configs/train_nasbench_macro.yaml train.layer_groups=auto --parallel data_parallel=2
    ... --resume          # continue from the newest checkpoint tag every rank completed

``--parallel key=value`` sets fields of :class:`lwsl_ds.parallel.ParallelConfig` (queue_depth,
replica_refresh_every, replica_lag, data_parallel, timeout_s). See docs/layer_parallel.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's lwsl_ds, not the venv's


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: --ds_config, --config, overrides, --parallel k=v, --resume, --backend, --local_rank."""
    from lwsl_ds.config.cli_args import add_train_args, launcher_parser

    p = launcher_parser(__doc__)
    add_train_args(p)
    p.add_argument("--parallel", action="append", default=[], metavar="KEY=VALUE",
                   help="layer-parallel setting, e.g. --parallel replica_lag=0 (repeatable)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse and validate everything, then train on this rank."""
    args = parse_args(argv)
    from lwsl_ds.config.cli_args import overrides_of
    from lwsl_ds.parallel.config import parallel_from_items
    from lwsl_ds.parallel.run import run_layer_parallel
    from lwsl_ds.supernet_run import RunRequest

    req = RunRequest.load(args.config, overrides_of(args), args.ds_config, run_dir=args.run_dir, resume=args.resume,
                          backend=args.backend)
    return run_layer_parallel(req, parallel_from_items(args.parallel), key="--parallel data_parallel")


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
