"""Shared helpers of the strategy/engine tests: a tiny super-net, batches, a ds_config, a training run.

Importable from spawned worker processes (2-rank tests) as ``tests.engines.harness``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from lwsl_ds.objectives import get_objective
from lwsl_ds.space import SuperNet, load_space
from lwsl_ds.strategies import get_strategy, step_rng

RES = 16
BATCH = 4


def tiny_net(objective: str = "ce", seed: int = 0) -> SuperNet:
    """The demo space at 16 px (4 layers; 3 or 4 choices each), identical weights for equal seeds."""
    space = load_space("demo", resolution=RES)
    torch.manual_seed(seed)
    obj = get_objective(objective, space.num_classes, proj_dim=8)
    return SuperNet(space, obj)


def batches(steps: int, rank: int = 0, views: int = 1, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Deterministic random batches; for views=2 the two views are stacked (2B rows)."""
    g = torch.Generator().manual_seed(seed * 1000 + rank)
    out = []
    for _ in range(steps):
        x = torch.randn(BATCH * views, 3, RES, RES, generator=g)
        y = torch.randint(0, 10, (BATCH,), generator=g)
        out.append((x, y))
    return out


def ds_config(stage: int = 0, clip: float = 0.0, lr: float = 0.01, scheduler: bool = True) -> dict:
    """The paper's optimizer (Adam, L2 weight decay 4e-5) with a cosine schedule, ZeRO ``stage``."""
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": BATCH,
        "gradient_clipping": clip,
        "optimizer": {"type": "Adam", "params": {"lr": lr, "betas": [0.9, 0.999], "eps": 1e-8,
                                                 "weight_decay": 4e-5, "adam_w_mode": False}},
        "zero_optimization": {"stage": stage},
        "steps_per_print": 10 ** 9,
    }
    if scheduler:
        cfg["scheduler"] = {"type": "Cosine", "params": {"total_num_steps": 10}}
    return cfg


def train(kind: str, strategy: str, cfg: dict, steps: int = 3, *, layer_groups="single", objective: str = "ce",
          rank: int = 0, seed: int = 0, net: SuperNet | None = None, **kw):
    """Train a fresh tiny net for ``steps`` steps with backend ``kind``; returns (net, backend, outputs)."""
    from lwsl_ds.engines import build_backend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a second thread only adds contention on a busy 2-core machine
    try:
        return _train(kind, strategy, cfg, steps, layer_groups=layer_groups, objective=objective, rank=rank,
                      seed=seed, net=net, build_backend=build_backend, **kw)
    finally:
        torch.set_num_threads(threads)


def _train(kind, strategy, cfg, steps, *, layer_groups, objective, rank, seed, net, build_backend, **kw):
    net = net if net is not None else tiny_net(objective)
    strat = get_strategy(strategy)
    backend = build_backend(kind, net, strat, copy.deepcopy(cfg), layer_groups=layer_groups, total_steps=10, **kw)
    outs = []
    dtype = next(net.parameters()).dtype  # a float64 net gets float64 images (the oracle tests)
    for step, (x, y) in enumerate(batches(steps, rank, views=net.objective.views)):
        outs.append(strat.step(net, x.to(dtype), y, backend, step_rng(seed, step)))
    return net, backend, outs


def max_param_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest absolute difference over all parameters of two nets of equal structure."""
    return max(float((p.detach() - q.detach()).abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def state_diffs(a: torch.nn.Module, b: torch.nn.Module) -> dict[str, float]:
    """Per state_dict entry (parameters and buffers: BN running mean/var, num_batches_tracked), the largest
    absolute difference of two nets of equal structure; integer buffers are compared as numbers."""
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        raise ValueError(f"nets differ in structure: {sorted(sa.keys() ^ sb.keys())[:5]}")
    return {k: float((sa[k].double() - sb[k].double()).abs().max()) if sa[k].numel() else 0.0 for k in sa}


def max_state_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Largest absolute difference over all parameters *and* buffers of two nets of equal structure.

    A strategy that runs a choice's forward twice updates its BN running statistics twice with the same
    parameters: only the buffers show it.
    """
    return max(state_diffs(a, b).values())
