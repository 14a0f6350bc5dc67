"""Epoch plan: sharding, shuffle and partial batches (pure numpy, no decoding)."""

from __future__ import annotations

import numpy as np
import pytest

from lwsl_ds.data.plan import epoch_order, num_batches, num_padded, rank_batches, sample_seed


def _all_ranks(n, b, w, drop_last, epoch=0, seed=3, shuffle=True):
    return [rank_batches(n, batch_size=b, world_size=w, rank=r, seed=seed, epoch=epoch, shuffle=shuffle,
                         drop_last=drop_last) for r in range(w)]


@pytest.mark.parametrize("n,b,w", [(100, 8, 1), (100, 8, 2), (101, 8, 2), (17, 4, 3), (64, 32, 2),
                                   (7, 5, 2), (1000, 7, 4)])
def test_every_sample_exactly_once_per_epoch_and_equal_batch_counts(n, b, w):
    per_rank = _all_ranks(n, b, w, drop_last=False)
    counts = {len(bs) for bs in per_rank}
    assert counts == {num_batches(n, b, w, False)}, "ranks must agree on the number of batches"
    seen = np.concatenate([x for bs in per_rank for x in bs])
    assert num_padded(n, b, w, False) == 0
    assert sorted(seen.tolist()) == list(range(n))
    for bs in per_rank:
        assert all(1 <= len(x) <= b for x in bs)


def test_global_order_is_the_epoch_permutation_split_across_ranks():
    n, b, w = 50, 4, 2
    per_rank = _all_ranks(n, b, w, drop_last=False, epoch=5)
    rebuilt = np.concatenate([np.concatenate([per_rank[r][k] for r in range(w)]) for k in range(len(per_rank[0]))])
    assert rebuilt.tolist() == epoch_order(n, 3, 5, True).tolist()


def test_shuffle_depends_on_seed_and_epoch_only():
    a = epoch_order(1000, 1, 0, True)
    assert a.tolist() == epoch_order(1000, 1, 0, True).tolist()
    assert a.tolist() != epoch_order(1000, 1, 1, True).tolist()
    assert a.tolist() != epoch_order(1000, 2, 0, True).tolist()
    assert epoch_order(10, 1, 0, False).tolist() == list(range(10))


def test_drop_last_drops_the_partial_global_batch_on_all_ranks():
    n, b, w = 101, 8, 2
    per_rank = _all_ranks(n, b, w, drop_last=True)
    assert all(len(bs) == 101 // 16 for bs in per_rank)
    assert all(len(x) == b for bs in per_rank for x in bs)
    seen = np.concatenate([x for bs in per_rank for x in bs])
    assert len(set(seen.tolist())) == len(seen) == 96


def test_last_batch_smaller_than_world_is_padded_so_no_rank_is_empty():
    n, b, w = 17, 4, 4  # last global batch holds 1 sample for 4 ranks
    per_rank = _all_ranks(n, b, w, drop_last=False)
    assert num_padded(n, b, w, False) == 3
    assert all(len(bs[-1]) == 1 for bs in per_rank)
    seen = np.concatenate([x for bs in per_rank for x in bs])
    assert set(seen.tolist()) == set(range(n)) and len(seen) == n + 3


def test_sample_seed_is_a_pure_function_of_its_arguments():
    assert sample_seed(0, 1, 2, 0) == sample_seed(0, 1, 2, 0)
    assert len({sample_seed(0, e, i, v) for e in range(3) for i in range(50) for v in range(2)}) == 300


def test_rank_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="rank 2"):
        rank_batches(10, batch_size=2, world_size=2, rank=2, seed=0, epoch=0, shuffle=True, drop_last=False)
