"""The synchronous oracle of the layer-parallel tests: one process, the reference backend, same batches."""

from __future__ import annotations

from pathlib import Path

import torch

from lwsl_ds.engines import ReferenceBackend
from lwsl_ds.strategies import get_strategy, step_rng
from tests.engines.harness import batches, ds_config, tiny_net

GROUPS = [[0, 1], [2, 3]]


def synchronous(strategy: str, steps: int) -> tuple[torch.nn.Module, list[dict[str, float]]]:
    """Train the tiny net synchronously (same groups, schedules, RNG); returns (net, per-step losses)."""
    torch.set_num_threads(1)  # the ranks ran with 1 thread; CPU kernels may round differently with 2
    net, strat = tiny_net(), get_strategy(strategy)
    backend = ReferenceBackend(net, strat, ds_config(0), layer_groups=GROUPS, total_steps=10)
    losses = [{k: float(v) for k, v in strat.step(net, x, y, backend, step_rng(0, t)).items()}
              for t, (x, y) in enumerate(batches(steps))]
    return net, losses


def compare(out: Path, net: torch.nn.Module, world: int = 2) -> float:
    """Largest difference between the ranks' owned units (rank<r>.pt) and ``net``'s (params and BN stats)."""
    mods = dict(net.named_modules())
    worst = 0.0
    for r in range(world):
        st = torch.load(out / f"rank{r}.pt", weights_only=True)
        for name, sd in st["units"].items():
            ref = mods[name].state_dict()
            for k, v in sd.items():
                if v.is_floating_point():
                    worst = max(worst, float((v - ref[k]).abs().max()))
    return worst


def rank_state(out: Path, rank: int) -> dict:
    """What a worker wrote."""
    return torch.load(out / f"rank{rank}.pt", weights_only=True)
