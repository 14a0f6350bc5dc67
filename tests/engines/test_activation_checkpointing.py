"""train.activation_checkpointing through the DeepSpeed engines: same updates and BN buffers, real recomputation.

Tiny demo net (BN everywhere), 2 layer groups [[0, 1], [2, 3]], Adam, 3 steps. With every group checkpointed
the parameters and BN running buffers equal the run without checkpointing (greedy, non_greedy, spos; ZeRO 0
and 2). With only group 1 checkpointed, group 0's choices run once per call and group 1's twice (forward +
recomputation in backward), non-greedy's read-only calls made by group 0's losses are not recomputed, and
the accounted saved bytes drop in layers 2-3 only.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from lwsl_ds.config.schema import ConfigError
from lwsl_ds.memory import Levers, account_step

from tests.engines.harness import ds_config, tiny_net, train

GROUPS = [[0, 1], [2, 3]]


def _max_diff(a: nn.Module, b: nn.Module) -> float:
    """Largest absolute difference over parameters and (float) buffers of two equal-structure nets."""
    pairs = list(zip(a.parameters(), b.parameters())) + list(zip(a.buffers(), b.buffers()))
    return max(float((p.detach().double() - q.detach().double()).abs().max()) for p, q in pairs)


def _count_calls(net: nn.Module) -> tuple[Counter, list]:
    """Count forward calls of each choice module's first conv (fires in forward and in recomputation)."""
    calls: Counter = Counter()
    handles = []
    for i in range(net.num_layers):
        for k in net.space.layers[i].choices:
            conv = next((m for m in net.choice(i, k).modules() if isinstance(m, nn.Conv2d)), None)
            if conv is not None:
                handles.append(conv.register_forward_hook(lambda *_, key=(i, k): calls.update([key])))
    return calls, handles


@pytest.mark.parametrize("strategy", ["greedy", "non_greedy", "spos"])
@pytest.mark.parametrize("stage", [0, 2])
def test_checkpointed_equals_plain_params_and_bn_buffers(strategy: str, stage: int) -> None:
    cfg = ds_config(stage)
    plain, _, outs_a = train("deepspeed", strategy, cfg, layer_groups=GROUPS)
    ck, backend, outs_b = train("deepspeed", strategy, cfg, layer_groups=GROUPS, activation_checkpointing=True)
    assert backend.plan.checkpointed == [0, 1]
    assert _max_diff(plain, ck) <= 1e-6
    moved = max(float((p.detach() - q.detach()).abs().max()) for p, q in zip(tiny_net().parameters(),
                                                                             ck.parameters()))
    assert moved > 1e-3  # the weights did train
    bn = [m for m in ck.modules() if isinstance(m, nn.BatchNorm2d) and int(m.num_batches_tracked) > 0]
    twin = dict(plain.named_modules())
    names = {id(m): n for n, m in ck.named_modules()}
    assert bn and all(int(m.num_batches_tracked) == int(twin[names[id(m)]].num_batches_tracked) for m in bn)
    for a, b in zip(outs_a, outs_b):
        for key in a:
            if key != "arch":
                torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


@pytest.mark.parametrize("strategy", ["greedy", "non_greedy", "spos"])
def test_only_chosen_groups_recompute(strategy: str) -> None:
    cfg = ds_config(1)
    counts = []
    for spec in (False, [1]):
        net = tiny_net()
        calls, handles = _count_calls(net)
        _, backend, _ = train("deepspeed", strategy, cfg, layer_groups=GROUPS, net=net, activation_checkpointing=spec)
        for h in handles:
            h.remove()
        counts.append(calls)
    base, ck = counts
    assert backend.plan.checkpointed == [1] and "choices under activation checkpointing" in backend.plan.describe()
    assert sum(base.values()) > 0
    for (i, k), n in base.items():
        if i in GROUPS[0]:
            assert ck[(i, k)] == n, (i, k)  # group 0: never recomputed (incl. its read-only calls of layer 2)
        elif i == 3 or strategy != "non_greedy":
            assert ck[(i, k)] == 2 * n, (i, k)  # every call in group 1's losses is recomputed once
    if strategy == "non_greedy":
        # Layer 2: its trained calls (group 1) recompute, the read-only calls made by layer 1's loss do not.
        two = [(base[(2, k)], ck[(2, k)]) for k in tiny_net().space.layers[2].choices if (2, k) in base]
        assert all(n < c <= 2 * n for n, c in two) and any(c < 2 * n for n, c in two)


def test_reference_backend_and_micro_batches_combine() -> None:
    """Reference backend, non-greedy, checkpointing + micro-batches: same as micro-batches alone."""
    cfg = ds_config(0)
    a, _, _ = train("reference", "non_greedy", cfg, layer_groups=GROUPS, micro_batches={0: 2, 2: 4})
    b, backend, _ = train("reference", "non_greedy", cfg, layer_groups=GROUPS, micro_batches={0: 2, 2: 4},
                          activation_checkpointing=[0])
    assert backend.plan.checkpointed == [0] and _max_diff(a, b) <= 1e-6


def test_saved_bytes_drop_in_checkpointed_layers_only() -> None:
    plain = account_step("demo", "non_greedy", 8, resolution=32, groups=GROUPS)
    ck = account_step("demo", "non_greedy", 8, resolution=32, groups=GROUPS,
                      levers=Levers(activation_checkpointing=[1]))  # group 1 = layers 2, 3
    saved = [{(p.label): p.saved_bytes for p in acc.profile.phases} for acc in (plain, ck)]
    assert saved[1]["L0"] == saved[0]["L0"] and saved[1]["L1"] == saved[0]["L1"]
    assert saved[1]["L2"] < saved[0]["L2"] and saved[1]["L3"] < saved[0]["L3"]


def test_bad_settings_are_refused() -> None:
    cfg = ds_config(0)
    with pytest.raises(ConfigError, match=r"groups \[2\] do not exist"):
        train("reference", "greedy", cfg, steps=0, layer_groups=GROUPS, activation_checkpointing=[0, 2])
    from lwsl_ds.config.sections.parallel import ParallelConfig
    from lwsl_ds.config.sections.train import TrainConfig

    with pytest.raises(ConfigError, match="parallel.mode=layer"):
        TrainConfig(activation_checkpointing=True, parallel=ParallelConfig(mode="layer")).validate()
    with pytest.raises(ConfigError, match=">= 0"):
        TrainConfig(activation_checkpointing=[-1]).validate()
