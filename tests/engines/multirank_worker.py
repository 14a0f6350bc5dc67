"""2-rank worker (run by torchrun from test_multirank.py): engines vs reference on each rank's own batches.

Writes a JSON of max parameter differences (engine vs reference, and rank 0 vs rank 1) to argv[1].
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
import torch.distributed as td  # noqa: E402

from lwsl_ds.common.dist import init_distributed  # noqa: E402
from tests.engines.harness import ds_config, max_param_diff, train  # noqa: E402


def sgd(stage: int) -> dict:
    cfg = ds_config(stage)
    cfg["optimizer"] = {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9, "weight_decay": 4e-5}}
    return cfg


def rank_spread(net: torch.nn.Module) -> float:
    """Largest parameter difference between ranks (parameters must be replicated)."""
    flat = torch.cat([p.detach().flatten() for p in net.parameters()])
    other = [torch.zeros_like(flat) for _ in range(td.get_world_size())]
    td.all_gather(other, flat)
    return max(float((o - flat).abs().max()) for o in other)


def main() -> None:
    torch.set_num_threads(1)
    env = init_distributed()
    results = {}
    cases = [(s, st, "single", sgd) for s in ("spos", "greedy", "non_greedy") for st in (0, 1, 2)]
    cases += [("spos", 0, "single", ds_config), ("non_greedy", 2, "per_layer", sgd), ("spos", 1, "per_layer", sgd)]
    for strategy, stage, groups, make in cases:
        ref, _, _ = train("reference", strategy, make(0), steps=3, rank=env.rank, layer_groups=groups)
        ds, _, _ = train("deepspeed", strategy, make(stage), steps=3, rank=env.rank, layer_groups=groups)
        key = f"{strategy}/zero{stage}/{groups}/{make.__name__}"
        results[key] = {"vs_reference": max_param_diff(ref, ds), "across_ranks": rank_spread(ds),
                        "ref_across_ranks": rank_spread(ref)}
    if env.rank == 0:
        Path(sys.argv[1]).write_text(json.dumps(results, indent=1))
    td.barrier()
    td.destroy_process_group()


if __name__ == "__main__":
    main()
