"""Layer groups and ds_config validation: clear errors before training starts."""

from __future__ import annotations

import json

import pytest

from lwsl_ds.config import ConfigError
from lwsl_ds.config.ds_config import derive_group_config, load_ds_config, validate_ds_config
from lwsl_ds.engines import GroupPlan, partition_balanced
from lwsl_ds.strategies import get_strategy
from tests.engines.harness import ds_config, tiny_net


def test_partition_balanced_minimises_largest_group():
    assert partition_balanced([1, 1, 1, 10], 2) == [[0, 1, 2], [3]]
    assert partition_balanced([5, 1, 1, 1, 1, 1], 2) == [[0], [1, 2, 3, 4, 5]]
    assert partition_balanced([1, 2, 3], 3) == [[0], [1], [2]]


@pytest.mark.parametrize("groups,msg", [([[0, 1], [2]], "layers \\[3\\] are in no group"),
                                        ([[0, 1], [1, 2, 3]], "layer 1 is in groups 0 and 1"),
                                        ([[0, 2], [1, 3]], "contiguous"),
                                        ([[0, 1, 2, 3, 4]], "layer 4 in group 0 does not exist")])
def test_explicit_groups_errors(groups, msg):
    with pytest.raises(ConfigError, match=msg):
        GroupPlan.build(tiny_net(), get_strategy("greedy"), groups)


def test_non_greedy_head_layers_must_share_a_group():
    net = tiny_net()
    with pytest.raises(ConfigError, match="'head' from the losses of layers \\[2, 3\\]"):
        GroupPlan.build(net, get_strategy("non_greedy"), [[0, 1, 2], [3]])
    plan = GroupPlan.build(net, get_strategy("non_greedy"), "per_layer")
    assert plan.groups == [[0], [1], [2, 3]]
    # stem and decoder_of(0) train with layer 0's group; decoder_of(-1) is never trained by non-greedy
    names0 = {u.name for u in plan.units[0]}
    assert {"stem", "decoders.0", "decoders.1"} <= names0 and "stem_decoder" not in names0


def test_auto_groups_balanced_and_every_unit_once():
    net = tiny_net()
    plan = GroupPlan.build(net, get_strategy("greedy"), "auto", auto_groups=3)
    assert len(plan.groups) == 3 and [i for g in plan.groups for i in g] == list(range(net.num_layers))
    names = [u.name for us in plan.units for u in us]
    assert len(names) == len(set(names))
    assert plan.calls == [(0 in g) + sum(len(net.space.layers[i].choices) for i in g) for g in plan.groups]


def _write(tmp_path, data) -> str:
    p = tmp_path / "ds.json"
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(p)


def test_malformed_json_names_file_and_line(tmp_path):
    with pytest.raises(ConfigError, match=r"ds\.json: malformed JSON at line 2"):
        load_ds_config(_write(tmp_path, '{"train_micro_batch_size_per_gpu": 4,\n "x": }'))


@pytest.mark.parametrize("change,world,msg", [
    ({"gradient_clip": 1.0}, 1, "unknown top-level key 'gradient_clip' \\(did you mean 'gradient_clipping'\\?\\)"),
    ({"train_batch_size": 12}, 2, "batch sizes do not multiply out: train_batch_size=12"),
    ({"optimizer": {"type": "Lamb2", "params": {}}}, 1, "unknown optimizer 'Lamb2'"),
    ({"optimizer": {"type": "Adam", "params": {"lr": 0.1, "weight_dacay": 0.1}}}, 1, "weight_dacay"),
    ({"scheduler": {"type": "cosine"}}, 1, "unknown scheduler 'cosine'"),
    ({"zero_optimization": {"stage": 4}}, 1, "stage: 4"),
])
def test_bad_ds_config_is_rejected(change, world, msg):
    cfg = {**ds_config(0), **change}
    with pytest.raises(ConfigError, match=msg):
        validate_ds_config(cfg, world)


def test_clipping_must_be_explicit():
    cfg = ds_config(0)
    del cfg["gradient_clipping"]
    with pytest.raises(ConfigError, match="gradient_clipping is not set"):
        validate_ds_config(cfg, 1)


def test_group_config_derivation():
    cfg = derive_group_config(ds_config(2), {"zero_optimization": {"reduce_bucket_size": 1000}}, group=1,
                              backward_calls=7, world_size=2, job_name="run_group1")
    assert cfg["gradient_accumulation_steps"] == 7 and cfg["train_batch_size"] == 4 * 7 * 2
    assert cfg["zero_optimization"] == {"stage": 2, "reduce_bucket_size": 1000, "allgather_bucket_size": int(2e7)}
    with pytest.raises(ConfigError, match="stage 3 is not supported"):
        derive_group_config(ds_config(3), None, group=0, backward_calls=1, world_size=1, job_name="x")
    with pytest.raises(ConfigError, match="gradient_accumulation_steps=2"):
        derive_group_config({**ds_config(0), "gradient_accumulation_steps": 2}, None, group=0, backward_calls=1,
                            world_size=1, job_name="x")
