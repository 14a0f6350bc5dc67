"""Step time of super-net training in the paper's setting (paper space, 224 px, four layer groups) per strategy.

One process, DeepSpeed engines (fp32, ZeRO 0) over ``auto`` layer groups as the launcher builds them, CE,
random images (data loading excluded). Per strategy: one warm-up step, then ``--steps`` timed steps; prints
wall and CPU (process) seconds per step and per image as a Markdown table (docs/paper_setting.md). CPU
seconds are less sensitive than wall seconds to other jobs on a shared machine.

    OMP_NUM_THREADS=2 python bench/paper_step_time.py --batch 4 --steps 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    """Run the measurement and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="paper")
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--classes", type=int, default=100, help="ImageNet-100")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=2, help="timed steps per strategy (after one warm-up step)")
    p.add_argument("--groups", type=int, default=4, help="layer_groups=auto with this many groups")
    p.add_argument("--strategies", default="spos,greedy,non_greedy")
    a = p.parse_args()

    import torch

    from lwsl_ds.common.dist import init_distributed
    from lwsl_ds.config.ds_config import load_ds_config
    from lwsl_ds.engines import build_backend
    from lwsl_ds.objectives import get_objective
    from lwsl_ds.space import SuperNet, load_space
    from lwsl_ds.strategies import get_strategy, step_rng

    init_distributed()
    ds = load_ds_config(Path(__file__).resolve().parents[1] / "ds_configs" / "train_cpu.json")
    ds["train_micro_batch_size_per_gpu"] = a.batch
    ds.pop("csv_monitor", None)
    space = load_space(a.space, resolution=a.resolution, num_classes=a.classes)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution, generator=g)
    y = torch.randint(0, space.num_classes, (a.batch,), generator=g)
    print(f"{space.name} space, {a.resolution} px, batch {a.batch}, {a.groups} auto layer groups, "
          f"{torch.get_num_threads()} threads")
    print("| strategy | wall s/step | CPU s/step | CPU s/image |\n| --- | ---: | ---: | ---: |")
    for name in a.strategies.split(","):
        torch.manual_seed(0)
        net = SuperNet(space, get_objective("ce", space.num_classes))
        strategy = get_strategy(name)
        backend = build_backend("deepspeed", net, strategy, ds, layer_groups="auto", auto_groups=a.groups,
                                total_steps=a.steps + 1, job_name=f"bench_{name}")
        net.train()
        strategy.step(net, x, y, backend, step_rng(0, 0))  # warm-up: allocator, oneDNN primitives
        w0, c0 = time.perf_counter(), time.process_time()
        for s in range(a.steps):
            strategy.step(net, x, y, backend, step_rng(0, s + 1))
        wall, cpu = (time.perf_counter() - w0) / a.steps, (time.process_time() - c0) / a.steps
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {cpu / a.batch:.2f} |", flush=True)


if __name__ == "__main__":
    main()
