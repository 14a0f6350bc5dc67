"""Super-net training throughput: DeepSpeed engines (one group, per_layer, auto) vs the plain-PyTorch reference.

Same net, same batches, same sampled choices; images/s of the strategy step (data loading excluded). Rounds
are interleaved (reference, single, per_layer, auto, reference, ...) and the best round of each is kept,
so load from other processes hits all variants alike. Prints a Markdown table for docs/benchmarks.md.

    OMP_NUM_THREADS=1 python bench/train_throughput.py --steps 4 --rounds 3 --batch 32 --resolution 32
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="demo")
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=4, help="timed steps per round (after one warm-up step)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--stage", type=int, default=0, help="ZeRO stage of the engines")
    p.add_argument("--strategies", default="spos,greedy,non_greedy")
    a = p.parse_args()

    import torch

    from lwsl_ds.common.dist import init_distributed
    from lwsl_ds.config.ds_config import load_ds_config
    from lwsl_ds.engines import build_backend
    from lwsl_ds.objectives import get_objective
    from lwsl_ds.space import SuperNet, load_space
    from lwsl_ds.strategies import get_strategy, step_rng

    torch.set_num_threads(a.threads)
    init_distributed()
    dev = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    base = load_ds_config(Path(__file__).resolve().parents[1] / "ds_configs" / "train_cpu.json")
    base["train_micro_batch_size_per_gpu"] = a.batch
    base["zero_optimization"] = {"stage": a.stage}
    base.pop("csv_monitor", None)
    space = load_space(a.space, resolution=a.resolution)
    variants = [("reference", "single"), ("deepspeed", "single"), ("deepspeed", "per_layer"), ("deepspeed", "auto")]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, 3, a.resolution, a.resolution, generator=g).to(dev)
    y = torch.randint(0, space.num_classes, (a.batch,), generator=g).to(dev)
    rows = []
    for sname in a.strategies.split(","):
        setups = []
        for kind, groups in variants:
            torch.manual_seed(0)
            net = SuperNet(space, get_objective("ce", space.num_classes)).to(dev)
            strat = get_strategy(sname)
            backend = build_backend(kind, net, strat, copy.deepcopy(base), layer_groups=groups, total_steps=10 ** 6)
            strat.step(net, x, y, backend, step_rng(0, 0))  # warm-up
            setups.append((kind, groups, net, strat, backend, len(backend.groups)))
        best = [0.0] * len(setups)
        step = 1
        for _ in range(a.rounds):
            for v, (kind, groups, net, strat, backend, _) in enumerate(setups):
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                for s in range(a.steps):  # identical sampled choices for every variant
                    out = strat.step(net, x, y, backend, step_rng(0, step + s))
                float(next(iter(out.values())))  # sync
                best[v] = max(best[v], a.batch * a.steps / (time.perf_counter() - t0))
            step += a.steps
        ref = best[0]
        for (kind, groups, *_, n_groups), ips in zip(setups, best):
            rows.append((sname, kind, groups, n_groups, ips, (ref / ips - 1) * 100))
    print(f"\n{space.name} space, {a.resolution} px, batch {a.batch}, ZeRO {a.stage}, {a.threads} thread(s), "
          f"{a.device if hasattr(a, 'device') else dev.type}, best of {a.rounds} rounds x {a.steps} steps\n")
    print("| strategy | backend | layer_groups | engines | images/s | time vs reference |")
    print("| --- | --- | --- | --- | ---: | ---: |")
    for sname, kind, groups, n, ips, over in rows:
        print(f"| {sname} | {kind} | {groups} | {n if kind == 'deepspeed' else '-'} | {ips:.1f} | "
              f"{'' if kind == 'reference' else f'{over:+.1f}%'} |")


if __name__ == "__main__":
    main()
