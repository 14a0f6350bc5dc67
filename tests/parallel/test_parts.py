"""Single-process parts of layer-parallel training: staleness schedule, messages, topology, balance, config."""

from __future__ import annotations

import pytest
import torch

from lwsl_ds.config.schema import ConfigError, from_dict
from lwsl_ds.parallel import ParallelConfig, Topology
from lwsl_ds.parallel.balance import _atoms, measured_groups
from lwsl_ds.parallel.channel import KIND_DATA, pack, payload_view, unpack_header
from lwsl_ds.parallel.replica import flat_params, load_flat, needed_version, replica_modules
from lwsl_ds.parallel.group_backend import replay_draws
from lwsl_ds.strategies import get_strategy, step_rng
from tests.engines.harness import tiny_net


def test_needed_version_schedule():
    # L=0, K=1: the synchronous weights (version t at step t)
    assert [needed_version(t, 1, 0) for t in range(5)] == [0, 1, 2, 3, 4]
    # L=1: one step old; L=2, K=2: 2..3 steps old, only even versions
    assert [needed_version(t, 1, 1) for t in range(5)] == [0, 0, 1, 2, 3]
    assert [needed_version(t, 2, 2) for t in range(8)] == [0, 0, 0, 0, 2, 2, 4, 4]
    for t in range(20):
        v = needed_version(t, 4, 3)
        assert v % 4 == 0 and (t < 3 or 3 <= t - v <= 3 + 4 - 1)


def test_message_roundtrip_is_bit_exact():
    labels = torch.tensor([3, 1, 4, 1], dtype=torch.int64)
    x = torch.randn(4, 5, 3, 3)
    buf = pack(KIND_DATA, 7, 4, 0, [labels, x], 32 + 4 * 8 + x.numel() * 4)
    assert unpack_header(buf) == (KIND_DATA, 7, 4, 0)
    assert torch.equal(payload_view(buf, 0, torch.int64, (4,)), labels)
    assert torch.equal(payload_view(buf, 32, torch.float32, (4, 5, 3, 3)), x)
    with pytest.raises(ValueError, match="exceeds the fixed size"):
        pack(KIND_DATA, 0, 0, 0, [x], 64)


def test_replica_flat_roundtrip():
    a, b = tiny_net(seed=0), tiny_net(seed=1)
    ma, mb = replica_modules(a, 2), replica_modules(b, 2)
    assert len(ma) == 3  # layer 2 of the demo space: skip has no parameters
    load_flat(mb, flat_params(ma))
    assert all(torch.equal(p, q) for m, n in zip(ma, mb) for p, q in zip(m.parameters(), n.parameters()))
    with pytest.raises(ValueError, match="values received"):
        load_flat(mb, torch.zeros(3))


def test_topology_is_group_major():
    t = Topology(groups=3, data_parallel=2, rank=3)
    assert (t.group, t.data_rank) == (1, 1)
    assert t.group_ranks(2) == [4, 5] and t.rank_of(0, 1) == 1
    assert not t.is_first and not t.is_last
    with pytest.raises(ValueError, match="outside a world"):
        Topology(groups=2, data_parallel=1, rank=2)


def test_parallel_config_rejects_bad_values():
    assert from_dict(ParallelConfig, {"mode": "layer", "replica_lag": 0}).replica_lag == 0
    with pytest.raises(ConfigError, match="queue_depth"):
        from_dict(ParallelConfig, {"queue_depth": 0})
    with pytest.raises(ConfigError, match="mode"):
        from_dict(ParallelConfig, {"mode": "pipeline"})


def test_replayed_draws_match_the_synchronous_order():
    net, strat = tiny_net(), get_strategy("non_greedy")
    full = step_rng(0, 5)
    replay_draws(strat, net, 2, full)  # draws of the stem and layers 0, 1
    sync = step_rng(0, 5)
    strat.rng_draws(net, -1, 0, sync)
    for i in range(2):
        for k in net.space.layers[i].choices:
            strat.rng_draws(net, i, k, sync)
    assert full.random() == sync.random()


def test_measured_groups_keep_non_greedy_head_layers_together():
    torch.set_num_threads(1)
    net = tiny_net()
    strat = get_strategy("non_greedy")
    assert _atoms(net, strat) == [[0], [1], [2, 3]]
    x, y = torch.randn(4, 3, 16, 16), torch.randint(0, 10, (4,))
    groups, secs = measured_groups(net, strat, x, y, 3, steps=1, broadcast=False)
    assert groups == [[0], [1], [2, 3]] and len(secs) == 4 and all(s > 0 for s in secs)
    with pytest.raises(ValueError, match="at most 3"):
        measured_groups(net, strat, x, y, 4, steps=1, broadcast=False)
    g2, _ = measured_groups(net, get_strategy("greedy"), x, y, 2, steps=1, broadcast=False)
    assert len(g2) == 2 and sum(g2, []) == [0, 1, 2, 3]


def test_topology_of_world_refuses_a_width_that_does_not_divide_naming_the_key():
    t = Topology.of_world(6, 2, 5)
    assert (t.groups, t.data_parallel, t.group, t.data_rank) == (3, 2, 2, 1)
    with pytest.raises(ConfigError, match=r"--parallel data_parallel=4 does not divide the world size 6"):
        Topology.of_world(6, 4, 0, key="--parallel data_parallel")


def test_parallel_from_items_parses_yaml_values_and_names_bad_items():
    from lwsl_ds.parallel.config import parallel_from_items

    par = parallel_from_items(["replica_lag=0", "timeout_s=12.5"])
    assert (par.mode, par.replica_lag, par.timeout_s) == ("layer", 0, 12.5)
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parallel_from_items(["replica_lag"])
    with pytest.raises(ConfigError, match=r"^--parallel: .*queue_depth"):
        parallel_from_items(["queue_depth=0"])


def test_layer_input_format_roundtrip_with_a_short_batch_and_two_views():
    from lwsl_ds.parallel.channel import LayerInputFormat

    fmt = LayerInputFormat(batch=4, shape=(8, 5, 3, 3), dtype=torch.float32)
    assert fmt.nbytes == 32 + 4 * 8 + 8 * 5 * 9 * 4
    labels, x = torch.tensor([2, 7, 1]), torch.randn(6, 5, 3, 3)  # 3 samples x 2 views: a short last batch
    buf = fmt.encode(11, labels, x, "cpu")
    assert buf.numel() == fmt.nbytes and unpack_header(buf) == (KIND_DATA, 11, 3, 0)
    got_x, got_labels = fmt.decode(buf, 3)
    assert torch.equal(got_x, x) and torch.equal(got_labels, labels)


def test_factory_refuses_spos_and_a_group_count_that_is_not_the_rank_sets():
    from lwsl_ds.parallel.factory import layer_plan, require_layerwise

    with pytest.raises(ConfigError, match="train.strategy=spos with parallel.mode=layer"):
        require_layerwise(get_strategy("spos"))
    net, strategy = tiny_net(), get_strategy("greedy")
    assert layer_plan(net, strategy, [[0, 1], [2, 3]], Topology(2, 1, 0)).groups == [[0, 1], [2, 3]]
    with pytest.raises(ConfigError, match=r"3 layer groups .* world size 4 / data_parallel 2 = 2 rank sets"):
        layer_plan(net, strategy, [[0], [1], [2, 3]], Topology(2, 2, 0))
