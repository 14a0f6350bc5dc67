"""train.micro_batches on the DeepSpeed engines: micro-batched updates equal unbalanced ones without BN.

The launcher cannot build a network without batch norm, so equality is checked here through
``build_backend`` (the same call launchers/train.py makes) on a BN-free tiny net; the launcher path itself
(auto plan from the accounting, logged, a layer split) is checked in tests/memory/test_train_levers.py.
SGD, not Adam: Adam with eps 1e-8 turns fp32 summation-order noise on near-zero gradients into full-size
steps (see test_equivalence.py), which would hide what is compared here.
"""

from __future__ import annotations

import pytest
from torch import nn

from lwsl_ds.config import ConfigError
from lwsl_ds.engines import build_backend
from lwsl_ds.memory import MicroBatchBackend
from lwsl_ds.strategies import get_strategy
from tests.engines.harness import BATCH, ds_config, max_param_diff, tiny_net, train

GROUPS = [[0, 1], [2, 3]]


def bn_free_net():
    """The tiny demo super-net with every BatchNorm replaced by the identity (as tests/memory/test_balance.py)."""
    net = tiny_net()
    for m in list(net.modules()):
        for name, child in list(m.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(m, name, nn.Identity())
    return net


def sgd_config(stage: int) -> dict:
    cfg = ds_config(stage)
    cfg["optimizer"] = {"type": "SGD", "params": {"lr": 0.1, "momentum": 0.9, "weight_decay": 4e-5}}
    return cfg


@pytest.mark.parametrize("strategy,stage", [("greedy", 0), ("non_greedy", 2)])
def test_micro_batched_engines_equal_unbalanced_without_bn(strategy: str, stage: int) -> None:
    plan = {-1: 2, 0: BATCH, 2: 3}  # 3 does not divide the batch of 4: unequal micro-batches
    ref, _, _ = train("deepspeed", strategy, sgd_config(stage), steps=3, layer_groups=GROUPS, net=bn_free_net())
    bal, backend, _ = train("deepspeed", strategy, sgd_config(stage), steps=3, layer_groups=GROUPS,
                            net=bn_free_net(), micro_batches=plan)
    assert isinstance(backend, MicroBatchBackend) and backend.micro_batches == plan
    assert max(backend.micro_batches.values()) > 1
    # The engines' accumulation windows count every micro-batch: group 0 = stem 2 + L0 4x4 choices + L1 3.
    calls = get_strategy(strategy).backward_calls(bal)
    assert backend.plan.calls[0] == 2 + BATCH * calls[0] + calls[1]
    assert backend.global_steps == 3
    assert max_param_diff(ref, bn_free_net()) > 0.1  # the weights did move
    assert max_param_diff(ref, bal) < 1e-6  # fp32, only the summation order differs (measured 3e-8)
    assert "micro-batches stem:2 L0:4" in backend.plan.describe()


def test_auto_plan_splits_a_layer_and_refuses_spos() -> None:
    net = bn_free_net()
    backend = build_backend("reference", net, get_strategy("non_greedy"), ds_config(0), micro_batches="auto")
    assert isinstance(backend, MicroBatchBackend) and max(backend.micro_batches.values()) > 1
    assert set(backend.micro_batches) == set(range(-1, net.num_layers))
    with pytest.raises(ConfigError, match="SPOS"):
        build_backend("reference", net, get_strategy("spos"), ds_config(0), micro_batches="auto")
    with pytest.raises(ConfigError, match="memory_budget_mib"):
        build_backend("reference", net, get_strategy("greedy"), ds_config(0), memory_budget_mib=10.0)
    with pytest.raises(ConfigError, match="micro_batches"):
        build_backend("reference", net, get_strategy("greedy"), ds_config(0), micro_batches={7: 2})
