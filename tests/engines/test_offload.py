"""train.offload_inactive: inactive layer groups' model states wait in host memory between their uses.

On this CPU-only machine host and device are the same memory, so what is checked here is what can be:
updates with offload equal updates without it bit for bit (Adam, ZeRO 0 and ZeRO 2 groups, greedy and
non-greedy with its read-only fetch across a group boundary), the moves ran for exactly the opted-in groups
and the right number of times, and between steps those groups' tensors are the host buffers (ZeRO 0) or
DeepSpeed's offloaded state (ZeRO 1/2). The GPU check (tensors on pinned host memory between steps, lower
``max_memory_allocated``) is the last test and runs only where CUDA is available.
"""

from __future__ import annotations

import copy

import pytest
import torch

from lwsl_ds.config import ConfigError
from lwsl_ds.engines import build_backend
from lwsl_ds.strategies import get_strategy, step_rng
from tests.engines.harness import BATCH, RES, batches, ds_config, max_param_diff, tiny_net, train

GROUPS = [[0, 1], [2, 3]]
ZERO2_GROUP1 = {1: {"zero_optimization": {"stage": 2}}}


def _host_resident(backend, g: int) -> bool:
    """True when group g's parameters and optimizer state are the offloader's host tensors / DeepSpeed's."""
    off = backend.offloads[g]
    engine = backend.engines[g]
    if off.zero == 0:
        params = all(p.data_ptr() == off._host[(id(p), "data")].data_ptr() for p in engine.module.parameters())
    else:
        from deepspeed.runtime.zero.offload_config import OffloadStateTypeEnum as S

        params = {S.hp_params, S.lp_params, S.lp_grads} <= engine.optimizer.offloaded_states
    opt = off._inner_optimizer()
    states = [(id(p), k, v) for p, st in opt.state.items() for k, v in st.items() if k != "step"]
    return params and bool(states) and all(v is off._host[(pid, k)] for pid, k, v in states)


@pytest.mark.parametrize("strategy", ["greedy", "non_greedy"])
def test_offload_updates_equal_resident_updates_exactly(strategy: str) -> None:
    kw = dict(layer_groups=GROUPS, group_overrides=ZERO2_GROUP1)  # group 0: ZeRO 0 (own moves), 1: ZeRO 2 (DeepSpeed's)
    ref, rb, _ = train("deepspeed", strategy, ds_config(0), steps=3, **kw)
    off, ob, _ = train("deepspeed", strategy, ds_config(0), steps=3, offload_inactive=True, **kw)
    assert max_param_diff(ref, tiny_net()) > 1e-3  # Adam did move the weights
    assert max_param_diff(ref, off) == 0.0
    assert [float(torch.dist(a, b)) for a, b in zip(ref.buffers(), off.buffers()) if a.is_floating_point()] == \
        [0.0] * sum(1 for b in ref.buffers() if b.is_floating_point())  # BN statistics too
    # One move out at construction and after each step, one move in per step; non-greedy's last layer of
    # group 0 runs layer 2's choices read-only: group 1's parameters fetched once per step.
    fetch = 3 if strategy == "non_greedy" else 0
    assert ob.offload_moves() == {0: {"to_host": 4, "to_device": 3, "fetch": 0},
                                  1: {"to_host": 4, "to_device": 3, "fetch": fetch}}
    assert all(_host_resident(ob, g) for g in (0, 1))
    assert "model states in host memory when inactive" in ob.plan.describe()
    assert not hasattr(rb, "offloads") or rb.offloads == {}


def test_offload_only_the_chosen_groups_and_checkpoints_round_trip(tmp_path) -> None:
    net, backend, _ = train("deepspeed", "greedy", ds_config(0), steps=2, layer_groups=GROUPS, offload_inactive=[1])
    assert list(backend.offload_moves()) == [1] and not hasattr(backend.offloads.get(0), "moves")
    backend.save(tmp_path, "t")  # brings group 1 in for the save, parks it again afterwards
    assert _host_resident(backend, 1) and backend.offload_moves()[1]["to_host"] == 4
    twin_net = tiny_net(seed=5)  # different initial weights: everything must come from the checkpoint
    twin = build_backend("deepspeed", twin_net, get_strategy("greedy"), copy.deepcopy(ds_config(0)),
                         layer_groups=GROUPS, total_steps=10, offload_inactive=[1])
    twin.load(tmp_path, "t")
    assert _host_resident(twin, 1)
    x, y = batches(3)[2]
    for n, b in ((net, backend), (twin_net, twin)):
        get_strategy("greedy").step(n, x, y, b, step_rng(0, 2))
    assert max_param_diff(net, twin_net) == 0.0


def test_offload_refused_where_it_cannot_work() -> None:
    with pytest.raises(ConfigError, match="SPOS"):
        build_backend("deepspeed", tiny_net(), get_strategy("spos"), ds_config(0), layer_groups=GROUPS,
                      offload_inactive=True)
    with pytest.raises(ConfigError, match="DeepSpeed backend only"):
        build_backend("reference", tiny_net(), get_strategy("greedy"), ds_config(0), offload_inactive=True)
    with pytest.raises(ConfigError, match="do not exist"):
        build_backend("deepspeed", tiny_net(), get_strategy("greedy"), ds_config(0), layer_groups=GROUPS,
                      offload_inactive=[2])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU-only check: host vs device placement and "
                                                          "max_memory_allocated need CUDA")
def test_cuda_inactive_states_on_pinned_host_and_lower_peak() -> None:
    """On a GPU: between steps the offloaded groups live in pinned host memory, and the step's peak drops."""
    peaks = {}
    for offload in (False, True):
        torch.manual_seed(0)
        net = tiny_net().cuda()
        strat = get_strategy("non_greedy")
        backend = build_backend("deepspeed", net, strat, copy.deepcopy(ds_config(0)), layer_groups="per_layer",
                                total_steps=10, offload_inactive=offload, group_overrides=ZERO2_GROUP1)
        g = torch.Generator().manual_seed(1)
        for step in range(3):
            x = torch.randn(BATCH, 3, RES, RES, generator=g).cuda()
            y = torch.randint(0, 10, (BATCH,), generator=g).cuda()
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            strat.step(net, x, y, backend, step_rng(0, step))
            torch.cuda.synchronize()
            peaks[offload] = torch.cuda.max_memory_allocated()
            if offload:
                for gi, off in backend.offloads.items():
                    eng = backend.engines[gi]
                    for p in eng.module.parameters():
                        assert p.device.type == "cpu" and p.is_pinned(), (gi, p.shape)
                    for st in off._inner_optimizer().state.values():
                        for k, v in st.items():
                            if torch.is_tensor(v):
                                assert v.device.type == "cpu", (gi, k)
        del backend, net
        torch.cuda.empty_cache()
    assert peaks[True] < peaks[False], peaks
