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
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lwsl_ds.config.cli_args import add_override_args, overrides_of  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command line: --ds_config, --config, overrides, --parallel k=v, --resume, --backend, --local_rank."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ds_config", required=True, help="DeepSpeed JSON (batch size per rank, optimizer, ZeRO)")
    p.add_argument("--config", required=True, help="experiment YAML (space, data, train)")
    add_override_args(p)
    p.add_argument("--parallel", action="append", default=[], metavar="KEY=VALUE",
                   help="layer-parallel setting, e.g. --parallel replica_lag=0 (repeatable)")
    p.add_argument("--run_dir", default=None, help="super-net folder (default: <run_root>/<name>/supernet)")
    p.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
    p.add_argument("--backend", choices=["deepspeed", "reference"], default="deepspeed")
    p.add_argument("--local_rank", type=int, default=None, help="set by the deepspeed launcher")
    return p.parse_args(argv)


def parallel_config(items: list[str]):
    """``["k=v", ...]`` -> a validated ParallelConfig with mode 'layer' (YAML scalars for the values)."""
    import yaml

    from lwsl_ds.config.schema import ConfigError, from_dict
    from lwsl_ds.parallel import ParallelConfig

    raw: dict = {"mode": "layer"}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--parallel {item!r}: expected KEY=VALUE")
        raw[key.strip()] = yaml.safe_load(value)
    try:
        return from_dict(ParallelConfig, raw)
    except ConfigError as e:
        raise ConfigError(f"--parallel: {e}") from None


def main(argv: list[str] | None = None) -> int:
    """Parse and validate everything, then train on this rank."""
    args = parse_args(argv)
    from lwsl_ds.common.launch_env import detect
    from lwsl_ds.config import load_experiment
    from lwsl_ds.config.ds_config import load_ds_config

    cfg = load_experiment(args.config, overrides_of(args))
    ds = load_ds_config(args.ds_config)
    par = parallel_config(args.parallel)
    env = detect()
    if env.world_size % par.data_parallel:
        from lwsl_ds.config.schema import ConfigError

        raise ConfigError(f"--parallel data_parallel={par.data_parallel} does not divide the world size "
                          f"{env.world_size}")
    import torch

    if not torch.cuda.is_available():  # CPU: split this node's cores between its ranks
        local = int(os.environ.get("LOCAL_WORLD_SIZE", env.world_size))
        torch.set_num_threads(cfg.train.threads or max(1, (os.cpu_count() or 1) // max(local, 1)))
    from lwsl_ds.common.dist import shutdown
    from lwsl_ds.common.logging import setup_logging
    from lwsl_ds.parallel.run import train_layer_parallel

    from lwsl_ds.config.layout import claim, phase_dir

    run_dir = claim(Path(args.run_dir) if args.run_dir else phase_dir(cfg, "supernet"), "supernet")
    setup_logging(env.rank, run_dir / "train.log")
    train_layer_parallel(cfg, ds, par, resume=args.resume, backend=args.backend, run_dir=run_dir)
    shutdown()
    return 0


if __name__ == "__main__":
    from lwsl_ds.common.entry import run_main

    run_main(main)  # project errors: one line, exit 2; --debug / LWSL_DEBUG=1 shows the traceback
