"""Model-state formulas per ZeRO stage, precision, world size; per-engine buckets; group offload."""

from __future__ import annotations

import pytest

from lwsl_ds.memory import DEFAULT_BUCKET, engine_states, offloaded_device_states

N = 1_000_000


def test_zero0_fp32_adam_is_16_bytes_per_parameter() -> None:
    s = engine_states(N)
    assert (s.params, s.grads, s.master, s.optimizer, s.buckets) == (4 * N, 4 * N, 0, 8 * N, 0)
    assert s.total == 16 * N


def test_zero_partitions_scale_with_world_size() -> None:
    for stage in (1, 2):
        one = engine_states(N, zero_stage=stage, world_size=1, reduce_bucket_size=1000)
        four = engine_states(N, zero_stage=stage, world_size=4, reduce_bucket_size=1000)
        assert four.optimizer * 4 == one.optimizer and four.master * 4 == one.master
        assert four.params == one.params  # ZeRO 1/2 keep full parameters
    z1 = engine_states(N, zero_stage=1, world_size=4, reduce_bucket_size=0)
    z2 = engine_states(N, zero_stage=2, world_size=4, reduce_bucket_size=0)
    assert z2.grads < z1.grads  # ZeRO 2 partitions gradients too


def test_buckets_are_per_engine_and_doubled_by_overlap() -> None:
    s = engine_states(N, zero_stage=2, reduce_bucket_size=DEFAULT_BUCKET, precision="bf16")
    assert s.buckets == DEFAULT_BUCKET * 2
    assert engine_states(N, zero_stage=2, reduce_bucket_size=DEFAULT_BUCKET, precision="bf16",
                         overlap_comm=True).buckets == 2 * s.buckets
    assert engine_states(N, zero_stage=0).buckets == 0


def test_mixed_precision_keeps_fp32_master() -> None:
    s = engine_states(N, precision="bf16")
    assert s.params == 2 * N and s.master == 4 * N and s.optimizer == 8 * N


@pytest.mark.parametrize("kw,msg", [({"zero_stage": 3}, "zero_stage"), ({"precision": "fp8"}, "precision"),
                                    ({"optimizer": "lamb"}, "optimizer"), ({"world_size": 0}, "world_size")])
def test_bad_arguments_are_named(kw: dict, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        engine_states(N, **kw)


def test_offload_keeps_only_the_active_group() -> None:
    groups = [engine_states(N, name="g0"), engine_states(3 * N, name="g1"), engine_states(2 * N, name="g2")]
    assert offloaded_device_states(groups, prefetch=False) == 16 * 3 * N
    assert offloaded_device_states(groups, prefetch=True) == 16 * 5 * N  # g1 active while g2 comes in
    assert offloaded_device_states(groups, prefetch=False, read_only_next=[7, 0, 0]) == 16 * 3 * N


def test_offload_per_group_keeps_zero12_buckets_on_device() -> None:
    """As engines/offload.py implements it: chosen groups only, their reduce buckets stay resident."""
    z2 = [engine_states(N, name="g0", zero_stage=2, reduce_bucket_size=100),
          engine_states(3 * N, name="g1", zero_stage=2, reduce_bucket_size=100),
          engine_states(2 * N, name="g2", zero_stage=2, reduce_bucket_size=100)]
    b = z2[0].buckets
    assert b > 0 and all(e.buckets == b for e in z2)
    assert offloaded_device_states(z2, prefetch=False) == z2[1].total + 2 * b  # g1 active, the others' buckets
    # g2 always resident: g0 or g1 active beside it
    assert offloaded_device_states(z2, prefetch=False, offloaded=[0, 1]) == z2[1].total + b + z2[2].total
    # read-only bytes of group g from group g+1 count only while g+1 is offloaded
    big = 10 ** 9
    assert offloaded_device_states(z2, prefetch=False, offloaded=[0, 1], read_only_next=[0, big, 0]) == \
        z2[1].total + b + z2[2].total
    assert offloaded_device_states(z2, prefetch=False, offloaded=[0, 1], read_only_next=[big, 0, 0]) == \
        z2[0].total + b + z2[2].total + big
