"""What the oracle tests share: float64 nets and batches, cached oracle runs, tolerances, the comparison."""

from __future__ import annotations

import functools

import torch
from torch import nn

from lwsl_ds.space import SuperNet
from tests.engines.harness import batches, ds_config, state_diffs, tiny_net
from tests.oracle import oracle

STEPS = 2
# Tolerances, each >= 10x the noise floor measured on this machine (docs/testing.md has the floors):
TOL_SGD = 1e-12  # float64 end to end, SGD: only summation order differs (floor 3.3e-16)
TOL_ADAM = 1e-8  # float64 Adam: eps 1e-8 turns 1e-17 gradients that are zero in exact arithmetic (a BN bias
#                  before a BN) into 1e-10 steps (floor 5.1e-10)
TOL_ZERO12 = 1e-5  # ZeRO 1/2 round to fp32 whatever the model's dtype (DeepSpeed's communication_data_type
#                    has no fp64): SGD there sees fp32 rounding (floor 2.4e-7; gradients 1.1e-7)
STRATEGIES = ["spos", "greedy", "non_greedy"]
GROUPS = [[0, 1], [2, 3]]
UNEVEN = [[0], [1, 2, 3]]


def adam(stage: int = 0) -> dict:
    """The paper's optimizer as the project configures it: Adam, L2 weight decay (adam_w_mode false), cosine."""
    return ds_config(stage)


def sgd(stage: int = 0) -> dict:
    """SGD with momentum and weight decay, cosine schedule."""
    cfg = ds_config(stage)
    cfg["optimizer"] = {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9, "weight_decay": 4e-5}}
    return cfg


def bn_free(net: SuperNet) -> SuperNet:
    """``net`` with every BatchNorm replaced by the identity (micro-batches equal one batch only without BN)."""
    for m in list(net.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(m, name, nn.Identity())
    return net


def f64_net(objective: str = "ce", no_bn: bool = False) -> SuperNet:
    """The tiny super-net of the engine tests, in float64."""
    net = tiny_net(objective).double()
    return bn_free(net) if no_bn else net


def data(steps: int, views: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The engine tests' batches, in float64."""
    return [(x.double(), y) for x, y in batches(steps, views=views)]


def oracle_train(net: SuperNet, strategy: str, opt: str, steps: int = STEPS, from_input: bool = False) -> None:
    """``oracle.train`` with the tests' batches, optimizer and cosine schedule, on 1 thread (tiny tensors: a
    second thread only adds contention on a busy 2-core machine, as in harness.train)."""
    cfg = {"adam": adam, "sgd": sgd}[opt]()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        oracle.train(net, strategy, oracle.optimizer_from(cfg["optimizer"]), data(steps, net.objective.views),
                     total_steps=10, from_input=from_input)
    finally:
        torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def _oracle_state(strategy: str, objective: str, opt: str, no_bn: bool, steps: int) -> dict:
    net = f64_net(objective, no_bn)
    oracle_train(net, strategy, opt, steps)
    return {k: v.clone() for k, v in net.state_dict().items()}


def oracle_net(strategy: str, objective: str = "ce", opt: str = "adam", no_bn: bool = False,
               steps: int = STEPS) -> SuperNet:
    """A fresh tiny net trained by the oracle (cached per case: several backends compare with one run)."""
    net = f64_net(objective, no_bn)
    net.load_state_dict(_oracle_state(strategy, objective, opt, no_bn, steps))
    return net


def assert_matches_oracle(net: SuperNet, expected: SuperNet, tol: float) -> None:
    """Every parameter and buffer within ``tol`` of the oracle's; the worst entry is named on failure."""
    diffs = state_diffs(net, expected)
    worst = max(diffs, key=diffs.get)
    print(f"noise floor: {diffs[worst]:.2e} at {worst}")  # pytest -s shows the floors (docs/testing.md)
    assert diffs[worst] <= tol, f"{worst} differs from the oracle by {diffs[worst]:.3e} (tolerance {tol:.0e})"
